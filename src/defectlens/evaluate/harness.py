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
    inspector: Inspector, category: Category, progress: Progress | None = None, keep_images: bool = False, batch: int = 16
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
    for batch in inspector.iter_batches([item.path for item in items.values()], batch, seed=0):
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


@dataclass
class TypeEvaluation:
    """Defect-type classification quality over defective test images not used as examples."""

    category: str
    k: int
    n_images: int
    accuracy: float
    macro_f1: float
    labels: list[str]
    confusion: np.ndarray
    """Rows: true type; columns: predicted type (``labels`` + 'unknown')."""

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {
            "category": self.category,
            "k": self.k,
            "n_images": self.n_images,
            "type_accuracy": round(self.accuracy, 4),
            "type_macro_f1": round(self.macro_f1, 4),
            "labels": self.labels,
            "confusion": self.confusion.tolist(),
        }


def _top_region_mask(inspection: Inspection) -> np.ndarray:
    """The pixels to classify for one image: its most anomalous region, or — when the detector
    reported none — the top 1% of its map, so every defective image still gets a type."""
    if inspection.regions and inspection.region_labels is not None:
        return inspection.region_labels == inspection.regions[0].index
    amap = inspection.anomaly_map
    return amap >= np.quantile(amap, 0.99)


def evaluate_types(scored: ScoredSet, classifier, excluded: set[str], category: str, k: int) -> TypeEvaluation:
    """Type accuracy / macro-F1 of ``classifier`` on the defective images of ``scored``.

    Each image's predicted type is that of its most anomalous detected region (as VELM scores
    it: detection and classification together). ``excluded`` are the example images' paths.
    ``scored`` must have been built with ``keep_images=True``.
    """
    from defectlens.evaluate.metrics import UNKNOWN, confusion, type_accuracy, type_macro_f1

    true, pred = [], []
    for source, defect, inspection, image in zip(scored.sources, scored.defect_types, scored.inspections, scored.images, strict=True):
        if defect == "good" or source in excluded:
            continue
        types = classifier.classify(image, {1: _top_region_mask(inspection)})
        true.append(defect)
        pred.append(types[0].defect_type if types else UNKNOWN)
    labels = sorted(set(true))
    return TypeEvaluation(
        category=category,
        k=k,
        n_images=len(true),
        accuracy=type_accuracy(true, pred),
        macro_f1=type_macro_f1(true, pred),
        labels=labels,
        confusion=confusion(true, pred, [*labels, UNKNOWN]),
    )


def confusion_figure_png(evaluation: TypeEvaluation) -> bytes:
    """The confusion matrix as a PNG (counts in each cell)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    cols = [*evaluation.labels, "unknown"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(cols), 1.0 + 0.7 * len(evaluation.labels)))
    ax.imshow(evaluation.confusion, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(evaluation.labels)), evaluation.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), v in np.ndenumerate(evaluation.confusion):
        ax.text(j, i, str(v), ha="center", va="center", color="black")
    ax.set_title(f"{evaluation.category}: accuracy {evaluation.accuracy:.2f}, k={evaluation.k}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
