"""Decision thresholds without defect labels, and F1-optimal ones when labels exist.

A detector fitted on normal images only has no defective examples to set its threshold on,
so by default we hold out some normal images, score them, and put the image threshold at a
high quantile of their scores (a target false-alarm rate) — the same for pixels. When a
labelled validation set is available, the F1-optimal thresholds can replace them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from defectlens.scoring import best_f1
from defectlens.types import Thresholds

DEFAULT_FALSE_ALARM_TARGET = 0.03
"""Share of normal parts the label-free threshold is set to flag. The rule: the largest target
that keeps the false alarms measured on every shared part's test good images within the 5 % a
line accepts, wherever the target is what moves them. Measured with thresholds from every normal
image (2026-12-04, README), recall / false alarms at 2 / 3 / 4 %: magnetic tile 0.71 / 2.0 %, 0.79 /
2.6 %, 0.82 / 3.4 %; commutator 0.77 / 5.2 %, 0.81 / 5.2 %, 0.81 / 6.2 %; ball screw drive 0.80 /
1.2 %, 0.81 / 2.4 %, 0.81 / 2.4 %; cookie 0.91 / 0 %, 0.97 / 0 %, 1.00 / 7.1 % — 4 % passes 5 % on
commutator and cookie, 3 % keeps every part where 2 % had it (commutator's 5.2 % is a shift between
its training and test good parts, there at any target) and gains recall on all four. Its pixel
threshold (the 99.7th percentile) also typed located examples better on three of four parts. It was
2 % while thresholds rested on 200 re-scored images, when 3 % had flagged up to 7 % on two parts. A
line that wants fewer false alarms sets it lower (`fit --false-alarm-target 0.02`), or moves the
threshold with labelled images (`calibrate`)."""
DEFAULT_QUANTILE = 1.0 - DEFAULT_FALSE_ALARM_TARGET
"""The normal-score quantile that :data:`DEFAULT_FALSE_ALARM_TARGET` puts the threshold at."""
UNIT_QUANTILE = 0.98
"""The normal-score quantile that is one unit when detectors are put on one scale (0 = normal
median, 1 = this quantile; :meth:`NormalStatistics.normalise_score`), whatever false-alarm target
their thresholds are set for: a fused detector's ranking must not move with its threshold. It is
the quantile of the 2 % target the fusion results in the README were measured at."""


def normal_units(scores: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Median of normal scores and one unit: their :data:`UNIT_QUANTILE` less that median (the
    scale detectors are put on together; may be 0 when the scores do not vary)."""
    values = np.asarray(scores, dtype=np.float64)
    median = float(np.median(values))
    return median, float(np.quantile(values, UNIT_QUANTILE)) - median


@dataclass(frozen=True)
class NormalStatistics:
    """Score statistics of held-out normal images; used for thresholds and for normalisation."""

    image_median: float
    image_quantile: float
    pixel_median: float
    pixel_quantile: float
    quantile: float
    n_images: int

    def __post_init__(self) -> None:
        # Read back from hand-editable JSON: a "x" failed mid-batch in the overlay, and NaN drew no heat map.
        for name in ("image_median", "image_quantile", "pixel_median", "pixel_quantile", "quantile"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if isinstance(self.n_images, bool) or not isinstance(self.n_images, int) or self.n_images < 0:
            raise ValueError(f"n_images must be a whole number >= 0, got {self.n_images!r}")

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict) -> NormalStatistics:
        """Inverse of :meth:`to_json`."""
        return cls(**data)

    def normalise_score(self, score: float) -> float:
        """Image score in normal-relative units: 0 = normal median, 1 = the normal quantile."""
        return float((score - self.image_median) / max(self.image_quantile - self.image_median, 1e-12))

    def normalise_map(self, anomaly_map: np.ndarray) -> np.ndarray:
        """Map in normal-relative units (float32): 0 = normal median pixel, 1 = the pixel quantile."""
        span = max(self.pixel_quantile - self.pixel_median, 1e-12)
        return ((np.asarray(anomaly_map, dtype=np.float32) - self.pixel_median) / span).astype(np.float32)


