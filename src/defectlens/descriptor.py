"""The model descriptor: ``inspector.json``, the one file that says what a model folder is.

Every model folder carries one (written by :meth:`~defectlens.inspector.Inspector.save` and by
``defectlens train-grounding``)::

    {"format": "defectlens.model", "format_version": 2,
     "detector": "memory-bank",            # a kind of defectlens.detect.registry.DETECTORS
     "settings": {...}, "fit_summary": {...},
     "provenance": {"fitted_at", "defectlens_version", "n_images", "fingerprint"},
     "saved_at": "...", "thresholds": {...}, "normal_stats": {...}, "detector_info": {...}}

The loader dispatches on ``detector`` alone. ``thresholds``, ``normal_stats`` and
``detector_info`` are a record for the model card (:func:`render_card`, written beside it as
``card.md``); the detector's own files stay authoritative for them.

Folders written before the descriptor had a version (an ``inspector.json`` without
``format``, or none) are read by :func:`legacy_kind`, the one place that still guesses a
kind from file names.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import os
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any, TypeGuard

import numpy as np

from defectlens.errors import ConfigError, DefectlensError, ModelFileError
from defectlens.io.atomic import read_json_file, read_model_json, with_article, write_json_atomic, write_text_atomic
from defectlens.io.images import image_digest
from defectlens.io.markdown import markdown_cell, markdown_code_cell, markdown_line
from defectlens.taxonomy import load_taxonomy

DESCRIPTOR_FILE = "inspector.json"
CARD_FILE = "card.md"
TAXONOMY_FILE = "taxonomy.json"
"""The part's taxonomy, kept in a model folder: `fit` copies the category's there; `inspect`, the
service and the reports read it when no other is given."""
EXAMPLES_DIR = "examples"
"""Labelled defect examples (or a saved few-shot classifier) a model folder may hold for the service."""
PART_FILES = (TAXONOMY_FILE, EXAMPLES_DIR)
"""What a model folder holds about the part rather than the detector: re-saving a model (a new
threshold from `calibrate`) carries them over; a re-save had dropped them."""


def part_files_note(held: Collection[str], kept: Collection[str], relation: str, with_taxonomy: bool) -> str:
    """The words a replaced model's note ends with about what the folder ``held`` about its part (of :data:`PART_FILES`), the
    new model keeping ``kept`` of them, its part ``relation`` to the folder's ("same", "other", "untold": see
    :func:`defectlens.inspector.part_relation`), saved ``with_taxonomy`` of its own or not: what another part's it did not keep;
    what it kept though the part cannot be told; another part's taxonomy replaced by its own (a fit over another object's
    model had said nothing of it; regression probe 2026-12-08). Empty when none of these."""
    lost = [name for name in PART_FILES if name in held and name not in kept]
    untold = [name for name in PART_FILES if relation == "untold" and name in held and name in kept
              and not (name == TAXONOMY_FILE and with_taxonomy)]
    replaced = [TAXONOMY_FILE] if relation == "other" and with_taxonomy and TAXONOMY_FILE in held else []
    said = ""
    for files, how in ((lost, "not kept (of another part)"), (replaced, "replaced by this part's (it was of another part)"),
                       (untold, "kept (no taxonomy to tell its part by: remove {} if of another part)")):
        if files:
            names = [f"{name}/" if name == EXAMPLES_DIR else name for name in files]
            said += f"; its {' and '.join(names)} {how.format('them' if len(names) > 1 else 'it')}"
    return said


def holds_examples(directory: str | Path) -> bool:
    """Whether the model folder ``directory`` holds labelled examples (a file anywhere under its ``examples/``)."""
    folder = Path(directory) / EXAMPLES_DIR
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


def part_taxonomy(directory: str | Path) -> Path | None:
    """The taxonomy file a model folder holds, or None when it holds none. Anything of that name is its taxonomy, for its
    reader to refuse: a folder or a dangling link there had been passed over as none, unsaid, and `info --check` passed
    (types probe 2026-12-07)."""
    path = Path(directory) / TAXONOMY_FILE
    return path if os.path.lexists(path) else None
FORMAT = "defectlens.model"
FORMAT_VERSION = 2
"""1 (implicit, no ``format`` key): settings and fit summary only; 2: the versioned descriptor (3: see
:data:`SENSOR_DEPTH_FORMAT_VERSION`)."""
SENSOR_DEPTH_FORMAT_VERSION = 3
"""The version a model that records a sensor depth (:attr:`Provenance.bit_depth`) is written as; others stay at
:data:`FORMAT_VERSION`, which every reader since 0.2 takes. Readers before 0.3.1 ignored the field and read each deep
frame at its own depth, scores moving by 3 on dark 12-bit frames without a word (automation probe 2026-12-06); they,
and 0.3.1, refuse a version 3 with "upgrade defectlens". Written since 0.3.2."""
REMEDY = "`defectlens fit` (or Inspector.fit then save)"
"""What makes a model folder, said in every refusal of one (read from the command line and from Python alike)."""

# File names that marked each kind before the descriptor named it (legacy folders only).
_LEGACY_MARKERS = (("fusion.json", "fused"), ("detector.json", "memory-bank"), ("grounding.json", "grounding"))


def utc_now(microseconds: bool = False) -> str:
    """The current UTC time, ISO 8601, to the second (``microseconds``: to the microsecond, where the time names something)."""
    now = dt.datetime.now(dt.UTC)
    return (now if microseconds else now.replace(microsecond=0)).isoformat()


def combine_digests(digests: Sequence[str]) -> str:
    """The training set's fingerprint from its images' :func:`image_digest`, in any order."""
    total = hashlib.sha256()
    for d in sorted(digests):
        total.update(d.encode())
    return total.hexdigest()


def fingerprint_images(images: Sequence[np.ndarray]) -> str:
    """sha256 over the fit images' pixels (shape, dtype and bytes of each), independent of
    their order: the same images in another order are the same training set."""
    return combine_digests([image_digest(img) for img in images])


LABEL_FREE_NOTE = "the thresholds rest on scores of normal images"
"""How a fit's note on thresholds too coarse for the false-alarm target begins (the card marks it once they are set otherwise)."""
OPTIONAL_PROVENANCE = ("trained_on", "colour", "grey", "bit_depth", "image_digests", "threads")
"""Provenance a model may lack without the card calling it incomplete (a fit in Python has no folder)."""
GREY_REASON = ("A grey image, where the model was fitted on colour images of the part: is the camera set to colour? "
               "Its score cannot be read against theirs.")
