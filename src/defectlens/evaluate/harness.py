"""Evaluation harness: run an Inspector over a labelled category and compute the metrics.

Only public stage surfaces are used: the Inspector (encode/detect/locate) and the metrics.
Pixels go into a :class:`~defectlens.evaluate.metrics.PixelAccumulator` batch by batch, so a
whole test split never holds its anomaly maps, masks and region labels at once (magnetic tile:
80 M pixels, several GiB that way).
"""

from __future__ import annotations

import math
import resource
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from defectlens.descriptor import colour_reason_in, grey_reason_in
from defectlens.detect import WORKING_PIXELS, threshold_for_false_alarms, working_stride
from defectlens.detect.calibration import set_by_calibration
from defectlens.detect.frame_check import drift_note
from defectlens.errors import ConfigError, DatasetLayoutError, DefectlensError
from defectlens.evaluate.metrics import (
    DetectionMetrics,
    OperatingPoint,
    PixelAccumulator,
    detection_metrics_from_pixels,
    image_auroc,
    verdict_point,
)
from defectlens.fielddocs import with_field_docs
from defectlens.inspector import Failure, Inspector
from defectlens.io import GOOD, Category, image_area, load_mask
from defectlens.io.dataset import cross_label_copies, fitted_copies, picture_copies, train_test_overlap
from defectlens.io.images import path_is
from defectlens.types import Inspection, Region

Progress = Callable[[int], None]

REFERENCE_FALSE_ALARM_RATE = 0.01
"""False-alarm rate of the reference operating point reported beside the model's own threshold."""
REFERENCE_NOTE = "from test labels, for reference: not a deployable threshold"
"""Said wherever the reference threshold is shown: it was chosen on the very images it is scored on."""
PIXEL_METRICS_BUDGET = 100_000_000
"""Most test pixels the pixel metrics keep (8 bytes each: 0.8 GB): a test set with more pixels than
this in its images' working views has its largest images read on a coarser lattice
(:func:`pixels_per_image`). Every shared category is under it — magnetic tile's 744 tiles hold
80 M pixels (at 50 M its larger tiles were thinned and its pixel AUROC read 0.855 for 0.864)."""


def pixels_per_image(areas: list[int], budget: int | None = None) -> int:
    """The most pixels read of each test image for the pixel metrics: its working view's
    (:data:`~defectlens.detect.WORKING_PIXELS`), or, when the test set's views would pass
    ``budget`` (:data:`PIXEL_METRICS_BUDGET`) together, the largest limit under which they do not
    (small images stay whole: the limit only thins the largest)."""
    budget = PIXEL_METRICS_BUDGET if budget is None else budget

    def total(limit: int) -> int:
        return sum(min(a, limit) for a in areas)

    if total(WORKING_PIXELS) <= budget:
        return WORKING_PIXELS
    low, high = 1, WORKING_PIXELS
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if total(middle) <= budget else (low, middle - 1)
    return low


@dataclass(frozen=True)
class ScoredImage:
    """One evaluated test image: what the metrics and the reports need, without its maps."""

    source: str
    defect_type: str
    score: float
    is_defective: bool
    """The inspector's verdict at its own threshold (and its frame check)."""
    regions: list[Region]
    has_mask: bool
    """Whether its pixels are in the pixel metrics (a defective image without a mask is not)."""
    unlike_normal: bool = False
    """Whether the frame check found the whole image unlike every normal one (defective whatever its score)."""
    grey: bool = False
    """Whether that is because it is grey, where the model was fitted on colour images (:data:`~defectlens.descriptor.GREY_REASON`)."""
    colour: bool = False
    """Whether that is because it is in colour, where the model was fitted on grey images (:data:`~defectlens.descriptor.COLOUR_REASON`)."""
    frame_units: float | None = None
    """How far the image as a whole lies from the normal images (:attr:`~defectlens.types.Inspection.frame_units`), or None."""


