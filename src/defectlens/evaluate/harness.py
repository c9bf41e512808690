"""Evaluation harness: run an Inspector over a labelled category and compute the metrics.

Only public stage surfaces are used: the Inspector (encode/detect/locate) and the metrics.
"""

from __future__ import annotations

import math
import resource
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from defectlens.errors import DefectlensError
from defectlens.evaluate.metrics import DetectionMetrics, detection_metrics, image_auroc
from defectlens.inspector import Failure, Inspector
from defectlens.io import Category, load_mask
from defectlens.types import Inspection

Progress = Callable[[int], None]


@dataclass
class ScoredSet:
    """Per-image ground truth and predictions of one evaluation run (kept for further analysis)."""

    sources: list[str] = field(default_factory=list)
    defect_types: list[str] = field(default_factory=list)
    masks: list[np.ndarray | None] = field(default_factory=list)
    """Ground truth per image; None for a defective image without a mask (image metrics only)."""
    inspections: list[Inspection] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    """Decoded images, kept only when asked (classification needs them)."""
    unmasked: list[str] = field(default_factory=list)
    """Defective images with no ground-truth mask: in the image metrics, not in the pixel metrics."""

    @property
    def labels(self) -> list[int]:
        """1 for defective, 0 for good."""
        return [int(t != "good") for t in self.defect_types]

    @property
    def scores(self) -> list[float]:
        """Image scores."""
        return [i.score for i in self.inspections]

    def pixel_pairs(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``(masks, anomaly maps)`` of the images that have ground truth, for the pixel metrics."""
        pairs = [(m, i.anomaly_map) for m, i in zip(self.masks, self.inspections, strict=True) if m is not None]
        return [m for m, _ in pairs], [a for _, a in pairs]


@dataclass
class DetectionEvaluation:
    """Metrics of one category, with timing and the inputs that failed."""

    category: str
    n_test: int
    metrics: DetectionMetrics
    ms_per_image: float
    """Wall time per image, decode to regions, batch of 8 at a time."""
    fit_seconds: float | None
    peak_memory_mb: float
    per_type_image_auroc: list[tuple[str, float]]
    failures: list[Failure]

    def to_json(self) -> dict:
        """Flat JSON: the metric names at the top level, fractions in [0, 1]."""
        out = {"category": self.category, **self.metrics.to_json()}
        out.update(
            ms_per_image=round(self.ms_per_image, 2),
            fit_seconds=None if self.fit_seconds is None else round(self.fit_seconds, 2),
            n_test=self.n_test,
            peak_memory_mb=round(self.peak_memory_mb, 1),
            per_type_image_auroc={t: (None if math.isnan(v) else round(v, 4)) for t, v in self.per_type_image_auroc},
            failures=[{"source": f.source, "message": f.message} for f in self.failures],
        )
        return out


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_inspections(
    inspector: Inspector, category: Category, progress: Progress | None = None, keep_images: bool = False, batch_size: int = 16
) -> tuple[ScoredSet, list[Failure], float]:
    """Inspect every test image of ``category``; returns the scored set, failures and seconds spent.

    Timing covers decoding, detection and region extraction, not ground-truth loading.
    """
    scored = ScoredSet()
    failures: list[Failure] = []
    seconds = 0.0
    items = {str(item.path): item for item in category.require_test()}
    # Seeded random batches, as parts arrive on a line (see Inspector.iter_batches); the
    # metrics do not depend on the order.
    for batch in inspector.iter_batches([item.path for item in items.values()], batch_size, seed=0):
        seconds += batch.seconds
        failures.extend(batch.failures)
        for inspected in batch.images:
            item, image = items[str(inspected.path)], inspected.image
            h, w = image.shape[:2]
            mask: np.ndarray | None
            if item.is_defective and item.mask_path is None:
                # Its label is enough for the image metrics; only the pixel metrics need a mask.
                mask = None
                scored.unmasked.append(str(item.path))
            else:
                try:
                    mask = load_mask(item.mask_path, (w, h)) if item.mask_path else np.zeros((h, w), bool)
                except DefectlensError as exc:
                    failures.append(Failure(str(item.mask_path), str(exc)))
                    continue
            scored.sources.append(str(item.path))
            scored.defect_types.append(item.defect_type)
            scored.masks.append(mask)
            scored.inspections.append(inspected.inspection)
            if keep_images:
                scored.images.append(image)
        if progress:
            progress(batch.n_inputs)
    return scored, failures, seconds


def evaluate_detection(
    inspector: Inspector, category: Category, progress: Progress | None = None, keep_images: bool = False
) -> tuple[DetectionEvaluation, ScoredSet]:
    """Image and pixel metrics, AUPRO, speed and memory of ``inspector`` on ``category``'s test split."""
    scored, failures, seconds = run_inspections(inspector, category, progress, keep_images=keep_images)
    if not scored.inspections:
        raise DefectlensError("no test image could be evaluated", category.root / "test", "check the failures listed above")
    metrics = detection_metrics(scored.labels, scored.scores, *scored.pixel_pairs())
    per_type = []
    for defect in sorted({t for t in scored.defect_types if t != "good"}):
        idx = [i for i, t in enumerate(scored.defect_types) if t in (defect, "good")]
        per_type.append((defect, image_auroc([scored.labels[i] for i in idx], [scored.scores[i] for i in idx])))
    evaluation = DetectionEvaluation(
        category=category.name,
        n_test=len(scored.inspections),
        metrics=metrics,
        ms_per_image=1000.0 * seconds / max(1, len(scored.inspections) + len(failures)),
        fit_seconds=inspector.fit_summary.seconds if inspector.fit_summary else None,
        peak_memory_mb=peak_memory_mb(),
        per_type_image_auroc=per_type,
        failures=failures,
    )
    return evaluation, scored
