"""Typed records that flow between the pipeline stages.

encode -> detect -> locate -> classify -> explain. Each stage consumes and produces the
dataclasses below; nothing crosses a stage boundary as a loose dict.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from defectlens.fielddocs import with_field_docs


@with_field_docs
@dataclass(frozen=True)
class Region:
    """One connected defective area of an image, in original-image pixel coordinates."""

    index: int
    """1-based label of the region in the mask, ordered by descending peak score."""
    bbox: tuple[int, int, int, int]
    """(x0, y0, x1, y1), x1/y1 exclusive."""
    area_px: int
    """Pixels in the region, in the original image."""
    area_fraction: float
    """Area as a share of the part (the whole image when no part mask is known)."""
    centroid: tuple[float, float]
    """(x, y) centre of mass of the region's pixels."""
    peak_score: float
    """Highest map value in the region (the map's units: compare with the pixel threshold)."""
    mean_score: float
    """Mean map value over the region's pixels."""
    peak: tuple[int, int] | None = None
    """(x, y) of the region's highest map value: where the defect most likely is. A strong small
    defect raises the map far around it, so the centroid of its region can sit a third of the
    image away (None for regions made before it was recorded)."""

    def __post_init__(self) -> None:
        # Made from JSON (Region(**payload)), its lists would leave a frozen region unhashable (API probe 2026-12-06).
        for name in ("bbox", "centroid", "peak"):
            if isinstance(value := getattr(self, name), list):
                object.__setattr__(self, name, tuple(value))

    def to_json(self) -> dict:
        """Plain-JSON form (lists and floats only)."""
        return {
            "index": self.index,
            "bbox": list(self.bbox),
            "area_px": self.area_px,
            "area_fraction": round(self.area_fraction, 6),
            "centroid": [round(c, 2) for c in self.centroid],
            **({"peak": list(self.peak)} if self.peak is not None else {}),
            # Unrounded, as the image's score is: read against the pixel threshold, a rounded peak could meet it (API probe).
            "peak_score": float(self.peak_score),
            "mean_score": round(self.mean_score, 6),
        }


@with_field_docs
@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds, in the units of the detector's scores and map values (:attr:`Inspection.score`: no fixed
    range, a scale of the model's own)."""

    image: float
    """An image whose score exceeds this is defective."""
    pixel: float
    """A pixel whose anomaly value exceeds this belongs to the defect mask."""
    source: str = "normal-quantile"
    """How they were set: 'normal-quantile' (fit), 'f1-optimal' or 'false-alarm target <rate>'
    (``defectlens calibrate``, followed by the images it used: '(calibrate: 13 good, 1 defective)'),
    or 'user'."""

    def __post_init__(self) -> None:
        # Thresholds are read back from hand-editable JSON: a string or a list there would only
        # fail later, deep inside a comparison. Refuse it here (loaders turn this into a ModelFileError).
        for name in ("image", "pixel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"threshold {name!r} must be a number, got {value!r}")
            if math.isnan(value):
                raise ValueError(f"threshold {name!r} is NaN")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.source, str):
            raise TypeError(f"threshold source must be a string, got {self.source!r}")

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {"image": self.image, "pixel": self.pixel, "source": self.source}


# The records that carry maps compare by identity (eq=False) and leave their maps out of repr:
# compared field by field, two results raised numpy's "truth value of an array is ambiguous", and
# a notebook printed every map in full.
@with_field_docs
@dataclass(eq=False)
class AnomalyResult:
    """What a detector says about one image before regions are extracted."""

    score: float
    """The image's anomaly score in the detector's own units (see :attr:`Inspection.score`), read against
    :attr:`Thresholds.image`."""
    anomaly_map: np.ndarray = field(repr=False)
    """float32 (H, W) at the input image's own resolution."""
    grounding: GroundingResult | None = None
    """The grounding model's reading of the image when it took part: its per-type maps let
    regions be typed from the taxonomy's descriptions alone."""
    batch_warning: str | None = None
    """Set by a detector that scores images against the rest of their batch when that batch
    defeats it (e.g. most parts share one defect): one line, the same on every image of it."""
    unlike_normal: str | None = None
    """Set when the image as a whole is unlike every normal image (a large defect, another part or a faulty frame;
    :mod:`~defectlens.detect.frame_check`): one line saying so. The image is then judged
    defective whatever its score."""
    frame_units: float | None = None
    """How far the image as a whole lies from the normal images (the frame check's distance: 0 = their median, 1 = their
    98th percentile), or None for a detector without a frame check."""