@dataclass
class ScoredSet:
    """Per-image records and the accumulated pixels of one evaluation run (kept for further analysis)."""

    records: list[ScoredImage] = field(default_factory=list)
    pixels: PixelAccumulator = field(default_factory=PixelAccumulator)
    """Ground truth and anomaly map of every image with a mask, reduced to 8 bytes a pixel."""
    inspections: list[Inspection] = field(default_factory=list)
    """Full inspections (maps, mask, region labels), parallel to ``records``; kept only when asked."""
    images: list[np.ndarray] = field(default_factory=list)
    """Decoded images, parallel to ``records``; kept only when asked (classification needs them)."""
    unmasked: list[str] = field(default_factory=list)
    """Defective images with no ground-truth mask: in the image metrics, not in the pixel metrics."""
    strides: dict[int, int] = field(default_factory=dict)
    """Images whose pixels were read on a lattice: stride → images (see :attr:`DetectionEvaluation.pixel_strides`)."""

    def __repr__(self) -> str:
        # Its maps, images and pixels printed in full ran to 3 000 lines for a 46-image category.
        kept = " with inspections and images" if self.images else " with inspections" if self.inspections else ""
        return f"ScoredSet({len(self.records)} images, {sum(self.labels)} defective, {len(self.unmasked)} without masks{kept})"

    @property
    def sources(self) -> list[str]:
        """Image paths."""
        return [r.source for r in self.records]

    @property
    def defect_types(self) -> list[str]:
        """Ground-truth type per image ('good' for normal ones)."""
        return [r.defect_type for r in self.records]

    @property
    def labels(self) -> list[int]:
        """1 for defective, 0 for good."""
        return [int(r.defect_type != GOOD) for r in self.records]

    @property
    def scores(self) -> list[float]:
        """Image scores."""
        return [r.score for r in self.records]


