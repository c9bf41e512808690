"""Labelled defect examples on disk: which images show which defect type, and where.

Two layouts are read: an MVTec-style category (``test/<type>/`` images with
``ground_truth/<type>/`` masks, sampled ``k`` per type) and a plain folder per type (masks
optional). What was skipped or approximated becomes a note, so a caller can show it; nothing
here encodes an image (see :mod:`defectlens.classify.fewshot` for the classifier).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from defectlens.errors import DatasetLayoutError
from defectlens.io import IMAGE_SUFFIXES, LabelledImage, list_images, load_category


@dataclass(frozen=True)
class Example:
    """One labelled example: an image, its defect type, and (ideally) the defect's mask."""

    path: Path
    defect_type: str
    mask_path: Path | None = None
    """Binary mask of the defect; None means the whole image is the region."""


@dataclass
class ExampleSet:
    """Examples gathered from disk plus what was skipped or approximated (one line each)."""

    examples: list[Example] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def types(self) -> list[str]:
        """Sorted defect types with at least one example."""
        return sorted({e.defect_type for e in self.examples})


def _warn(notes: list[str], message: str) -> None:
    # Both: a warning for interactive users, a note that ends up in the report/benchmark output.
    warnings.warn(message, stacklevel=3)
    notes.append(message)


def _check_masks(by_type: Mapping[str, list[Example]], notes: list[str]) -> None:
    for t, exs in sorted(by_type.items()):
        missing = sum(e.mask_path is None for e in exs)
        if missing:
            _warn(
                notes,
                f"type {t!r}: {missing} of {len(exs)} example(s) have no mask; the whole image is used as the region "
                f"(add masks for sharper types)",
            )


def examples_from_category(
    root: str | Path, k: int, seed: int = 0, types: Sequence[str] | None = None
) -> tuple[ExampleSet, list[LabelledImage]]:
    """Sample ``k`` examples per defect type from an MVTec-style category's ``test/<type>`` folders.

    Returns the examples and the remaining defective test images (the examples excluded), so an
    evaluation never scores an image the classifier was fitted on. Sampling uses ``seed``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    category = load_category(root)
    wanted = list(types) if types is not None else category.defect_types
    rng = random.Random(seed)
    result = ExampleSet()
    held_out: list[LabelledImage] = []
    by_type: dict[str, list[Example]] = {}
    for t in wanted:
        items = sorted((x for x in category.test if x.defect_type == t), key=lambda x: x.path.name)
        if not items:
            result.notes.append(f"type {t!r}: no images in {category.root / 'test' / t}; type skipped")
            continue
        chosen = set(rng.sample(range(len(items)), min(k, len(items))))
        if len(chosen) < k:
            result.notes.append(f"type {t!r}: only {len(items)} image(s), fewer than k={k}")
        by_type[t] = [Example(items[i].path, t, items[i].mask_path) for i in sorted(chosen)]
        result.examples.extend(by_type[t])
        held_out.extend(x for i, x in enumerate(items) if i not in chosen)
    _check_masks(by_type, result.notes)
    if not result.examples:
        raise DatasetLayoutError("no defect examples found", Path(root) / "test", "put example images in test/<type>/")
    return result, held_out


def _mask_beside(image: Path) -> Path | None:
    for folder in (image.parent / "masks", image.parent):
        for name in (f"{image.stem}_mask.png", f"{image.stem}.png"):
            cand = folder / name
            if cand.is_file() and cand != image:
                return cand
    return None


def examples_from_folders(root: str | Path) -> ExampleSet:
    """Examples from ``root/<type>/*`` (any folder per type), masks optional.

    A mask is ``<stem>_mask.png`` beside the image or ``<stem>[_mask].png`` in ``<type>/masks/``.
    A type folder with no images is skipped with a note; one without masks is used with the
    whole image as the region, with a warning.
    """
    base = Path(root)
    if not base.is_dir():
        raise DatasetLayoutError("example folder not found", base, "pass a folder with one sub-folder per defect type")
    result = ExampleSet()
    by_type: dict[str, list[Example]] = {}
    for type_dir in sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")):
        images = [p for p in list_images(type_dir) if not p.stem.endswith("_mask")]
        if not images:
            _warn(result.notes, f"{type_dir}: no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))}); type skipped")
            continue
        by_type[type_dir.name] = [Example(p, type_dir.name, _mask_beside(p)) for p in images]
        result.examples.extend(by_type[type_dir.name])
    if not result.examples:
        raise DatasetLayoutError("no example images in any type folder", base, "put images in <folder>/<type>/")
    _check_masks(by_type, result.notes)
    return result
