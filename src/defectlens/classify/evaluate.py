"""Scoring a defect-type classifier on labelled images, with ground-truth masks as the regions.

Using the true masks isolates classification quality from detection and localisation: a
wrong type here is the classifier's fault alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from defectlens.classify.fewshot import FewShotClassifier
from defectlens.io import LabelledImage, load_image, load_mask
from defectlens.taxonomy import UNKNOWN


@dataclass
class TypeEvaluation:
    """Type accuracy and macro-F1 over images (one region per image: its whole true mask)."""

    n_images: int
    accuracy: float
    macro_f1: float
    """Macro-F1 over the known types ('unknown' predictions count as wrong for every type)."""
    unknown_rate: float
    per_type_f1: dict[str, float]
    labels: list[str]
    """Row/column order of ``confusion``: the known types, then 'unknown'."""
    confusion: list[list[int]]
    seconds_per_region: float
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {
            "n_images": self.n_images,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "unknown_rate": round(self.unknown_rate, 4),
            "per_type_f1": {k: round(v, 4) for k, v in self.per_type_f1.items()},
            "labels": self.labels,
            "confusion": self.confusion,
            "seconds_per_region": round(self.seconds_per_region, 4),
            "skipped": self.skipped,
        }


@dataclass
class EmbeddedItems:
    """Region vectors of labelled items (one per item: its whole true mask), ready to score."""

    items: list[LabelledImage]
    vectors: np.ndarray
    seconds_per_region: float
    skipped: list[str] = field(default_factory=list)


def embed_items(
    classifier: FewShotClassifier, items: Sequence[LabelledImage], progress: Callable[[int], None] | None = None
) -> EmbeddedItems:
    """Encode each defective item's true mask once (so several example draws can reuse them).

    Items without a mask, or whose image or mask cannot be read, are skipped and listed.
    """
    kept: list[LabelledImage] = []
    vectors: list[np.ndarray] = []
    skipped: list[str] = []
    elapsed = 0.0
    for item in items:
        if not item.is_defective:
            continue
        if item.mask_path is None:
            skipped.append(f"{item.path}: no ground-truth mask")
            continue
        try:
            image = load_image(item.path)
            mask = load_mask(item.mask_path, expected_size=(image.shape[1], image.shape[0]))
        except Exception as exc:  # noqa: BLE001 - one bad file must not end the evaluation
            skipped.append(f"{item.path}: {exc}")
            continue
        if not mask.any():
            skipped.append(f"{item.path}: empty ground-truth mask")
            continue
        start = time.perf_counter()
        vectors.append(classifier.embed(image, [mask])[0])
        elapsed += time.perf_counter() - start
        kept.append(item)
        if progress:
            progress(1)
    dim = vectors[0].shape[0] if vectors else 0
    return EmbeddedItems(kept, np.stack(vectors) if vectors else np.zeros((0, dim), np.float32), elapsed / max(1, len(kept)), skipped)


def score_types(
    truth: Sequence[str], pred: Sequence[str], class_names: Sequence[str]
) -> tuple[float, float, float, dict[str, float], list[str], list[list[int]]]:
    """(accuracy, macro-F1 over known types, unknown rate, per-type F1, labels, confusion)."""
    known = list(class_names)
    labels = [*known, UNKNOWN]
    if not truth:
        return 0.0, 0.0, 0.0, {}, labels, []
    per = f1_score(truth, pred, labels=known, average=None, zero_division=0)
    return (
        float(accuracy_score(truth, pred)),
        float(f1_score(truth, pred, labels=known, average="macro", zero_division=0)),
        float(np.mean([p == UNKNOWN for p in pred])),
        {k: float(v) for k, v in zip(known, per, strict=True)},
        labels,
        confusion_matrix(truth, pred, labels=labels).tolist(),
    )


def evaluate_embedded(classifier: FewShotClassifier, embedded: EmbeddedItems, exclude: set | None = None) -> TypeEvaluation:
    """Score a fitted classifier on pre-embedded items, leaving out those whose path is in ``exclude``."""
    keep = [i for i, it in enumerate(embedded.items) if not exclude or it.path not in exclude]
    truth = [embedded.items[i].defect_type for i in keep]
    pred = [rt.defect_type for rt in classifier.classify_vectors(embedded.vectors[keep])] if keep else []
    acc, f1, unk, per, labels, conf = score_types(truth, pred, classifier.class_names)
    return TypeEvaluation(len(keep), acc, f1, unk, per, labels, conf, embedded.seconds_per_region, list(embedded.skipped))


def evaluate_types(
    classifier: FewShotClassifier,
    items: Sequence[LabelledImage],
    progress: Callable[[int], None] | None = None,
) -> TypeEvaluation:
    """Classify each defective item's true mask and compare with its folder's type.

    Items without a mask, or whose image or mask cannot be read, are skipped and listed.
    """
    return evaluate_embedded(classifier, embed_items(classifier, items, progress))