@with_field_docs
@dataclass
class DetectionEvaluation:
    """Metrics of one category, with the operating point, timing and the inputs that failed; :meth:`to_json` gives
    the flat JSON `defectlens evaluate --json` writes (its keys named beside each field below where they differ)."""

    category: str
    """The category folder's name (for the folders of ``--good``/``--defective``, their common parent's; ``test`` where that
    is the file system's root)."""
    n_test: int
    """Test images scored."""
    metrics: DetectionMetrics
    """The threshold-free metrics (JSON: ``image_auroc``, ``image_ap``, ``image_f1max``, ``pixel_auroc``, ``pixel_ap``,
    ``pixel_f1max``, ``aupro`` at the top level)."""
    ms_per_image: float
    """Wall time per image read, decode to regions, in the model's batches."""
    fit_seconds: float | None
    """How long the model's fit took (its fit summary), or None."""
    peak_memory_mb: float
    """Peak resident memory of the process so far, in MiB: from Python, what the process did before the evaluation counts
    too (a second model evaluated in one notebook carries the first's peak), so compare models in processes of their own."""
    per_type_image_auroc: list[tuple[str, float]]
    """Image AUROC of each defect type's images against the good ones (NaN, JSON null, where a type has none)."""
    failures: list[Failure]
    """Inputs that could not be used: unreadable images (left out) and unusable masks (their images in the image metrics only)."""
    threshold_source: str
    """How the model's image threshold was set (``Thresholds.source``: 'normal-quantile', 'f1-optimal', 'user', ...)."""
    false_alarm_target: float | None
    """The false-alarm rate a label-free ('normal-quantile') threshold was set to give, to read
    beside the rate it gives here; None for thresholds set another way or without normal images."""
    operating_point: OperatingPoint
    """Recall and false-alarm rate on the test split at the model's own image threshold (JSON: ``image_threshold``,
    ``recall_at_threshold``, ``false_alarm_rate_at_threshold``)."""
    reference_point: OperatingPoint
    """The threshold flagging at most :data:`REFERENCE_FALSE_ALARM_RATE` of the good test images
    (those the frame check flags counted first), with its recall and false-alarm rate as `inspect`
    would decide: chosen on the test labels, so a reference, never a deployable threshold. When the
    frame check alone flags more, the threshold passes every other good image and its false-alarm
    rate says by how much the reference is out of reach (JSON: ``reference_1pct_false_alarms``)."""
    n_good: int
    """Good test images."""
    n_defective: int
    """Defective test images."""
    unlike_normal: tuple[int, int] = (0, 0)
    """Good and defective test images the frame check flagged as unlike every normal image (JSON: ``unlike_normal_good``,
    ``unlike_normal_defective``)."""
    unlike_grey: int = 0
    """Of those, the grey images of a model fitted on colour ones (said as their own cause, not the frame check's; JSON:
    ``unlike_normal_grey``)."""
    unlike_colour: int = 0
    """Of those, the colour images of a model fitted on grey ones (JSON: ``unlike_normal_colour``, since 0.3.11)."""
    no_mask: list[str] = field(default_factory=list)
    """Defective images without a ground-truth mask: counted in the image metrics, left out of the
    pixel metrics (which are None when no image had one)."""
    runtime: str = "torch"
    """What ran the encoder (:attr:`Inspector.runtime`): timings of a PyTorch model and of its
    exports were otherwise indistinguishable afterwards."""
    pixel_strides: dict[int, int] = field(default_factory=dict)
    """Images whose pixels the pixel metrics read on a lattice: stride (every k-th pixel each way) → images.
    Empty when every pixel was read; said beside the metrics (a metrics audit found it said nowhere but the README)."""
    copies_of_train: list[str] = field(default_factory=list)
    """Test images whose picture is a training image's (:func:`~defectlens.io.train_test_overlap`): the
    metrics flatter the model by them. Kept with the numbers, not only said on the terminal: a
    benchmark's JSON had reported commutator's 0.9508 with 8 copies inside and no word of them."""
    calibrated_on_test: list[str] | None = field(default_factory=list)
    """Test images whose picture is one the model's thresholds were calibrated on (:attr:`Inspector.calibrated_on`): the
    operating point (recall and false alarms at the threshold) is then measured on images it was chosen for; the
    threshold-free metrics are not flattered. An evaluation on the calibration set had reported it without a word (audit
    probe 2026-12-07). None where it is not known: thresholds a calibration by defectlens 0.3.8 or earlier set, which
    recorded no pictures (they had read as "none of them"; regression probe 2026-12-07)."""
    repeated_test: list[str] = field(default_factory=list)
    """Test images whose picture is another test image's ("copy is first"): each counts in the metrics as often as it
    appears, which a duplicated file had done without a word (metrics audit 2026-12-06)."""
    drift: str | None = None
    """What :func:`~defectlens.detect.frame_check.drift_note` says of the good test images, or None: good parts that have,
    as a whole, moved away from the normal images since the fit (focus, light, a moved camera) make every figure here one
    of another camera (camera probe 2026-12-06: `inspect` said so of 20 blurred tiles, `evaluate` nothing; JSON:
    ``drift_of_good_images``)."""

    def to_json(self) -> dict:
        """Flat JSON: the metric names at the top level, fractions in [0, 1]; the reference point
        nested under ``reference_1pct_false_alarms`` with its note."""
        out = {"category": self.category, **self.metrics.to_json()}
        op = self.operating_point.to_json()
        ref = self.reference_point.to_json()
        out.update(
            image_threshold=op["threshold"],
            threshold_source=self.threshold_source,
            recall_at_threshold=op["recall"],
            false_alarm_rate_at_threshold=op["false_alarm_rate"],
            false_alarm_target=self.false_alarm_target,
            reference_1pct_false_alarms={
                "image_threshold": ref["threshold"],
                "recall": ref["recall"],
                "false_alarm_rate": ref["false_alarm_rate"],
                "target_false_alarm_rate": REFERENCE_FALSE_ALARM_RATE,
                "note": REFERENCE_NOTE,
            },
            n_good=self.n_good,
            n_defective=self.n_defective,
            unlike_normal_good=self.unlike_normal[0],
            unlike_normal_defective=self.unlike_normal[1],
            unlike_normal_grey=self.unlike_grey,
            unlike_normal_colour=self.unlike_colour,
            ms_per_image=round(self.ms_per_image, 2),
            runtime=self.runtime,
            fit_seconds=None if self.fit_seconds is None else round(self.fit_seconds, 2),
            n_test=self.n_test,
            peak_memory_mb=round(self.peak_memory_mb, 1),
            # Full precision, as image_auroc beside it (they were rounded to 4 places).
            per_type_image_auroc={t: (None if math.isnan(v) else v) for t, v in self.per_type_image_auroc},
            failures=[{"source": f.source, "message": f.message} for f in self.failures],
            # Always there, as `failures` is: a reader of the documented fields found it missing when empty.
            no_mask=list(self.no_mask),
            copies_of_train=list(self.copies_of_train),
            calibrated_on_test=None if self.calibrated_on_test is None else list(self.calibrated_on_test),
            repeated_test=list(self.repeated_test),
            drift_of_good_images=self.drift,
            pixel_strides={str(k): v for k, v in sorted(self.pixel_strides.items())},
        )
        return out


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_inspections(
    inspector: Inspector, category: Category, progress: Progress | None = None, keep_images: bool = False, batch_size: int | None = None
) -> tuple[ScoredSet, list[Failure], float]:
    """Inspect every test image of ``category`` (in batches of ``batch_size``, by default the
    inspector's, as ``inspect`` reads them); returns the scored set, failures and seconds spent.

    Each batch's maps are added to the scored set's pixel accumulator and then dropped; with
    ``keep_images`` every decoded image and its full :class:`Inspection` are kept as well (for
    defect-type classification; about 10 more bytes a pixel). Timing covers decoding, detection
    and region extraction, not ground-truth loading or pixel accumulation.
    """
    scored = ScoredSet()
    failures: list[Failure] = []
    seconds = 0.0
    items = {str(item.path): item for item in category.require_test()}
    pixels_each = pixels_per_image([image_area(path) for path in items])
    # Seeded random batches, as parts arrive on a line (see Inspector.iter_batches); the
    # metrics do not depend on the order.
    for batch in inspector.iter_batches([item.path for item in items.values()], batch_size, seed=0):
        seconds += batch.seconds
        failures.extend(batch.failures)
        for inspected in batch.images:
            item, image, inspection = items[str(inspected.path)], inspected.image, inspected.inspection
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
                    # The mask is unusable, the image's label is not: it stays in the image metrics.
                    failures.append(Failure(str(item.mask_path), f"{exc} (its image counts in the image metrics only)"))
                    mask = None
                    scored.unmasked.append(str(item.path))
                if mask is not None and item.is_defective and not mask.any():
                    # An empty mask on a defective image marks no defect: scored as one, every one
                    # of its pixels was a normal pixel the map had to rank low.
                    mask = None
                    scored.unmasked.append(str(item.path))
            if mask is not None:
                # A large image's pixels are read on a lattice (the map has no finer detail:
                # see working_view), or its pixel keys alone would outgrow memory; its mask's
                # regions are found on the whole mask first.
                stride = working_stride(mask.shape, pixels_each)
                scored.pixels.add(mask, inspection.anomaly_map[::stride, ::stride], stride=stride)
                if stride > 1:
                    scored.strides[stride] = scored.strides.get(stride, 0) + 1
            scored.records.append(
                ScoredImage(
                    source=str(item.path),
                    defect_type=item.defect_type,
                    score=inspection.score,
                    is_defective=inspection.is_defective,
                    regions=list(inspection.regions),
                    has_mask=mask is not None,
                    unlike_normal=inspection.unlike_normal is not None,
                    grey=grey_reason_in(inspection.unlike_normal),
                    colour=colour_reason_in(inspection.unlike_normal),
                    frame_units=inspection.frame_units,
                )
            )
            if keep_images:
                scored.inspections.append(inspection)
                scored.images.append(image)
        if progress:
            progress(batch.n_inputs)
    return scored, failures, seconds


