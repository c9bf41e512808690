"""Anomaly-detection metrics: image level, pixel level, AUPRO and defect-type classification.

Conventions shared by every function here:

* Labels are "is defective": ``True``/``1`` means anomalous. Anything non-zero counts as defective.
* Higher scores mean "more anomalous"; a threshold ``t`` predicts defective where ``score >= t``.
* A metric that is undefined for the given data (only one class present, no defect region,
  empty input) returns ``nan`` instead of raising, so that a whole evaluation run still produces
  a report; :meth:`DetectionMetrics.to_json` turns those ``nan`` into ``None``.
* Pixel metrics take a list of ``(mask, anomaly_map)`` pairs as two parallel sequences. Each pair
  must share its shape, but different images may have different sizes. Images whose mask is all
  ``False`` simply contribute normal pixels. Pixel scores are stored as float32 to halve the
  memory of large pixel sets, so float64 scores closer than float32 precision become ties.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score, roc_auc_score

from defectlens.scoring import best_f1
from defectlens.taxonomy import UNKNOWN  # re-exported; defined once, with the taxonomy that reserves the name

__all__ = [
    "UNKNOWN",
    "DetectionMetrics",
    "aupro",
    "confusion",
    "detection_metrics",
    "f1_max",
    "f1_max_threshold",
    "image_ap",
    "image_auroc",
    "pixel_ap",
    "pixel_auroc",
    "pixel_f1_max",
    "type_accuracy",
    "type_macro_f1",
]


# The official MVTec AD evaluation (pro_curve_util.compute_pro) labels ground-truth regions with
# scipy.ndimage.label(gt, structure=np.ones((3, 3))), i.e. 8-connectivity: diagonal neighbours
# belong to the same region. Using the scipy default (4-connectivity) would split such regions and
# change AUPRO, so we follow the reference.
_REGION_STRUCTURE = np.ones((3, 3), dtype=int)


# --------------------------------------------------------------------------------------------
# Image level
# --------------------------------------------------------------------------------------------


def _image_arrays(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(bool labels, float64 scores)`` 1-D arrays of equal length."""
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    if not np.isfinite(s).all():
        # sklearn would raise a less specific error deep inside; say what is wrong here.
        raise ValueError("scores contain NaN or infinite values")
    # Non-bool labels (0/1 ints, 0/255 masks) become "is defective".
    return (y if y.dtype == bool else y != 0), s


def _both_classes(y: np.ndarray) -> bool:
    """True when ``y`` holds at least one positive and one negative."""
    return bool(y.any()) and not bool(y.all())


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    # AUROC compares positives against negatives: with one class there is nothing to compare.
    return float(roc_auc_score(y, s)) if _both_classes(y) else math.nan


def _ap(y: np.ndarray, s: np.ndarray) -> float:
    # Without negatives AP is trivially 1 and without positives undefined; both are useless as a
    # score of the detector, so report nan like AUROC does.
    return float(average_precision_score(y, s)) if _both_classes(y) else math.nan


# One implementation with detection calibration (see defectlens.scoring).
_f1_max_threshold = best_f1


def image_auroc(labels, scores) -> float:
    """Area under the ROC curve of image scores; ties between a defective and a good image count half.

    Returns ``nan`` when ``labels`` hold only one class (or are empty).
    """
    return _auroc(*_image_arrays(labels, scores))


def image_ap(labels, scores) -> float:
    """Average precision of image scores (sklearn's step-wise AP, no interpolation).

    Returns ``nan`` when ``labels`` hold only one class (or are empty).
    """
    return _ap(*_image_arrays(labels, scores))


def f1_max(labels, scores) -> float:
    """The best F1 score over all thresholds ``score >= t`` (t ranging over the distinct scores).

    Returns ``nan`` when there is no defective sample.
    """
    return _f1_max_threshold(*_image_arrays(labels, scores))[0]


def f1_max_threshold(labels, scores) -> tuple[float, float]:
    """``(f1, threshold)``: the best F1 and a threshold reaching it with ``scores >= threshold``.

    When several thresholds reach the same F1 the lowest one is returned. Returns ``(nan, nan)``
    when there is no defective sample.
    """
    return _f1_max_threshold(*_image_arrays(labels, scores))