@with_field_docs
@dataclass(eq=False)
class Inspection:
    """The full verdict for one image: score, decision, pixel map, mask and regions.

    Compared by identity (its arrays have no single truth value): compare ``to_json()`` of two."""

    source: str
    """The image's path as given, or '<array>' (or the name passed) for pixels."""
    image_size: tuple[int, int]
    """(width, height) of the original image."""
    score: float
    """The image's anomaly score in the detector's own units (the memory bank's: the mean of its map's
    top values) — no probability, no fixed range (one model's normal parts may sit near 50): read it
    against ``thresholds.image``."""
    is_defective: bool
    """The verdict: ``score > thresholds.image``, or the whole image unlike every normal one
    (:attr:`unlike_normal`). Set when the inspection is made; changing ``score`` afterwards does not update it."""
    anomaly_map: np.ndarray = field(repr=False)
    """float32 (H, W) at the original resolution; same units as ``score``."""
    mask: np.ndarray = field(repr=False)
    """bool (H, W): pixels above the pixel threshold (and inside kept regions)."""
    regions: list[Region] = field(default_factory=list)
    """Connected defective areas, strongest first; empty on a part judged good."""
    thresholds: Thresholds | None = None
    """The image and pixel thresholds the verdict was made with."""
    region_labels: np.ndarray | None = field(default=None, repr=False)
    """int32 (H, W): 0 outside regions, else the :attr:`Region.index` the pixel belongs to."""
    detector: str = "memory-bank"
    """Which map produced the verdict: 'memory-bank', 'grounding' or 'fused'."""
    unlike_normal: str | None = None
    """Why the image as a whole is unlike every normal image, when it is (see
    :attr:`AnomalyResult.unlike_normal`); such an image is defective whatever its score."""
    frame_units: float | None = None
    """How far the image as a whole lies from the normal images (:attr:`AnomalyResult.frame_units`: 0 = their median,
    1 = their 98th percentile; over :data:`~defectlens.detect.frame_check.LIMIT_FACTOR` times their largest it is
    :attr:`unlike_normal`). A line's images drifting from the fit's (focus, lighting, a moved camera) raise it before
    they raise false alarms: :func:`~defectlens.detect.frame_check.drift_note` reads it over a batch."""
    hot_spot: tuple[int, int] | None = None
    """(x, y) where the map of a part judged good still peaks above the image threshold (its score,
    the mean of the map's top, stayed under it), or None. Said so a person looks there: on the
    four shared parts' test images, 20 of the 68 missed defective parts had one, and 14 of the 342
    passing good ones (``benchmarks/hot_spot.py``; memory banks with label-free thresholds, the
    only models it is set for)."""
    view_note: str | None = None
    """The image's size or shape against the training images', when it is far from theirs and the image was judged on
    its score ("This image is 384×288, the training images 288×384: is it rotated, or another view?"), else None.
    A rotated or half-cropped cookie passes the frame check and reads as a confident "crack": its verdict is not one
    to trust (camera probe 2026-12-06). Said in :attr:`unlike_normal` instead when the frame check failed it."""

    def to_json(self) -> dict:
        """Plain-JSON summary (maps are written separately as images); ``unlike_normal``, ``view_note`` and ``hot_spot``
        only when set."""
        return {
            **({"unlike_normal": self.unlike_normal} if self.unlike_normal else {}),
            **({"view_note": self.view_note} if self.view_note else {}),
            **({"hot_spot": {"at": list(self.hot_spot), "value": round(float(self.anomaly_map[self.hot_spot[1], self.hot_spot[0]]), 6)}}
               if self.hot_spot else {}),
            "source": self.source,
            "image_size": list(self.image_size),
            # Unrounded, as the thresholds are: rounded, a score just under its threshold read as over it.
            "score": float(self.score),
            "is_defective": bool(self.is_defective),
            "detector": self.detector,
            "thresholds": self.thresholds.to_json() if self.thresholds else None,
            "n_regions": len(self.regions),
            "regions": [r.to_json() for r in self.regions],
            **({"frame_units": round(float(self.frame_units), 3)} if self.frame_units is not None else {}),
        }


