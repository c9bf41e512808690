"""The Inspector: the one object users fit, save, load and ask to inspect images.

It wires the stages together — encode and detect (:mod:`defectlens.detect`), then locate
(:mod:`defectlens.locate`) — and owns the decision thresholds. Classification and reports
build on the :class:`~defectlens.types.Inspection` it returns.

Any registered detector can sit inside, chosen by the kind the folder's descriptor names
(:mod:`defectlens.descriptor`, loaded through :mod:`defectlens.detect.registry`), e.g.:

* a memory bank (``defectlens fit``): normal images of the part were seen;
* batch scoring (``defectlens fit --detector batch-scoring``): no normal image; the images
  inspected together score each other;
* a grounding model alone (``defectlens train-grounding``): zero-shot, the part is known only
  by its taxonomy's words;
* both, fused (``defectlens fit --grounding``): look twice.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import numbers
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypeGuard

import numpy as np
from PIL import Image

from defectlens import __version__
from defectlens.descriptor import (
    DESCRIPTOR_FILE,
    LABEL_FREE_NOTE,
    MAX_EARLIER_THRESHOLDS,
    PART_FILES,
    TAXONOMY_FILE,
    ModelDescriptor,
    Provenance,
    combine_digests,
    describe_model_in,
    holds_examples,
    holds_model,
    image_digest,
    model_kind,
    part_files_note,
    part_taxonomy,
    read_descriptor,
    require_outside_models,
    set_otherwise,
    utc_now,
    write_descriptor,
)
from defectlens.detect import (
    DEFAULT_FALSE_ALARM_TARGET,
    FitSummary,
    MemoryBankConfig,
    MemoryBankDetector,
    too_few_for_target,
)
from defectlens.detect.base import Detector, LoadContext, Progress
from defectlens.detect.batch_scoring import BatchScoringConfig, BatchScoringDetector
from defectlens.detect.calibration import binary_labels, labelled_pixels, require_clear_mask, threshold_shift_notes, thresholds_from_labels
from defectlens.detect.discriminator import DiscriminatorConfig, DiscriminatorDetector
from defectlens.detect.frame_check import MIN_IMAGES as FRAME_MIN_IMAGES
from defectlens.detect.frame_check import drift_note
from defectlens.detect.fusion import MIN_WEIGHT_IMAGES, FusedDetector, FusionConfig
from defectlens.detect.global_score import MAX_WEIGHT as GLOBAL_MAX_WEIGHT
from defectlens.detect.global_score import MIN_IMAGES as GLOBAL_MIN_IMAGES
from defectlens.detect.patch_detector import MIN_HOLDOUT_IMAGES, holdout_indices
from defectlens.detect.registry import DETECTORS, detector_class, load_detector
from defectlens.encode import BACKBONES, DEFAULT_BACKBONE, CanvasSpec, EncoderConfig
from defectlens.errors import (
    SHORT_OF_FIX,
    ClippedPixelsWarning,
    ConfigError,
    DatasetLayoutError,
    DefectlensError,
    DefectlensWarning,
    ExtremeAspectWarning,
    HotPixelsWarning,
    ModelFileError,
    NoteWarning,
    OutputError,
    ShallowColourWarning,
    collected_warnings,
    out_of_resources,
    shortage_caught,
    warn_caller,
)
from defectlens.fielddocs import with_field_docs
from defectlens.io import (
    ImageFiles,
    as_rgb_image,
    atomic_directory,
    decoded_pixels,
    images_below,
    is_grey,
    load_category,
    load_mask,
    mask_as_drawn,
    printable_text,
    read_image,
    sensor_bits,
    shape_of,
    write_json_atomic,
)
from defectlens.io.atomic import copy_folder_into, folder_identity
from defectlens.io.dataset import (
    FolderImages,
    first_names,
    folder_any_case,
    normal_folder_images,
    picture_copies,
    reading_fix,
    require_readable,
    unreadable_folder,
)
from defectlens.io.names import spelled_as_choice
from defectlens.locate import extract_regions
from defectlens.taxonomy import Taxonomy, load_taxonomy, short_part_name
from defectlens.types import AnomalyResult, Inspection, Thresholds

INSPECTOR_FILE = DESCRIPTOR_FILE
IMAGE_SIZE_RANGE = (64, 1024)
"""Canvas sides accepted by :class:`InspectorSettings`: below, features are too coarse; above,
a CPU runs out of memory long before it finishes."""
FIT_DETECTORS = ("memory-bank", "discriminator", "bank+discriminator", "batch-scoring")
"""Detector families ``Inspector.fit`` builds (``InspectorSettings.detector``): from normal
images, or — 'batch-scoring' — from none (the images inspected together score each other)."""
NO_NORMAL_DETECTORS = ("batch-scoring",)
"""Families that need no normal image: fitting one only records its settings."""
MIN_FIT_IMAGES = 2
"""Normal images needed to fit: each is scored against the others (leave one out) to set the thresholds."""
DEFAULT_BATCH = 16
"""Images decoded and scored together, unless the detector reads another number (``inspect_batch``)."""
DEFAULT_EXTRA_NEIGHBOURHOODS = (1,)
"""The memory bank's further neighbourhood by default: a second bank of the encoder's levels
taken 1 × 1, its maps averaged with the 3 × 3 bank's. Over five draws of the banks on each shared
part (README, "One bank or two, over five draws") it raised AUPRO on all four (mean 0.839 → 0.860)
and the mean image AUROC (0.970 → 0.972), and brought magnetic tile's AUPRO (0.776 → 0.806) and
recall at the label-free threshold (0.767 → 0.804) over issue 8's 0.80, for 0.003 of mean pixel
AUROC and a second search per image (26 → 31 ms a magnetic tile)."""
ImageInput: TypeAlias = np.ndarray | str | Path | Image.Image
"""One image as the Inspector takes it: an array, a Pillow image or a file path."""


@with_field_docs
@dataclass(frozen=True)
class InspectorSettings:
    """Fit-time choices that are not part of the detector itself."""

    backbone: str = DEFAULT_BACKBONE
    """The encoder's network: 'efficientnet-lite2' (the default, best in the detector study) or 'efficientnet-lite0'."""
    image_size: int = 256
    """Side of the square the median training image is mapped to."""
    coreset_ratio: float = 0.1
    """Share of the normal patches the memory bank keeps (greedy coreset; 1 keeps every patch): less is faster to
    search, more is closer to every normal patch."""
    standardize: bool = True
    """Equalise each image's exposure before encoding (a part photographed brighter is not unlike the normal ones)."""
    min_region_px: int | None = None
    """Regions smaller than this are dropped (default: 0.01% of the image)."""
    detector: str = "memory-bank"
    """Normal-only detector family: 'memory-bank', 'discriminator', or 'bank+discriminator'
    (the two fused). See the detector study in the README for how the default was chosen."""
    false_alarm_target: float = DEFAULT_FALSE_ALARM_TARGET
    """Share of normal parts the label-free threshold may flag: the threshold is the
    (1 - target) quantile of the normal images' calibration scores."""
    global_weight: float = 0.0
    """Memory bank alone: weight of the global score beside the bank's (``MemoryBankConfig.global_weight``; 0 = off)."""
    extra_neighbourhoods: tuple[int, ...] | None = None
    """Memory bank alone: further neighbourhood sizes whose banks' maps are averaged with the
    encoder's (``MemoryBankConfig.extra_neighbourhoods``; () = off). None, the default:
    :data:`DEFAULT_EXTRA_NEIGHBOURHOODS` for the memory bank without a global weight, else off."""
    seed: int = 0
    """Seed of the fit's random choices (the coreset's first patch, the held-out and calibration
    folds): fits with other seeds show how much a result owes to the draw alone (the README's "five
    draws"). The images' order is part of the draw too; `fit` reads a folder in sorted order."""

    def __post_init__(self) -> None:
        # Made from Python and from the command line alike: each fix names the field and its option.
        # The kind first: every other check below reads it.
        if self.detector not in FIT_DETECTORS:
            raise ConfigError(f"unknown detector {self.detector!r}", None, f"choose one of {', '.join(FIT_DETECTORS)}")
        extra = self.extra_neighbourhoods
        if extra is None:
            extra = DEFAULT_EXTRA_NEIGHBOURHOODS if self.detector == "memory-bank" and self.global_weight == 0 else ()
        # numpy's integers as plain ones (saved to JSON: a settings grid's np.int64(5) failed the save after the whole fit).
        object.__setattr__(self, "extra_neighbourhoods", tuple(int(n) if isinstance(n, numbers.Integral) and not isinstance(n, bool) else n
                                                               for n in extra))
        if self.extra_neighbourhoods and (self.detector != "memory-bank" or self.global_weight > 0):
            raise ConfigError(
                "extra neighbourhoods are for the memory-bank detector alone, without a global weight", None,
                "drop extra_neighbourhoods (--extra-neighbourhood), or use detector 'memory-bank' without global_weight (--global-weight)",
            )
        try:
            # The memory bank's own check of the sizes, said before any image is decoded.
            MemoryBankConfig(extra_neighbourhoods=self.extra_neighbourhoods or ())
        except ValueError as exc:
            raise ConfigError(str(exc), None, "pass 1 or 5 (the sizes studied), or leave it out") from None
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed {self.seed!r} is not a whole number from 0 to 2**32 - 1", None, "pass e.g. 0, 1, 2")
        object.__setattr__(self, "seed", int(self.seed))  # numpy's integers too, written to JSON as a plain int
        if self.seed and self.detector in NO_NORMAL_DETECTORS:
            # Nothing is drawn from normal images that are not there (`fit --seed` refused it; Python took it and wrote it).
            raise ConfigError(f"a seed draws from normal images, and detector {self.detector!r} fits on none", None, "drop seed (--seed)")
        for name in ("coreset_ratio", "false_alarm_target", "global_weight"):
            value = getattr(self, name)
            # "0.03" from a config file compared with a float deep in fit: a TypeError after decoding.
            if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ConfigError(f"{name} {value!r} is not a number", None, f"pass a number such as {getattr(InspectorSettings, name)!r}")
        if not 0.0 < self.coreset_ratio <= 1.0:
            # The bank's own check, said here: it came only after every image was encoded.
            raise ConfigError(f"coreset_ratio {self.coreset_ratio!r} is outside (0, 1]", None, "pass a share such as 0.1 (1 = keep every patch)")
        if not 0.0 < self.false_alarm_target <= 0.5:
            # Checked before any image is decoded; above one half the threshold would sit below
            # the typical normal part.
            raise ConfigError(
                f"false-alarm target {self.false_alarm_target!r} is outside (0, 0.5]", None, "pass a share such as 0.02 (2 % of good parts flagged)"
            )
        if not 0.0 <= self.global_weight <= GLOBAL_MAX_WEIGHT:
            raise ConfigError(
                f"global weight {self.global_weight!r} is outside [0, {GLOBAL_MAX_WEIGHT:g}]", None, "pass a weight such as 0.25 (0 = off)"
            )
        if self.global_weight > 0 and self.detector != "memory-bank":
            raise ConfigError(
                f"a global weight needs the memory-bank detector, not {self.detector!r}", None,
                "drop global_weight (--global-weight), or use detector 'memory-bank' (--detector)"
            )
        if self.backbone not in BACKBONES:
            # Checked here, before any image is decoded (the encoder would only refuse it after).
            raise ConfigError(f"unknown backbone {self.backbone!r}", None, f"use one of {', '.join(BACKBONES)}")
        low, high = IMAGE_SIZE_RANGE
        if isinstance(self.image_size, bool | np.bool_) or not isinstance(self.image_size, numbers.Integral):
            raise ConfigError(f"image_size {self.image_size!r} is not a whole number of pixels", None, f"use an integer from {low} to {high}")
        object.__setattr__(self, "image_size", int(self.image_size))
        if not low <= self.image_size <= high:
            # Checked here, before a canvas of this size is ever allocated.
            raise ConfigError(f"image_size {self.image_size!r} is outside {low}..{high}", None, f"use an image size from {low} to {high}")
        if not isinstance(self.standardize, bool | np.bool_):
            raise ConfigError(f"standardize must be True or False, got {self.standardize!r}", None, "pass a boolean")
        object.__setattr__(self, "standardize", bool(self.standardize))
        if self.min_region_px is not None:
            if (isinstance(self.min_region_px, bool | np.bool_) or not isinstance(self.min_region_px, numbers.Integral)
                    or self.min_region_px < 1):
                raise ConfigError(f"min_region_px must be a whole number of pixels >= 1 or None, got {self.min_region_px!r}", None,
                                  "pass e.g. 20, or None for no minimum")
            object.__setattr__(self, "min_region_px", int(self.min_region_px))
        for name in ("coreset_ratio", "false_alarm_target", "global_weight"):
            # numpy's numbers too (a settings grid's np.float32(0.1) was "not a number"), saved to JSON as plain floats;
            # converted after the checks, so that their messages quote the value as given.
            object.__setattr__(self, name, float(getattr(self, name)))