# --------------------------------------------------------------------------------------------
# Pixel level
# --------------------------------------------------------------------------------------------


@dataclass
class _Pixels:
    """All pixels of a set of images as flat arrays (one allocation each)."""

    defect: np.ndarray
    """bool, True on ground-truth defect pixels."""
    scores: np.ndarray
    """float32 anomaly scores."""
    region: np.ndarray | None = None
    """int32 global ground-truth region id per pixel, 0 on normal pixels (only when asked for)."""
    region_sizes: np.ndarray | None = None
    """Pixel count of region ``k + 1`` at index ``k``."""


def _collect_pixels(masks: Sequence, maps: Sequence, regions: bool = False) -> _Pixels:
    """Validate the pairs and flatten them into preallocated arrays.

    Pixel sets are large (hundreds of images at full resolution), so the flat arrays are
    allocated once at their final size and filled in place, scores as float32 and labels as
    bool, instead of building per-image copies and concatenating them.
    """
    if len(masks) != len(maps):
        raise ValueError(f"got {len(masks)} masks but {len(maps)} anomaly maps")
    masks = [np.asarray(m) for m in masks]
    maps = [np.asarray(a) for a in maps]
    for i, (m, a) in enumerate(zip(masks, maps, strict=True)):
        if m.shape != a.shape:
            raise ValueError(f"mask and anomaly map {i} differ in shape: {m.shape} vs {a.shape}")
        if m.ndim != 2:
            raise ValueError(f"mask and anomaly map {i} must be 2-D (H, W), got shape {m.shape}")
    total = sum(m.size for m in masks)
    defect = np.empty(total, dtype=bool)
    scores = np.empty(total, dtype=np.float32)
    region = np.zeros(total, dtype=np.int32) if regions else None
    sizes: list[np.ndarray] = []
    n_regions = 0
    start = 0
    for i, (m, a) in enumerate(zip(masks, maps, strict=True)):
        stop = start + m.size
        defect[start:stop] = (m if m.dtype == bool else m != 0).ravel()
        scores[start:stop] = a.ravel()
        if not np.isfinite(scores[start:stop]).all():
            raise ValueError(f"anomaly map {i} contains NaN or infinite values")
        if region is not None and defect[start:stop].any():
            labeled, n = ndimage.label(defect[start:stop].reshape(m.shape), structure=_REGION_STRUCTURE)
            # Offset the per-image ids so that every region of the whole set has its own id.
            region[start:stop] = np.where(labeled > 0, labeled + n_regions, 0).ravel()
            sizes.append(np.bincount(labeled.ravel(), minlength=n + 1)[1:])
            n_regions += n
        start = stop
    region_sizes = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)
    return _Pixels(defect, scores, region, region_sizes if regions else None)


def pixel_auroc(masks: Sequence, maps: Sequence) -> float:
    """Pixel-wise AUROC over all pixels of all ``(mask, anomaly_map)`` pairs.

    ``masks`` are bool HxW ground truths, ``maps`` float HxW anomaly maps of the same shape
    (sizes may differ between images). Raises ``ValueError`` naming the index of the first pair
    whose shapes differ. Returns ``nan`` when the pixels hold only one class.
    """
    px = _collect_pixels(masks, maps)
    return _auroc(px.defect, px.scores)


def pixel_ap(masks: Sequence, maps: Sequence) -> float:
    """Pixel-wise average precision over all pairs; see :func:`pixel_auroc` for inputs and errors."""
    px = _collect_pixels(masks, maps)
    return _ap(px.defect, px.scores)


def pixel_f1_max(masks: Sequence, maps: Sequence) -> float:
    """The best pixel-wise F1 over all thresholds; see :func:`pixel_auroc` for inputs and errors.

    Returns ``nan`` when no pixel is defective.
    """
    px = _collect_pixels(masks, maps)
    return _f1_max_threshold(px.defect, px.scores)[0]


# --------------------------------------------------------------------------------------------
# AUPRO
# --------------------------------------------------------------------------------------------