@with_field_docs
@dataclass(frozen=True)
class RegionType:
    """The defect type assigned to one region by a classifier."""

    region_index: int
    """:attr:`Region.index` of the region it describes."""
    defect_type: str
    """A taxonomy defect name, or 'unknown' when the region is far from every known type."""
    confidence: float
    """In [0, 1]."""
    method: str
    """Which classifier decided: 'few-shot', 'text', 'vlm'."""
    candidates: tuple[tuple[str, float], ...] = ()
    """(type, score) for every known type, best first — why this type was chosen."""

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {
            "region_index": self.region_index,
            "defect_type": self.defect_type,
            "confidence": round(float(self.confidence), 4),
            "method": self.method,
            "candidates": [[name, round(float(s), 4)] for name, s in self.candidates],
        }


@with_field_docs
@dataclass(eq=False)
class GroundingResult:
    """What the vision-language grounding model says about one image."""

    score: float
    """Image score in [0, 1]: mean of the top cells of the defect-probability map."""
    anomaly_map: np.ndarray = field(repr=False)
    """float32 (H, W) at the original resolution: per-pixel probability of the SEG_DEFECT token."""
    type_names: tuple[str, ...]
    """Defect types of the taxonomy the image was read with, in taxonomy order."""
    type_maps: np.ndarray = field(repr=False)
    """float32 (T, H, W): cosine similarity of each pixel's embedding to each type's description."""
    type_logit_scale: float
    """Inverse temperature turning pooled similarities into type probabilities (softmax)."""
    batch_map: np.ndarray | None = field(default=None, repr=False)
    """float32 (H, W): how rare each pixel's patch is across the other images read in the same
    batch (log distance relative to the batch median; mutual scoring). None for a lone image."""


@with_field_docs
@dataclass(frozen=True)
class Finding:
    """One located defect as the report states it: what, where, how big, how bad, what to do."""

    region_index: int
    """:attr:`Region.index` of the region described."""
    defect_type: str
    """Taxonomy defect name, or 'unknown'."""
    confidence: float
    """In [0, 1], from the classifier (0 when the region was not classified)."""
    location: str
    """Position on the part in words, e.g. 'upper-left edge' or 'centre'."""
    centroid: tuple[float, float]
    """(x, y) in original-image pixels."""
    bbox: tuple[int, int, int, int]
    """(x0, y0, x1, y1), x1/y1 exclusive."""
    area_fraction: float
    """Share of the image the region covers."""
    size: str
    """Size in words ('tiny', 'small', 'medium', 'large', 'very large') of the area the map marks, which is often several
    times a small defect's own."""
    severity: str
    """How serious the type is: 'low', 'medium', 'high' or 'critical' (the taxonomy's, else the default)."""
    impact: str
    """What the defect does to the part, from the taxonomy."""
    action: str
    """What to do about it, from the taxonomy (the report's recommended action comes from the worst finding's)."""
    method: str = "none"
    """Classifier that decided the type ('few-shot', 'vlm', 'text'), or 'none' when skipped."""
    defaults_used: tuple[str, ...] = ()
    """Which of severity/impact/action came from defaults rather than the taxonomy."""
    only_type: bool = False
    """The classifier knew this one type: its confidence is 100 % by construction (from words or a
    taxonomy) or says only how like the type's examples the region is (few-shot, which may still
    call it 'unknown'), read as how sure it is a defect; so it is not reported as a percentage."""
    weak: bool = False
    """The region's peak is not over the image threshold (another region's is): a weaker
    indication, listed apart in the text, not counted as a defect and not deciding the action."""

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {
            **({"only_type": True} if self.only_type else {}),
            **({"weaker": True} if self.weak else {}),
            "region_index": self.region_index,
            "defect_type": self.defect_type,
            "confidence": round(float(self.confidence), 4),
            "location": self.location,
            "centroid": [round(float(c), 2) for c in self.centroid],
            "bbox": list(self.bbox),
            "area_fraction": round(float(self.area_fraction), 6),
            "size": self.size,
            "severity": self.severity,
            "impact": self.impact,
            "action": self.action,
            "method": self.method,
            "defaults_used": list(self.defaults_used),
        }