def batch_warnings(notes: Sequence[str | None]) -> list[str]:
    """What the images of one batch were told of it (:attr:`AnomalyResult.batch_warning`), each thing once: a note some of
    them add to the batch's own is said apart, with how many images have it (the batch's note had been said twice, once
    with the near-copies' clause; regression probe 2026-12-06)."""
    distinct = list(dict.fromkeys(n for n in notes if n))
    carried: Counter[str] = Counter()
    for note in notes:
        if not note:
            continue
        base = max((v for v in distinct if note.startswith(v + "; ")), key=len, default=None)
        for piece in (note,) if base is None else (base, note[len(base) + 2:]):
            carried[piece] += 1
    return [piece if n == len(notes) else f"{piece} ({n} of the {len(notes)} images)" for piece, n in carried.items()]


@with_field_docs
@dataclass
class Failure:
    """An input that could not be processed, with a message naming the file and the fix."""

    source: str
    """The input as given."""
    message: str
    """Why, starting with the input's name, and the fix."""
    of_batch: bool = False
    """The refusal of the whole batch the input was in (too few images left, say), the same for each of its images: the
    commands say it once for them all."""
    short: str | None = None
    """What this machine ran out of for it ("memory", "open files": :func:`short_of`), or None: a failure another try may mend."""


@with_field_docs
@dataclass(eq=False)
class InspectedImage:
    """One image of a scored batch: its file, pixels, the detector's raw output and the verdict."""

    path: Path
    image: np.ndarray = field(repr=False)
    """The decoded pixels, (H, W, 3) uint8 (left out of repr: a batch printed every image)."""
    result: AnomalyResult
    """Carries the grounding model's type maps when one took part."""
    inspection: Inspection
    reading_notes: tuple[str, ...] = ()
    """What reading the file said of it (a multi-page TIFF's other pages, a transparent area filled, pixels clipped to the
    model's depth), each also warned: kept with its results, where the terminal's lines had been all that said it."""


@with_field_docs
@dataclass
class InspectedBatch:
    """What one batch gave: the inspected images and the inputs that failed."""

    images: list[InspectedImage]
    failures: list[Failure]
    n_inputs: int
    """Paths the batch covered (inspected or failed), for progress bars."""
    seconds: float
    """Decoding, scoring and decisions of this batch."""
    warnings: list[str] = field(default_factory=list)
    """What the detector said about the batch as a whole (e.g. most parts look alike-anomalous), once each."""
    drift: str | None = None
    """Whether the batch's images, as a whole, have moved away from the normal ones since the fit (focus, light, a moved
    camera; :func:`~defectlens.detect.frame_check.drift_note`), or None. Apart from :attr:`warnings`: `inspect` says it
    once over a run, not per batch."""

    def __repr__(self) -> str:
        # Every nested result with its regions had run to 50 kB for a batch of 48 in a notebook (API probe 2026-12-06).
        flagged = sum(item.inspection.is_defective for item in self.images)
        extra = (f", {len(self.warnings)} warning(s)" if self.warnings else "") + (", a drift note" if self.drift is not None else "")
        return (f"InspectedBatch({len(self.images)} inspected: {flagged} defective; {len(self.failures)} failed of {self.n_inputs} "
                f"input(s); {self.seconds:.2f} s{extra})")


def balanced_batches(n_items: int, size: int) -> list[range]:
    """Index ranges covering ``n_items`` in batches of at most ``size`` whose lengths differ by
    at most one: 17 items at size 16 are 9 + 8, not 16 + 1 (a grounding model compares the
    images of a batch, and one image alone has nothing to be compared with)."""
    if n_items <= 0:
        return []
    n_batches = math.ceil(n_items / max(1, size))
    bounds = [round(i * n_items / n_batches) for i in range(n_batches + 1)]
    return [range(a, b) for a, b in itertools.pairwise(bounds)]


def short_of(path: str | Path, short: str, what: str = "not inspected", then: str = "") -> Failure:
    """The failure of an image the machine ran ``short`` of memory or open files for (:func:`~defectlens.errors.out_of_resources`),
    ``then`` said after the fix (", then …")."""
    return Failure(str(path), f"{path}: {what}, this machine ran out of {short} — fix: {SHORT_OF_FIX[short]}{then}", short=short)


def _readable(
    paths: Sequence[str | Path], failures: list[Failure], progress: Progress | None, strict: bool = False, bit_depth: int | None = None,
    shortage_raises: bool = False,
) -> Iterator[tuple[Path, np.ndarray, int | None, tuple[str, ...]]]:
    """Each of ``paths`` that decodes, with its pixels (deeper ones read at ``bit_depth``), its own sensor depth
    (:func:`~defectlens.io.sensor_bits`) and what its reading said (:class:`~defectlens.errors.DefectlensWarning`s, also
    warned); unreadable files are added to ``failures`` as :class:`Failure` records instead of stopping the batch
    (``strict``: the first one's error is raised), and so are files this machine lacks the memory or open files to decode
    (``shortage_raises``: raised, for a batch that holds other images to be tried again an image at a time)."""
    for p in paths:
        short: str | None = None
        try:
            with collected_warnings() as said:
                pixels = decoded_pixels(p)
                image = as_rgb_image(pixels, p, bit_depth)
        except DefectlensError as exc:
            if strict:
                raise
            failures.append(Failure(str(p), str(exc)))
        except (MemoryError, RuntimeError, OSError) as exc:
            # One image too large for the memory left had ended a whole fit or evaluate (regression probe 2026-12-07).
            if (short := out_of_resources(exc)) is None or strict or shortage_raises:
                raise
        else:
            yield Path(p), image, sensor_bits(pixels), tuple(str(w) for w in said if isinstance(w, DefectlensWarning))
        finally:
            for w in said:
                warn_caller(w)
        if short is not None:
            failures.append(short_of(p, short, "not read"))
        if progress:
            progress(1)


def _channel_first(value: np.ndarray) -> bool:
    """(C, H, W) with C = 1, 3 or 4, as PyTorch lays out one image; a stack of 1, 3 or 4 grey images looks the
    same, and is far rarer where the arrays come from a network's tensors."""
    return value.ndim == 3 and value.shape[0] in (1, 3, 4) and value.shape[2] > 4


def _one_image(value: object) -> bool:
    """Whether ``value`` is one image, not a sequence of them: a Pillow image, or an array (H, W)
    grey, (H, W, C) with at most 4 channels, or (C, H, W) channel-first (refused with its fix);
    any other (N, H, W) array is a stack of grey images (one is at least 8 pixels wide)."""
    if isinstance(value, Image.Image):
        return True
    return isinstance(value, np.ndarray) and (value.ndim == 2 or (value.ndim == 3 and (value.shape[2] <= 4 or _channel_first(value))))


def _kind(value: object) -> str:
    return f"image array of shape {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__


def _one_image_refused(value: object) -> Exception:
    """The error for one image given where a sequence of them is expected."""
    if isinstance(value, str | Path) and not Path(value).exists():
        # A mistyped folder had read "got one str (wrap it in a list)", and wrapped, "no such file".
        return DatasetLayoutError("no such folder or file", Path(value), "check the path (a folder of normal images, or a list of image paths)")
    if isinstance(value, np.ndarray) and _channel_first(value):
        # Iterated, a (3, H, W) image was fitted on as 3 grey images without a word.
        return TypeError(f"images must be a sequence of images, got one array of shape {value.shape}: for one channel-first "
                         "image pass [array.transpose(1, 2, 0)] (images are (H, W, C) here); for a stack of grey images, list(array)")
    return TypeError(f"images must be a sequence of images (arrays or paths), got one {_kind(value)} (wrap it in a list)")


def _is_folder(value: object) -> TypeGuard[str | Path]:
    return isinstance(value, str | Path) and Path(value).is_dir()


def calibration_digests(record: dict[str, Any] | None, thresholds: Thresholds) -> tuple[str, ...] | None:
    """The ``calibrated_on`` digests a descriptor's thresholds ``record`` keeps, when it records ``thresholds`` (its image and
    pixel threshold and source); None otherwise, or when it keeps none (a model calibrated by 0.3.8 or earlier)."""
    if not isinstance(record, dict) or not isinstance(on := record.get("calibrated_on"), list) or not all(isinstance(d, str) for d in on):
        return None
    same = (record.get("image"), record.get("pixel"), record.get("source")) == (thresholds.image, thresholds.pixel, thresholds.source)
    return tuple(sorted(on)) if same else None


def _say_unread_folders(found: FolderImages, folder: object, done: str) -> None:
    """Warn of the folders below ``folder`` that could not be listed, whose images are therefore not ``done`` ("inspected"):
    they had been passed over without a word (locked-down host probe 2026-12-07)."""
    if found.unreadable_folders:
        # Each with its own fix (a folder too deep had been told to chmod; regression probe 2026-12-07).
        listed = "; ".join(f"{printable_text(str(p))} ({why} — fix: {reading_fix(why)})" for p, why in found.unreadable_folders[:5])
        more = f"; and {len(found.unreadable_folders) - 5} more" if len(found.unreadable_folders) > 5 else ""
        warn_caller(DefectlensWarning(f"{len(found.unreadable_folders)} folder(s) in {folder} were not read, their images not {done}: "
                                      f"{listed}{more}"))


def _path_list(paths: Iterable[str | Path] | str | Path) -> list[str | Path]:
    """``paths`` as a list: a folder stands for the images below it (:func:`~defectlens.io.images_below`),
    one file alone is refused (a str was read as its characters), and so are pixels: batches are read
    from files, so that an unreadable one is listed and the rest go on."""
    if _is_folder(paths):
        below = images_below(paths)
        _say_unread_folders(below, paths, "inspected")
        if below.masks:
            # Said, as `inspect` says it: files under a masks/ folder had been left out of the batch without a word (regression probe).
            warn_caller(DefectlensWarning(f"{len(below.masks)} file(s) in {paths} named or kept as masks (`<stem>_mask`, or in a masks/ "
                                          f"folder; e.g. {below.masks[0]}) are left out: they are masks, not parts"))
        # Images in formats not read are the batch's failures, as `inspect` lists them (a GIF had been passed over unsaid).
        found: list[str | Path] = sorted([*below.images, *below.other_formats], key=lambda p: Path(p).relative_to(paths).parts)
        if not found and not below.unreadable_folders:
            # Said, not raised: a loop polling a folder the camera fills finds it empty now and then (API probe 2026-12-06:
            # an empty batch came back without a word).
            warn_caller(DefectlensWarning(f"no images in {paths}: nothing inspected"))
        return found
    if isinstance(paths, str | bytes | os.PathLike):
        if isinstance(paths, str | Path) and not Path(paths).exists():
            # A mistyped folder had been told to be wrapped in a list.
            raise DatasetLayoutError("no such folder or file", Path(paths), "check the path (a folder of images, or a list of image paths)")
        raise TypeError(f"paths must be a folder or a sequence of image paths, got one file {paths!r} (wrap it in a list)")
    # Any path-like (os.scandir's entries, PurePaths) is a path; pixels are not.
    listed: list[str | Path] = [Path(p) if isinstance(p, os.PathLike) else p for p in paths]
    if pixels := [i for i, p in enumerate(listed) if not isinstance(p, str | Path)]:
        raise TypeError(f"paths must be image paths, got a {type(listed[pixels[0]]).__name__} at position {pixels[0]}: "
                        "inspect arrays or Pillow images one at a time with inspect(), or score() them together")
    # A file named twice is one part, inspected once under its first name, as `defectlens inspect` does (it was two results).
    unique, again = first_names(listed)
    if again:
        # With one named: a caller could not tell which entry of its list had no result (regression probe 2026-12-07).
        name, first = again[0]
        warn_caller(DefectlensWarning(f"{len(again)} path(s) lead to a file already given (e.g. {name} is {first}): each file is "
                                      "inspected once, under its first name"))
    return unique