"""Why a grey image is judged unlike every normal part of a model fitted on colour images (:meth:`Provenance.colour_note`);
the report, the gallery, `calibrate` and `evaluate` say it in its own words, not as a frame check's."""
COLOUR_REASON = ("A colour image, where the model was fitted on grey images of the part: is the camera set to grey? "
                 "Its score cannot be read against theirs.")
"""Why a colour image is judged unlike every normal part of a model fitted on grey images: flagged, it had been said as
nothing, or as "a large defect, another part or a faulty frame" (small-shop probe 2026-12-07)."""
CAMERA_REASONS = {GREY_REASON: ("a grey image, where the model was fitted on colour images", "is the camera set to colour?"),
                  COLOUR_REASON: ("a colour image, where the model was fitted on grey images", "is the camera set to grey?")}
"""Each camera-mode reason with its words on a card or a note: what the image is, and the question to check."""


FRAME_REASON = "the whole image is unlike every normal image"
"""How the frame check's reason begins (:mod:`~defectlens.detect.frame_check`): an image's ``unlike_normal`` may hold it,
:data:`GREY_REASON` and :data:`SIZE_NOTE`, in that order."""
SIZE_NOTE = "This image is"
"""How :meth:`Provenance.size_note` begins."""


def release_of(version: object) -> tuple[int, ...] | None:
    """The release numbers of a recorded version ('0.3.0', '0.3.0rc1': (0, 3, 0)), or None when it is none or not read."""
    numbers = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version) if isinstance(version, str) else None
    return tuple(int(n or 0) for n in numbers.groups()) if numbers else None


def released_before(version: object, release: tuple[int, ...] | None) -> bool:
    """Whether ``version`` ('0.3.0', '0.3.0rc1': its release before ``release`` too) is before ``release``; False when
    either is not recorded or not read."""
    was = release_of(version)
    return was is not None and release is not None and was < release


def set_otherwise(source: str) -> bool:
    """Whether thresholds of this ``source`` (:attr:`~defectlens.types.Thresholds.source`) were set on labelled parts or by hand
    since the fit, which a fit's note on thresholds resting on normal images (:data:`LABEL_FREE_NOTE`) then no longer holds of."""
    return "calibrate" in source or source == "user"


def camera_reason_in(unlike_normal: str | None) -> str | None:
    """The camera-mode reason (:data:`CAMERA_REASONS`) an image's reason for being unlike every normal one holds, or None."""
    return next((reason for reason in CAMERA_REASONS if reason in str(unlike_normal or "")), None)


def camera_mismatch_words(grey: int, colour: int) -> str:
    """How a count of images flagged for their camera mode is said ("2 of them grey, where the model was fitted on colour
    images"; colour ones for a model of grey parts alike), '' for none: `evaluate` and `calibrate` had called colour ones the
    frame check's, and told a re-fit on them (regression probe 2026-12-07)."""
    said = [f"{grey} of them grey, where the model was fitted on colour images"] if grey else []
    return "; ".join([*said, *([f"{colour} of them colour, where the model was fitted on grey images"] if colour else [])])


def colour_reason_in(unlike_normal: str | None) -> bool:
    """Whether an image's reason for being unlike every normal one is :data:`COLOUR_REASON`."""
    return COLOUR_REASON in str(unlike_normal or "")


def grey_reason_in(unlike_normal: str | None) -> TypeGuard[str]:
    """Whether an image's reason for being unlike every normal one (``Inspection.unlike_normal``) is :data:`GREY_REASON`."""
    return bool(unlike_normal) and GREY_REASON in str(unlike_normal)


