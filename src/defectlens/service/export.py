"""`export-reviews`: the line's corrections as training material for the next model.

Written into one folder, swapped in whole (see :func:`defectlens.io.atomic_directory`):

* ``examples/<type>/<name>.<ext>`` with ``examples/<type>/masks/<name>_mask.png`` — one image
  per reviewed inspection and type, the mask covering that type's regions; the layout
  ``defectlens inspect --examples DIR/examples`` reads (:func:`~defectlens.classify.examples.examples_from_folders`);
* ``calibration/good/`` and ``calibration/defective/`` — every reviewed image by its final verdict (but those of
  another view than the training images', said in their reports: a crop's score sets no threshold for whole parts),
  a labelled set to set the image threshold on; no masks: the regions are the model's own pixels over its pixel
  threshold, which calibrated on them comes back unchanged (masks a person draws, beside them, move it);
* nothing of an image reviewed unusable (:data:`~defectlens.service.db.UNUSABLE`: another part, a bad frame);
* ``manifest.json`` — what came from which inspection, which fit of the model judged it at what
  threshold, and who reviewed it.

Types and calibration folders are kept apart on purpose: an examples folder read type by type
would otherwise take ``good`` and ``defective`` for defect types.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from defectlens.errors import ConfigError
from defectlens.explain import DEFAULT_OBJECT
from defectlens.io import atomic_directory, json_text, png_bytes, write_bytes_atomic
from defectlens.io.dataset import REVIEW_EXPORT_MANIFEST
from defectlens.io.names import folded_name, same_spelling
from defectlens.service.blobs import BlobStore
from defectlens.service.db import UNUSABLE, InspectionRow, ReviewRow
from defectlens.service.models import REJECT_TYPE, UNKNOWN_TYPE
from defectlens.service.schemas import as_utc, weaker_regions
from defectlens.service.store import Store
from defectlens.taxonomy import normal_type_name, type_name_problem

MANIFEST = REVIEW_EXPORT_MANIFEST
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass
class ExportSummary:
    """What an export wrote."""

    n_inspections: int
    n_examples: int
    types: dict[str, int]
    good: int
    defective: int
    missing_files: list[int]
    """Inspections skipped because their image is no longer in the file store."""
    same_image: list[list[int]] = field(default_factory=list)
    """Inspections of one image (by content), each group written once as its latest review says;
    groups whose reviews disagree on the verdict are listed in :attr:`disagreeing`."""
    disagreeing: list[list[int]] = field(default_factory=list)
    unreviewed_models: list[str] = field(default_factory=list)
    """Models asked for whose inspections are stored but none reviewed yet: nothing of them is in the export."""
    unusable: list[int] = field(default_factory=list)
    """Inspections whose latest review calls the image unusable (another part, a bad frame): left out."""
    contested: list[int] = field(default_factory=list)
    """Exported inspections whose reviewers disagree on the verdict (each one's latest review read): the latest review
    is exported, and the manifest lists every review."""
    no_example: list[int] = field(default_factory=list)
    """Inspections reviewed defective that give no type example: no region kept with a known type (weaker ones left as
    the machine typed them count only when a review names them or nothing else is kept: :func:`_labelled_regions`) and no missed defect with a
    type (written to calibration/defective all the same). Had gone without a word (review-loop probe 2026-12-06)."""
    other_view: list[int] = field(default_factory=list)
    """Inspections of an image unlike the training images' view (a crop, a turned part: its report's ``view_note``): left out
    of calibration/, whose scores would set a threshold for views the line does not make; their examples are kept."""


def _labelled_regions(row: InspectionRow) -> dict[str, list[int]]:
    """The regions of an inspection reviewed defective that are labels, by type. A weaker region
    (:func:`~defectlens.service.schemas.weaker_regions`) left as the machine typed it is the machine's guess, not a
    label, unless a review named it with that type or it is all the reviewer kept: a reviewer who rejected every other
    region and kept the weaker crack had had the part exported with no example and nothing said (review-loop probe
    2026-12-06)."""
    weaker = weaker_regions(row)
    # The (region, type) pairs a person's review named: a weaker region named with the machine's own type is a label (the store
    # sets every region a review leaves out to the type it has, so that choice had left no trace; regression probe 2026-12-06).
    named = {(entry.get("index"), entry.get("type")) for review in _person_reviews(row) for entry in (review.payload or {}).get("regions") or []
             if isinstance(entry, dict)}
    labelled: dict[str, list[int]] = {}
    confirmed: dict[str, list[int]] = {}
    kept_other = False  # a region other than a weaker one kept as a defect, of a known type or 'unknown'
    for r in row.regions:
        final = r.reviewed_type or r.defect_type
        as_typed = r.index in weaker and final == r.defect_type and (r.index, final) not in named
        kept_other = kept_other or (final != REJECT_TYPE and not as_typed)
        if final in (REJECT_TYPE, UNKNOWN_TYPE):
            continue
        (confirmed if as_typed else labelled).setdefault(final, []).append(r.index)
    # Not when another region is kept, even as 'unknown': a plain confirm of a part whose strong region the machine called
    # unknown had exported its weaker guesses as labels (regression probe 2026-12-06).
    return labelled if kept_other else confirmed  # (with nothing else kept, nothing was re-typed either)


def _person_reviews(row: InspectionRow) -> list[ReviewRow]:
    """The reviews of ``row`` that label it, oldest first: notes (a comment alone) aside."""
    return [r for r in row.reviews if not (r.payload or {}).get("note")]


def _reviewers_disagree(row: InspectionRow) -> bool:
    """Whether two people's latest verdicts on ``row`` differ (one person changing their mind is no disagreement; names
    compare without case, as "ana" and "Ana" are one person)."""
    latest = {r.reviewer.casefold(): r.verdict for r in _person_reviews(row)}
    return len(set(latest.values())) > 1


def _foreign_files(folder: Path) -> list[Path]:
    """Files in an earlier export that it did not write (named by its manifest): a re-export
    replaces the folder whole, and removed a note a user had put there without a word."""
    try:
        earlier = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        names = {str(entry["file"]) for entry in earlier.get("inspections", [])}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []
    # Masks beside the calibration images are never replaced: this defectlens writes none, one an export before 0.3.4 wrote
    # may have been redrawn by a person since, and a file's time cannot tell (a copy resets it): a person's had been deleted
    # by the next export (regression and upgrade probes 2026-12-06).
    ours = re.compile(r"(?P<name>\d{6,}_[0-9a-f]{12})(?P<mask>_mask)?\.\w+")  # ids past 999 999 take more digits

    def written_by_export(p: Path) -> bool:
        m = ours.fullmatch(p.name)
        if not m or m.group("name") not in names:
            return False
        return m.group("mask") is None or p.relative_to(folder).parts[0] != "calibration"

    return [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST and not written_by_export(p)]


def folder_name(defect_type: str) -> str:
    """A defect type as a folder name: as it is when it is a valid type name (any script: an
    ``Ölfleck`` folder is the taxonomy's ``Ölfleck`` for ``inspect --examples``); anything else
    (a name stored before the rule) made safe, the last guard before the file system."""
    if type_name_problem(defect_type) is None:
        return normal_type_name(defect_type)
    name = _UNSAFE.sub("_", defect_type).strip("._") or "type"
    return name[:100]


def _type_mask(row: InspectionRow, labels: np.ndarray | None, indices: list[int]) -> np.ndarray:
    mask = np.zeros((row.height, row.width), bool)
    for r in row.regions:
        if r.index not in indices:
            continue
        if not r.missed and labels is not None and labels.shape == mask.shape and r.index < 256:
            mask |= labels == r.index
        else:
            # A missed defect is known only by the reviewer's box.
            mask[r.y0 : r.y1, r.x0 : r.x1] = True
    return mask


def _png(mask: np.ndarray) -> bytes:
    return png_bytes(Image.fromarray(mask.astype(np.uint8) * 255, mode="L"))


def export_reviews(store: Store, blobs: BlobStore, output: str | Path, model: str | Sequence[str] | None = None,
                   part: str | None = None) -> ExportSummary:
    """Write every reviewed inspection of ``store`` (of ``model`` when given: one name, or several
    of one part — a model calibrated into a new folder is served under a new name) under
    ``output`` (replaced as a whole when it is an earlier export or empty); of those whose reports name ``part`` (the
    object of the part's taxonomy) when given: a name served for two parts in turn is exported one part at a time.

    Reviews of several models are refused without ``model``: one calibration set of two parts'
    images was taken by `calibrate` without a word, and set one part's thresholds on the other's.
    So is an export with no review (nothing is written: an earlier export stays), and one over an
    earlier export holding files it did not write. An image posted more than once is written once,
    as its latest review says. A weaker region (:func:`~defectlens.service.schemas.weaker_regions`)
    becomes an example only when a reviewer re-typed it: confirmed as the machine typed it, it is
    the machine's guess, not a label. A missed defect given without a box gets no mask: the model
    locates it, as in any mask-free example."""
    rows = store.reviewed()
    # Models by their labelled reviews: one whose reviews all say "unusable" (another part's images posted to it) has
    # labelled nothing, and is no second part to refuse an export for.
    # In one Unicode spelling each: an older defectlens stored a decomposed "kä" that is the served "kä" (regression probe
    # 2026-12-07: one spelling's rows were exported, the other's left out without a word).
    spelled = {r.id: same_spelling(r.model) for r in rows}
    models = sorted({spelled[r.id] for r in rows if r.reviewed_verdict != UNUSABLE})
    if not models:
        unusable = f" ({len(rows)} reviewed unusable, which are never exported)" if rows else ""
        raise ConfigError(f"no inspection has been reviewed good or defective yet{unusable}: nothing to export", None,
                          "review inspections first (the page, or POST /inspections/{id}/review); an earlier export is left as it is")
    wanted = [model] if isinstance(model, str) else list(dict.fromkeys(model or []))
    unreviewed: list[str] = []
    if wanted:
        stored = store.models()
        if never := [m for m in wanted if store.stored_name(m) is None]:
            raise ConfigError(f"no inspection of model(s) {', '.join(map(repr, never))} is stored", None, f"pass one of: {', '.join(stored)}")
        wanted = list(dict.fromkeys(same_spelling(m) for m in wanted))
        # One stored but not reviewed yet (a part's calibrated copy just put in service) is said and left out: a nightly
        # export naming both of a part's folders had failed until someone reviewed an inspection of the new one (probe).
        unreviewed = [m for m in wanted if m not in models]
        if len(unreviewed) == len(wanted):
            raise ConfigError(f"no inspection of model(s) {', '.join(map(repr, unreviewed))} has been reviewed good or defective yet: "
                              "nothing to export", None,
                              f"review some first, or pass one of the models reviewed: {', '.join(models)}")
        # Several names are for one part served from several folders: models of other parts (their reports name another
        # object) merged one image's reviews across parts, and one part's reviewed crack went out as the other's good part.
        objects = {m: {o for r in rows if spelled[r.id] == m and (o := (r.report or {}).get("object")) and o != DEFAULT_OBJECT} for m in wanted}
        if part is None and len(named := set().union(*objects.values())) > 1:
            which = f"the inspections stored under {wanted[0]!r} are" if len(wanted) == 1 else "the models named are"
            raise ConfigError(f"{which} of {len(named)} parts ({', '.join(sorted(named))}), by their reports", None,
                              "export one part at a time: --part with one of them (as written), or --model NAME repeated only for "
                              "the folders one part was served from")
    elif len(models) > 1 and part is None:
        raise ConfigError(f"the reviews are of {len(models)} models ({', '.join(models)})", None,
                          "export one part at a time with --model NAME (repeat it for the folders one part was served from): "
                          "each part has its own thresholds and types")
    # The models exported only: an image posted to two models and reviewed unusable on the one it was not for would
    # otherwise, as its latest review, take it out of the other's export.
    rows = [r for r in rows if spelled[r.id] in (wanted or models)]
    if part is not None:
        # One part's, by its reports' object (any case, any Unicode form), as the refusals above name parts: a name served for
        # two parts in turn had no export at all (plant probe 2026-12-06: "export one part at a time", which --model alone
        # could not do). After the models' checks, which speak of the models whatever their parts (regression probe).
        parts = sorted({o for r in rows if (o := (r.report or {}).get("object")) and o != DEFAULT_OBJECT})
        rows = [r for r in rows if folded_name((r.report or {}).get("object") or "") == folded_name(part)]
        if not rows:
            raise ConfigError(f"no reviewed inspection{' of ' + ', '.join(wanted) if wanted else ''} is of the part {part!r}, by its "
                              "report", None, f"pass one of the parts reviewed there: {', '.join(map(repr, parts)) or 'none'}")
    if foreign := _foreign_files(Path(output)):
        shown = ", ".join(str(p.relative_to(output)) for p in foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        masks = any(p.relative_to(output).parts[:3] == ("calibration", "defective", "masks") for p in foreign)
        why = (" (masks beside the calibration images: drawn by a person, or the model's own regions an export by defectlens 0.3.3 "
               "or earlier wrote there; which, this defectlens cannot tell)") if masks else ""
        raise ConfigError(f"the earlier export holds {len(foreign)} file(s) it did not write{why} ({shown}), which replacing it would delete",
                          output, "move them out first, or export to another folder")
    # One image posted several times: written once, as its latest review has it.
    by_image: dict[str, list[InspectionRow]] = {}
    for row in rows:
        by_image.setdefault(row.image_sha, []).append(row)
    latest = {sha: max(group, key=lambda r: (r.reviewed_at is not None, r.reviewed_at or r.created_at, r.id)) for sha, group in by_image.items()}
    groups = [group for group in by_image.values() if len(group) > 1]
    summary = ExportSummary(len(latest), 0, {}, 0, 0, [], [sorted(r.id for r in g) for g in groups],
                            [sorted(r.id for r in g) for g in groups if len({r.reviewed_verdict or r.verdict for r in g}) > 1], unreviewed)
    rows = [r for r in rows if latest[r.image_sha] is r]
    summary.unusable = [r.id for r in rows if r.reviewed_verdict == UNUSABLE]
    summary.n_inspections -= len(summary.unusable)
    rows = [r for r in rows if r.reviewed_verdict != UNUSABLE]
    manifest: list[dict] = []
    with atomic_directory(output, lambda p: (p / MANIFEST).is_file(), "review export") as out:
        for sub in ("examples", "calibration/good", "calibration/defective"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        for row in rows:
            src = blobs.path(row.image_sha, row.image_ext)
            if not src.is_file():
                summary.missing_files.append(row.id)
                continue
            data = src.read_bytes()
            name = f"{row.id:06d}_{row.image_sha[:12]}"
            verdict = row.reviewed_verdict or row.verdict
            # A cropped view reviewed good had gone to calibration/good, and `calibrate` set the threshold over its score
            # (recall 100 % → 0 %; regression probe 2026-12-06): another view's score says nothing of the line's parts.
            view_note = (row.report or {}).get("view_note")
            record = (row.report or {}).get("record")
            judged_by = record.get("model") if isinstance(record, dict) else None  # a row another program wrote may hold anything
            if view_note:
                summary.other_view.append(row.id)
            else:
                write_bytes_atomic(out / "calibration" / verdict / f"{name}.{row.image_ext}", data)
                if verdict == "good":
                    summary.good += 1
                else:
                    summary.defective += 1
            by_type = _labelled_regions(row) if verdict != "good" else {}  # a part reviewed good shows no defect
            if verdict != "good" and not by_type and not view_note:  # (said "in calibration/defective only", which it is not)
                summary.no_example.append(row.id)
            labels = None
            mask_path = blobs.path(row.mask_sha, "png")
            if by_type and mask_path.is_file():
                with Image.open(mask_path) as m:
                    labels = np.asarray(m.convert("L"))
            boxless = {r.index for r in row.regions if r.missed and (r.x0, r.y0, r.x1, r.y1) == (0, 0, row.width, row.height)}
            # No mask beside a calibration image: the regions are the pixels over the model's own pixel threshold, and
            # `calibrate` set on them gave that very threshold back (63.92085 → 63.92088; loop probe 2026-12-06) while it
            # said "F1-optimal on the pixels of 8 masked defective images". A mask a person draws moves it.
            for dtype, indices in sorted(by_type.items()):
                folder = out / "examples" / folder_name(dtype)
                folder.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(folder / f"{name}.{row.image_ext}", data)
                if not boxless & set(indices):
                    # A missed defect without a box had a mask of the whole image: left out, the model locates it.
                    (folder / "masks").mkdir(exist_ok=True)
                    write_bytes_atomic(folder / "masks" / f"{name}_mask.png", _png(_type_mask(row, labels, indices)))
                summary.n_examples += 1
                summary.types[dtype] = summary.types.get(dtype, 0) + 1
            if _reviewers_disagree(row):
                summary.contested.append(row.id)
            manifest.append({
                "inspection": row.id, "file": name, "model": spelled[row.id], "filename": row.filename, "verdict": verdict,
                "machine_verdict": row.verdict, "types": sorted(by_type), "reviewed_by": row.reviewed_by,
                "calibration": not view_note, **({"view_note": view_note} if view_note else {}),
                # Every review, not only the one that stands: a second reviewer's "defective" had hidden the first's "good",
                # and the export's label rested on who clicked last without a word (loop probe 2026-12-06).
                # Of every inspection of the same image too, each review with its inspection's id (regression probe: the
                # review of the one left out was nowhere).
                # With its comment: a reviewer's "blotches at #1 #2 are the uneven defect" was in the database alone (probe).
                "reviews": [{"inspection": each.id, "by": r.reviewer, "verdict": r.verdict,
                             "at": at.isoformat() if (at := as_utc(r.created_at)) else None,
                             **({"comment": c} if (c := (r.payload or {}).get("comment")) else {})}
                            for each in sorted(by_image[row.image_sha], key=lambda g: g.id) for r in _person_reviews(each)],
                # Comments posted alone (notes): they label nothing, and were left out with the reviews (regression probe).
                "notes": [{"inspection": each.id, "by": r.reviewer, "at": at.isoformat() if (at := as_utc(r.created_at)) else None,
                           "comment": (r.payload or {}).get("comment")}
                          for each in sorted(by_image[row.image_sha], key=lambda g: g.id) for r in each.reviews
                          if (r.payload or {}).get("note")],
                # Which fit judged it, and at what threshold: an export of a part served by two fits had said neither.
                "model_fitted_at": row.model_fitted_at, "model_fingerprint": row.model_fingerprint, "threshold": row.threshold,
                # And the digest of its settings, as the stored report's record has it (since 0.3.14): two fits of the same
                # images with other settings had read alike here (null for an inspection stored before).
                "model_settings": judged_by.get("settings") if isinstance(judged_by, dict) else None,
                "defectlens_version": row.defectlens_version,
                # When it was judged, with both thresholds and how they were set, and the judged pixels' digest, as the stored
                # report's record has them (inspections stored since 0.3.10): the manifest had the image threshold alone.
                "inspected_at": at.isoformat() if (at := as_utc(row.created_at)) else None,
                # null for an inspection stored before (as model_fitted_at is for one stored before migration 0004).
                "thresholds": record.get("thresholds") if isinstance(record, dict) else None,
                "image_digest": record.get("image_digest") if isinstance(record, dict) else None,
                # In UTC, said so, as the API says it (SQLite gives its times back without a zone).
                "reviewed_at": at.isoformat() if (at := as_utc(row.reviewed_at)) else None,
            })
        (out / MANIFEST).write_text(json_text({"inspections": manifest}), encoding="utf-8")
    return summary


__all__ = ["MANIFEST", "ExportSummary", "export_reviews", "folder_name"]