def _folder_images(folder: Path) -> ImageFiles:
    """The images below ``folder`` to fit on, each checked once (:func:`scan_images`); unreadable ones
    are left out with a warning that lists them. A dataset (MVTec layout) gives its ``train/good``,
    as ``defectlens fit`` takes it; one without it is refused (its images include defects)."""
    # Refused as `fit` refuses it: a folder listed but not entered (mode 644) had ended in a PermissionError traceback.
    if (why := unreadable_folder(folder)) is not None:
        require_readable([(folder, why)], "fit on another folder")
    # A dataset's test/ and examples hold defective parts: fitted on whole, they became "normal".
    # Its normal images are read as every command reads a category's (load_category).
    # In any case, as load_category reads them ("Train/Good", "TEST" from Windows had fitted the defects as normal).
    # As `defectlens fit FOLDER` reads it: a dataset by its train/; else a plain folder's own images (a train/good's with its
    # subfolders), and a test/ split alone is a dataset (regression probe 2026-12-07: own images beside a test/ were refused).
    normal = None if folder_any_case(folder, "train").is_dir() else normal_folder_images(folder)
    if normal is None or (not normal.images and folder_any_case(folder, "test").is_dir()):
        category = load_category(folder)
        for note in category.notes:  # what the command says of the layout (a second spelling passed over, …), said here too
            warn_caller(DefectlensWarning(note))
        found = category.require_train_good()
    else:
        for note in normal.notes:
            warn_caller(DefectlensWarning(note))
        found = normal.images
    if not found:
        raise DatasetLayoutError(f"no images in {folder}", folder, "give the folder of the part's normal images")
    files, failures = scan_images(found)
    if failures:
        listed = "; ".join(f.message for f in failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
        warn_caller(DefectlensWarning(f"{len(failures)} of {len(found)} file(s) in {folder} could not be read and are left out: {listed}"))
    return files


def checked_images(images: Iterable[ImageInput] | str | Path, bit_depth: int | None = None) -> Sequence[np.ndarray]:
    """``images`` through the gate every inspected image passes (:func:`~defectlens.io.as_rgb_image`):
    arrays of any accepted kind (grey, RGBA, 16-bit, float) become (H, W, 3) uint8 (pixels deeper than
    8 bits read at ``bit_depth``), paths are decoded, :class:`~defectlens.io.ImageFiles` pass as they
    are (they are decoded through it, at ``bit_depth``). Without it, `fit` and `score` took a float or
    grey array to a deep library error; a bad one raises :class:`~defectlens.errors.ImageReadError`
    naming its position."""
    if isinstance(images, ImageFiles):
        return images if bit_depth is None else images.read_at(bit_depth)
    return [read_image(im, f"image {i}", bit_depth) for i, im in enumerate(_image_list(images))]


def _image_list(images: Iterable[ImageInput] | str | Path) -> list[ImageInput]:
    """``images`` as a list, refused with a TypeError when it is no sequence of images (see :func:`checked_images`)."""
    if isinstance(images, str | bytes | Path) or _one_image(images):
        raise _one_image_refused(images)
    if not isinstance(images, Iterable) or isinstance(images, Mapping):
        # None or a number had raised "'NoneType' object is not iterable"; a dict's keys were read as paths.
        raise TypeError(f"images must be a folder or a sequence of images (paths, arrays or Pillow images), got {type(images).__name__}")
    if isinstance(images, AbstractSet):
        # Its order changes from one process to the next, and the fit's draw with it (thresholds 56.92 and 56.35
        # from one set of paths, the same fingerprint on the card).
        raise TypeError(f"images must be in an order (a list, a tuple or a folder), got a {type(images).__name__}: pass sorted(images)")
    return list(images)


def _training_images(images: Iterable[ImageInput] | str | Path) -> tuple[Sequence[np.ndarray], int | None]:
    """A fit's ``images``, checked (:func:`checked_images`) and read at one sensor depth: the deepest of theirs
    (:func:`~defectlens.io.sensor_bits`), returned with them (None: all 8-bit). Each read at its own, frames of one
    camera 4 % apart in exposure had been read 4× apart in brightness (a darker one taken for 12-bit data)."""
    files = images if isinstance(images, ImageFiles) else _folder_images(Path(images)) if _is_folder(images) else _paths_on_disk(images)
    if files is not None:
        depth = max((b for b in files.bits if b is not None), default=None)
        return files.read_at(depth), depth
    listed = _image_list(images)
    pixels = [np.asarray(im) if isinstance(im, Image.Image) and im.mode.startswith("I") else im for im in listed]  # "I;16", "I"
    depth = max((b for im in pixels if isinstance(im, np.ndarray) and (b := sensor_bits(im)) is not None), default=None)
    if any(isinstance(im, str | Path) for im in listed):
        # Files among arrays: their depth is known once decoded; read each once at its own, then all at the deepest.
        depth = max([d for im in listed if isinstance(im, str | Path) and (d := sensor_bits(decoded_pixels(im))) is not None]
                    + ([depth] if depth is not None else []), default=None)
    return [read_image(im, f"image {i}", depth) for i, im in enumerate(listed)], depth


ODD_SHAPE = 1.5
"""How far (as a factor of its aspect ratio) a normal image's shape may lie from the others' median before a fit says it:
the factor at which an inspected image's shape is noted (:meth:`~defectlens.descriptor.Provenance.size_note`)."""


def _odd_shapes(images: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]]) -> str | None:
    """What to say of normal images of another shape than most (rotated, another view), or None: one turned cookie among ten
    had raised the image threshold from 58 to 73 (a crack then passed) and widened the shapes an inspected image may have,
    with nothing said at the fit (small-shop probe 2026-12-07). Only where four in five of them share one shape (two turned
    among eleven had gone unsaid at nine in ten: regression probe 2026-12-07)."""
    aspects = [w / h for w, h in sizes]
    middle = float(np.median(aspects))
    odd = [i for i, a in enumerate(aspects) if not middle / ODD_SHAPE <= a <= middle * ODD_SHAPE]
    alike = sum(1 for a in aspects if middle / 1.1 <= a <= middle * 1.1)
    # Said only where the others share one shape: magnetic tiles come in every shape (aspect 0.4 to 2.5), a third of them
    # "odd" by the median, and none is another view.
    if not odd or alike < 0.8 * len(aspects):
        return None
    named = printable_text(str(images.paths[odd[0]])) if isinstance(images, ImageFiles) else f"image {odd[0]}"
    usual = sizes[int(np.argsort(aspects)[len(aspects) // 2])]
    return (f"{len(odd)} of the {len(sizes)} normal images are of another shape than the rest (e.g. {named}: {sizes[odd[0]][0]}×"
            f"{sizes[odd[0]][1]}, the rest about {usual[0]}×{usual[1]}): rotated, or another view? Fitted on as normal, each raises "
            "the thresholds and is taken as a view of the part: leave them out, or fit a model for each view")


def _paths_on_disk(images: object) -> ImageFiles | None:
    """A list of image paths as :class:`~defectlens.io.ImageFiles`, each checked once and read again as the
    fit encodes it (a folder's images are fitted so): decoded into one list, the README's own
    ``Inspector.fit(cat.train_good)`` held every image at once. The first unreadable one is raised, as
    decoding them all raised it. None for anything but a list or tuple of paths."""
    if not isinstance(images, list | tuple) or not images or not all(isinstance(p, str | Path) for p in images):
        return None
    return scan_images(images, strict=True)[0]


_MODEL_NAMES = re.compile(
    r"inspector\.json|card\.md|taxonomy\.json|examples|export\.json|encoder\.onnx|detector\.json|memory_bank\.safetensors"
    r"|fusion\.json|batch_scoring\.json|discriminator\.(json|safetensors)|grounding(\.json|\.safetensors)?|part\.json"
    r"|fewshot\.(json|safetensors)|neighbourhood-\d+|feature_cache"
)
"""What a model of any kind writes in its folder, each by its name (descriptor, card, taxonomy, examples, an exported
encoder, the detectors' configs and tensors, a bank's extra neighbourhoods, `train-grounding`'s feature cache) —
besides a fused partner's folder, named after its kind (:data:`~defectlens.detect.registry.DETECTORS`). Any ``*.json``
or ``*.md`` had counted: a person's ``README.md`` and ``notes.json`` went with the next calibrate (regression probe
2026-12-06)."""


def _not_model_entries(folder: Path) -> list[Path]:
    """The files and folders in model ``folder`` that no model writes: put there by a person, kept by :meth:`Inspector.save`."""
    if not folder.is_dir() or not Inspector.is_model_dir(folder):
        return []
    # A killed write's leftover (".card.md.x1y2.tmp") is none of a person's.
    return [e for e in sorted(folder.iterdir())
            if not (_MODEL_NAMES.fullmatch(e.name) or e.name in DETECTORS or (e.name.startswith(".") and e.name.endswith(".tmp")))]


def _digests(images: Sequence[np.ndarray]) -> list[str]:
    """Each image's pixel digest (:func:`~defectlens.io.image_digest`), those of files on disk as read once already."""
    return images.digests if isinstance(images, ImageFiles) and images.digests else [image_digest(im) for im in images]


def _subset(images: Sequence[np.ndarray], keep: Sequence[int]) -> Sequence[np.ndarray]:
    """The images at ``keep``, files on disk still read as needed."""
    return images.subset(keep) if isinstance(images, ImageFiles) else [images[i] for i in keep]


def _distinct_images(images: Sequence[np.ndarray]) -> tuple[Sequence[np.ndarray], list[str]]:
    """:meth:`Inspector.fit`'s ``images`` without pixel-for-pixel copies of one another (the first of each kept), with their
    digests; the copies left out are warned of. A copy counts one part as two normal images: its
    twin in the bank scores it near zero, and one image given three times set a threshold no crack
    reached (0 of 10 cookie cracks flagged, against 10 of 10 from two distinct images)."""
    digests = _digests(images)
    first: dict[str, int] = {}
    copies: list[tuple[int, int]] = []
    for i, digest in enumerate(digests):
        if digest in first:
            copies.append((i, first[digest]))
        else:
            first[digest] = i
    if not copies:
        return images, digests
    keep = sorted(first.values())
    kept = _subset(images, keep)
    if isinstance(images, ImageFiles):
        def name(i: int) -> str:
            return printable_text(str(images.paths[i]))
    else:
        def name(i: int) -> str:
            return f"image {i}"
    shown = "; ".join(f"{name(i)} is {name(j)}" for i, j in copies[:3]) + ("; …" if len(copies) > 3 else "")
    if len(keep) < MIN_FIT_IMAGES:
        # Too few to fit, said with the copies (small-shop probe 2026-12-07: two copies had been refused naming neither).
        raise DatasetLayoutError(f"{len(keep)} distinct normal image(s) to fit on, the other {len(copies)} copies of them ({shown}); at "
                                 f"least {MIN_FIT_IMAGES} are needed (each is scored against the others to set the thresholds)", None,
                                 f"give at least {MIN_FIT_IMAGES} normal images that are not copies of one another")
    warn_caller(DefectlensWarning(f"{len(copies)} of the {len(images)} normal images are copies of others ({shown}): fitted on the "
                                  f"{len(first)} distinct ones, since a copy would count one part as several normal images"))
    return kept, [digests[i] for i in keep]


def _descriptor_in(directory: Path) -> ModelDescriptor | None:
    """The descriptor of the model in ``directory``; None when it holds none, or one that cannot be read."""
    try:
        return read_descriptor(directory) if holds_model(directory) else None
    except DefectlensError:
        return None


def part_relation(directory: str | Path, taxonomy: Taxonomy | str | Path | None, trained_on: str | None) -> str:
    """How the part of the model in ``directory`` stands to a new model's, fitted from the folder ``trained_on`` with the part's
    ``taxonomy``: told by the two taxonomies where both are there and read — "same" (:func:`same_part_name`: its types grown or
    not) or "other" —, else "same" for the same training folder, else "untold". What the folder holds about its part is kept
    unless "other": a refit from a new camera's folder, and one with a type added to the taxonomy, had deleted the labelled
    examples a person had put there (lifecycle probe 2026-12-08); the taxonomies first, as a staging folder reused for
    another part had kept the first part's examples under the second's taxonomy (regression probe 2026-12-08)."""
    held_file = part_taxonomy(directory)
    if taxonomy is not None and held_file is not None:
        with contextlib.suppress(DefectlensError):
            before, now = load_taxonomy(held_file), taxonomy if isinstance(taxonomy, Taxonomy) else load_taxonomy(taxonomy)
            return "same" if same_part_name(before, now) else "other"
    held = _descriptor_in(Path(directory))
    was = held.provenance if held is not None else None
    return "same" if was is not None and trained_on and was.trained_on == trained_on else "untold"


def same_part_name(one: Taxonomy, other: Taxonomy) -> bool:
    """Whether two taxonomies name one part, whatever the spacing and case: by their ``part`` where both give one (a person told
    two parts of one object apart so: "M8 nut", "M10 nut"), else by any of their names for it — the ``part`` given, the object up
    to where it describes the scene, the whole object. A new camera's "cookie on a white conveyor belt" is still a cookie, and
    a ``part`` added to the same object's taxonomy names the same part (regression probes 2026-12-08: refused as another
    part; a shared object had made two parts given apart one)."""
    def spaced(name: str) -> str:
        return " ".join(name.split()).casefold()

    if one.part and other.part:
        return spaced(one.part) == spaced(other.part)

    def names(taxonomy: Taxonomy) -> set[str]:
        return {spaced(n) for n in (taxonomy.part_name, short_part_name(taxonomy.object_name), taxonomy.object_name)}

    return bool(names(one) & names(other))


def require_part_files_kept(directory: str | Path, taxonomy: Taxonomy | str | Path | None, trained_on: str | None) -> None:
    """Refuse (:class:`~defectlens.errors.OutputError`) a model of another part (:func:`part_relation`) saved over a folder that
    holds labelled examples: a person's, they are not another part's model's to delete. Called by `fit` before its work."""
    if taxonomy is not None and holds_examples(directory) and part_relation(directory, taxonomy, trained_on) == "other":
        held, given = load_taxonomy(Path(directory) / TAXONOMY_FILE), taxonomy if isinstance(taxonomy, Taxonomy) else load_taxonomy(taxonomy)
        raise OutputError(f"it holds labelled examples (examples/) of another part by its taxonomy ({held.part_name!r}, not "
                          f"{given.part_name!r}); a model saved over it would lose them: nothing saved", directory,
                          "move its examples/ out of the folder first, or save the model to another folder; if the two name one part, "
                          f"give the new taxonomy \"part\": {json.dumps(held.part_name, ensure_ascii=False)}")


def _saved_settings(descriptor: ModelDescriptor) -> InspectorSettings:
    """The :class:`InspectorSettings` a descriptor records, as :meth:`Inspector.load` reads them: a model saved
    before the settings named their extra neighbourhoods had none; keys it lacks take their defaults."""
    saved = {"extra_neighbourhoods": (), **descriptor.settings} if descriptor.settings else {}
    return replace(InspectorSettings(), **saved)


LOAD_ATTEMPTS = 3
"""Readings of a model folder :meth:`Inspector.load` makes when it is replaced while read."""


COLOUR_SAMPLE = 16
"""Training images read to tell whether a part is photographed in colour."""


def _colours(images: Sequence[np.ndarray]) -> tuple[bool, bool]:
    """Whether every one of ``images`` is in colour, and whether every one is grey: every one a scan noted (files are not decoded a second
    time for it), else up to :data:`COLOUR_SAMPLE` spread over them. A set with grey images among colour ones
    (two cameras on one line) is not: "most" had made every grey good part of such a line defective. It is
    warned of, and kept in the model's notes."""
    if isinstance(images, ImageFiles) and images.grey:
        grey, checked = images.grey, ""
    else:
        sample = np.unique(np.linspace(0, len(images) - 1, min(COLOUR_SAMPLE, len(images))).round().astype(int))
        grey, checked = [is_grey(images[int(i)]) for i in sample], " checked"
    if 0 < sum(grey) < len(grey):
        warn_caller(DefectlensWarning(f"{sum(grey)} of the {len(grey)} normal images{checked} are grey and the others in colour (two "
                                      "cameras?): grey and colour images are inspected alike, each against both kinds"))
    return not any(grey), all(grey)


def load_images(
    paths: Sequence[str | Path], progress: Progress | None = None, bit_depth: int | None = None,
) -> tuple[list[np.ndarray], list[Path], list[Failure]]:
    """Decode ``paths`` (pixels deeper than 8 bits read at ``bit_depth``: a model's :attr:`Inspector.bit_depth`); unreadable
    files become :class:`Failure` records instead of stopping the batch."""
    images, kept, _, failures = _images_with_notes(paths, progress, bit_depth)
    return images, kept, failures


def _images_with_notes(
    paths: Sequence[str | Path], progress: Progress | None = None, bit_depth: int | None = None, shortage_raises: bool = False,
) -> tuple[list[np.ndarray], list[Path], list[tuple[str, ...]], list[Failure]]:
    """:func:`load_images`, with what reading each image said (:attr:`InspectedImage.reading_notes`)."""
    failures: list[Failure] = []
    with collected_warnings() as caught:
        read = list(_readable(paths, failures, progress, bit_depth=bit_depth, shortage_raises=shortage_raises))
    for w in said_per_batch(caught, bit_depth):
        warn_caller(w)
    return [image for _, image, _, _ in read], [path for path, _, _, _ in read], [notes for *_, notes in read], failures


def said_per_batch(caught: Sequence[Warning], bit_depth: int | None = None) -> list[Warning]:
    """The warnings a batch of images gave, as they are said: those of a kind every image of a batch may give (clipped
    pixels, shallow colour, an extreme aspect) once for the batch with their count, the others each once. A folder of
    100 over-bright frames had printed 100 lines (regression probe), a line-scan folder one line a strip."""
    per_image: dict[type[Warning], str] = {
        ClippedPixelsWarning: (f"have pixel values over the {bit_depth}-bit range of the model's training images" if bit_depth is not None
                               else "have pixel values over the range of the model's training images"),
        HotPixelsWarning: "have a few pixels far over the range of the rest of the image (hot pixels?), read as the brightest",
        ShallowColourWarning: "are 16 bits a channel in colour or with transparency, read at the upper 8 bits",
        ExtremeAspectWarning: "are of an extreme aspect, squeezed onto the canvas",
    }
    first: dict[type, Warning] = {}
    counts = Counter(type(w) for w in caught)
    said: dict[tuple[type, str], Warning] = {}
    for w in caught:
        kind = type(w)
        if kind in per_image and counts[kind] > 1:
            w = kind(f"{counts[kind]} images {per_image[kind]}, e.g. {first.setdefault(kind, w)}")
        said.setdefault((kind, str(w)), w)
    return list(said.values())


def _unknown_fields(saved: dict[str, Any] | None, kind: type) -> list[str]:
    """The keys of ``saved`` that are no field of the dataclass ``kind`` (sorted)."""
    return sorted(set(saved or {}) - {f.name for f in fields(kind)})


def scan_images(paths: Sequence[str | Path], progress: Progress | None = None, strict: bool = False) -> tuple[ImageFiles, list[Failure]]:
    """Decode each of ``paths`` once to check it and note its shape and digest, keeping no pixels:
    images to fit on, read again from disk as the fit needs them (:class:`~defectlens.io.ImageFiles`).
    Unreadable files become :class:`Failure` records, as in :func:`load_images` (``strict``: the first
    one's :class:`~defectlens.errors.ImageReadError` is raised instead)."""
    failures: list[Failure] = []
    kept: list[Path] = []
    shapes: list[tuple[int, ...]] = []
    digests: list[str] = []
    grey: list[bool] = []
    bits: list[int | None] = []
    with collected_warnings() as caught:
        for path, image, depth, _ in _readable(paths, failures, progress, strict):
            kept.append(path)
            shapes.append(tuple(image.shape))
            digests.append(image_digest(image))
            grey.append(is_grey(image))
            bits.append(depth)
    said = said_per_batch(caught)
    for w in said:
        warn_caller(w)
    notes = [str(w) for w in said if isinstance(w, DefectlensWarning)]
    return ImageFiles(kept, shapes, digests, grey, bits, notes=notes), failures


class Inspector:
    """Fit on normal images, then inspect: score, decision, map, mask and regions per image."""

    def __init__(
        self,
        detector: Detector,
        settings: InspectorSettings | None = None,
        fit_summary: FitSummary | None = None,
        provenance: Provenance | None = None,
    ):
        self.detector = detector
        self.settings = settings or InspectorSettings()
        self.fit_summary = fit_summary
        """How fitting went (kept with the model so `evaluate` can report fit time)."""
        self.provenance = provenance
        """When, by which defectlens and on which images the model was fitted (for its card)."""
        self.runtime = "torch"
        """What runs the encoder network: 'torch', or an exported model's 'onnxruntime' / 'openvino'
        (:meth:`load` sets it), so a timing can say what it timed."""
        # The thresholds as last loaded or saved, and those before them (:attr:`ModelDescriptor.earlier_thresholds`):
        # a save of other thresholds keeps the ones it replaces, wherever the model is saved. A fresh fit's own count as
        # saved: set by hand and saved, they had left no trace (regression probe 2026-12-06).
        fitted = getattr(detector, "thresholds", None)
        self._saved_thresholds: dict[str, Any] | None = fitted.to_json() if fitted is not None else None
        self._earlier_thresholds: list[dict[str, Any]] = []
        # The thresholds a calibration set, with the digests of the pictures it set them on (:attr:`calibrated_on`).
        self._calibration: tuple[Thresholds, tuple[str, ...]] | None = None
        # The folder :meth:`load` read this model from: a save elsewhere carries what it held about the part from there.
        self._loaded_from: Path | None = None
        # The taxonomy :meth:`load` was given: a memory bank does not read it, but a save keeps it (it was dropped unsaid).
        self._given_taxonomy: Taxonomy | None = None

    def __repr__(self) -> str:
        # One line a notebook can read; the model card (`defectlens info`) says the rest.
        t = self.detector.thresholds
        fitted = self.provenance.n_images if self.provenance and self.provenance.n_images is not None else "?"
        thresholds = f"image {t.image:.4g}, pixel {t.pixel:.4g} ({t.source})" if t else "none"
        describe = getattr(self.detector, "describe", None)  # a grounding model's encoder is its own, on its card
        own = describe().get("encoder", {}).get("backbone") if callable(describe) and self.fit_settings is None else None
        backbone = own or self.settings.backbone
        return f"Inspector(detector={self.detector.name!r}, backbone={backbone!r}, fitted on {fitted} images, thresholds: {thresholds})"

    @property
    def fit_settings(self) -> InspectorSettings | None:
        """:attr:`settings` when they made this model; None for a zero-shot grounding model, trained by `train-grounding`
        on other parts (its settings are the grounding model's own: its card): the service and the repr had shown
        default memory-bank settings for one (probe 2026-12-06)."""
        return None if self.detector.name == "grounding" else self.settings

    # ------------------------------------------------------------------ building
    @classmethod
    def fit(
        cls,
        images: Iterable[ImageInput] | str | Path,
        settings: InspectorSettings | None = None,
        progress: Progress | None = None,
        secondary: Detector | None = None,
        fusion: FusionConfig | None = None,
    ) -> Inspector:
        """Fit the detector ``settings.detector`` names on normal images: paths, arrays or Pillow
        images, :class:`~defectlens.io.ImageFiles` from :func:`scan_images` (decoded batch by batch
        as they are encoded), or a folder read as `defectlens fit` reads it (a dataset's train/good with its
        subfolders, a plain folder's own images: :func:`~defectlens.io.dataset.normal_folder_images`;
        read as they are encoded; unreadable ones left out with a warning). The returned Inspector's :attr:`fit_summary` says what fitting did.

        With ``secondary`` (e.g. a grounding detector with the token cue), the memory bank and
        it are fused (:class:`~defectlens.detect.fusion.FusedDetector`): both are normalised on
        the held-out normal images, and the thresholds are set on the fused scale.

        Fewer normal scores than the false-alarm target can show (34 for 3 %) are warned of
        (:class:`~defectlens.errors.DefectlensWarning`): the threshold is then their maximum or
        near it, and new good parts are flagged more often than the target says.
        """
        if settings is not None and not isinstance(settings, InspectorSettings):
            # A dict had failed deep in the fit ("'dict' object has no attribute 'detector'").
            raise TypeError(f"settings must be an InspectorSettings, got {type(settings).__name__}: pass InspectorSettings(**values)")
        settings = settings or InspectorSettings()
        try:
            with collected_warnings() as caught:
                fitted = cls._fit(images, settings, progress, secondary, fusion)
        except Exception:
            # What was said before a refusal is said with it (regression probe 2026-12-07: a folder's notes had been lost).
            for w in said_per_batch(caught):
                warn_caller(w)
            raise
        said = said_per_batch(caught, fitted.bit_depth)  # a warning every image gave, once (arrays of strips: one a strip)
        for w in said:  # at the caller's line
            warn_caller(w)
        # With what the scan of the files said (said then, not again), each once.
        scanned = images.notes if isinstance(images, ImageFiles) else ()
        notes = list(dict.fromkeys([*scanned, *(str(w) for w in said if isinstance(w, DefectlensWarning))]))
        stats = fitted.detector.normal_stats
        if stats is not None and (coarse := too_few_for_target(stats.n_images, settings.false_alarm_target)):
            # A probe's 20-image fit at 3 % flagged 1 of 8 good parts: nothing had said the target was out of reach.
            notes.append(f"{LABEL_FREE_NOTE}: {coarse}; expect more false alarms than the target; fit on "
                         "more normal images, or set the threshold on labelled parts (`defectlens calibrate`, Inspector.calibrate)")
            warn_caller(DefectlensWarning(notes[-1]))
        # The bank's, alone or as a fusion's primary member (a bank+discriminator fit on 20 images had said nothing: regression probe).
        bank = fitted.detector if isinstance(fitted.detector, MemoryBankDetector) else getattr(fitted.detector, "primary", None)
        if stats is not None and stats.n_images < FRAME_MIN_IMAGES and isinstance(bank, MemoryBankDetector) and bank.frame_check is None:
            # The card's "frame_check_limit | —" had been all that said it (README probe 2026-12-06).
            notes.append(f"{stats.n_images} normal image(s) are too few for the frame check (it needs {FRAME_MIN_IMAGES}): an image of "
                         "another part or a faulty frame is judged on its score alone; fit on more normal images to have it")
            warn_caller(DefectlensWarning(notes[-1]))
        if notes and fitted.fit_summary is not None:
            # Kept with the model and on its card: a warning alone was gone with the notebook's output.
            fitted.fit_summary = replace(fitted.fit_summary, notes=tuple(notes))
        if fitted.provenance is not None:
            # When the fit finished, as the card says (it had been when the images were read, before the bank was built), to
            # the microsecond: with the training set's fingerprint it names the fit in every inspection record and the
            # service's store, and two fits of one folder with other settings in one second had had one name (audit probe
            # 2026-12-07: the service called them "this very fit" and advised merging their histories).
            fitted.provenance = replace(fitted.provenance, fitted_at=utc_now(microseconds=True))
        return fitted

    @classmethod
    def _fit(
        cls,
        images: Iterable[ImageInput] | str | Path,
        settings: InspectorSettings,
        progress: Progress | None,
        secondary: Detector | None,
        fusion: FusionConfig | None,
    ) -> Inspector:
        if settings.detector in NO_NORMAL_DETECTORS:
            if secondary is not None:
                raise ConfigError(f"detector {settings.detector!r} cannot be fused with another model", None, "use the memory-bank detector to fuse")
            # The canvas is set per batch from the images read (none are seen here).
            encoder = EncoderConfig(backbone=settings.backbone, standardize=settings.standardize)
            scorer = BatchScoringDetector(BatchScoringConfig(encoder=encoder, side=settings.image_size))
            return cls(scorer, settings, FitSummary(0, 0, 0, 0, 0.0), Provenance.now(0, None))
        images, bit_depth = _training_images(images)
        images, digests = _distinct_images(images)
        if len(images) < MIN_FIT_IMAGES:
            raise DatasetLayoutError(
                f"{len(images)} distinct normal image(s) to fit on; at least {MIN_FIT_IMAGES} are needed "
                "(each is scored against the others to set the thresholds)",
                None,
                f"give at least {MIN_FIT_IMAGES} normal images that are not copies of one another",
            )
        sizes = [(shape[1], shape[0]) for shape in (shape_of(images, i) for i in range(len(images)))]
        if odd := _odd_shapes(images, sizes):
            warn_caller(DefectlensWarning(odd))
        canvas = CanvasSpec.for_sizes(sizes, settings.image_size)
        encoder = EncoderConfig(
            backbone=settings.backbone,
            canvas_height=canvas.height,
            canvas_width=canvas.width,
            standardize=settings.standardize,
        )
        colour, grey = _colours(images)
        provenance = Provenance.now(len(images), combine_digests(digests), sizes, colour, bit_depth, image_digests=digests, grey=grey)
        quantile = 1.0 - settings.false_alarm_target
        if settings.detector == "discriminator":
            alone = DiscriminatorDetector(DiscriminatorConfig(encoder=encoder, quantile=quantile, seed=settings.seed))
            return cls(alone, settings, alone.fit(images, progress=progress), provenance)
        if settings.detector != "memory-bank" and secondary is not None:
            raise ConfigError(f"detector {settings.detector!r} cannot also be fused with another model", None, "use the memory-bank detector to fuse")
        if settings.detector == "bank+discriminator":
            secondary = DiscriminatorDetector(DiscriminatorConfig(encoder=encoder, quantile=quantile, seed=settings.seed))
            secondary.fit(images, progress=progress)
        # Fused, the bank keeps the same share of images out as its partner: both are put on
        # one scale with normal images neither has seen. Alone, it calibrates leave-one-out.
        fusion = fusion or FusionConfig()
        holdout = MemoryBankConfig(encoder=encoder, calibration="holdout", seed=settings.seed)
        weighable = holdout_indices(len(images), holdout.holdout_fraction, holdout.seed)
        # Too few to hold out the 20 a weight is chosen on (200 normal images): the partner would get
        # weight 0 and the bank's thresholds would rest on 3 held-out images (on cookie's 31, 8 of 14
        # good parts flagged against 1 for the bank alone). The bank decides, as if alone.
        primary_decides = secondary is not None and fusion.weight is None and len(weighable) < MIN_WEIGHT_IMAGES
        calibration = "holdout" if secondary is not None and not primary_decides else "leave-one-out"
        if settings.global_weight > 0 and secondary is not None:
            raise ConfigError(
                "a global weight is for the memory bank alone, not fused with another model", None,
                "drop global_weight (--global-weight) or the fusion"
            )
        if settings.global_weight > 0 and len(images) < GLOBAL_MIN_IMAGES:
            raise ConfigError(
                f"a global weight needs at least {GLOBAL_MIN_IMAGES} normal images, got {len(images)}",
                None,
                "fit without global_weight (--global-weight), or add normal images",
            )
        detector = MemoryBankDetector(
            MemoryBankConfig(
                encoder=encoder,
                coreset_ratio=settings.coreset_ratio,
                calibration=calibration,
                quantile=quantile,
                global_weight=settings.global_weight,
                extra_neighbourhoods=settings.extra_neighbourhoods or (),
                seed=settings.seed,
            )
        )
        held_out = detector.holdout_indices(len(images))
        if secondary is not None and not primary_decides and len(held_out) < MIN_HOLDOUT_IMAGES:
            raise ValueError(
                f"fusion needs at least {2 * MIN_HOLDOUT_IMAGES} normal images ({MIN_HOLDOUT_IMAGES} are held out to put both "
                f"detectors on one scale), got {len(images)}"
            )
        summary = detector.fit(images, progress=progress)
        if secondary is None:
            return cls(detector, settings, summary, provenance)
        if primary_decides:
            return cls(FusedDetector.primary_decides(detector, secondary, images), settings, summary, provenance)
        fused = FusedDetector.calibrate(detector, secondary, [images[i] for i in held_out], fusion, detector.config.quantile)
        return cls(fused, settings, summary, provenance)

    @property
    def thresholds(self) -> Thresholds:
        """Current image and pixel thresholds."""
        if self.detector.thresholds is None:
            raise RuntimeError("no thresholds: fit with held-out images or call set_thresholds()")
        return self.detector.thresholds

    @property
    def threshold_caveat(self) -> str | None:
        """The fit's note that its thresholds rest on too few normal images for the false-alarm target, while they still do
        (not set on labelled parts or by hand since), else None: said by `inspect` and `evaluate` too, where a 2-image model's
        false alarms on every good part had been left to the card (small-shop probe 2026-12-07)."""
        if self.fit_summary is None or self.detector.thresholds is None or set_otherwise(self.detector.thresholds.source):
            return None
        return next((n for n in self.fit_summary.notes if n.startswith(LABEL_FREE_NOTE)), None)

    @property
    def calibrated_on(self) -> tuple[str, ...] | None:
        """The picture digests (:func:`~defectlens.io.images.image_digest`) of the labelled images the present thresholds were
        calibrated on, sorted; None when a calibration did not set them, or they were changed since. Saved with the thresholds:
        `evaluate` says which test images set them (an evaluation on them had reported the operating point they were chosen
        for as if it were measured; audit probe 2026-12-07)."""
        if self._calibration is None or self.detector.thresholds != self._calibration[0]:
            return None
        return self._calibration[1]

    def use_thresholds(self, thresholds: Thresholds, calibrated_on: Iterable[str] | None = None) -> None:
        """Decide with ``thresholds`` from now on (:meth:`save` keeps them), set by a calibration on the pictures whose digests
        are ``calibrated_on`` (:attr:`calibrated_on`), or by other means (None)."""
        self.detector.thresholds = thresholds
        self._calibration = (thresholds, tuple(sorted(set(calibrated_on)))) if calibrated_on is not None else None

    def set_thresholds(self, image: float | None = None, pixel: float | None = None) -> Thresholds:
        """Override one or both thresholds by hand (finite numbers); one left None keeps its value, and with both None
        nothing changes."""
        for name, value in (("image", image), ("pixel", pixel)):
            # "5" had been taken as 5.0, and NaN passed every part as good.
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)):
                raise ConfigError(f"{name} threshold {value!r} is not a finite number", None, f"pass a number, e.g. {name}=55.0")
        current = self.detector.thresholds or Thresholds(image=float("inf"), pixel=float("inf"))
        if image is None and pixel is None:
            # Nothing to set: the thresholds and where they came from stand (marked "user", a label-free model had
            # quietly stopped noting hot spots, which only label-free thresholds do; API probe 2026-12-06).
            return current
        updated = Thresholds(
            image=current.image if image is None else float(image),
            pixel=current.pixel if pixel is None else float(pixel),
            source="user",
        )
        self.detector.thresholds = updated
        return updated

    def calibrate(
        self,
        images: Iterable[ImageInput],
        labels: Sequence[int | bool] | np.ndarray,
        masks: Sequence[np.ndarray | str | os.PathLike[str] | None] | None = None,
        max_false_alarms: float | Literal["fit"] | None = "fit",
    ) -> Thresholds:
        """Set the thresholds on a labelled set, as `defectlens calibrate` does (then :meth:`save`
        keeps them): one label per image (0 or False good, 1 or True defective). The image threshold
        flags at most ``max_false_alarms`` of the good images ("fit": the model's own label-free target,
        :attr:`InspectorSettings.false_alarm_target`, as the command's default; None: F1-optimal instead). The pixel
        threshold is F1-optimal on the pixels of ``masks`` (the image's size, as arrays or mask files, read as drawn:
        :func:`~defectlens.io.mask_as_drawn`; None for a defective image without one, a good image's may be None
        too); without masks it is kept."""
        if isinstance(max_false_alarms, str) and max_false_alarms == "fit":  # an array had raised NumPy's "truth value … ambiguous"
            # The fit's own, as `defectlens calibrate` takes it (regression probe 2026-12-06: 0.03 here, 0.2 there).
            max_false_alarms = self.settings.false_alarm_target
        elif max_false_alarms is not None:
            # A string other than "fit", a Decimal or a list had failed deep inside with a TypeError (regression probes 2026-12-06).
            if (isinstance(max_false_alarms, bool | np.bool_) or not isinstance(max_false_alarms, numbers.Real)
                    or not 0.0 <= float(max_false_alarms) < 1.0):
                raise ValueError(f"max_false_alarms must be a share in [0, 1) (0.01: 1 % of good parts flagged), 'fit' (the model's "
                                 f"own target) or None (F1-optimal), not {max_false_alarms!r}")
            max_false_alarms = float(max_false_alarms) + 0.0  # a plain float; -0.0 had been recorded as "target -0"
        images = checked_images(images, self.bit_depth)
        y = binary_labels(list(labels))
        given = list(masks) if masks is not None else [None] * len(images)
        if not len(images) == len(y) == len(given):
            raise ValueError(f"calibrate needs one label (and one mask or None) per image: {len(images)} images, {len(y)} labels, "
                             f"{len(given)} masks")
        drawn: list[np.ndarray | None] = []  # each image's mask as drawn, None where none was given
        for i, (image, mask) in enumerate(zip(images, given, strict=True)):
            if mask is None:
                drawn.append(None)
                continue
            # Read as `defectlens calibrate` reads mask files (API probe 2026-12-06: a path crashed with an IndexError,
            # and a uint8 mask's anti-aliased edge counted as defect here and not there).
            if isinstance(mask, (str, os.PathLike)):
                m = load_mask(Path(mask), (image.shape[1], image.shape[0]))
            else:
                m = mask_as_drawn(mask, f"masks[{i}]")
            if m.shape != image.shape[:2]:
                raise ValueError(f"masks[{i}] is {m.shape[1]}x{m.shape[0]}, its image {image.shape[1]}x{image.shape[0]}: "
                                 "pass masks at the images' size")
            if not y[i]:
                try:
                    require_clear_mask(m)  # before the scoring
                except ValueError as exc:
                    raise ValueError(f"masks[{i}]: {exc}") from None
            elif not m.any():
                # As the command skips an empty mask file (regression probe 2026-12-06: 61.03 from Python, 60.51 from the command).
                warn_caller(DefectlensWarning(f"masks[{i}] is empty: its image counts for the image threshold only — "
                                              "draw its defect, or pass None for it"))
            drawn.append(m)
        # As `defectlens calibrate` counts files: a copy counts one part twice, under two labels it is no part at all.
        first: dict[str, int] = {}
        digests = _digests(images)
        if self.provenance is not None and self.provenance.image_digests is not None:
            # As the command tells them (threshold probe 2026-12-06: from Python a training image was taken as a defective part,
            # and good ones the bank holds flattered the false-alarm rate, without a word).
            fitted = set(self.provenance.image_digests)
            if defective_seen := [i for i, d in enumerate(digests) if y[i] and d in fitted]:
                raise ValueError(f"images[{defective_seen[0]}] is labelled defective and is an image the model was fitted on, a normal "
                                 f"part ({len(defective_seen)} such): give each part one label")
            if good_seen := [i for i, d in enumerate(digests) if not y[i] and d in fitted]:
                warn_caller(DefectlensWarning(f"{len(good_seen)} good image(s) are images the model was fitted on (e.g. images[{good_seen[0]}]): "
                                              "a model fitted on them scores them near zero, which flatters the false-alarm rate — "
                                              "calibrate on good parts it was not fitted on"))
        for i, digest in enumerate(digests):
            j = first.setdefault(digest, i)
            if j != i and y[j] != y[i]:
                raise ValueError(f"images[{i}] is images[{j}] pixel for pixel, labelled {int(y[i])} and {int(y[j])}: give each part one label")
            if j != i and drawn[j] is None and drawn[i] is not None:
                first[digest] = i  # the copy with a mask stands for the part (the first, without one, had dropped it; probe)
        if len(first) < len(images):
            warn_caller(DefectlensWarning(f"{len(images) - len(first)} of the {len(images)} images are copies of others: each part counted once"))
            keep = sorted(first.values())
            images, y, drawn = _subset(images, keep), y[keep], [drawn[i] for i in keep]
        results = self.score_read(images)
        samples: list[tuple[np.ndarray, np.ndarray]] = []
        if any(y[i] and m is not None and m.any() for i, m in enumerate(drawn)):
            per_label = {label: int((y == label).sum()) for label in (False, True)}
            samples = [s for i, (m, r) in enumerate(zip(drawn, results, strict=True))
                       if (s := labelled_pixels(bool(y[i]), m, r.anomaly_map, per_label[bool(y[i])])) is not None]
        set_by = thresholds_from_labels(y, [r.score for r in results], [r.unlike_normal is not None for r in results], samples,
                                        max_false_alarms, self.thresholds.pixel)
        if set_by.looks_swapped:
            # As `defectlens calibrate` refuses them (regression probe 2026-12-06: from Python, swapped labels set thresholds
            # that passed real defects, without a word).
            raise ValueError(f"the images labelled defective score lower than those labelled good (image AUROC {set_by.separation:.2f}): "
                             "are the labels swapped? If they are right, the model cannot tell these defects (refit it on more "
                             "normal images)")
        if not samples and masks is not None and any(m is not None for m in given):
            # Masks given, none of them usable: said, as the command says it (the pixel threshold had stayed without a word);
            # after the refusal above, not before it of a threshold it never kept (regression probe 2026-12-06).
            warn_caller(DefectlensWarning(f"no defective image's mask marks a defect: the pixel threshold is kept ({self.thresholds.pixel:g})"))
        old = self.thresholds.image
        self.use_thresholds(set_by.thresholds, (digests[i] for i in first.values()))
        trade = None if max_false_alarms is None else "max_false_alarms=None (F1-optimal) trades false alarms for recall"
        for note in threshold_shift_notes(y, [r.score for r in results], [r.unlike_normal is not None for r in results], old,
                                          set_by.thresholds.image, trade):
            warn_caller(DefectlensWarning(note))  # kept, as asked, and said as the command says it
        if set_by.thin:
            warn_caller(DefectlensWarning(f"{set_by.thin}: check it on other labelled parts (`defectlens evaluate`), or calibrate on more"))
        return set_by.thresholds

    def calibrate_f1(
        self,
        images: Iterable[ImageInput],
        labels: Sequence[int | bool] | np.ndarray,
        masks: Sequence[np.ndarray | str | os.PathLike[str] | None] | None = None,
    ) -> Thresholds:
        """:meth:`calibrate` with F1-optimal thresholds."""
        return self.calibrate(images, labels, masks, max_false_alarms=None)

    # ------------------------------------------------------------------ inspecting
    def score(self, images: Iterable[ImageInput], progress: Progress | None = None) -> list[AnomalyResult]:
        """Raw detector output (score + map) without decisions: for evaluation and fusion."""
        return self.score_read(checked_images(images, self.bit_depth), progress)

    def score_read(self, images: Sequence[np.ndarray], progress: Progress | None = None) -> list[AnomalyResult]:
        """:meth:`score` of images already read (:func:`~defectlens.io.read_image`'s RGB arrays, or
        :class:`~defectlens.io.ImageFiles`), with the Inspector's own check of each whole image: a grey one
        for a model fitted on colour images is unlike every normal part, and a colour one for a model fitted on grey images
        (:meth:`Provenance.colour_note`).
        Arrays only: files on disk (:class:`~defectlens.io.ImageFiles`) are not decoded a second time for it."""
        results = self.detector.score(images, progress=progress)
        if not (self.provenance and (self.provenance.colour or self.provenance.grey)) or isinstance(images, ImageFiles):
            return results  # (files are not decoded a second time for it)
        checked = []
        for image, result in zip(images, results, strict=True):
            note = self.provenance.colour_note(is_grey(image))
            checked.append(replace(result, unlike_normal=" ".join(filter(None, (result.unlike_normal, note)))) if note else result)
        return checked


    def _with_size_note(self, unlike_normal: str | None, width: int, height: int) -> str | None:
        """The frame check's reason, with the image's size beside the training images' when that may be why."""
        note = self.provenance.size_note(width, height) if unlike_normal and self.provenance else None
        return f"{unlike_normal} {note}" if note else unlike_normal

    def decide(self, result: AnomalyResult, source: str = "<array>") -> Inspection:
        """Apply thresholds to a detector result and extract regions (only on defective images)."""
        t = self.thresholds
        h, w = result.anomaly_map.shape
        # A frame unlike every normal image (noise, another part) fails even when its map's top
        # is no higher than a normal part's: it was never the part the thresholds were set for.
        defective = result.score > t.image or result.unlike_normal is not None
        if defective:
            mask, labels, regions = extract_regions(result.anomaly_map, t.pixel, self.settings.min_region_px)
            if not regions and result.score > t.image and t.image < t.pixel:
                # A pixel threshold over the image threshold (set by hand, or an image threshold lowered
                # for one run) left a part called defective with nothing to show: outlined where its map
                # passes the image threshold, which its top values do (the score is their mean).
                mask, labels, regions = extract_regions(result.anomaly_map, t.image, self.settings.min_region_px)
        else:
            # A part judged good reports no regions: sub-threshold blobs would only confuse the reader.
            mask, labels, regions = np.zeros((h, w), bool), np.zeros((h, w), np.int32), []
        hot_spot = None
        if not defective and self.detector.name == "memory-bank" and t.source == "normal-quantile":
            # Its top mean under the threshold, its peak over it: where a person should look. Only where
            # measured (benchmarks/hot_spot.py): a memory bank with its label-free thresholds. A
            # calibrated threshold, lower, pointed at 5 of the demo's 10 good parts; a fused model's
            # maps, at 7 of 24 good magnetic tiles' borders; a batch's z-scored maps peak over 3 on most.
            y, x = np.unravel_index(int(np.argmax(result.anomaly_map)), result.anomaly_map.shape)
            hot_spot = (int(x), int(y)) if float(result.anomaly_map[y, x]) > t.image else None
        return Inspection(
            source=source,
            image_size=(w, h),
            score=result.score,
            is_defective=bool(defective),
            anomaly_map=result.anomaly_map,
            mask=mask,
            regions=regions,
            thresholds=t,
            region_labels=labels,
            detector=self.detector.name,
            unlike_normal=self._with_size_note(result.unlike_normal, w, h),
            hot_spot=hot_spot,
            frame_units=result.frame_units,
            view_note=None if result.unlike_normal or self.provenance is None else self.provenance.size_note(w, h, result.frame_units),
        )

    def inspect(self, image: ImageInput, source: str | None = None) -> Inspection:
        """Inspect one image: a path, or an array — grey (H, W), RGB or RGBA, uint8, uint16 or
        float — converted and checked exactly as a file's pixels are (:func:`~defectlens.io.as_rgb_image`).
        Channels are read in RGB order: pass OpenCV's BGR arrays as ``image[..., ::-1]``.

        Raises :class:`~defectlens.errors.ImageReadError` for anything that is not an image, and
        TypeError for several: ``inspect_batch`` reads files, ``score`` then ``decide`` arrays.

        The maps, mask and regions are in the pixels of the image as read: a file's EXIF rotation
        applied (:func:`~defectlens.io.load_image` reads it so), an array's as it is. Drawn over
        ``np.asarray(Image.open(path))``, a rotated photo's mask lies transposed."""
        if type(image).__module__.split(".")[0] == "torch":
            read_image(image, source or "<tensor>")  # raises, saying how to hand a tensor over (it had read "one of several")
        if isinstance(image, list | tuple) or (not isinstance(image, np.ndarray | str | bytes | bytearray | memoryview | Path | Image.Image)
                                               and isinstance(image, Iterable)):
            # It had been an ImageReadError about "<array>" advising the method just called. A list of one is not "several".
            what = f"a {type(image).__name__} of {len(image)}" if isinstance(image, Sized) else f"a {type(image).__name__}"
            raise TypeError(f"inspect takes one image, got {what}: pass the image itself; for several, inspect_batch(paths or a folder) "
                            "reads files (unreadable ones listed), and for arrays score(images) then decide(result) for each")
        if isinstance(image, str | Path):
            source = source or str(image)
        elif isinstance(image, Image.Image) and (opened_from := str(getattr(image, "filename", None) or "")):
            source = source or opened_from  # opened from a file: named by it (it had been "<array>"; API probe 2026-12-06)
        source = source or ("<array>" if isinstance(image, np.ndarray) else f"<{type(image).__name__}>")
        return self.decide(self.score_read([read_image(image, source, self.bit_depth)])[0], source)

    @property
    def compares_batch(self) -> bool:
        """Whether the detector scores the images read together against each other (batch scoring): its batches are planned
        with each file's copies together (:meth:`plan_batches`)."""
        return int(getattr(self.detector, "min_batch", 1)) > 1

    @property
    def batch_size(self) -> int:
        """Images read together by ``inspect``, ``evaluate`` and ``calibrate``: the detector's
        ``inspect_batch`` when it has one (batch scoring reads larger batches), else
        :data:`DEFAULT_BATCH`."""
        return int(getattr(self.detector, "inspect_batch", DEFAULT_BATCH))

    @staticmethod
    def plan_batches(
        paths: Iterable[str | Path] | str | Path, batch_size: int = DEFAULT_BATCH, seed: int | None = None, copies_together: bool = False
    ) -> list[list[Path]]:
        """The batches :meth:`iter_batches` inspects, in its order: balanced batches of at most
        ``batch_size`` (:func:`balanced_batches`), drawn in a seeded random order when ``seed``
        is given. Every engine (local, Ray) scores these same batches, so a zero-shot model that
        compares the images of a batch gives the same verdicts on each. With ``copies_together`` (for a detector that compares
        a batch's images: :attr:`compares_batch`) a file's copies (pixel for pixel) join its batch, beyond ``batch_size`` (a batch-scoring
        detector reads each picture once); the files are then read for their digests."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
            # 0 made one batch per image here and one of every image in iter_batches; -3 failed each image.
            raise ValueError(f"batch_size must be a whole number of images, at least 1; got {batch_size!r}")
        paths = _path_list(paths)
        # Copies of a file (one written twice, or re-saved: the same pixels) go in its batch: split apart, twins got two scores from a detector that
        # compares a batch's images, and a lot of 11 pictures and 39 copies of one was refused batch by batch as too few
        # (regression probe 2026-12-06). Without copies, the batches are what they were.
        copies = picture_copies([Path(p) for p in paths]) if copies_together else {}
        firsts = [i for i, p in enumerate(paths) if Path(p) not in copies]
        order = np.arange(len(firsts)) if seed is None else np.random.default_rng(seed).permutation(len(firsts))
        batches = [[Path(paths[firsts[order[i]]]) for i in batch] for batch in balanced_batches(len(firsts), batch_size)]
        if copies:
            batch_of = {path: k for k, batch in enumerate(batches) for path in batch}
            for copy, first in copies.items():
                batches[batch_of[first]].append(copy)
        return batches

    def inspect_batch(self, paths: Iterable[str | Path] | str | Path) -> InspectedBatch:
        """Decode, score and decide one batch of image files (or the images below a folder);
        unreadable files, and a batch the detector refuses, become :class:`Failure` records.
        Arrays and Pillow images are inspected one at a time (:meth:`inspect`) or scored together
        (:meth:`score` and :meth:`decide`)."""
        paths = _path_list(paths)
        start = time.perf_counter()
        images: list[np.ndarray] = []
        results: list[AnomalyResult] = []
        read = False  # whether reading the batch got through, its warnings said
        with shortage_caught() as shortage:
            images, kept, notes, failures = _images_with_notes(paths, bit_depth=self.bit_depth, shortage_raises=True)
            read = True
            try:
                results = self.score_read(images) if images else []
            except DefectlensError as exc:
                # E.g. unreadable files left a batch too small for the batch cue: say so per file.
                failures.extend(Failure(str(p), f"{p}: not inspected — {exc}", of_batch=True) for p in kept)
                kept, images, results, notes = [], [], [], []
        if shortage.of is not None:
            images = []  # the batch's decoded images let go before each is read again alone
            return self._each_alone(paths, shortage.of, start, read)
        inspected = [
            InspectedImage(path, image, result, self.decide(result, str(path)), said)
            for path, image, result, said in zip(kept, images, results, notes, strict=True)
        ]
        warnings = batch_warnings([r.batch_warning for r in results])
        drift = drift_note([i.inspection.frame_units for i in inspected], [i.inspection.unlike_normal is not None for i in inspected])
        return InspectedBatch(inspected, failures, len(paths), time.perf_counter() - start, warnings, drift)

    def _each_alone(self, paths: Sequence[str | Path], short: str, start: float, read: bool = False) -> InspectedBatch:
        """A batch the machine ran ``short`` of memory or open files for, inspected an image at a time: the image that needs
        more than there is fails alone, listed, and the rest go on (resource probe 2026-12-07: a 64-megapixel image under a
        memory limit had ended a whole `inspect`, and `evaluate`, in a traceback). A detector that judges the images of a batch
        together is not split: its batch fails, each image listed. What reading the images says is said once for the batch, as
        a batch's is (``read``: already said, by the batch's own reading; each image's line had come again: regression probe)."""
        if len(paths) == 1 or self.compares_batch:
            failures = [replace(short_of(p, short), of_batch=len(paths) > 1) for p in paths]
            return InspectedBatch([], failures, len(paths), time.perf_counter() - start)
        with collected_warnings() as caught:
            alone = [self.inspect_batch([p]) for p in paths]
        if not read:
            for w in said_per_batch(caught, self.bit_depth):
                warn_caller(w)
        images = [item for one in alone for item in one.images]
        drift = drift_note([i.inspection.frame_units for i in images], [i.inspection.unlike_normal is not None for i in images])
        return InspectedBatch(images, [f for one in alone for f in one.failures], len(paths), time.perf_counter() - start,
                              list(dict.fromkeys(w for one in alone for w in one.warnings)), drift)

    def iter_batches(
        self, paths: Iterable[str | Path] | str | Path, batch_size: int | None = None, seed: int | None = None
    ) -> Iterator[InspectedBatch]:
        """Decode, score and decide ``paths`` in the batches of :meth:`plan_batches` (of
        :attr:`batch_size` unless given), yielding each batch as soon as it is done.

        ``seed`` draws the batches in a seeded random order instead of the order given: a
        zero-shot model compares the images of a batch with each other, and folders given one
        after another (all cracks, then all good parts) would make one-kind batches.
        Unreadable files, and a batch the detector refuses, become :class:`Failure` records.
        """
        for batch in self.plan_batches(paths, self.batch_size if batch_size is None else batch_size, seed, self.compares_batch):
            yield self.inspect_batch(batch)

    # ------------------------------------------------------------------ persistence
    def descriptor(self) -> ModelDescriptor:
        """What :meth:`save` writes as ``inspector.json`` and renders as ``card.md``."""
        det = self.detector
        describe = getattr(det, "describe", None)  # optional: what a detector says about itself
        return ModelDescriptor(
            detector=det.name,
            # The seed only when drawn otherwise: a default model stays readable by a defectlens before it.
            settings={k: v for k, v in asdict(self.settings).items() if k != "seed" or v != 0},
            fit_summary=asdict(self.fit_summary) if self.fit_summary else None,
            provenance=self.provenance,
            saved_at=utc_now(),
            thresholds={**det.thresholds.to_json(), **({"calibrated_on": list(c)} if (c := self.calibrated_on) is not None else {})}
            if det.thresholds else None,
            normal_stats=det.normal_stats.to_json() if det.normal_stats else None,
            detector_info=describe() if callable(describe) else {},
        )

    def save(self, directory: str | Path, taxonomy: Taxonomy | str | Path | None = None) -> None:
        """Write the model directory: the detector's files, ``card.md`` and the descriptor
        ``inspector.json`` (see :mod:`defectlens.descriptor`), with the part's ``taxonomy`` when
        given (a :class:`~defectlens.taxonomy.Taxonomy` or the path of its ``taxonomy.json``, checked
        before anything is written: :class:`~defectlens.errors.ConfigError`). Re-saving a loaded model (new thresholds, say) rewrites the
        card from the same data and keeps what the folder holds about the part
        (:data:`~defectlens.descriptor.PART_FILES`: its taxonomy and examples); so does a new fit of the same part
        (:func:`part_relation`), and one that cannot be told (no taxonomy on one side, said). Another part's taxonomy is not
        kept, and its labelled examples stop the save (:func:`require_part_files_kept`).
        A loaded model saved to another folder takes its part files and exported encoder from the folder it was loaded from;
        a ``taxonomy`` given to :meth:`load` is saved when none is given here, unless the model has one of its own for another
        part or other types (kept, and said).

        The whole folder is written beside ``directory`` and swapped in by rename, so a reader
        (or a save cut short) sees the old model or the new one, never one's files beside the
        other's. An existing folder is replaced only when empty or a model (:meth:`is_model_dir`).
        """
        # A model inside another model's folder went with that model's next save as a person's folder (its bank copied into
        # every export; regression probe 2026-12-06), as an export there is refused.
        require_outside_models(directory, "model")
        taxonomy_file = None
        if taxonomy is None and self._given_taxonomy is not None:
            taxonomy = self._given_taxonomy_to_save()
        if isinstance(taxonomy, str | Path):
            # Read first: a wrong path was a raw FileNotFoundError, and a file that is no taxonomy
            # was saved without a word and refused only when the model was loaded. Copied as written.
            taxonomy_file, taxonomy = Path(taxonomy), load_taxonomy(taxonomy)
        elif taxonomy is not None and not isinstance(taxonomy, Taxonomy):
            raise TypeError(f"taxonomy must be a Taxonomy or the path of a taxonomy.json, not {type(taxonomy).__name__}")
        held = _descriptor_in(Path(directory))  # read once for both questions below
        keep = self._same_model_in(held)
        # A new fit of the same part (more images, other settings) keeps the part's examples: a probe's refit on 25
        # commutators where 20 had been fitted deleted the reviewed examples copied in from export-reviews.
        # A model loaded from one folder and saved to another (a copy kept before calibrating, say) had left its taxonomy,
        # examples and exported encoder behind without a word: they are this very model's, so they come along.
        source = self._loaded_from
        if source is not None and (source.resolve() == Path(directory).resolve() or not self._same_model_in(_descriptor_in(source))):
            source = None
        # Its part told by the taxonomy given, else by the one it brings from the folder it was loaded from (regression probe
        # 2026-12-08: untold, a cookie model saved over a tile model's folder had kept the tile's taxonomy). A folder whose
        # descriptor cannot be read is told by its taxonomy too (it had been "another part", its examples deleted).
        told = taxonomy if taxonomy is not None else part_taxonomy(source) if source is not None else None
        relation = "same" if keep else part_relation(directory, told, self.trained_on)
        if relation == "other":
            require_part_files_kept(directory, told, self.trained_on)
        same_part = relation != "other"
        # Said of any other fit, of the same images too: a refit (another seed, say) over a calibrated model had
        # dropped its calibrated thresholds without a word. A model re-saved (calibrate, set_thresholds) is no other fit.
        same_fit = self._same_fit_in(held)
        replaced = None if same_fit else describe_model_in(directory)
        descriptor = replace(self.descriptor(), earlier_thresholds=self._threshold_history(held, same_fit))
        with atomic_directory(directory, self.is_model_dir) as out:
            self.detector.save(out)
            old = Path(directory)
            for name in PART_FILES:
                # The folder's own part files first (they may be newer: reviewed examples copied in), then the source's.
                for folder in ((old,) if same_part else ()) + ((source,) if source is not None else ()):
                    if (out / name).exists() or not (folder / name).exists():
                        continue
                    if (folder / name).is_dir():
                        copy_folder_into(folder / name, out / name)
                    else:
                        shutil.copyfile(folder / name, out / name)
            if taxonomy_file is not None:
                shutil.copyfile(taxonomy_file, out / TAXONOMY_FILE)
            elif taxonomy is not None:
                write_json_atomic(out / TAXONOMY_FILE, taxonomy.to_json())
            write_descriptor(out, descriptor)
            # What the folder held about its part that this model does not carry (another part's, or one it cannot tell).
            held_part = [name for name in PART_FILES if (old / name).exists()]
            lost = [name for name in held_part if not (out / name).exists()]
            # What a person put in the folder (line notes, a folder of their own) is kept: a calibrate had deleted a notes file
            # and a whole export made inside the folder without a word (export probe 2026-12-06).
            for entry in _not_model_entries(old):
                if not (out / entry.name).exists() and not (out / entry.name).is_symlink():
                    try:
                        if entry.is_dir() and not entry.is_symlink():
                            shutil.copytree(entry, out / entry.name, symlinks=True)
                        else:
                            shutil.copy2(entry, out / entry.name, follow_symlinks=False)
                    except OSError as exc:
                        # Said as the save's failure, naming the file: a named pipe put in the folder had been told as a failed
                        # ROC plot by calibrate, and raised bare by the API (regression probe 2026-12-06). A folder's copy
                        # fails with the list of its files that failed: the first is named, with its own reason.
                        where, why = entry, str(exc.strerror or exc)
                        if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
                            where, _, why = exc.args[0][0]
                        unreadable = isinstance(exc, PermissionError) or "Permission denied" in why
                        raise OutputError(f"cannot keep it in the saved model ({why.replace(str(where), 'it')}); nothing was saved, the "
                                          "model folder is as it was", where,
                                          "make it readable, or move it out of the model folder" if unreadable
                                          else "move it out of the model folder") from None
            from defectlens.export import carry_export, is_exported  # export builds on this module

            # An export stays one while its encoder is this model's: a new fit over one (the same encoder settings) had turned
            # it back into a PyTorch model, said of nothing (export probe 2026-12-06).
            was_export = is_exported(old)
            fitted_at = self.provenance.fitted_at if self.provenance else None
            carried = any(carry_export(folder, out, self.detector, fitted_at)
                          for folder in ((old,) if keep or was_export else ()) + ((source,) if source is not None else ()))
        self._saved_thresholds, self._earlier_thresholds = descriptor.thresholds, descriptor.earlier_thresholds
        if was_export and not carried:
            from defectlens.export.model import patch_encoders

            try:
                patch_encoders(self.detector, Path(directory))
                again = "export it again (defectlens export) to run it on ONNX Runtime or OpenVINO"
            except DefectlensError as exc:  # "export it again" had been said of a batch-scoring model export refuses (probe)
                again = f"this model cannot be exported: {exc.message}"
            # A warning, not a note: the commands print it too (`fit -o` over an export had said nothing; regression probe).
            warn_caller(DefectlensWarning(f"{directory}: it held an exported model, whose encoder is not this model's: the model saved runs "
                                          f"on PyTorch — {again}"))
        if replaced:
            # An API probe's save over another model (with its taxonomy) went without a word; `fit` says it as a note.
            gone = part_files_note(held_part, [name for name in held_part if name not in lost], relation, told is not None)
            warn_caller(NoteWarning(f"{directory}: the {replaced} that was there is replaced{gone}"))

    def _given_taxonomy_to_save(self) -> Taxonomy | None:
        """The taxonomy given to :meth:`load`, to be saved with the model: unless the folder it was loaded from has one of
        its own for another object, or with types the one given lacks, which is kept, and said (given to read the model once, a magnetic
        tile's taxonomy had replaced a cookie model's own on a re-save, and its cracks were then typed "fray?"; regression
        probe 2026-12-06). ``save(taxonomy=)`` replaces it."""
        given = self._given_taxonomy
        own_file = part_taxonomy(self._loaded_from) if self._loaded_from is not None else None
        if given is None or own_file is None:
            return given
        try:
            own = load_taxonomy(own_file)
        except DefectlensError:
            return given  # its own file is unreadable: the one given, which was read, stands in
        if own.object_name == given.object_name and set(own.names) <= set(given.names):
            return given  # the same part, its types extended (a "burnt" added to a cookie's "crack"): the one given stands
        warn_caller(NoteWarning(f"the taxonomy given to load ({given.object_name}: {', '.join(given.names)}) is not saved: the model's own "
                                f"{own_file} ({own.object_name}: {', '.join(own.names)}) is kept — pass taxonomy= to save to replace it"))
        return None

    def _same_model_in(self, held: ModelDescriptor | None) -> bool:
        """True when the folder's model (``held``, :func:`_descriptor_in`) is this very model (fitted on the same
        images): its part files are then this model's too. A new fit of another part saved over it must not
        inherit that part's taxonomy and examples."""
        if held is None:
            return False
        before = held.provenance
        if before is None or self.provenance is None:
            return before is None and self.provenance is None
        if before.fingerprint is not None or self.provenance.fingerprint is not None:
            # One without a fingerprint (a batch-scoring model reads no image) is another model: by fit time alone, kept
            # to the second, a batch-scoring fit over a memory bank saved in the same second had kept its examples.
            return before.fingerprint == self.provenance.fingerprint
        return before.fitted_at == self.provenance.fitted_at and held.detector == self.detector.name

    @property
    def trained_on(self) -> str | None:
        """The folder of normal images this model was fitted from, as recorded (None: not recorded, or none)."""
        return self.provenance.trained_on if self.provenance is not None else None

    def _same_fit_in(self, held: ModelDescriptor | None) -> bool:
        """True when the folder's model (``held``) is this very fit (saved before: the same fit time, training images and
        settings; two fits with other seeds in one second had counted as one, and a hand-set threshold went without a word)."""
        was, now = (held.provenance if held else None), self.provenance
        if held is None or was is None or now is None or (was.fitted_at, was.fingerprint) != (now.fitted_at, now.fingerprint):
            return False
        try:
            # As loading reads them (an older model's settings lack newer keys): compared as written, a re-save of
            # such a model had been told it replaced another (regression probe round 3).
            return _saved_settings(held) == self.settings
        except (TypeError, ValueError, ConfigError):
            return False

    @staticmethod
    def is_model_dir(directory: str | Path) -> bool:
        """True when ``directory`` holds a model of any kind, even a damaged or newer one
        (:func:`~defectlens.descriptor.holds_model`): safe to replace by :meth:`save`."""
        return holds_model(directory)

    @property
    def bit_depth(self) -> int | None:
        """The sensor depth pixels deeper than 8 bits are read at for this model (:attr:`Provenance.bit_depth`: its
        training images' deepest); None: each image's own. Pass it to :func:`~defectlens.io.load_image` to read a
        file as :meth:`inspect` does."""
        return self.provenance.bit_depth if self.provenance else None

    @property
    def verdict_basis(self) -> str | None:
        """The note every report of this model carries when its verdicts do not rest on normal images
        of the part (None when they do): a batch-relative detector judges each part against the others
        read with it; a zero-shot grounding model is fitted on no normal image of the part (it may have been trained on
        the part's defects among others', which nothing here can tell: "has seen no image" was false then). A probe's reports of
        both read as surely as a fitted model's, and 16 cracked cookies in a lot of 20 passed as good."""
        said = []
        if self.detector.name == "grounding":
            said.append("zero-shot verdict: this model is fitted on no normal image of this part, and judges it from the defect descriptions; "
                        "check its verdicts by eye before trusting them")
        if getattr(self.detector, "batch_relative", False):
            said.append("batch-relative verdict: judged against the other parts inspected with it, not against normal images; "
                        "a defect most of them share reads as normal, and an all-defective lot as good")
        return "; ".join(said) or None

    @staticmethod
    def needs_taxonomy(directory: str | Path) -> bool:
        """True for a model that cannot be loaded without the part's taxonomy (a bare zero-shot
        grounding model); False as well when the folder holds no readable model (load says why)."""
        kind = model_kind(directory)
        if kind is None:
            return False
        try:
            return detector_class(kind).needs_taxonomy(directory)
        except ModelFileError:
            return False

    @classmethod
    def load(
        cls, directory: str | Path, taxonomy: Taxonomy | str | Path | None = None, cue: str | None = None, runtime: str | None = None
    ) -> Inspector:
        """Load any model folder: the descriptor names the detector kind, and the registry
        (:mod:`defectlens.detect.registry`) loads it. A zero-shot grounding model needs the
        part's ``taxonomy`` (a :class:`~defectlens.taxonomy.Taxonomy` or the path of its
        ``taxonomy.json``) and reads images with ``cue`` (default: the detector's; see
        :mod:`defectlens.detect.grounding.detector`). Another model keeps a ``taxonomy`` given for :meth:`save`.

        An exported folder (``defectlens export``) runs its encoder network on the runtime its
        ``export.json`` names; ``runtime`` overrides that ("onnxruntime", "openvino", or "torch"
        for the PyTorch network, which every folder can run).

        A folder replaced while it is read (a `fit` or `calibrate` saving over it swaps the whole
        folder in) is read again: its files are read one by one, and a probe's `inspect` had taken
        one model's bank with the other's thresholds, and flagged 3 of 8 good parts."""
        root = Path(directory)
        for _ in range(LOAD_ATTEMPTS):
            before = folder_identity(root)
            try:
                inspector = cls._load_once(root, taxonomy, cue, runtime)
            except DefectlensError:
                if folder_identity(root) != before:
                    continue  # its files were of two fits ("the files come from different fits"): read the new one
                raise
            if folder_identity(root) == before:
                return inspector
        raise ModelFileError(f"the model folder was replaced while it was read, {LOAD_ATTEMPTS} times", root,
                             "load it again when the fit or calibrate saving over it has finished")

    @classmethod
    def _load_once(cls, root: Path, taxonomy: Taxonomy | str | Path | None, cue: str | None, runtime: str | None) -> Inspector:
        """:meth:`load`'s one reading of the folder's files."""
        if isinstance(taxonomy, str | Path):
            taxonomy = load_taxonomy(taxonomy)
        elif taxonomy is not None and not isinstance(taxonomy, Taxonomy):
            # A dict or a list reached the grounding model as an AttributeError from its depths.
            raise TypeError(f"taxonomy must be a Taxonomy or the path of a taxonomy.json, not {type(taxonomy).__name__}: "
                            "read one with defectlens.taxonomy.load_taxonomy")
        descriptor = read_descriptor(root)
        path = root / INSPECTOR_FILE
        try:
            # Checked before the detector is built: a bad file fails fast, not after the weights load.
            settings = _saved_settings(descriptor)
            fitted = descriptor.fit_summary
            summary = FitSummary(**{**fitted, "notes": tuple(fitted.get("notes") or ())}) if fitted else None
        except (TypeError, ValueError, ConfigError) as exc:
            if unknown := _unknown_fields(descriptor.settings, InspectorSettings) + _unknown_fields(descriptor.fit_summary, FitSummary):
                # Settings a newer defectlens records: "re-fit the model" had been said of a model that only needed a newer reader.
                by = descriptor.provenance.defectlens_version if descriptor.provenance else None
                written = f"written by defectlens {by}" if by else "written by another defectlens"
                raise ModelFileError(f"{written}, with settings this defectlens ({__version__}) does not know ({', '.join(unknown)})", path,
                                     "upgrade defectlens to read it, or re-fit the model with this one") from None
            # A ConfigError's own fix speaks of command-line options; for a saved model re-fitting is the fix.
            raise ModelFileError(f"invalid inspector settings ({getattr(exc, 'message', exc)})", path, "re-fit the model") from None
        detector = load_detector(descriptor.detector, root, LoadContext(taxonomy=taxonomy, cue=cue), where=path)
        ran_on = "torch"
        # Imported here: the export module imports this one (to load the model it exports).
        from defectlens.export import EXPORT_FILE, FORMATS, ONNX_FILE, RUNTIMES, attach_exported_encoder, is_exported

        # In any case, as `export --format` takes it (export probe 2026-12-06).
        runtime = spelled_as_choice(runtime, ("torch", *FORMATS, *RUNTIMES)) if runtime else None
        if runtime != "torch":
            runtime = FORMATS.get(runtime, runtime) if runtime else None  # "onnx", as `export --format` names it
            if runtime is not None and runtime not in RUNTIMES:
                raise ConfigError(f"unknown runtime {runtime!r}", root, f"use torch, {', '.join(RUNTIMES)} (or onnx), or leave it out")
            if is_exported(root):
                ran_on = attach_exported_encoder(detector, root, runtime)
            elif runtime is not None:
                raise ConfigError(f"runtime {runtime!r} needs an exported model", root, f"export it first: defectlens export {root} -o EXPORT")
            elif (root / ONNX_FILE).is_file():
                # Its record gone, an export ran on PyTorch at PyTorch's pace, its card still naming the runtime.
                warn_caller(f"{root}: {ONNX_FILE} lies here without {EXPORT_FILE}, so the model runs on PyTorch; "
                            f"export it again (defectlens export) to run the exported encoder", DefectlensWarning)
        inspector = cls(detector, settings, summary, descriptor.provenance)
        inspector.runtime = ran_on
        inspector._saved_thresholds, inspector._earlier_thresholds = descriptor.thresholds, list(descriptor.earlier_thresholds)
        inspector._loaded_from, inspector._given_taxonomy = root, taxonomy
        if detector.thresholds is not None and (on := calibration_digests(descriptor.thresholds, detector.thresholds)) is not None:
            inspector._calibration = (detector.thresholds, on)
        return inspector

    def earlier_calibrated_on(self, number: int) -> tuple[str, ...] | None:
        """:attr:`calibrated_on` of the earlier thresholds numbered ``number`` (from 1, as :attr:`earlier_thresholds` and the
        card number them); None for 0, the fit's own label-free thresholds. :class:`ValueError` for a number it has not."""
        if number == 0:
            return None
        if not 1 <= number <= len(self._earlier_thresholds):
            raise ValueError(f"no earlier thresholds numbered {number}: this model has {len(self._earlier_thresholds)} (0 is the fit's own)")
        entry = self._earlier_thresholds[number - 1]
        return calibration_digests(entry, self.earlier_thresholds[number - 1])

    @property
    def earlier_thresholds(self) -> list[Thresholds]:
        """The thresholds this fit held before its present ones, oldest first (kept by :meth:`save`; shown on the card,
        where ``defectlens calibrate MODEL_DIR --restore N`` numbers them from 1)."""
        return [Thresholds(float(t["image"]), float(t["pixel"]), str(t.get("source", "user"))) for t in self._earlier_thresholds]

    def _threshold_history(self, held: ModelDescriptor | None, same_fit: bool) -> list[dict[str, Any]]:
        """The earlier thresholds to save with this model: the folder's, when it holds this fit, else those loaded with it,
        and the thresholds this save replaces when they differ from the present ones."""
        if held is not None and same_fit:
            before, earlier = held.thresholds, held.earlier_thresholds
        else:
            before, earlier = self._saved_thresholds, self._earlier_thresholds
        now = self.detector.thresholds.to_json() if self.detector.thresholds else None
        if before and now and any(before.get(k) != now.get(k) for k in ("image", "pixel", "source")):
            earlier = [*earlier, {**before, "replaced_at": utc_now(), "replaced_by": __version__}]
        return list(earlier)[-MAX_EARLIER_THRESHOLDS:]


__all__ = [
    "Detector",
    "Failure",
    "InspectedBatch",
    "InspectedImage",
    "Inspector",
    "InspectorSettings",
    "balanced_batches",
    "checked_images",
    "load_images",
]