@dataclass(frozen=True)
class Provenance:
    """Where a model came from, for its card."""

    fitted_at: str | None
    """UTC ISO time the fit finished."""
    defectlens_version: str | None
    n_images: int | None
    """Training images given to fit."""
    fingerprint: str | None
    """sha256 of the training images' pixels (:func:`fingerprint_images`, :func:`combine_digests`), whatever the model."""
    image_sizes: list[list[int]] | None = None
    """``[[smallest width, smallest height], [largest width, largest height]]`` of the training
    images (each side on its own); None for models saved before it was recorded."""
    trained_on: str | None = None
    """The folder `defectlens fit` read the normal images from (None: images given in Python, or a
    model saved before it was recorded)."""
    colour: bool | None = None
    """Whether the training images are all in colour (:func:`~defectlens.io.is_grey`; False when any is grey);
    None for a model saved before it was recorded."""
    grey: bool | None = None
    """Whether the training images are all grey; None for a model saved before it was recorded (0.3.10 and earlier), whose
    card's "no, or not all" could not tell grey parts from a mix."""
    bit_depth: int | None = None
    """The sensor depth (10 to 16 bits) pixels deeper than 8 bits are read at for this model: the deepest of its
    training images' (:func:`~defectlens.io.sensor_bits`). None when they were 8-bit (each deeper image is then read
    at its own), or for a model saved before it was recorded."""
    image_digests: list[str] | None = None
    """Each training image's picture digest (:func:`~defectlens.io.images.image_digest`), sorted: which pictures the fit
    took, so `evaluate` and `calibrate` tell copies of them without decoding the training folder again (seconds an image
    at 5 M pixels) and know the images a ``fit --max-images`` left out. None for a model saved before it was recorded."""
    threads: int | None = None
    """The CPU threads the fit computed with (PyTorch's): a fit is bitwise reproducible at one thread count, and its bank
    differs in the last digits at another, so reproducing a model needs it (audit probe 2026-12-07: recorded nowhere).
    None for a model saved before it was recorded (0.3.8 and earlier), or one fitted on no image."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Provenance:
        """Read what a descriptor recorded: a field it lacks is None (the card says which), one
        this version does not know is ignored. Provenance is a record, not something a model
        needs to work, so an incomplete one never stops a model from loading."""
        if not isinstance(data, dict):
            raise TypeError(f"provenance must be an object, got {type(data).__name__}")
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})

    def missing(self) -> list[str]:
        """The fields not recorded (a fit on no image, batch scoring's, has no fingerprint to record)."""
        return [f.name for f in fields(self)
                if getattr(self, f.name) is None and f.name not in OPTIONAL_PROVENANCE
                and not (f.name in ("fingerprint", "image_sizes") and self.n_images == 0)]

    @classmethod
    def now(cls, n_images: int, fingerprint: str | None, sizes: Sequence[tuple[int, int]] = (), colour: bool | None = None,
            bit_depth: int | None = None, image_digests: Sequence[str] | None = None, grey: bool | None = None) -> Provenance:
        """Provenance of a fit finishing now, by this defectlens (``sizes``: the training images' (width, height);
        ``colour``: whether they are all in colour, ``grey`` all grey; ``bit_depth``: :attr:`bit_depth`; ``image_digests``:
        their picture digests)."""
        import torch

        from defectlens import __version__

        widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
        ranged = [[min(widths), min(heights)], [max(widths), max(heights)]] if sizes else None
        # To the microsecond, as a time that names a fit (Inspector.fit sets it again when its fit has finished).
        return cls(utc_now(microseconds=True), __version__, n_images, fingerprint, ranged, colour=colour, grey=grey, bit_depth=bit_depth,
                   image_digests=sorted(image_digests) if image_digests is not None else None,
                   threads=torch.get_num_threads() if n_images else None)

    def colour_note(self, grey: bool) -> str | None:
        """Why a grey image is unlike the training images when they are in colour, and a colour one when they are grey, else
        None. An API probe's grey (and BGR-ordered) good cookies were all flagged, with nothing said of why."""
        return GREY_REASON if grey and self.colour else COLOUR_REASON if not grey and self.grey else None

    def sizes_text(self) -> str:
        """The training images' sizes as a person reads them: "288×384", or each side's range ("288 to 384 wide, 288 to
        384 high"), since the smallest and largest are taken side by side: "288×288 to 384×384" had named two sizes no
        image had (portrait and landscape images; layout probe 2026-12-06). '' when not recorded."""
        if not self.image_sizes:
            return ""
        (w0, h0), (w1, h1) = self.image_sizes
        if (w0, h0) == (w1, h1):
            return f"{w0}×{h0}"
        return " ".join([f"{w0} to {w1} wide," if w0 != w1 else f"{w0} wide,", f"{h0} to {h1} high" if h0 != h1 else f"{h0} high"])

    def size_note(self, width: int, height: int, frame_units: float | None = None) -> str | None:
        """Why an image of ``width`` × ``height`` may read as unlike the training images, when its size
        or shape is far from theirs (None otherwise, or when their sizes were not recorded): a
        quarter-size part (128×52 against 512×208) had been judged "unlike every normal image" with
        nothing said of its size, as had a portrait image of a landscape part. An image of their shape under half their
        area is no other view when, as a whole, it lies as close to them as 49 in 50 of them do (``frame_units`` ≤ 1, the
        frame check's units): the whole part at a smaller scale."""
        if not self.image_sizes:
            return None
        (w0, h0), (w1, h1) = self.image_sizes
        trained = self.sizes_text()
        # The shape first: a portrait image of a long landscape part (208×512 against 512×208) is also "under half
        # their width", and had been told it lost detail rather than asked whether it is rotated.
        if not (w0 / h1) / 1.5 <= width / height <= (w1 / h0) * 1.5:
            return f"{SIZE_NOTE} {width}×{height}, the training images {trained}: is it rotated, or another view?"
        # A lower-resolution camera's whole frame: a model fits every image to its canvas and judges it as well (10 good
        # cookies at half size: the same 1 flagged; scale probe 2026-12-06), where the note had failed every good part at
        # the gate and kept them out of calibration. A crop of the same shape lies further (cookies' quarters 1.0–2.9,
        # commutators' 13–33; their half-size wholes 0.6–0.9 and −0.1–0.5). Ball screws at half size lie at 4.5–5.8: noted.
        same_shape = (w0 / h1) / 1.1 <= width / height <= (w1 / h0) * 1.1
        if same_shape and frame_units is not None and frame_units <= 1.0:
            return None
        if width * height < w0 * h0 / 2:
            # By area: a cookie cropped to a quarter (144×192 against 288×384, half of each side) kept its shape and read as
            # three confident cracks with nothing said (regression probe 2026-12-06).
            return (f"{SIZE_NOTE} {width}×{height}, the training images {trained}: under half their area, it is a crop, a smaller "
                    "scale or another view, and does not show what they show.")
        return None


@dataclass(frozen=True)
class ModelDescriptor:
    """The content of ``inspector.json`` (see the module notes)."""

    detector: str
    """Kind name; :data:`defectlens.detect.registry.DETECTORS` maps it to the loader."""
    settings: dict[str, Any] | None = None
    """The Inspector's fit settings (None for a zero-shot model: nothing was fitted on the part)."""
    fit_summary: dict[str, Any] | None = None
    provenance: Provenance | None = None
    saved_at: str | None = None
    thresholds: dict[str, Any] | None = None
    normal_stats: dict[str, Any] | None = None
    detector_info: dict[str, Any] = field(default_factory=dict)
    """What the detector says about itself (encoder, members, taxonomy), for the card."""
    format_version: int = FORMAT_VERSION
    """Version the folder was written with (1 for a legacy folder read by :func:`read_descriptor`)."""
    earlier_thresholds_damaged: int = 0
    """Recorded earlier thresholds left out as damaged (not written back: the card says how many)."""
    earlier_thresholds: list[dict[str, Any]] = field(default_factory=list)
    """The thresholds this fit held before, oldest first, each as ``thresholds`` is with ``replaced_at`` (UTC) and
    ``replaced_by`` (the defectlens version that replaced it): `calibrate` had overwritten them with no way back
    (loop probe 2026-12-06); ``calibrate --restore N`` returns to one."""

    def to_json(self) -> dict[str, Any]:
        """The ``inspector.json`` payload: :data:`SENSOR_DEPTH_FORMAT_VERSION` when it records a sensor depth, else :data:`FORMAT_VERSION`."""
        return {
            "format": FORMAT,
            "format_version": SENSOR_DEPTH_FORMAT_VERSION if self.provenance and self.provenance.bit_depth else FORMAT_VERSION,
            "detector": self.detector,
            "settings": self.settings,
            "fit_summary": self.fit_summary,
            "provenance": asdict(self.provenance) if self.provenance else None,
            "saved_at": self.saved_at,
            "thresholds": self.thresholds,
            "normal_stats": self.normal_stats,
            "detector_info": self.detector_info,
            # Only when there is any: a model never calibrated is written as before.
            **({"earlier_thresholds": self.earlier_thresholds} if self.earlier_thresholds else {}),
        }

    @classmethod
    def from_json(cls, meta: dict[str, Any], path: Path) -> ModelDescriptor:
        """Inverse of :meth:`to_json`; a malformed field is a :class:`ModelFileError` naming the file."""
        try:
            kind = meta["detector"]
            if not isinstance(kind, str):
                raise TypeError(f"detector must be a kind name, got {kind!r}")
            prov = meta.get("provenance")
            earlier, damaged = _earlier_thresholds(meta)
            return cls(
                detector=kind,
                settings=_optional_dict(meta, "settings"),
                fit_summary=_optional_dict(meta, "fit_summary"),
                provenance=Provenance.from_json(prov) if prov else None,
                saved_at=meta.get("saved_at"),
                thresholds=_optional_dict(meta, "thresholds"),
                normal_stats=_optional_dict(meta, "normal_stats"),
                detector_info=_optional_dict(meta, "detector_info") or {},
                format_version=int(meta["format_version"]),
                earlier_thresholds=earlier,
                earlier_thresholds_damaged=damaged,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"invalid model descriptor ({exc})", path, f"re-create it with {REMEDY}") from None


def _earlier_thresholds(meta: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The earlier thresholds recorded that can be returned to (the last :data:`MAX_EARLIER_THRESHOLDS`, as a save keeps
    them: numbered otherwise on the card, a restore's save had renumbered them), and how many records are damaged (one
    when the record is not a list). A record, not what the model decides by: a damaged entry is left out and counted
    rather than making the model unusable (regression probes 2026-12-06: a hand-edited entry had been a traceback at
    `--restore`, and infinite or boolean ones restored, passing or flagging every part)."""
    value = meta.get("earlier_thresholds")
    if value is None:
        return [], 0
    if not isinstance(value, list):
        return [], 1
    usable = [_usable_thresholds(entry) for entry in value]
    kept = [entry for entry in usable if entry is not None]
    return kept[-MAX_EARLIER_THRESHOLDS:], len(usable) - len(kept)


def _usable_thresholds(entry: object) -> dict[str, Any] | None:
    """``entry`` as an earlier thresholds' record, numbers as :class:`~defectlens.types.Thresholds` takes them (finite, not
    a bool, not a string), or None."""
    if not isinstance(entry, dict):
        return None
    image, pixel = entry.get("image"), entry.get("pixel")
    try:
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (image, pixel)):
            return None
    except OverflowError:  # an integer of 400 digits: no float holds it (it had made the whole model unloadable)
        return None
    source = entry.get("source")
    return {**entry, "image": float(image), "pixel": float(pixel), "source": source if isinstance(source, str) else "user"}  # type: ignore[arg-type]


MAX_EARLIER_THRESHOLDS = 50
"""Earlier thresholds a model keeps (:attr:`ModelDescriptor.earlier_thresholds`), the oldest dropped first."""


def _optional_dict(meta: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = meta.get(key)
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"{key} must be an object, got {value!r}")
    return value


def legacy_kind(root: Path) -> str | None:
    """LEGACY: the kind of a folder written before the descriptor named it, guessed from the
    files each kind wrote (fused before memory bank: a fused folder holds both). None when
    nothing marks a model."""
    for marker, kind in _LEGACY_MARKERS:
        if (root / marker).is_file():
            return kind
    return None


def read_descriptor(directory: str | Path) -> ModelDescriptor:
    """The descriptor of a model folder: version 2 as written, or a legacy folder's read into
    the same shape. :class:`ModelFileError` for a missing folder, a damaged or foreign file,
    a newer version, or a folder that holds no model."""
    root = Path(directory)
    path = root / DESCRIPTOR_FILE
    try:
        os.stat(root)
        if os.path.isdir(root):
            os.stat(path)  # the folder itself entered (a folder of mode 000 had raised a bare PermissionError from the API)
    except PermissionError:
        # Below a folder this user cannot enter: a bare PermissionError from the API, a traceback from the commands.
        raise ModelFileError("cannot be read (permission denied: it, or a folder on its path, cannot be entered)", root,
                             "give this user enter permission (x) on it and the folders above it, and read permission on it") from None
    except OSError:
        pass  # missing, a loop, no descriptor (a legacy folder): said below
    if root.exists() and not root.is_dir():
        raise ModelFileError("is a file, not a model folder", root, f"pass the folder {REMEDY} wrote (it holds {DESCRIPTOR_FILE})")
    if not root.is_dir():
        moved = sorted(root.parent.glob(f".{root.name}.old-*")) if root.parent.is_dir() else []
        if moved:
            # Left by a save killed between its two renames (systems that cannot swap folders in one step).
            raise ModelFileError(f"model directory not found, but an interrupted save left the model before it as {moved[-1].name}",
                                 root, f"rename {moved[-1].name} back to {root.name} (the next fit or save there does it too)")
        raise ModelFileError("model directory not found", root, f"run {REMEDY} first")
    meta: Any = None
    if path.is_file():
        meta = read_json_file(path, ModelFileError, "", "", f"re-create it with {REMEDY}")
    if isinstance(meta, dict) and "format" in meta:
        meta = read_model_json(root, DESCRIPTOR_FILE, FORMAT, SENSOR_DEPTH_FORMAT_VERSION, "model", REMEDY, oldest=FORMAT_VERSION)
        return ModelDescriptor.from_json(meta, path)
    # LEGACY (format version 1): no format key, or no inspector.json at all.
    kind = legacy_kind(root)
    if kind is None:
        raise ModelFileError(f"no {DESCRIPTOR_FILE} and no detector files in the model directory", root, f"pass a folder written by {REMEDY}")
    if meta is not None and not isinstance(meta, dict):
        raise ModelFileError("invalid model descriptor (not a JSON object)", path, f"re-create it with {REMEDY}")
    legacy = meta or {}
    try:
        return ModelDescriptor(
            detector=kind,
            settings=_optional_dict(legacy, "settings"),
            fit_summary=_optional_dict(legacy, "fit_summary"),
            format_version=1,
        )
    except TypeError as exc:
        raise ModelFileError(f"invalid inspector settings ({exc})", path, f"re-create it with {REMEDY}") from None


def model_kind(directory: str | Path) -> str | None:
    """The kind a folder's descriptor names, or None when it holds no readable model (never raises)."""
    try:
        return read_descriptor(directory).detector
    except ModelFileError:
        return None


def holds_model(directory: str | Path) -> bool:
    """True when the folder is a model, readable or not: its descriptor reads, or an
    ``inspector.json`` or a legacy kind's file is there (a damaged or newer model is still a
    model, and re-fitting into its folder may replace it)."""
    root = Path(directory)
    return model_kind(root) is not None or (root / DESCRIPTOR_FILE).is_file() or legacy_kind(root) is not None


def model_holding(path: str | Path) -> Path | None:
    """The model folder that ``path`` lies inside (any of its parents, links resolved, whose descriptor reads), or None: a
    model or an export written there went with that model's next save, or was carried along as a person's folder (probes
    2026-12-06). A parent holding another tool's ``detector.json`` is no model (it had blocked every fit below it): a parent
    counts with a readable ``inspector.json``."""
    return next((parent for parent in Path(path).resolve().parents
                 if (parent / DESCRIPTOR_FILE).is_file() and model_kind(parent) is not None), None)


def require_outside_models(path: str | Path, what: str) -> None:
    """Refuse a new model or export (``what``) at ``path`` when it would lie inside a model folder (:func:`model_holding`).
    One already there (a versioned ``models/cookie/v3`` under an older ``models/cookie``) may be saved again where it is:
    `calibrate` had scored every image, then refused it, naming a fix (another folder) it has no option for."""
    if not holds_model(path) and (holder := model_holding(path)):
        raise ConfigError(f"the {what} would be written inside the model folder {holder}", path, "give a folder outside any model")


def describe_model_in(folder: str | Path) -> str | None:
    """What model ``folder`` holds, in a few words — kind, part, and how its thresholds were set
    when by hand or by calibrate (``memory-bank model of a ball screw with thresholds set by
    false-alarm target 0.03 (calibrate: 13 good, 1 defective)``) — or None when it holds none."""
    if not holds_model(folder):
        return None
    try:
        descriptor = read_descriptor(folder)  # read once: its kind and its thresholds
    except DefectlensError:
        return "unreadable model"
    words = [f"{descriptor.detector} model"]
    with contextlib.suppress(DefectlensError):  # its part unsaid: the kind and thresholds still tell it apart
        if (part := part_taxonomy(folder)) is not None:
            words.append(f"of {with_article(load_taxonomy(part).object_name)}")  # "of a electrical commutator" (probe)
    if (source := _worked_source(descriptor)) is not None:
        words.append(f"with thresholds set by {source}")
    return " ".join(words)


def _worked_source(descriptor: ModelDescriptor) -> str | None:
    """How the model's thresholds were set where that was work to redo (by hand, or by calibrate on labelled parts); else None."""
    source = (descriptor.thresholds or {}).get("source")
    return str(source) if source and ("calibrate" in source or source == "user") else None


def worked_thresholds(folder: str | Path) -> str | None:
    """How the thresholds of the model in ``folder`` were set, where by hand or by calibrate (:func:`describe_model_in`'s words);
    None where they are a fit's own, or there is no model to read."""
    try:
        return _worked_source(read_descriptor(folder)) if holds_model(folder) else None
    except DefectlensError:
        return None


def model_stamp(directory: str | Path) -> tuple[int, int] | None:
    """Which writing of a model folder this is: its descriptor's inode and modification time
    (every save swaps in a new folder, so both change); None without a descriptor."""
    try:
        info = (Path(directory) / DESCRIPTOR_FILE).stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns


def write_descriptor(directory: str | Path, descriptor: ModelDescriptor) -> None:
    """Write ``card.md`` and then ``inspector.json`` (last: its presence marks the model whole)."""
    out = Path(directory)
    write_text_atomic(out / CARD_FILE, render_card(descriptor) + part_card_section(out))
    write_json_atomic(out / DESCRIPTOR_FILE, descriptor.to_json())


# ---------------------------------------------------------------------------------- the card
def part_card_section(directory: str | Path) -> str:
    """The card's section on what the folder holds about the part (:data:`PART_FILES`): the
    taxonomy's object and types, and the defect examples by type. Empty when it holds neither —
    the card promised "the taxonomy and examples it carries" and showed only a grounding
    model's."""
    root = Path(directory)
    lines: list[str] = []
    taxonomy = root / TAXONOMY_FILE
    if taxonomy.is_file():
        lines += ["", f"## Part ({TAXONOMY_FILE})", ""]
        try:
            part = load_taxonomy(taxonomy)
            lines += [f"Object: {markdown_line(part.object_name)}", ""]
            lines += [_type_line(d.name, d.description) for d in part.defects]
        except DefectlensError as exc:
            lines += [f"Not a valid taxonomy: {markdown_line(exc.message)}"]
    examples = root / EXAMPLES_DIR
    if examples.is_dir():
        counts = {t.name: sum(1 for f in t.iterdir() if f.is_file() and not f.name.startswith(".")) for t in sorted(examples.iterdir()) if t.is_dir()}
        lines += ["", f"## Defect examples ({EXAMPLES_DIR}/)", "", *_table(counts or {"(none)": 0})]
    return "\n".join(lines) + ("\n" if lines else "")


class _Code(str):
    """A card value shown as code (a path), not as prose."""


def _type_line(name: str, description: str | None) -> str:
    """A defect type's list item on the card: its name in bold, then its description, each as written."""
    return f"- **{markdown_line(name)}**" + (f": {markdown_line(description)}" if description else "")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) or "none"  # an empty cell had read as not recorded (--extra-neighbourhood 0)
    return "—" if value is None else str(value)