def stated_false_alarm_target(inspector: Inspector) -> float | None:
    """The false-alarm rate the model's label-free image threshold was set to give (one minus the
    normal-score quantile it sits at), or None when the threshold was set another way."""
    stats = inspector.detector.normal_stats
    if inspector.thresholds.source != "normal-quantile" or stats is None:
        return None
    return round(1.0 - stats.quantile, 6)


def evaluate_detection(
    inspector: Inspector, category: Category, progress: Progress | None = None, keep_images: bool = False
) -> tuple[DetectionEvaluation, ScoredSet]:
    """Image and pixel metrics, AUPRO, the operating point, speed and memory of ``inspector`` on
    ``category``'s test split."""
    # A detector that compares the images read together says how many it needs: refused before any is decoded.
    min_batch, n_test = int(getattr(inspector.detector, "min_batch", 1)), len(category.require_test())
    # Named where there is one: `evaluate --good --defective` has no test/ folder, and its refusals had named one (probe 2026-12-07).
    test_dir = category.root / "test" if path_is(category.root / "test", "dir") else None
    # One part under both labels sets every metric against itself (a crack copied into test/good took image AUROC 1.0 →
    # 0.94 without a word; metrics audit 2026-12-06): refused, as `evaluate --good --defective` and `calibrate` refuse it.
    if crossed := cross_label_copies([t.path for t in category.test if not t.is_defective], [t.path for t in category.test if t.is_defective]):
        copy, first = crossed[0]
        raise DatasetLayoutError(f"{len(crossed)} defective test image(s) are copies of good ones, pixel for pixel (e.g. {copy} is {first})",
                                 test_dir, "give each part one label: remove the copy from the folder it does not belong in")
    if n_test < min_batch:
        raise ConfigError(
            f"the {inspector.detector.name} detector compares the images inspected together and {n_test} test image(s) are given "
            f"(it needs {min_batch})", test_dir, f"evaluate on at least {min_batch} test images",
        )
    scored, failures, seconds = run_inspections(inspector, category, progress, keep_images=keep_images)
    if not scored.records:
        # The reasons go in the message: the caller never gets the failures list of a run that raised.
        reasons = "; ".join(f.message for f in failures[:2]) + ("; …" if len(failures) > 2 else "")
        raise DefectlensError(f"no test image could be evaluated ({len(failures)} failed: {reasons or 'no test images'})",
                              test_dir, "fix the cause given")
    labels, scores = scored.labels, scored.scores
    metrics = detection_metrics_from_pixels(labels, scores, scored.pixels)
    per_type = []
    for defect in sorted({t for t in scored.defect_types if t != GOOD}):
        idx = [i for i, r in enumerate(scored.records) if r.defect_type in (defect, GOOD)]
        per_type.append((defect, image_auroc([labels[i] for i in idx], [scores[i] for i in idx])))
    thresholds = inspector.thresholds
    good_scores = [s for s, y in zip(scores, labels, strict=True) if not y]
    good_records = [r for r, y in zip(scored.records, labels, strict=True) if not y]
    unlike = [r.unlike_normal for r in scored.records]
    # As `inspect` decides and `calibrate` counts: a good image the frame check stops is a false
    # alarm at any threshold and spends the reference's allowance first. Left out, the reference
    # said 0 false alarms where 4 of commutator's 97 good images are flagged at every threshold.
    passing_good = [s for s, y, u in zip(scores, labels, unlike, strict=True) if not y and not u]
    # The threshold `calibrate --max-false-alarms` would save, were the test set its labelled set.
    passing_defective = [s for s, y, u in zip(scores, labels, unlike, strict=True) if y and not u]
    reference = (threshold_for_false_alarms(passing_good, REFERENCE_FALSE_ALARM_RATE, passing_defective,
                                            already_flagged=len(good_scores) - len(passing_good))
                 if passing_good else math.nan)
    reference_verdicts = [u or s > reference for s, u in zip(scores, unlike, strict=True)]
    prov = inspector.provenance  # which pictures it was fitted on, or the folder it read them from
    tested = {str(item.path) for item in category.test}
    evaluation = DetectionEvaluation(
        category=category.name,
        n_test=len(scored.records),
        metrics=metrics,
        # Per image read: a mask that could not be used fails its mask, not a second image (14 images and 8 such masks had
        # been timed as 22 images; own-dataset probe 2026-12-07).
        ms_per_image=1000.0 * seconds / max(1, len(scored.records) + sum(f.source in tested for f in failures)),
        fit_seconds=inspector.fit_summary.seconds if inspector.fit_summary else None,
        peak_memory_mb=peak_memory_mb(),
        per_type_image_auroc=per_type,
        # In the folders' order, not the random batches': a list of skipped masks had read 11, 13, 14, 1 (metrics probe 2026-12-07).
        failures=sorted(failures, key=lambda f: f.source),
        threshold_source=thresholds.source,
        false_alarm_target=stated_false_alarm_target(inspector),
        operating_point=verdict_point(thresholds.image, labels, [r.is_defective for r in scored.records]),
        runtime=inspector.runtime,
        reference_point=verdict_point(reference, labels, reference_verdicts),
        n_good=len(good_scores),
        n_defective=len(labels) - len(good_scores),
        no_mask=sorted(scored.unmasked),
        pixel_strides=dict(scored.strides),
        copies_of_train=[str(p) for p in train_test_overlap(category, prov.trained_on if prov else None, prov.image_digests if prov else None)],
        calibrated_on_test=[str(p) for p in fitted_copies([t.path for t in category.test], c, None)]
        if (c := inspector.calibrated_on) is not None else None if set_by_calibration(thresholds.source) else [],
        repeated_test=[f"{copy} is {first}" for copy, first in picture_copies([t.path for t in category.test]).items()],
        drift=drift_note([r.frame_units for r in good_records], [r.unlike_normal for r in good_records], labelled_good=True),
        unlike_grey=sum(r.grey for r in scored.records),
        unlike_colour=sum(r.colour for r in scored.records),
        unlike_normal=(
            sum(r.unlike_normal and not y for r, y in zip(scored.records, labels, strict=True)),
            sum(r.unlike_normal and bool(y) for r, y in zip(scored.records, labels, strict=True)),
        ),
    )
    return evaluation, scored
