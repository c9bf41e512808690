"""The local engine: one batch inspected and written, and the model with its optional stages
loaded for it — the code `defectlens inspect` runs in this process and each Ray worker runs in
its own (:mod:`defectlens.engine.ray_engine`), so both write the same files."""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import asdict, dataclass, field, replace
from hashlib import sha256
from pathlib import Path

import numpy as np
from PIL import Image

import defectlens
from defectlens.descriptor import part_taxonomy, utc_now
from defectlens.engine.analysis import Analysis, Locator, analyse, prepare_analysis
from defectlens.errors import out_of_resources
from defectlens.explain import shown_type
from defectlens.explain.gallery import GALLERY_FILE, OVERLAY_CHOICES, OVERLAY_FORMATS, THUMBNAIL_SUFFIX, read_inspection_json, recorded_overlay_suffix
from defectlens.inspector import Failure, Inspector, short_of
from defectlens.io import png_bytes, write_bytes_atomic, write_json_atomic, written_as_one
from defectlens.io.atomic import sha256_of
from defectlens.io.images import JPEG_MAX_SIDE, image_digest, jpeg_bytes, jpeg_thumbnail
from defectlens.locate import overlay_scale, render_overlay, weaker_regions
from defectlens.taxonomy import load_taxonomy
from defectlens.types import Inspection

MASK_SUFFIX = ".mask.png"
"""The region mask beside each image's overlay (see :func:`region_mask_png`)."""
REQUIRED_SUFFIXES = (".json", THUMBNAIL_SUFFIX, MASK_SUFFIX, ".report.json", ".report.md")
"""The files every inspected image has beside its overlay (in one of :data:`OVERLAY_FORMATS`)."""
INSPECTION_SUFFIXES = (*REQUIRED_SUFFIXES, *OVERLAY_FORMATS.values())
"""Every file inspecting may write per image (:func:`write_inspection`, then the report files of
:func:`~defectlens.engine.analysis.analyse`); output names are made unique across all of them."""


_FILE_ENDS = {".png": b"IEND\xaeB`\x82", ".jpg": b"\xff\xd9"}
"""How a whole PNG and a whole JPEG end: a file cut short by a power cut does not."""


def _whole(path: Path) -> bool:
    """True when ``path`` is a file that is not empty and, for a PNG or JPEG, ends as one does. Only
    the last bytes are read: a resumed run over 100 000 images checks 600 000 files."""
    try:
        size = path.stat().st_size
        if not path.is_file() or size == 0:
            return False
        end = _FILE_ENDS.get(path.suffix.lower())
        if end is None:
            return True
        with path.open("rb") as f:
            f.seek(max(0, size - len(end)))
            return f.read() == end
    except OSError:
        return False


def same_source(payload: dict, path: Path) -> bool:
    """Whether the inspection JSON ``payload`` is of ``path``: by the file its source resolved to when
    inspected (``source_file``), however it is named now — ``lot/x.png`` then ``/data/lot/x.png``: a
    resumed run given the absolute path had inspected every image again; and ``lot/x.png`` typed in
    another folder is another file, which had been given the first one's verdict. By the ``source``
    as typed only for results written before ``source_file``."""
    recorded = payload.get("source_file")
    if isinstance(recorded, str):
        return recorded == os.path.realpath(path)
    return payload.get("source") == str(path)


def overlay_file(out_dir: Path, name: str, payload: dict | None = None) -> Path | None:
    """The whole overlay of output ``name`` in ``out_dir``: the one its inspection JSON (``payload``) names,
    else (results written before it named one) the PNG or the JPEG; None when there is none."""
    suffix = recorded_overlay_suffix(payload, name) if payload else None
    if suffix == "":
        return None  # kept none (--overlay none)
    if suffix:
        return out_dir / f"{name}{suffix}" if _whole(out_dir / f"{name}{suffix}") else None
    return next((p for suffix in OVERLAY_FORMATS.values() if _whole(p := out_dir / f"{name}{suffix}")), None)