def _table(rows: dict[str, Any]) -> list[str]:
    lines = ["| field | value |", "|---|---|"]
    # Cells as written: a training folder named "tr|ain <img …>\n# Verdict" had split the row, run as HTML and made a heading
    # (security probe 2026-12-06).
    lines += [f"| {markdown_cell(str(k))} | {markdown_code_cell(v) if isinstance(v, _Code) else markdown_cell(_fmt(v))} |"
              for k, v in rows.items() if not isinstance(v, dict)]
    return lines


NORMAL_FIT_SETTINGS = frozenset({"coreset_ratio", "false_alarm_target", "global_weight", "extra_neighbourhoods"})
"""Settings of fitting on normal images (``InspectorSettings``): left off the card of a model fitted on none."""
THRESHOLD_RULES = {
    "batch-outlier": "an image or a pixel 3 robust standard deviations (1.4826 × MAD) above its batch's typical one",
    "token-probability": "a SEG_DEFECT probability above 0.5",
}
"""What a threshold set by a rule, not by normal images, means (the card's "how set")."""


CARD_HEADING = "# Model card:"
"""How every card defectlens writes begins (one its owner wrote is told by another start)."""


def _as_written(path: str) -> PurePath:
    """``path`` read as the system that wrote it reads it: a Windows one (``C:\\…``, ``\\\\server\\…``) wherever it is shown."""
    return PureWindowsPath(path) if re.match(r"[A-Za-z]:[\\/]|\\\\", path) else PurePosixPath(path)


