"""Anomaly-detection metrics: image level, pixel level, AUPRO and defect-type classification.

Conventions shared by every function here:

* Labels are "is defective": ``True``/``1`` means anomalous. Anything non-zero counts as defective.
* Higher scores mean "more anomalous". The curve metrics (AUROC, AP, F1-max, AUPRO) sweep every
  threshold ``t`` with ``score >= t`` predicting defective, as sklearn and MVTec do; an operating
  point (:func:`operating_point`) flags ``score > t``, the rule of ``Inspector.decide``.
* A metric that is undefined for the given data (only one class present, no defect region,
  empty input) returns ``nan`` instead of raising, so that a whole evaluation run still produces
  a report; :meth:`DetectionMetrics.to_json` turns those ``nan`` into ``None``.
* Pixel metrics take a list of ``(mask, anomaly_map)`` pairs as two parallel sequences. Each pair
  must share its shape, but different images may have different sizes. Images whose mask is all
  ``False`` simply contribute normal pixels. Pixel scores are stored as float32 to halve the
  memory of large pixel sets, so float64 scores closer than float32 precision become ties. An
  evaluation adds its pixels image by image to a :class:`PixelAccumulator` instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score, roc_auc_score

from defectlens.scoring import best_f1
from defectlens.taxonomy import UNKNOWN  # re-exported; defined once, with the taxonomy that reserves the name

__all__ = [
    "UNKNOWN",
    "DetectionMetrics",
    "OperatingPoint",
    "PixelAccumulator",
    "PixelMetrics",
    "aupro",
    "confusion",
    "detection_metrics",
    "detection_metrics_from_pixels",
    "f1_max",
    "f1_max_threshold",
    "flagged_share",
    "image_ap",
    "image_auroc",
    "operating_point",
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
    y, s = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if y.ndim > 1 or s.ndim > 1:
        # One per image: a (1, N) table or a map had been flattened without a word (API probe 2026-12-06); pixel metrics
        # take maps (pixel_auroc).
        raise ValueError(f"image metrics take one label and one score per image (1-D), got shapes {y.shape} and {s.shape}: "
                         "pass flat sequences (for maps and masks, use the pixel metrics)")
    y, s = y.ravel(), s.ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    if not np.isfinite(s).all():
        # sklearn would raise a less specific error deep inside; say what is wrong here.
        raise ValueError("scores contain NaN or infinite values")
    if y.dtype == bool:
        return y, s
    # One label rule with calibrate (binary_labels): "good"/"crack" had read as two defective images and the AUROC as
    # nan without a word, and a 2 as defective (API probe 2026-12-06).
    numeric = np.issubdtype(y.dtype, np.number) and not np.issubdtype(y.dtype, np.complexfloating)
    wrong = ~np.isin(y, (0, 1)) if numeric else np.array([not (isinstance(v, bool | int | float | np.number | np.bool_) and v in (0, 1)) for v in y])
    if wrong.any():
        first = int(np.flatnonzero(wrong)[0])
        value = y[first].item() if isinstance(y[first], np.generic) else y[first]
        raise ValueError(f"label {first} is {value!r}: give 0 (good) or 1 (defective), or True / False, per image")
    return y != 0, s


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

    Returns ``nan`` when ``labels`` hold only one class (or are empty), as AP does: without a good
    sample every threshold that flags all reaches 1, which says nothing of the detector (and
    :func:`detection_metrics` had said nan of the same scores).
    """
    return f1_max_threshold(labels, scores)[0]


def f1_max_threshold(labels, scores) -> tuple[float, float]:
    """``(f1, threshold)``: the best F1 and a threshold reaching it with ``scores >= threshold``.

    When several thresholds reach the same F1 the lowest one is returned. Returns ``(nan, nan)``
    when ``labels`` hold only one class (see :func:`f1_max`).
    """
    y, s = _image_arrays(labels, scores)
    return _f1_max_threshold(y, s) if _both_classes(y) else (math.nan, math.nan)