def has_all_files(out_dir: Path, name: str, overlay: bool = True) -> bool:
    """Whether every file of output ``name`` is in ``out_dir`` (not checked whole: see :func:`completed_inspection`);
    ``overlay``: an overlay too (not when the run kept none)."""
    return all((out_dir / f"{name}{s}").is_file() for s in REQUIRED_SUFFIXES) and (not overlay or any(
        (out_dir / f"{name}{s}").is_file() for s in OVERLAY_FORMATS.values()))


def completed_inspection(out_dir: Path, name: str, source: Path, payload: dict | None = None) -> dict | None:
    """The inspection JSON of ``source`` when its outputs under ``name`` are complete (every file
    there and whole — not empty, a picture not cut short —, the JSON valid and about this very
    input), else None: it is inspected again. Empty and truncated files, what a power cut leaves
    of files not yet flushed, had counted as done. ``payload``: that JSON, when the caller has
    already read it (it is read here otherwise)."""
    if not all(_whole(out_dir / f"{name}{suffix}") for suffix in REQUIRED_SUFFIXES):
        return None
    payload = payload if payload is not None else read_inspection_json(out_dir / f"{name}.json")
    if payload is None or (recorded_overlay_suffix(payload, name) != "" and overlay_file(out_dir, name, payload) is None):
        return None
    return payload if same_source(payload, source) and not changed_since_inspected(payload, source) else None


def file_state(path: str | Path, digest: bool = True) -> dict[str, int | str]:
    """The size, modification time and (``digest``) sha256 of the file at ``path``, as an inspection JSON records its input's
    (``source_state``)."""
    state = os.stat(path)
    recorded: dict[str, int | str] = {"size": state.st_size, "mtime_ns": state.st_mtime_ns}
    # A regular file's bytes only: a named pipe or a device given as an input had held the whole batch for ever, read
    # before its reader could refuse it (regression probe 2026-12-07).
    if digest and stat.S_ISREG(state.st_mode):
        recorded["sha256"] = sha256_of(path)
    return recorded


def _state_or_none(path: Path) -> dict[str, int | str] | None:
    """:func:`file_state` of ``path``, or None where it cannot be read (its reader says why)."""
    try:
        return file_state(path)
    except OSError:
        return None


def changed_since_inspected(payload: dict, source: Path) -> bool:
    """Whether the file ``source`` is no longer as it was when the inspection ``payload`` was made (``source_state``: its
    size, modification time and, recorded since 0.3.9, its bytes' sha256): a camera's hot folder reuses names, and a cracked
    part saved over a good one's file had been resumed as the good one's GOOD (concurrency probe 2026-12-06) — and still was
    when the new file had the same size and time (one camera's BMPs are all one size; `cp -p` and FAT's 2-second times keep
    the time; audit probe 2026-12-07). False for results that did not record it."""
    recorded = payload.get("source_state")
    if not isinstance(recorded, dict):
        return False
    try:
        now = file_state(source, digest=False)
        if {k: recorded.get(k) for k in now} != now:
            return True
        # Read only where the size and time agree (where they do not, the file has changed whatever its bytes).
        return "sha256" in recorded and recorded["sha256"] != file_state(source)["sha256"]
    except OSError:
        return False  # no file to compare: what reads it says so


def inspection_overlay(inspector: Inspector, image: np.ndarray, inspection: Inspection, labels: list[str] | None = None) -> Image.Image:
    """The overlay an inspection is shown with: its map on a colour scale from the model's normal
    pixel level (the same in `inspect`'s files and the service's pages), its regions outlined
    and, given ``labels``, named."""
    stats = inspector.detector.normal_stats
    low, high = overlay_scale(inspection, stats.pixel_median if stats else None)
    return render_overlay(image, inspection, low, high, labels)


def region_mask_png(inspection: Inspection) -> bytes:
    """The inspection's regions as an 8-bit PNG at the image's size: pixel value = region index
    (1 = the strongest, capped at 255), 0 = no region (the same in `inspect`'s files and the service)."""
    w, h = inspection.image_size
    labels = inspection.region_labels if inspection.region_labels is not None else np.zeros((h, w), np.int32)
    return png_bytes(Image.fromarray(np.clip(labels, 0, 255).astype(np.uint8), mode="L"))