def shown_folder(path: str, full_paths: bool = True) -> str:
    """A folder as a card shows it: whole, or (``full_paths`` False) an absolute one by its last names (three at most, and never
    all of them), for a card anyone may read (the service's ``GET /models``, which needs no token, had told where the training
    data lies; security probe 2026-12-07). A Windows path is read as one wherever the card is shown."""
    folder = _as_written(path)
    if full_paths or not folder.is_absolute():
        return path
    names = folder.parts[1:]
    return "…/" + "/".join(names[-min(3, max(1, len(names) - 1)):]) if names else path


def without_folders(text: str, folders: Iterable[str] = ()) -> str:
    """``text`` with its absolute paths written as :func:`shown_folder` shows folders: each of ``folders`` (and the paths below
    them) whole, spaces and all, then any other absolute path up to its first space (a fit's notes name the training images by
    the path typed, which may lead there through a link; regression probe 2026-12-07) where it names a file or folder here. In one
    pass each, so that a short form is never shortened again ("……/train")."""
    known = sorted({f.rstrip("/\\") for f in folders if f and shown_folder(f, False) != f}, key=len, reverse=True)
    if known:
        # Not inside a longer path, nor a sibling whose name it begins ("good" in "goodies"); a full stop after it ends it.
        text = re.sub(r"(?<![\w.\-/\\…])(?:" + "|".join(map(re.escape, known)) + r")(?![\w\-]|\.\w)",
                      lambda match: shown_folder(match[0], False), text)
    return _ABSOLUTE_PATH.sub(lambda match: shown_folder(match[0], False) if _a_path_here(match[0]) else match[0], text)