# --------------------------------------------------------------------------------------------
# Operating point (image level)
# --------------------------------------------------------------------------------------------
#
# Unlike the curve metrics above, an operating point is a decision: an image is flagged when its
# score is strictly above the threshold, the rule of ``Inspector.decide``, so that the rates
# reported here are the ones a line running that threshold would see.


def flagged_share(scores, threshold: float) -> float:
    """Share of ``scores`` strictly above ``threshold`` (the share flagged); ``nan`` when empty."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim > 1:
        raise ValueError(f"flagged_share takes one score per image (1-D), got shape {s.shape}")
    s = s.ravel()
    return float(np.count_nonzero(s > threshold) / s.size) if s.size else math.nan


@dataclass(frozen=True)
class OperatingPoint:
    """What one image threshold does on a labelled set (images flagged where ``score > threshold``)."""

    threshold: float
    recall: float
    """Share of the defective images flagged (``nan`` without defective images)."""
    false_alarm_rate: float
    """Share of the good images flagged (``nan`` without good images)."""

    def to_json(self) -> dict:
        """The fields as plain floats, ``nan`` as ``None``."""
        return {k: (None if math.isnan(v) else float(v)) for k, v in asdict(self).items()}


def operating_point(labels, scores, threshold: float) -> OperatingPoint:
    """Recall and false-alarm rate of ``threshold`` on labelled image scores (``score > threshold`` flags).

    A ``nan`` threshold (none could be set) gives ``nan`` rates, not a share of zero.
    """
    y, s = _image_arrays(labels, scores)
    return verdict_point(threshold, y, s > threshold)


def verdict_point(threshold: float, labels: npt.ArrayLike, verdicts: npt.ArrayLike) -> OperatingPoint:
    """Recall and false-alarm rate of per-image ``verdicts`` (True = flagged) at ``threshold``: as
    `inspect` decides, its threshold and the frame check on images unlike every normal one
    (:func:`operating_point` is this with ``score > threshold`` as the verdicts)."""
    if math.isnan(threshold):
        return OperatingPoint(math.nan, math.nan, math.nan)
    # Labels and verdicts checked as the image metrics check theirs: one per image, 1-D (a table had been flattened).
    try:
        y, as_numbers = _image_arrays(labels, np.asarray(verdicts, bool))
    except ValueError as exc:
        raise ValueError(str(exc).replace("scores", "verdicts").replace("one score", "one verdict")) from None
    flagged = as_numbers != 0
    return OperatingPoint(
        float(threshold),
        float(flagged[y].mean()) if y.any() else math.nan,
        float(flagged[~y].mean()) if (~y).any() else math.nan,
    )


# --------------------------------------------------------------------------------------------
# Pixel level
# --------------------------------------------------------------------------------------------
#
# The pixel metrics of a whole test split cover tens of millions of pixels (80 M on magnetic
# tile). Keeping every map and mask and flattening them again for sklearn cost several GiB, so
# pixels are reduced as they arrive to one uint64 per pixel (PixelAccumulator), sorted once in
# place, and every metric is read off a single chunked sweep from the highest score down.


_SIGN = np.uint32(0x80000000)
_LOW = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)
_BLOCK_KEYS = 1 << 23
"""Keys per storage block (64 MiB): above glibc's largest mmap threshold, so a freed block goes
straight back to the operating system instead of staying in the heap."""
_SWEEP_CHUNK = 1 << 20
"""Pixels per step of the metric sweep. A step holds about fifteen 8-byte temporaries of this
length (about 120 MiB); at 4 M pixels they raised magnetic tile's evaluation peak by ~0.8 GiB."""