MAX_STATISTIC_VALUES = 2_000_000


def subsample(values: np.ndarray, limit: int = MAX_STATISTIC_VALUES) -> np.ndarray:
    """At most ``limit`` of ``values``, drawn without replacement (seeded): a median or
    quantile of a few million pixels is as good as of all of them, and far cheaper."""
    if values.size <= limit:
        return values
    return np.random.default_rng(0).choice(values, limit, replace=False)


def sample_map_values(maps: Sequence[np.ndarray], limit: int = MAX_STATISTIC_VALUES) -> np.ndarray:
    """The values of ``maps`` (float64): all of them when there are at most ``limit``, else
    ``limit`` drawn uniformly with replacement (seeded), gathered map by map.

    Never concatenates the maps: on 600 magnetic tiles (96 M values) the concatenation, its
    float64 copy and a draw without replacement (a shuffled index of every value) raised a fit's
    peak memory by about 1 GiB, for a quantile that 2 M draws estimate as well."""
    sizes = np.array([np.size(m) for m in maps], np.int64)
    total = int(sizes.sum())
    if total <= limit:
        return np.concatenate([np.ravel(m) for m in maps]).astype(np.float64) if len(maps) else np.zeros(0)
    picks = np.sort(np.random.default_rng(0).integers(0, total, limit))
    ends = np.cumsum(sizes)
    bounds = np.searchsorted(picks, ends)
    out = np.empty(limit, np.float64)
    start_pick, start_value = 0, 0
    for m, end_pick, end_value in zip(maps, bounds, ends, strict=True):
        if end_pick > start_pick:
            out[start_pick:end_pick] = np.ravel(m)[picks[start_pick:end_pick] - start_value]
        start_pick, start_value = int(end_pick), int(end_value)
    return out


def normal_statistics(
    image_scores: Sequence[float], maps: Sequence[np.ndarray], quantile: float = DEFAULT_QUANTILE
) -> NormalStatistics:
    """Summarise held-out normal images' image scores and map values at ``quantile``."""
    if len(image_scores) == 0:
        raise ValueError("need at least one held-out normal image to calibrate thresholds")
    if not 0.5 <= quantile < 1.0:
        raise ValueError(f"quantile must be in [0.5, 1), got {quantile}")
    scores = np.asarray(image_scores, dtype=np.float64)
    pixels = sample_map_values(maps)
    return NormalStatistics(
        image_median=float(np.median(scores)),
        image_quantile=float(np.quantile(scores, quantile)),
        pixel_median=float(np.median(pixels)),
        # Pixel false alarms are cheaper per pixel but far more numerous: use a stricter tail.
        pixel_quantile=float(np.quantile(pixels, 1.0 - (1.0 - quantile) / 10.0)),
        quantile=quantile,
        n_images=len(scores),
    )


def thresholds_from_normal(stats: NormalStatistics) -> Thresholds:
    """Label-free thresholds: the image and pixel quantiles of held-out normal images."""
    return Thresholds(image=stats.image_quantile, pixel=stats.pixel_quantile, source="normal-quantile")