def _a_path_here(path: str) -> bool:
    """Whether ``path`` (an absolute one found in text, three names deep or more) is a path to hide: a Windows one, a file's (its
    name has a suffix: a fit's notes name images, here or on the machine that fitted) or one of this machine. A route in a
    taxonomy's words ("POST /inspect/batch", "/dev/null") is none (regression probes 2026-12-07)."""
    named = _as_written(path)
    if len(named.parts) <= 3:
        return False
    return isinstance(named, PureWindowsPath) or re.search(r"\.[A-Za-z][A-Za-z0-9]{0,4}$", named.name) is not None or os.path.lexists(path) or \
        os.path.isdir(os.path.dirname(path))


_ABSOLUTE_PATH = re.compile(r"(?<![\w.\-/\\…:~])(?:[A-Za-z]:[\\/]|/)(?:[^\s/\\`|\"'<>()\[\]]+[\\/])+[^\s/\\`|\"'<>()\[\],;:]*")
"""An absolute path (POSIX or Windows) up to its first space, as :func:`without_folders` finds those it was not told of."""


def render_card(descriptor: ModelDescriptor, full_paths: bool = True) -> str:
    """The human-readable model card (Markdown) of a descriptor: what detector, fitted on what,
    when, with which thresholds set how, and what normal images scored (its folders by their last names unless ``full_paths``)."""
    d = descriptor
    lines = [f"{CARD_HEADING} {d.detector} detector", ""]
    if d.format_version < FORMAT_VERSION:
        lines += [f"_Legacy model folder (descriptor version {d.format_version}): provenance was not recorded._", ""]
    p = d.provenance
    if d.format_version >= FORMAT_VERSION and d.settings is not None and (p is None or p.missing()):
        # A fitted model's descriptor should say where it came from: say what it leaves out.
        gaps = ", ".join(p.missing()) if p else "all of it"
        lines += [f"_Provenance incomplete in this descriptor: {gaps} not recorded._", ""]
    lines += ["## Provenance", ""]
    lines += _table(
        {
            "fitted at (UTC)": p.fitted_at if p else None,
            "defectlens version": p.defectlens_version if p else None,
            "training images": p.n_images if p else None,
            **({"training image sizes": p.sizes_text()} if p and p.image_sizes else {}),
            # A path as it is, in a code span: "_lot7_" in one had read as emphasis (regression probe 2026-12-06).
            **({"training folder": _Code(shown_folder(p.trained_on, full_paths))} if p and p.trained_on else {}),
            **({"training images in colour": "yes" if p.colour else "no (grey)" if p.grey else "some" if p.grey is False else "no, or not all"}
               if p and p.colour is not None else {}),
            **({"sensor depth": f"{p.bit_depth} bits (deeper pixels of every image read at it)"} if p and p.bit_depth
               else {"sensor depth": "not recorded (fitted before 0.3.1): a frame deeper than 8 bits is read at its own depth; "
                                     "refit to read a camera's deep frames alike"} if p and released_before(p.defectlens_version, (0, 3, 1))
               # Said for 8-bit models too, so the three cases read alike (last probe: no line at all).
               else {"sensor depth": "8 bits (no training image deeper; a deeper frame is read at its own depth)"} if p and p.n_images
               else {}),
            "training-set fingerprint (sha256)": p.fingerprint if p else None,
            # A fit is bitwise reproducible at one thread count only (README: "At one thread count a fit is bitwise reproducible").
            **({"CPU threads of the fit": f"{p.threads} (refit with as many to reproduce it bit for bit)"} if p and p.threads else {}),
            "saved at (UTC)": d.saved_at,
        }
    )
    info = dict(d.detector_info)
    encoder = info.pop("encoder", None)
    taxonomy = info.pop("taxonomy", None)
    fitted_on_none = p is not None and p.n_images == 0
    settings = {k: v for k, v in (d.settings or {}).items()
                # A model fitted on no normal image (batch scoring) never read how to fit on them: a probe's
                # card showed a coreset ratio and a false-alarm target its threshold has nothing to do with.
                if not (fitted_on_none and k in NORMAL_FIT_SETTINGS) and not (k == "detector" and v == d.detector)}
    lines += ["", "## Detector", ""]
    lines += _table({"kind": d.detector, **info, **settings})
    if encoder:
        lines += ["", "### Encoder", "", *_table(encoder)]
    t = d.thresholds
    lines += ["", "## Thresholds", ""]
    if t:
        source = t.get("source")
        how = f"{source}: {THRESHOLD_RULES[source]}" if source in THRESHOLD_RULES else source
        # At 4 places, as the earlier thresholds below them, calibrate's table and summary.csv (4 significant digits had shown
        # two calibrations that differ in the third decimal alike; first-week probe 2026-12-07).
        shown = {k: f"{v:.4f}" if isinstance(v, float) else v for k, v in (("image", t.get("image")), ("pixel", t.get("pixel")))}
        lines += _table({**shown, "how set": how})
    elif d.format_version < FORMAT_VERSION or d.settings is not None:
        lines += ["Not recorded in this descriptor (the detector's own files hold them)."]
    else:
        lines += ["Not fixed in the model: set at inspection by the zero-shot cue — token: "
                  f"{THRESHOLD_RULES['token-probability']}; batch or both: {THRESHOLD_RULES['batch-outlier']}."]
    if d.earlier_thresholds:
        lines += ["", "### Earlier thresholds of this fit (newest first; `defectlens calibrate MODEL_DIR --restore N` returns to one, "
                      "`--restore 0` to the fit's own label-free ones)", "",
                  "| N | image | pixel | how set | replaced at (UTC) | replaced by |", "|---|---|---|---|---|---|"]
        for n, e in reversed(list(enumerate(d.earlier_thresholds, start=1))):
            cells = [n, f"{e['image']:.4f}", f"{e['pixel']:.4f}", e.get("source"), e.get("replaced_at") or "—", e.get("replaced_by") or "—"]
            lines.append("| " + " | ".join(markdown_cell(str(c)) for c in cells) + " |")
    if d.earlier_thresholds_damaged:
        lines += ["", f"_{d.earlier_thresholds_damaged} damaged record(s) of earlier thresholds in {DESCRIPTOR_FILE} left out (no finite "
                      "image and pixel thresholds in them)._"]
    if d.normal_stats:
        lines += ["", "## Normal-score statistics (normal images scored as unseen: held out, or each left out)", "", *_table(d.normal_stats)]
    if d.fit_summary and fitted_on_none:
        lines += ["", "## Fit", "", "Nothing fitted: the model reads no normal image, and scores each batch against itself."]
    elif d.fit_summary:
        lines += ["", "## Fit", "", *_table({k: v for k, v in d.fit_summary.items() if k != "notes"})]
        if notes := d.fit_summary.get("notes"):
            source = (d.thresholds or {}).get("source") or ""
            # A calibrated model's card still warned that its thresholds rest on normal images alone (ops probe 2026-12-06).
            since = f" (no longer: the thresholds have since been set by {source})" if set_otherwise(source) else ""
            lines += ["", "What the fit warned of:", "",
                      *(f"- {markdown_line(str(note))}{since if str(note).startswith(LABEL_FREE_NOTE) else ''}" for note in notes)]
    if taxonomy:
        lines += ["", "## Taxonomy", "", f"Object: {markdown_line(str(taxonomy.get('object', '—')))}", ""]
        lines += [_type_line(str(t_['name']), t_.get('description')) for t_ in taxonomy.get("defects", [])]
    return "\n".join(lines) + "\n"