def audit_record(inspector: Inspector) -> dict[str, object]:
    """When, by which defectlens and with which model an image was inspected: an inspection JSON
    alone had said none of it, and a year's archive could not be told apart from a re-inspection
    with a new model. The model by its fit (UTC time and training-set fingerprint, as its card has them) and a digest of its
    settings (:func:`same_model`)."""
    prov = inspector.provenance
    describe = getattr(inspector.detector, "describe", None)  # optional: what a detector says about itself
    detector = {"name": inspector.detector.name, **(describe() if callable(describe) else {})}
    settings = json.dumps({"settings": asdict(inspector.settings), "detector": detector}, sort_keys=True, default=str)
    return {
        "inspected_at": utc_now(),
        "defectlens_version": defectlens.__version__,
        "model": {"fitted_at": prov.fitted_at if prov else None, "fingerprint": prov.fingerprint if prov else None,
                  "settings": sha256(settings.encode()).hexdigest()[:16]},
    }


def same_model(recorded: object, model: dict) -> bool:
    """Whether an inspection's ``recorded`` model (:func:`audit_record`'s) is ``model``: the same fit, or a fit of the same
    training images with the same settings, which gives the same model (a refit for routine gave byte-identical banks, and
    its results had been refused beside the first's; upgrade probe 2026-12-07). Records without the settings' digest (before
    0.3.14), by their fit."""
    if not isinstance(recorded, dict):
        return False
    # A fit of no images (batch scoring) is told by its time: two of other parts have the same settings (regression probe
    # 2026-12-07: their verdicts had been listed in one summary).
    if recorded.get("settings") and model.get("settings") and recorded.get("fingerprint"):
        return (recorded["fingerprint"], recorded["settings"]) == (model.get("fingerprint"), model["settings"])
    return (recorded.get("fitted_at"), recorded.get("fingerprint")) == (model.get("fitted_at"), model.get("fingerprint"))


def verdict_record(inspector: Inspector, image: np.ndarray, inspection: Inspection) -> dict[str, object]:
    """What made a verdict, as a report's :attr:`~defectlens.types.Report.record` holds it, from `inspect` and from the service
    alike: :func:`audit_record`, the judged pixels' :func:`~defectlens.io.images.image_digest` and both thresholds with how
    they were set. The service's stored reports had kept none of it beyond its columns (the image threshold alone)."""
    return {**audit_record(inspector), "image_digest": image_digest(image),
            "thresholds": inspection.thresholds.to_json() if inspection.thresholds else None}