def _area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under the curve ``(x, y)`` from ``x[0]`` to ``x_max``.

    ``x`` must be non-decreasing with ``x[0] <= x_max <= x[-1]``; repeated x values (vertical
    steps) are fine. The curve's value at ``x_max`` is linearly interpolated between its
    neighbours, as in MVTec's ``generic_util.trapezoid``.
    """
    ins = int(np.searchsorted(x, x_max, side="right"))  # first index with x > x_max
    xs, ys = x[:ins], y[:ins]
    area = float(np.sum(0.5 * (ys[1:] + ys[:-1]) * np.diff(xs)))
    if ins < x.size and xs[-1] < x_max:
        # The limit falls inside the segment (x[ins-1], x[ins]): add the part of it up to x_max.
        x0, x1, y0, y1 = x[ins - 1], x[ins], y[ins - 1], y[ins]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        area += 0.5 * (y0 + y_at) * (x_max - x0)
    return area


def _aupro_from_pixels(px: _Pixels, fpr_limit: float) -> float:
    assert px.region is not None and px.region_sizes is not None
    n_regions = px.region_sizes.size
    n_normal = int(px.region.size - np.count_nonzero(px.region))
    if n_regions == 0 or n_normal == 0:
        return math.nan
    # Walk the pixels from the highest score down: lowering the threshold past a pixel adds it to
    # the predicted-defective set. A normal pixel raises the FPR by 1/n_normal; a pixel of region
    # k raises the PRO (mean over regions of the covered fraction) by 1/(size_k * n_regions).
    # So one sort plus two cumulative sums give the whole curve, with no loop over thresholds.
    order = np.argsort(px.scores)[::-1]  # a reversed view: no second index array
    sorted_scores = px.scores[order]
    # Pixels with equal scores switch together, so only the last point of each run of equal
    # scores is a real (FPR, PRO) point; the intermediate ones depend on the sort order.
    keep = np.empty(sorted_scores.size, dtype=bool)
    np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=keep[:-1])
    keep[-1] = True
    del sorted_scores
    region_sorted = px.region[order]
    del order
    fp = np.cumsum(region_sorted == 0, dtype=np.int64)[keep]
    # Integer counts divided once keep the FPR exact (3/10 is the same float as 0.3).
    fpr = fp / n_normal
    del fp
    weight = np.concatenate(([0.0], 1.0 / (px.region_sizes.astype(np.float64) * n_regions)))
    pro_steps = weight[region_sorted]
    del region_sorted
    np.cumsum(pro_steps, out=pro_steps)
    pro = pro_steps[keep]
    del pro_steps, keep
    # Rounding in the cumulative sums may overshoot 1 by an ulp; the curve must stay in [0, 1].
    np.clip(fpr, 0.0, 1.0, out=fpr)
    np.clip(pro, 0.0, 1.0, out=pro)
    # Start the curve at (0, 0) and end it at (1, 1) as the reference does, so that the
    # integration limit always lies inside the curve's FPR range.
    x = np.concatenate(([0.0], fpr, [1.0]))
    y = np.concatenate(([0.0], pro, [1.0]))
    return _area_up_to(x, y, fpr_limit) / fpr_limit


def aupro(masks: Sequence, maps: Sequence, fpr_limit: float = 0.3) -> float:
    """Normalised area under the per-region-overlap (PRO) curve, as defined for MVTec AD.

    Every connected ground-truth region (8-connectivity, as in the official MVTec AD evaluation
    code) counts equally, whatever its size. For each threshold ``t`` (every distinct anomaly
    score; pixels with equal scores switch together):

    * FPR(t) = fraction of all normal pixels of all images with score >= t;
    * PRO(t) = mean over all regions of the fraction of the region's pixels with score >= t.

    The curve, started at (0, 0) and ended at (1, 1), is integrated over FPR from 0 to
    ``fpr_limit`` with the trapezoid rule (its value at exactly ``fpr_limit`` interpolated
    linearly) and divided by ``fpr_limit``: a perfect detector scores 1.0.

    Returns ``nan`` when there is no defect region (nothing to overlap) or no normal pixel (no
    FPR axis). Raises ``ValueError`` for mismatched shapes (naming the index) or a
    ``fpr_limit`` outside (0, 1].
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must lie in (0, 1], got {fpr_limit}")
    return _aupro_from_pixels(_collect_pixels(masks, maps, regions=True), fpr_limit)