def _score_keys(scores: np.ndarray) -> np.ndarray:
    """uint64 keys whose unsigned order is the order of the float32 ``scores``, score bits in the high half."""
    # -0.0 + 0.0 is +0.0: equal scores must get equal keys, since ties switch together.
    bits = (scores + np.float32(0.0)).view(np.uint32)
    # IEEE floats to unsigned order: negatives have every bit flipped, the rest only the sign bit.
    ordered = np.where(bits & _SIGN, ~bits, bits | _SIGN)
    return ordered.astype(np.uint64) << _SHIFT


@dataclass(frozen=True)
class PixelMetrics:
    """The pixel-level metrics of one set of images; any may be ``nan`` (undefined)."""

    auroc: float
    ap: float
    f1max: float
    aupro: float


class PixelAccumulator:
    """The pixels of a set of images, added one ``(mask, anomaly_map)`` pair at a time, for the pixel metrics.

    Each pixel is stored as one uint64 sort key: its float32 score, mapped to bits whose unsigned
    order is the score order, in the high half; its ground-truth region id in the low half (0 on
    normal pixels; regions are 8-connected and numbered across the whole set). That is 8 bytes
    a pixel, where keeping the map, mask and region labels took 9 and flattening them again 9
    more. Keys fill fixed-size blocks of ``block_keys`` keys, so no growing array is ever copied.

    The numbers are those of :func:`pixel_auroc`, :func:`pixel_ap`, :func:`pixel_f1_max` and
    :func:`aupro` on the same pairs (those functions are built on this class).
    """

    def __init__(self, block_keys: int = _BLOCK_KEYS) -> None:
        self._block_keys = int(block_keys)
        self._blocks: list[np.ndarray] = []
        self._fill = 0
        """Keys used in the last block."""
        self._sorted = False
        self._region_sizes: list[np.ndarray] = []
        self.n_images = 0
        self.n_pixels = 0
        self.n_defect = 0
        """Ground-truth defect pixels."""
        self.n_regions = 0

    def add(self, mask, anomaly_map, stride: int = 1) -> None:
        """Add one image: a bool (or 0/non-0) ``mask`` and a float ``anomaly_map`` of the same 2-D shape.

        With ``stride`` > 1 the map is the mask's every ``stride``-th pixel along both axes (a
        large image's working view, :func:`~defectlens.detect.maps.working_view`): the mask's
        regions are found on the whole mask and only then read on the same lattice, so a thin
        crack stays one region (found on the lattice, a commutator crack read at every 2nd pixel
        fell into pieces and AUPRO moved by 0.075). A region no lattice pixel falls on is left out.

        The map's values are stored as float32. Raises ``ValueError`` (naming the image's index
        in this accumulator) for mismatched or non-2-D shapes and NaN or infinite values.
        """
        m, a = np.asarray(mask), np.asarray(anomaly_map)
        i = self.n_images
        if m.ndim != 2:
            raise ValueError(f"mask and anomaly map {i} must be 2-D (H, W), got shape {m.shape}")
        if m[::stride, ::stride].shape != a.shape:
            raise ValueError(f"mask and anomaly map {i} differ in shape: {m[::stride, ::stride].shape} vs {a.shape}")
        scores = a.astype(np.float32, copy=False).ravel()
        # Checked after the cast: a float64 beyond float32's range becomes inf here.
        if not np.isfinite(scores).all():
            raise ValueError(f"anomaly map {i} contains NaN or infinite values")
        keys = _score_keys(scores)
        defect = m if m.dtype == bool else m != 0
        if defect.any():
            labeled, n = ndimage.label(defect, structure=_REGION_STRUCTURE)
            if stride > 1:
                labeled = labeled[::stride, ::stride]
                present = np.unique(labeled[labeled > 0])
                renumber = np.zeros(n + 1, labeled.dtype)
                renumber[present] = np.arange(1, present.size + 1, dtype=labeled.dtype)
                labeled, n = renumber[labeled], int(present.size)
            flat = labeled.ravel()
            inside = flat > 0
            # Offset the per-image ids so that every region of the whole set has its own id.
            keys[inside] |= (flat[inside] + self.n_regions).astype(np.uint64)
            self._region_sizes.append(np.bincount(flat, minlength=n + 1)[1:])
            self.n_regions += n
            self.n_defect += int(np.count_nonzero(inside))
        self._append(keys)
        self.n_images += 1
        self.n_pixels += keys.size

    @property
    def nbytes(self) -> int:
        """Bytes held for the pixels (allocated blocks)."""
        return sum(b.nbytes for b in self._blocks)

    def _append(self, keys: np.ndarray) -> None:
        self._sorted = False
        pos = 0
        while pos < keys.size:
            if not self._blocks or self._fill == self._blocks[-1].size:
                self._blocks.append(np.empty(self._block_keys, np.uint64))
                self._fill = 0
            block = self._blocks[-1]
            take = min(keys.size - pos, block.size - self._fill)
            block[self._fill : self._fill + take] = keys[pos : pos + take]
            self._fill += take
            pos += take

    def _sorted_keys(self) -> np.ndarray:
        """All keys in one array, sorted ascending in place (kept as the only block for later calls)."""
        if not self._sorted:
            keys = np.empty(self.n_pixels, np.uint64)
            start = 0
            blocks, self._blocks = self._blocks, []
            while blocks:
                # Each block is dropped as soon as it is copied: the peak is the keys plus one block.
                block = blocks.pop(0)
                used = min(block.size, self.n_pixels - start)
                keys[start : start + used] = block[:used]
                start += used
                del block
            keys.sort()
            self._blocks, self._fill, self._sorted = [keys], keys.size, True
        return self._blocks[0] if self._blocks else np.zeros(0, np.uint64)

    def metrics(self, fpr_limit: float = 0.3) -> PixelMetrics:
        """Pixel AUROC, AP, F1-max and AUPRO (up to ``fpr_limit``) of everything added so far."""
        if not 0.0 < fpr_limit <= 1.0:
            raise ValueError(f"fpr_limit must lie in (0, 1], got {fpr_limit}")
        sizes = np.concatenate(self._region_sizes) if self._region_sizes else np.zeros(0, np.int64)
        return _sweep(self._sorted_keys(), self.n_defect, sizes, fpr_limit)