def write_inspection(
    inspection: Inspection, image: np.ndarray, out_dir: Path, stem: str, inspector: Inspector, extra: dict | None = None,
    overlay_format: str = "png", source_state: dict | None = None,
) -> None:
    """Write the overlay ``<stem>.png`` (or ``.jpg``, or none: ``overlay_format``), its thumbnail
    ``<stem>.thumb.jpg`` (the gallery's) and the region mask ``<stem>.mask.png``
    (:func:`region_mask_png`), then ``<stem>.json`` (each atomically).

    The inspection JSON is the last file written for an image (after its report files and
    overlay): its presence marks the image complete, which is what ``inspect --resume`` checks. ``source_state``: the
    input file's :func:`file_state` as it was before it was read (taken here when not given)."""
    if overlay_format not in OVERLAY_CHOICES:
        raise ValueError(f"overlay format {overlay_format!r} is not one of {', '.join(OVERLAY_CHOICES)}")  # "PNG" had written none
    overlay = inspection_overlay(inspector, image, inspection, extra.get("region_labels") if extra else None)
    suffix = OVERLAY_FORMATS.get(overlay_format)
    # An earlier run's overlay in the other format is left (never removed: in a folder taken over with --resume it
    # may be a person's own picture of that name); the JSON names this run's, which is the one shown.
    if suffix:
        write_bytes_atomic(out_dir / f"{stem}{suffix}", jpeg_bytes(overlay) if suffix == ".jpg" else png_bytes(overlay))
    write_bytes_atomic(out_dir / f"{stem}{THUMBNAIL_SUFFIX}", jpeg_thumbnail(overlay))
    # Where, as data: the overlay shows it, the JSON has only boxes (a README audit found no mask written).
    write_bytes_atomic(out_dir / f"{stem}{MASK_SUFFIX}", region_mask_png(inspection))
    # What ran the encoder, as `evaluate` records it: exported and PyTorch scores differ in the last digits.
    payload = {**inspection.to_json(), "runtime": inspector.runtime, **audit_record(inspector), "overlay": f"{stem}{suffix}" if suffix else None}
    if os.path.isfile(inspection.source):  # a file, not an array ("<array>")
        payload["source_file"] = os.path.realpath(inspection.source)
        # A later --resume tells the file saved over since; as it was before it was read where the caller took it then.
        payload["source_state"] = source_state or file_state(inspection.source)
    # Which pixels were judged, as a model's card names its training images' (io.images.image_digest): the file's sha256 says
    # which bytes, this what they decoded to, whatever file holds them (audit probe 2026-12-07: no digest of the judged image).
    # (``extra`` gives the same, computed once with the report's record.)
    payload["image_digest"] = extra.get("image_digest") if extra and extra.get("image_digest") else image_digest(image)
    # Marked as the report and the service mark them: a reader of the JSON alone had to compare each
    # region's peak with the threshold to know which ones the report does not count.
    weaker = weaker_regions(inspection)
    payload["regions"] = [{**r, "weaker": True} if r["index"] in weaker else r for r in payload["regions"]]
    if extra:
        payload.update({k: v for k, v in extra.items() if k != "region_labels"})
    write_json_atomic(out_dir / f"{stem}.json", payload)


@dataclass
class BatchOutcome:
    """What inspecting and writing one batch gave, whichever engine ran it."""

    written: list[Path] = field(default_factory=list)
    """Inputs whose files were all written; the summary reads their results back from those files."""
    failures: list[Failure] = field(default_factory=list)
    n_inputs: int = 0
    warnings: list[str] = field(default_factory=list)
    """What the detector said about the batch as a whole (see :attr:`InspectedBatch.warnings`)."""
    image_warnings: list[str] = field(default_factory=list)
    """Warnings a Ray worker raised about single images (a multi-page TIFF, a see-through part),
    carried to the command, which says them: the workers' own output is not forwarded."""