# --------------------------------------------------------------------------------------------
# Defect-type classification
# --------------------------------------------------------------------------------------------


def _type_lists(true: Sequence[str], pred: Sequence[str]) -> tuple[list[str], list[str]]:
    true, pred = [str(t) for t in true], [str(p) for p in pred]
    if len(true) != len(pred):
        raise ValueError(f"true and pred differ in length: {len(true)} vs {len(pred)}")
    return true, pred


def type_accuracy(true: Sequence[str], pred: Sequence[str]) -> float:
    """Fraction of samples whose predicted defect type equals the true one.

    An ``'unknown'`` prediction is wrong for any true type (other than ``'unknown'`` itself).
    Returns ``nan`` for empty input.
    """
    true, pred = _type_lists(true, pred)
    if not true:
        return math.nan
    return sum(t == p for t, p in zip(true, pred, strict=True)) / len(true)


def type_macro_f1(true: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None) -> float:
    """Unweighted mean of the per-type F1 scores.

    ``labels`` picks the types averaged over. By default: every true type plus every predicted
    type except ``'unknown'`` (unless ``'unknown'`` is itself a true type). An ``'unknown'``
    prediction therefore costs recall of the true type without adding a zero-F1 class to the
    average, while a wrongly predicted real type still counts as a class with F1 = 0.
    Predictions outside ``labels`` are plain misses. Returns ``nan`` for empty input.
    """
    true, pred = _type_lists(true, pred)
    if not true:
        return math.nan
    if labels is None:
        labels = sorted(set(true) | (set(pred) - {UNKNOWN}))
    # zero_division=0: a type never predicted (or never true) has F1 0 instead of a warning.
    return float(f1_score(true, pred, labels=list(labels), average="macro", zero_division=0))


def confusion(true: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Confusion matrix: ``out[i, j]`` = number of samples of true type ``labels[i]`` predicted ``labels[j]``.

    Samples whose true or predicted type is not in ``labels`` are left out, so include
    ``'unknown'`` in ``labels`` to see the rejected samples as a column.
    """
    true, pred = _type_lists(true, pred)
    if not true:
        return np.zeros((len(labels), len(labels)), dtype=np.int64)
    return confusion_matrix(true, pred, labels=list(labels))


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectionMetrics:
    """The detection metrics of one evaluation run; any of them may be ``nan`` (undefined)."""

    image_auroc: float
    image_ap: float
    image_f1max: float
    pixel_auroc: float
    pixel_ap: float
    pixel_f1max: float
    aupro: float
    """Normalised AUPRO up to FPR 0.3 (see :func:`aupro`)."""

    def to_json(self) -> dict:
        """The fields as a dict of plain floats, with ``nan`` as ``None`` (JSON has no NaN)."""
        return {k: (None if math.isnan(v) else float(v)) for k, v in asdict(self).items()}


def detection_metrics(image_labels, image_scores, masks: Sequence, maps: Sequence) -> DetectionMetrics:
    """All image and pixel metrics at once.

    The pixels are flattened a single time and shared by the pixel metrics and AUPRO. With no
    ``(mask, map)`` pairs the pixel metrics are ``nan``.
    """
    y, s = _image_arrays(image_labels, image_scores)
    px = _collect_pixels(masks, maps, regions=True)
    return DetectionMetrics(
        image_auroc=_auroc(y, s),
        image_ap=_ap(y, s),
        image_f1max=_f1_max_threshold(y, s)[0],
        pixel_auroc=_auroc(px.defect, px.scores),
        pixel_ap=_ap(px.defect, px.scores),
        pixel_f1max=_f1_max_threshold(px.defect, px.scores)[0],
        aupro=_aupro_from_pixels(px, 0.3),
    )