class _RocArea:
    """The area under the ROC curve, summed chunk by chunk in exact integers.

    Each step from ``(fp0, tp0)`` to ``(fp1, tp1)`` adds the trapezoid ``(fp1 - fp0) * (tp0 + tp1)``
    (twice its area in count units); the AUROC is the total over ``2 * positives * negatives``,
    divided once. That is the Mann-Whitney statistic, exactly rounded. Keeping the curve's corner
    points instead (as ``roc_curve`` does) held about 16 bytes a pixel on maps whose scores are
    nearly all distinct: 1.1 GiB on magnetic tile's 80 M pixels, most of evaluate's peak.
    sklearn's ``roc_auc_score`` sums the same trapezoids in floating point, so the two may differ
    in the last bits.
    """

    def __init__(self) -> None:
        self.twice_area = 0
        """Python int: no overflow, however many pixels."""
        self.last = (0, 0)

    def add(self, fps: np.ndarray, tps: np.ndarray) -> None:
        fp_prev = np.concatenate(([self.last[0]], fps[:-1]))
        tp_prev = np.concatenate(([self.last[1]], tps[:-1]))
        # Per chunk in int64 (each term is at most 2 * positives * chunk, far from overflowing),
        # across chunks in a Python int.
        self.twice_area += int(np.sum((fps - fp_prev) * (tps + tp_prev), dtype=np.int64))
        self.last = (int(fps[-1]), int(tps[-1]))

    def auroc(self) -> float:
        fp, tp = self.last
        return self.twice_area / (2 * fp * tp)