def inspect_and_write(
    inspector: Inspector, analysis: Analysis, paths: list[Path], names: dict[Path, str], output: Path, overlay_format: str = "png"
) -> BatchOutcome:
    """Inspect one batch and write every image's files (reports, overlay, then the JSON): the one
    code path of both engines, so the local and the Ray engine write identical outputs."""
    # Each file's state before it is read: recorded after the batch, a frame a camera wrote under the same name meanwhile had
    # its new bytes stamped on the old verdict, and `--resume` kept it (regression probe 2026-12-07). Taken before, a file
    # replaced while it is read differs from its record, and a resume inspects it again.
    states = {p: _state_or_none(p) for p in paths}
    # A batch the machine lacks memory or open files for is inspected an image at a time there (Inspector._each_alone).
    batch = inspector.inspect_batch(paths)
    stamp = analysis.stamp()
    # An image the machine lacked the memory for is inspected by a later run: said so, as `inspect` resumes (regression probe).
    failures = [replace(f, message=f"{f.message}, then --resume") if f.short else f for f in batch.failures]
    outcome = BatchOutcome(failures=failures, n_inputs=batch.n_inputs, warnings=list(batch.warnings))
    for item in batch.images:
        path, inspection = item.path, item.inspection
        earlier = output / f"{names[path]}.json"
        if overlay_format == "jpg" and max(item.image.shape[:2]) > JPEG_MAX_SIDE:
            # Refused by the JPEG writer once inspected, it had been told to free disk space and resume (camera probe 2026-12-07).
            outcome.failures.append(Failure(str(path), f"{path}: inspected, but its overlay ({item.image.shape[1]}x{item.image.shape[0]}) is "
                                                       f"longer than a JPEG can be ({JPEG_MAX_SIDE:,} pixels) — fix: run again with "
                                                       "--overlay png (or none) and --resume"))
            continue
        try:
            # One unit: written under temporary names, then the earlier JSON (which marks an image done) removed and the
            # files renamed into place, the JSON last. A run killed while it replaced an earlier result had left that
            # result's JSON beside this image's overlay and report, and --resume took the pair as done; a write that
            # failed (a full disk) had removed the earlier finished result and written none.
            with written_as_one(remove_first=[earlier]):
                # What the verdict rests on first, then what was said of its batch; a view note heads the text.
                said = [n for n in (inspector.verdict_basis, item.result.batch_warning) if n] + list(item.reading_notes)
                # One record for the JSON and the report, so that the two say the same time.
                record = verdict_record(inspector, item.image, inspection)
                region_types = analyse(analysis, item.image, inspection, output, names[path], item.result.grounding, said, record)
                labels = [shown_type(t.defect_type, t.method, len(t.candidates)) for t in region_types]
                # The JSON's thresholds are the inspection's own (the same values, in its own key order).
                extra = {"region_types": [t.to_json() for t in region_types], "region_labels": labels, "analysis": stamp,
                         **{k: v for k, v in record.items() if k != "thresholds"}}
                if item.reading_notes:
                    # What reading the file said (its other pages, pixels clipped): the terminal's lines had been all (camera probe).
                    extra["reading_notes"] = list(item.reading_notes)
                if item.result.batch_warning:
                    # Kept with the verdict it qualifies: a reader of one JSON sees it too.
                    extra["batch_warning"] = item.result.batch_warning
                if inspector.verdict_basis:
                    # So is a verdict not judged against normal images (zero-shot, batch-relative): only the terminal and
                    # the report said so, and the gallery and summary.csv looked like any model's (probe 2026-12-06).
                    extra["verdict_basis"] = inspector.verdict_basis
                write_inspection(inspection, item.image, output, names[path], inspector, extra, overlay_format, states.get(path))
        except (MemoryError, RuntimeError, OSError) as exc:
            # Typing its regions or drawing its overlay needing more memory than is left had ended the whole run, its summary
            # unwritten (regression probe 2026-12-07): that image fails, listed, as one whose files cannot be written; the
            # batch goes on. Its earlier results, if any, stand as they were.
            if (short := out_of_resources(exc)) is not None:
                kept = " (its earlier results stay as they were)" if earlier.is_file() else ""
                outcome.failures.append(short_of(path, short, f"inspected, but its results were not written{kept}", ", then --resume"))
                continue
            if not isinstance(exc, OSError):
                raise
            outcome.failures.append(_unwritten(path, exc, output, earlier))
            continue
        outcome.written.append(path)
    return outcome


def _unwritten(path: Path, exc: OSError, output: Path, earlier: Path) -> Failure:
    """The failure of an image whose files cannot be written (a folder where one goes, a full disk)."""
    where = exc.filename2 or exc.filename or output
    if (name := Path(str(where)).name).startswith(".") and name.endswith(".tmp"):
        where = Path(str(where)).parent  # a temporary of the write, gone with it: its folder (resource probe 2026-12-07)
    kept = " (its earlier results stay as they were)" if earlier.is_file() else ""
    return Failure(str(path), f"{path}: inspected, but its results could not be written to {where} ({exc.strerror or exc}){kept} — "
                              "fix: free the output folder's names or space (or make its files writable) and run again with --resume")