@with_field_docs
@dataclass
class Report:
    """The per-image report: verdict, structured findings, prose, and what was skipped."""

    source: str
    """The inspected image, as given (:attr:`Inspection.source`)."""
    object_name: str
    """The part as the taxonomy describes it (its ``object``), or a generic name without a taxonomy."""
    verdict: str
    """'defective' or 'good'."""
    score: float
    """The image's anomaly score (:attr:`Inspection.score`)."""
    image_size: tuple[int, int]
    """(width, height)."""
    findings: list[Finding] = field(default_factory=list)
    text: str = ""
    """Short natural-language report."""
    writer: str = "template"
    """Who wrote ``text``: 'template', 'llm', or 'template (llm fallback)'."""
    notes: list[str] = field(default_factory=list)
    """What was skipped or fell back, and why (one line each)."""
    writer_seconds: float = 0.0
    """Time the writer took for ``text``."""
    unlike_normal: str | None = None
    """Why the whole image is unlike every normal one (the frame check), or None (see
    :attr:`Inspection.unlike_normal`): then the text says so instead of describing regions."""
    image_threshold: float | None = None
    """The image threshold the verdict was made with (None when the inspection did not record one)."""
    part_name: str = ""
    """The part's short name for the report's first line (the taxonomy's ``part_name``); empty: ``object_name``."""
    hot_spot: str | None = None
    """A part judged good whose map peaks above the image threshold: where, in words, and how high
    ("upper-left (55.10)"); see :attr:`Inspection.hot_spot`."""
    frame_units: float | None = None
    """How far the image as a whole lies from the normal images (:attr:`Inspection.frame_units`), or None: kept with the
    report so the service's stored inspections say it too (a drift alarm had no image to point at)."""
    view_note: str | None = None
    """The image's size or shape against the training images' (:attr:`Inspection.view_note`), said after the verdict."""
    record: dict | None = None
    """What made the verdict, as the inspection JSON records it (``inspected_at`` UTC, ``defectlens_version``, ``model``: its
    ``fitted_at`` and ``fingerprint``, ``image_digest``, ``thresholds``: :func:`defectlens.engine.verdict_record`), or None where
    none was given: the report is the document that goes out, and it had said none of it (audit probe 2026-12-07)."""

    def to_json(self) -> dict:
        """Plain-JSON form (``frame_units``, ``view_note`` and ``record`` only when known)."""
        return {
            "source": self.source,
            "object": self.object_name,
            "part": self.part_name or self.object_name,
            **({"hot_spot": self.hot_spot} if self.hot_spot else {}),
            "verdict": self.verdict,
            "unlike_normal": self.unlike_normal,
            "score": float(self.score),
            "image_threshold": None if self.image_threshold is None else float(self.image_threshold),
            "image_size": list(self.image_size),
            "findings": [f.to_json() for f in self.findings],
            "text": self.text,
            "writer": self.writer,
            "writer_seconds": round(float(self.writer_seconds), 4),
            "notes": list(self.notes),
            **({"frame_units": round(float(self.frame_units), 3)} if self.frame_units is not None else {}),
            **({"view_note": self.view_note} if self.view_note else {}),
            **({"record": self.record} if self.record is not None else {}),
        }