def f1_optimal_threshold(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """A threshold that maximises F1 on labelled data, for the rule ``score > t`` is positive.

    It lies midway in the gap between the lowest score taken as positive and the next lower
    score, not on a score itself: the same image scored again in another batch can differ in
    the last float digits, and a threshold on its exact score would flip its verdict.
    """
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.all() or not y.any():
        raise ValueError("F1-optimal calibration needs both normal and defective examples")
    lowest_positive = best_f1(y, s)[1]
    below = s[s < lowest_positive]
    if below.size == 0:
        # Every image flagged: under the lowest score by a margin, not one float step (threshold probe 2026-12-06: the saved
        # 52.50807571411132 beside a score of 52.50807571411133), no wider than half the way to the next score up.
        higher = s[s > lowest_positive]
        return float(lowest_positive - _margin(lowest_positive, float(higher.min() - lowest_positive) if higher.size else None))
    midway = float((lowest_positive + below.max()) / 2.0)
    # Scores a float step apart: the midpoint rounds onto one of them, and on the lowest positive it flagged none (probe).
    return midway if midway < lowest_positive else float(np.nextafter(lowest_positive, -np.inf))


RESCORE_MARGIN = 1e-6
"""Relative margin that a threshold with no score on one side of it keeps from the score on the other: more than the
last float digits by which an image scored in another batch, or by another runtime, can differ (float32 maps: about 1e-7)."""


def _margin(score: float, spacing: float | None) -> float:
    """:data:`RESCORE_MARGIN` of ``score`` (of 1 for scores under 1), and no more than half ``spacing`` (the distance to the
    nearest other score on that side, when there is one)."""
    margin = RESCORE_MARGIN * max(abs(score), 1.0)
    return min(margin, spacing / 2.0) if spacing else margin


def highest_unflagged_score(normal_scores: Sequence[float] | np.ndarray, max_false_alarm_rate: float, already_flagged: int = 0) -> float:
    """The highest normal score that must stay below a threshold flagging at most
    ``max_false_alarm_rate`` of the normal images (rule ``score > t``): with ``n`` scores at most
    ``floor(rate * n)`` may lie above it, so it is the ``(floor(rate * n) + 1)``-th largest.

    ``already_flagged`` normal images beside ``normal_scores`` are flagged at any threshold (the
    frame check's): they count among the ``n`` and spend the allowance first. When they alone
    use it up, no scored normal image may be flagged: the highest score is returned (the best
    a threshold can do; the caller says the target is out of reach, see :func:`allowed_false_alarms`)."""
    s = np.asarray(normal_scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("a false-alarm target needs at least one normal image")
    allowed = max(0, allowed_false_alarms(s.size + already_flagged, max_false_alarm_rate) - already_flagged)
    return float(np.partition(s, s.size - 1 - allowed)[s.size - 1 - allowed])


def allowed_false_alarms(n_normal: int, max_false_alarm_rate: float) -> int:
    """How many of ``n_normal`` normal images a threshold may flag at ``max_false_alarm_rate``."""
    if not 0.0 <= max_false_alarm_rate < 1.0:
        raise ValueError(f"the false-alarm rate must be in [0, 1), got {max_false_alarm_rate}")
    # The tolerance keeps 0.29 * 100 (28.999999999999996 in floats) at 29 allowed alarms.
    return math.floor(max_false_alarm_rate * n_normal + 1e-9)


def step_of(n_images: int) -> str:
    """One image's share of ``n_images`` as a percentage, to a tenth where a whole one would round it ('12.5%' for 8:
    '12%' had been said beside a table reading 12.5 %, README audit)."""
    share = 100 / n_images
    return f"{share:.0f}%" if abs(share - round(share)) < 0.05 else f"{share:.1f}%"


def too_few_for_target(n_normal: int, target: float | None) -> str | None:
    """What ``n_normal`` good images cannot show of a false-alarm ``target``, or None: one image
    is a step of ``1 / n_normal``, and a target finer than that passes every one of them (the
    threshold is then their maximum or near it). One rule for `fit` and `calibrate`."""
    if target is None or n_normal <= 0 or not 0 < target < 1 / n_normal:
        return None
    return (f"{n_normal} good image(s) show false alarms only in steps of {step_of(n_normal)}, coarser than the target "
            f"{target:g} (at least {math.ceil(1 / target)} show the target)")


MIN_DEFECTIVE_FOR_RECALL = 10
"""Defective images below which calibrating says its recall is a coarse guide (steps of 10 % or more)."""


def thin_evidence(n_good: int, n_defective: int, target: float | None) -> str | None:
    """What a labelled set is too small to show, or None: a false-alarm target finer than one good image in ``n_good``, a
    recall in steps of one defective image in fewer than ten. A threshold set on 13 good and 1 defective image read as
    certain as one set on hundreds. One rule for `calibrate` and :meth:`~defectlens.Inspector.calibrate`, each adding its
    own way to check it (the method had said nothing: README probe 2026-12-06)."""
    problems = []
    if coarse := too_few_for_target(n_good, target):
        problems.append(f"{coarse}: the new threshold passes every one of them")
    if n_defective < MIN_DEFECTIVE_FOR_RECALL:
        problems.append(f"{n_defective} defective image(s) give recall in steps of {step_of(n_defective)}")
    if not problems:
        return None
    return "; ".join(problems) + " — the new threshold rests on few parts"


def threshold_for_false_alarms(
    normal_scores: Sequence[float] | np.ndarray,
    max_false_alarm_rate: float,
    other_scores: Sequence[float] | np.ndarray = (),
    already_flagged: int = 0,
) -> float:
    """The lowest image threshold (rule ``score > t`` is defective) at which at most
    ``max_false_alarm_rate`` of the normal images are flagged: ``normal_scores`` and
    ``already_flagged`` more normal images flagged whatever their score (the frame check's),
    which spend the budget first (see :func:`highest_unflagged_score`).

    Like :func:`f1_optimal_threshold` it lies in a gap between scores, never on one: above the
    highest normal score that must pass (:func:`highest_unflagged_score`) by half the gap to the
    next higher score of any image (``other_scores`` — the defective ones — included, so no
    defective image that the lowest such threshold would catch is lost to the margin), and by no
    more than half the spacing of the normal scores just below it. The cap matters with few
    defective images: the next score above can lie far up, and the gap's midpoint there passed
    defects the target allowed catching (13 good and 1 defective ball screws moved a threshold
    from 38.4 to 47.8, test recall 0.81 → 0.66).
    """
    normal = np.asarray(normal_scores, dtype=np.float64).ravel()
    floor = highest_unflagged_score(normal, max_false_alarm_rate, already_flagged)
    every = np.concatenate([normal, np.asarray(other_scores, dtype=np.float64)])
    above = every[every > floor]
    below = normal[normal < floor]
    if above.size == 0:
        # Above every score: by a margin, not one float step (threshold probe 2026-12-06), as in the gap's rule below.
        return float(floor + _margin(floor, float(floor - below.max()) if below.size else None))
    gap = float(above.min() - floor)
    if below.size:
        gap = min(gap, float(floor - below.max()))
    return float(floor + gap / 2.0)


PIXEL_SAMPLE = 4_000_000
"""Pixels drawn (seeded) to set a pixel threshold on labelled images: its quantile needs no more."""


def pixel_sample(mask: np.ndarray, anomaly_map: np.ndarray, n_like: int) -> tuple[np.ndarray, np.ndarray]:
    """An image's ground-truth pixels and map values for the pixel threshold, thinned (seeded) to
    its share of :data:`PIXEL_SAMPLE` among the ``n_like`` images of its label, so that no image
    weighs by its size. One rule for `defectlens calibrate` (which streams its images) and
    :meth:`~defectlens.inspector.Inspector.calibrate`."""
    keep = subsample(np.arange(mask.size), PIXEL_SAMPLE // max(1, n_like) + 1)
    return np.asarray(mask, bool).ravel()[keep], np.asarray(anomaly_map, np.float32).ravel()[keep]


def labelled_pixels(defective: bool, mask: np.ndarray | None, anomaly_map: np.ndarray, n_like: int) -> tuple[np.ndarray, np.ndarray] | None:
    """What one labelled image gives the pixel threshold (:func:`pixel_sample`): a good image's map as all normal, a
    defective one's as its ``mask`` marks it, or None for a defective image without a mask or with an empty one (its
    pixels, all counted normal, had moved a pixel threshold: it counts for the image threshold only). A good image's mask
    that marks a defect is a :class:`ValueError`. One rule for `defectlens calibrate` and
    :meth:`~defectlens.inspector.Inspector.calibrate`, which had each their own (they set 60.51 and 61.03 on one set)."""
    if not defective:
        require_clear_mask(mask)
        return pixel_sample(np.zeros(anomaly_map.shape, bool), anomaly_map, n_like)
    if mask is None or not mask.any():
        return None
    return pixel_sample(mask, anomaly_map, n_like)


def require_clear_mask(mask: np.ndarray | None) -> None:
    """Refuse (:class:`ValueError`) the mask of an image labelled good that marks a defect: its "defect" pixels had been
    taken as a defect's, and one such mask moved a pixel threshold 59.7 → 25.6."""
    if mask is not None and mask.any():
        raise ValueError(f"its mask marks {int(np.count_nonzero(mask))} defective pixel(s) on an image labelled good: fix its label or its mask")


def calibration_source(rule: str, n_good: int, n_defective: int, pixel_kept: bool = False) -> str:
    """How calibrated thresholds were set, as the card and the inspections record it: 'f1-optimal (calibrate: 13 good, 1
    defective)', '…; pixel threshold kept)' where no mask set the pixel one (it had been said set by the calibration too;
    regression probe 2026-12-07)."""
    return f"{rule} (calibrate: {n_good} good, {n_defective} defective{'; pixel threshold kept' if pixel_kept else ''})"


def set_by_calibration(source: str) -> bool:
    """Whether thresholds of this ``source`` were set by a calibration on labelled images (:func:`calibration_source`)."""
    return " (calibrate: " in source and source.endswith(")")


def binary_labels(labels: Sequence[object]) -> np.ndarray:
    """``labels`` as a bool array (True = defective), each one 0, 1 or a bool: a string such as
    ``"crack"`` had been read as "no defective example", and a 2 as defective, without a word."""
    out = np.zeros(len(labels), bool)
    for i, label in enumerate(labels):
        if isinstance(label, bool | np.bool_) or (isinstance(label, int | np.integer) and label in (0, 1)):
            out[i] = bool(label)
        else:
            raise ValueError(f"label {i} is {label!r}: give 0 (good) or 1 (defective) per image")
    return out


def image_threshold_from_labels(
    labels: Sequence[object] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    unlike: Sequence[bool] | np.ndarray | None = None,
    max_false_alarms: float | None = DEFAULT_FALSE_ALARM_TARGET,
) -> tuple[float, str]:
    """The image threshold a labelled set gives, and how it was set: flagging at most
    ``max_false_alarms`` of its good images (:func:`threshold_for_false_alarms`), or F1-optimal when
    it is None. ``unlike``: images the frame check flags at any threshold, whose verdicts are fixed
    (ranked above every score for F1; spending the false-alarm allowance first otherwise). One rule
    for `defectlens calibrate` and :meth:`~defectlens.inspector.Inspector.calibrate`."""
    y = binary_labels(list(labels))
    s = np.asarray(scores, np.float64)
    fixed = np.zeros(len(s), bool) if unlike is None else np.asarray(unlike, bool)
    if not (len(y) == len(s) == len(fixed)):
        raise ValueError(f"{len(y)} labels for {len(s)} scores")
    for wanted, what in ((False, "good"), (True, "defective")):
        if not (y == wanted).any():
            raise ValueError(f"calibration needs good and defective images; there is no {what} one")
    if max_false_alarms is None:
        return f1_optimal_threshold(y, np.where(fixed, s.max() + 1.0, s)), "f1-optimal"
    passing = ~fixed & ~y
    if not passing.any():
        raise ValueError(f"all {int((fixed & ~y).sum())} good image(s) are unlike every normal image the model was fitted on (frame check)")
    threshold = threshold_for_false_alarms(s[passing], max_false_alarms, s[~fixed & y], already_flagged=int((fixed & ~y).sum()))
    return threshold, f"false-alarm target {max_false_alarms + 0.0:g}"  # -0 said as 0, however it came



@dataclass(frozen=True)
class LabelledThresholds:
    """What a labelled set sets (:func:`thresholds_from_labels`): the thresholds, with how they were set in their ``source``,
    and what the set is too small to show, or None."""

    thresholds: Thresholds
    thin: str | None
    separation: float
    """The set's image AUROC: under 0.5 its defective images score lower than its good ones (:attr:`looks_swapped`)."""

    @property
    def looks_swapped(self) -> bool:
        """Whether the defective images score lower than the good ones: labels (or folders) swapped, most likely. Thresholds
        set on such a set pass real defects: `defectlens calibrate` and :meth:`~defectlens.inspector.Inspector.calibrate`
        refuse them (threshold probe 2026-12-06)."""
        return self.separation < 0.5


def percent(share: float) -> str:
    """A recall or false-alarm rate as a percentage with one decimal ("n/a" where none could be measured: NaN)."""
    return "n/a" if math.isnan(share) else f"{share:.1%}"


def threshold_shift_notes(labels: Sequence[object] | np.ndarray, scores: Sequence[float] | np.ndarray, unlike: Sequence[bool] | np.ndarray,
                          old_image: float, new_image: float, trade: str | None) -> list[str]:
    """What a new image threshold does on its labelled set that a person must hear, against the old one: it flags none of the
    defective images (``trade``: how to trade false alarms for recall, where the threshold was not F1-optimal), or half the
    good ones or more (and more than the old did). Thresholds set so are kept (asked for), and
    said: `defectlens calibrate` as notes, :meth:`~defectlens.inspector.Inspector.calibrate` as warnings (from Python these
    had gone without a word; regression probe 2026-12-06)."""
    from defectlens.evaluate.metrics import verdict_point  # here: scikit-learn stays out of inspection's start-up

    y = binary_labels(list(labels))
    marks, flags = np.asarray(scores, np.float64), np.asarray(unlike, bool)
    before, after = (verdict_point(t, y, (marks > t) | flags) for t in (old_image, new_image))
    n_defective, n_good = int(y.sum()), int((~y).sum())
    notes = []
    if after.recall == 0:
        # A probe's batch model went from 8 % recall to none without a word.
        notes.append(f"the new threshold flags none of the {n_defective} defective image(s) (recall {percent(before.recall)} at the old "
                     f"one): their scores are no higher than the good ones' it must pass{f'; {trade}' if trade else ''}")
    if after.false_alarm_rate >= 0.5 and after.false_alarm_rate > before.false_alarm_rate:
        # --f1 on swapped folders had set a threshold under every good image, with no word (threshold probe 2026-12-06).
        notes.append(f"the new threshold flags {percent(after.false_alarm_rate)} of the {n_good} good image(s) "
                     f"({percent(before.false_alarm_rate)} at the old one): a line would stop that share of its good parts")
    return notes


def thresholds_from_labels(
    labels: Sequence[object] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    unlike: Sequence[bool] | np.ndarray | None,
    pixel_samples: Sequence[tuple[np.ndarray, np.ndarray]],
    max_false_alarms: float | None,
    kept_pixel: float,
) -> LabelledThresholds:
    """The thresholds a labelled set gives: the image one by :func:`image_threshold_from_labels`, the pixel one F1-optimal on
    ``pixel_samples`` (:func:`labelled_pixels` of each image with a usable mask) or ``kept_pixel`` without any, and their
    source (:func:`calibration_source`). The one home of the rule `defectlens calibrate` and
    :meth:`~defectlens.inspector.Inspector.calibrate` follow (code review 2026-12-06: each had put the steps together itself);
    they differ in how they read images and masks and what they say, not in what they set."""
    y = binary_labels(list(labels))
    image_t, how = image_threshold_from_labels(y, scores, unlike, max_false_alarms)
    pixel_t = (f1_optimal_threshold(np.concatenate([t for t, _ in pixel_samples]), np.concatenate([v for _, v in pixel_samples]))
               if pixel_samples else kept_pixel)
    n_good, n_defective = int((~y).sum()), int(y.sum())
    from defectlens.evaluate.metrics import image_auroc  # here: scikit-learn stays out of inspection's start-up

    return LabelledThresholds(Thresholds(image=image_t, pixel=pixel_t, source=calibration_source(how, n_good, n_defective, not pixel_samples)),
                              thin_evidence(n_good, n_defective, max_false_alarms), image_auroc(y, scores))