def load_for_inspection(
    model_dir: str | Path, taxonomy: str | Path | None = None, cue: str | None = None, examples: str | Path | None = None, k: int = 5,
    writer: str = "template", threshold: float | None = None,
) -> tuple[Inspector, Analysis]:
    """The model and the optional stages `inspect` runs (each Ray worker loads them the same way): the part's
    taxonomy kept in the model folder unless ``taxonomy`` names another, labelled ``examples`` (``k`` a type from
    an MVTec category), the report ``writer``. From Python, what ``inspect`` gives an image (types, report)::

        inspector, analysis = load_for_inspection("models/commutator")
        image = load_image(path, inspector.bit_depth)  # pixels deeper than 8 bits as the model reads them
        inspection = inspector.inspect(image)
        types, notes = type_with_notes(analysis, image, inspection)
        report = build_report(inspection, types, analysis.taxonomy, analysis.writer, notes)
    """
    model_dir = Path(model_dir)
    taxonomy = Path(taxonomy) if taxonomy is not None else None
    examples = Path(examples) if examples is not None else None
    if taxonomy is not None:
        # Named by the user (--taxonomy): a bad one is a usage error on every kind of model, not a
        # report note on some and an error on the zero-shot one.
        load_taxonomy(taxonomy)
    # Without --taxonomy, the part's taxonomy kept in the model folder (`fit` copies it there).
    taxonomy = taxonomy or part_taxonomy(model_dir)
    # Only a zero-shot model needs the taxonomy to work; for the others a bad one is a
    # report note, not a reason to stop the inspection.
    needs = Inspector.needs_taxonomy(model_dir)
    part = load_taxonomy(taxonomy, require_descriptions=True) if needs and taxonomy is not None else None
    inspector = Inspector.load(model_dir, part, cue)
    # The thresholds --threshold replaces, said as it replaces them (a batch-scoring model holds its batch-outlier units' ones;
    # None where a detector has none to replace).
    replaced = inspector.detector.thresholds if threshold is not None else None
    if threshold is not None:
        # This run only: the model folder is not touched (`defectlens calibrate` saves one).
        inspector.set_thresholds(image=threshold)
    # Examples without masks are located by this very model (the pixel threshold of this run).
    # Named by the user (--examples): a folder that gives no classifier is a usage error, as a bad
    # --taxonomy is, not a note under an inspection run without types (hostile probe 2026-12-05).
    analysis = prepare_analysis(taxonomy, examples, k, writer, locator=Locator.of(inspector), examples_required=True)
    if replaced is not None:
        # Said where the run is watched: a calibrated threshold had been replaced without a word, its value and how it was set
        # in no output of the run (threshold probe 2026-12-06).
        analysis.notes.append(f"--threshold {threshold:g} replaces the model's image threshold {replaced.image:.6g} ({replaced.source}) "
                              "for this run; each result records the threshold it was judged against (source 'user')")
    # A fused model carries the part's taxonomy: reports use it when --taxonomy is not given.
    analysis.taxonomy = analysis.taxonomy or getattr(inspector.detector, "taxonomy", None)
    return inspector, analysis


def output_contents(folder: Path) -> dict[str, bytes]:
    """Every file an inspection wrote into ``folder``, by name, as bytes to compare runs with (two
    engines, two runtimes): a report JSON without its ``writer_seconds``, a timing, not a result, and
    an inspection JSON or a report's record without ``inspected_at`` (the report's page without its line), the gallery
    without the minute of its run (two runs either side of a minute had differed there: test-slow, 2026-12-07)."""
    files = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json":
            payload = json.loads(path.read_text(encoding="utf-8"))
            payload.pop("writer_seconds", None)
            payload.pop("inspected_at", None)
            if isinstance(payload.get("record"), dict):
                payload["record"].pop("inspected_at", None)
            files[path.name] = json.dumps(payload, sort_keys=True).encode()
        elif path.name.endswith(".report.md"):
            files[path.name] = re.sub(r"(?m)^- Inspected .*$", "- Inspected", path.read_text(encoding="utf-8")).encode()
        elif path.name == GALLERY_FILE:
            files[path.name] = re.sub(rb", \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", b", (the run's time) UTC", path.read_bytes())
        else:
            files[path.name] = path.read_bytes()
    return files