def _sweep(keys: np.ndarray, n_pos: int, region_sizes: np.ndarray, fpr_limit: float) -> PixelMetrics:
    """Every pixel metric from keys sorted ascending, walking them from the highest score down.

    Lowering the threshold past a run of equal scores adds that run to the predicted-defective
    set; the (fp, tp, PRO) after each run is one point of the curves. The formulas are
    sklearn's (``precision_recall_curve``, ``roc_curve``) and MVTec's (PRO), on exact integer
    counts; sums taken chunk by chunk may differ from one whole-array sum in the last bit.
    """
    n = keys.size
    n_neg = n - n_pos
    both = n_pos > 0 and n_neg > 0
    n_regions = region_sizes.size
    with_pro = n_regions > 0 and n_neg > 0
    # A pixel of region k raises the PRO (mean covered fraction over regions) by 1/(size_k * n_regions).
    weight = np.concatenate(([0.0], 1.0 / (region_sizes.astype(np.float64) * max(1, n_regions))))
    desc = keys[::-1]
    roc = _RocArea()
    f1_best, ap_sum, last_recall = -math.inf, 0.0, 0.0
    pro_total, area, last_x, last_y, pro_done = 0.0, 0.0, 0.0, 0.0, False
    tp_before = 0
    a = 0
    while a < n:
        b = min(n, a + _SWEEP_CHUNK)
        if b < n:
            # Extend the chunk to the end of its last run of equal scores: a run switches as one.
            run_start = (desc[b - 1] >> _SHIFT) << _SHIFT
            b = n - int(np.searchsorted(keys, run_start, side="left"))
        chunk = desc[a:b]
        high = chunk >> _SHIFT
        region = (chunk & _LOW).astype(np.intp)
        del chunk
        ends = np.flatnonzero(high[1:] != high[:-1])
        ends = np.append(ends, high.size - 1)
        del high
        tp_cum = np.cumsum(region != 0, dtype=np.int64)
        tp_cum += tp_before
        tps = tp_cum[ends]
        fps = ends + (a + 1) - tps
        tp_before = int(tp_cum[-1])
        del tp_cum
        if n_pos > 0:
            tps_f, fps_f = tps.astype(np.float64), fps.astype(np.float64)
            precision = tps_f / (tps_f + fps_f)
            recall = tps_f / n_pos
            denom = precision + recall
            f1 = np.divide(2.0 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
            f1_best = max(f1_best, float(f1.max()))
            if both:
                previous = np.concatenate(([last_recall], recall[:-1]))
                ap_sum += float(np.sum((recall - previous) * precision))
                last_recall = float(recall[-1])
                roc.add(fps, tps)
        if with_pro and not pro_done:
            steps = weight[region]
            steps[0] += pro_total  # one running sum across chunks, as a single cumsum would give
            np.cumsum(steps, out=steps)
            pro_total = float(steps[-1])
            xs = np.clip(fps / n_neg, 0.0, 1.0)
            ys = np.clip(steps[ends], 0.0, 1.0)
            del steps
            area, last_x, last_y, pro_done = _area_step(area, last_x, last_y, xs, ys, fpr_limit)
        del region
        a = b
    if with_pro and not pro_done:
        # The curve ends at (1, 1), as in the reference, so the limit always lies inside it.
        area, *_ = _area_step(area, last_x, last_y, np.ones(1), np.ones(1), fpr_limit)
    return PixelMetrics(
        auroc=roc.auroc() if both else math.nan,
        ap=max(0.0, ap_sum) if both else math.nan,
        f1max=f1_best if both else math.nan,  # as the image F1: with no normal pixel, flagging all is a trivial 1
        aupro=float(area / fpr_limit) if with_pro else math.nan,
    )


def _area_step(
    area: float, x0: float, y0: float, xs: np.ndarray, ys: np.ndarray, x_max: float
) -> tuple[float, float, float, bool]:
    """Extend the trapezoid area of a curve from its last point ``(x0, y0)`` over the points
    ``(xs, ys)`` (x non-decreasing), up to ``x_max``; returns ``(area, last x, last y, done)``.

    As MVTec's ``generic_util.trapezoid``: points up to ``x_max`` count in full, and the curve's
    value at ``x_max`` is linearly interpolated inside the segment that crosses it.
    """
    ins = int(np.searchsorted(xs, x_max, side="right"))  # first index with x > x_max
    px = np.concatenate(([x0], xs[:ins]))
    py = np.concatenate(([y0], ys[:ins]))
    area += float(np.sum(0.5 * (py[1:] + py[:-1]) * np.diff(px)))
    if ins == xs.size:
        return area, float(px[-1]), float(py[-1]), False
    if px[-1] < x_max:
        # The limit falls inside the segment (px[-1], xs[ins]): add the part of it up to x_max.
        xa, xb, ya, yb = px[-1], xs[ins], py[-1], ys[ins]
        y_at = ya + (yb - ya) * (x_max - xa) / (xb - xa)
        area += 0.5 * (ya + y_at) * (x_max - xa)
    return area, float(px[-1]), float(py[-1]), True


def _accumulate(masks: Sequence, maps: Sequence) -> PixelAccumulator:
    """A :class:`PixelAccumulator` of the pairs (``ValueError`` when the two lists differ in length)."""
    if len(masks) != len(maps):
        raise ValueError(f"got {len(masks)} masks but {len(maps)} anomaly maps")
    pixels = PixelAccumulator()
    for m, a in zip(masks, maps, strict=True):
        pixels.add(m, a)
    return pixels


def pixel_auroc(masks: Sequence, maps: Sequence) -> float:
    """Pixel-wise AUROC over all pixels of all ``(mask, anomaly_map)`` pairs.

    ``masks`` are bool HxW ground truths, ``maps`` float HxW anomaly maps of the same shape
    (sizes may differ between images). Raises ``ValueError`` naming the index of the first pair
    whose shapes differ. Returns ``nan`` when the pixels hold only one class.
    """
    return _accumulate(masks, maps).metrics().auroc


def pixel_ap(masks: Sequence, maps: Sequence) -> float:
    """Pixel-wise average precision over all pairs; see :func:`pixel_auroc` for inputs and errors."""
    return _accumulate(masks, maps).metrics().ap


def pixel_f1_max(masks: Sequence, maps: Sequence) -> float:
    """The best pixel-wise F1 over all thresholds; see :func:`pixel_auroc` for inputs and errors.

    Returns ``nan`` when the pixels hold only one class.
    """
    return _accumulate(masks, maps).metrics().f1max


# --------------------------------------------------------------------------------------------
# AUPRO
# --------------------------------------------------------------------------------------------


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
    return _accumulate(masks, maps).metrics(fpr_limit).aupro


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
    """All image and pixel metrics at once, from lists of ``(mask, anomaly_map)`` pairs.

    With no pairs the pixel metrics are ``nan``. See :func:`detection_metrics_from_pixels` to add
    the pixels as they are produced instead of holding every map.
    """
    return detection_metrics_from_pixels(image_labels, image_scores, _accumulate(masks, maps))


def detection_metrics_from_pixels(image_labels, image_scores, pixels: PixelAccumulator) -> DetectionMetrics:
    """All image metrics, plus the pixel metrics and AUPRO (FPR up to 0.3) of ``pixels``, from one sweep."""
    y, s = _image_arrays(image_labels, image_scores)
    px = pixels.metrics(0.3)
    return DetectionMetrics(
        image_auroc=_auroc(y, s),
        image_ap=_ap(y, s),
        # Without good images, flagging every image is a "perfect" F1 (it read 1.0 beside AUROC and AP n/a).
        image_f1max=_f1_max_threshold(y, s)[0] if _both_classes(y) else math.nan,
        pixel_auroc=px.auroc,
        pixel_ap=px.ap,
        pixel_f1max=px.f1max,
        aupro=px.aupro,
    )
