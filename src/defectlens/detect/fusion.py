"""Look twice: fuse two detectors' maps and scores into one detector.

Two detectors speak different units — a memory bank gives feature distances, the grounding
model probabilities, a flow log-likelihoods — so each is first put on a common scale with
statistics of *normal* images it did not train on (:class:`~defectlens.detect.NormalStatistics`):
``(x - median) / (q - median)``, where ``q`` is a high quantile. After that 0 means "typical
of normal" and 1 "as high as the rare normal extreme", for both. They are then combined by a
weighted sum (either detector can raise an alarm) or a weighted geometric mean (both must
agree; fewer false alarms).

The functions work on plain numpy maps and scores; :class:`FusedDetector` wires any two
detectors together (a *primary*, the one fitted on the part's normal images, and a
*secondary*), and is what ``defectlens fit --grounding`` saves (memory bank + grounding).
The "vision"/"grounding" names of the functions' arguments are the primary and secondary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from defectlens.detect.base import Detector, LoadContext, Progress
from defectlens.detect.calibration import DEFAULT_QUANTILE, UNIT_QUANTILE, NormalStatistics, normal_statistics, thresholds_from_normal
from defectlens.detect.maps import robust_units
from defectlens.errors import ConfigError, ModelFileError
from defectlens.io.atomic import read_model_json, write_json_atomic
from defectlens.taxonomy import Taxonomy, parse_taxonomy
from defectlens.types import AnomalyResult, Thresholds

FUSION_MODES = ("sum", "product")


@dataclass(frozen=True)
class FusionConfig:
    """How to combine the two normalised opinions."""

    mode: str = "sum"
    """'sum': weighted mean; 'product': weighted geometric mean of the positive parts."""
    weight: float | None = None
    """Weight of the secondary detector (the primary gets 1 - weight). None: chosen on the
    held-out normal images when the fusion is calibrated (:meth:`FusedDetector.calibrate`,
    :func:`choose_fusion_weight`). A fixed weight, such as the 0.5 used before, let a weaker
    partner pull the memory bank's AUROC down in most pairs measured (batch scoring on all four
    shared categories with normal images, the discriminator on two of them: benchmarks/results/
    batch_scoring_b48.md, detector_study.md row lite2-fused-auto)."""

    def __post_init__(self) -> None:
        if self.mode not in FUSION_MODES:
            raise ValueError(f"fusion mode must be one of {', '.join(FUSION_MODES)}, got {self.mode!r}")
        if self.weight is not None and not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"fusion weight must be in [0, 1], got {self.weight}")


def _combine(vision: np.ndarray | float, grounding: np.ndarray | float, cfg: FusionConfig):
    w = cfg.weight
    if w is None:
        raise ValueError("the fusion weight is not chosen yet: calibrate the fusion on normal images or give a weight")
    if cfg.mode == "sum":
        return (1 - w) * vision + w * grounding
    # Geometric mean needs positives: below-median values carry no evidence of a defect.
    # The +0.1 floor keeps one detector's zero from vetoing the other completely.
    return np.power(np.maximum(vision, 0) + 0.1, 1 - w) * np.power(np.maximum(grounding, 0) + 0.1, w) - 0.1


def fuse_maps(
    vision_map: np.ndarray, grounding_map: np.ndarray, vision: NormalStatistics, grounding: NormalStatistics, cfg: FusionConfig
) -> np.ndarray:
    """Fused (H, W) float32 map from two maps of the same image at the same resolution."""
    if vision_map.shape != grounding_map.shape:
        raise ValueError(f"maps differ in shape: {vision_map.shape} vs {grounding_map.shape}")
    return np.asarray(_combine(vision.normalise_map(vision_map), grounding.normalise_map(grounding_map), cfg), dtype=np.float32)


def fuse_scores(vision_score: float, grounding_score: float, vision: NormalStatistics, grounding: NormalStatistics, cfg: FusionConfig) -> float:
    """Fused image score in normal-relative units (1 ≈ the rare normal extreme)."""
    return float(_combine(vision.normalise_score(vision_score), grounding.normalise_score(grounding_score), cfg))


def fuse(
    vision_score: float,
    vision_map: np.ndarray,
    grounding_score: float,
    grounding_map: np.ndarray,
    vision: NormalStatistics,
    grounding: NormalStatistics,
    cfg: FusionConfig | None = None,
) -> tuple[float, np.ndarray]:
    """(fused score, fused map) of one image; see :func:`fuse_scores` and :func:`fuse_maps`.
    Without ``cfg`` the two are summed with equal weights."""
    cfg = cfg or FusionConfig(weight=0.5)
    return (
        fuse_scores(vision_score, grounding_score, vision, grounding, cfg),
        fuse_maps(vision_map, grounding_map, vision, grounding, cfg),
    )


WEIGHT_CANDIDATES = (0.0, 0.05, 0.1, 0.15, 0.2)
"""Secondary weights :func:`choose_fusion_weight` tries. At most 0.2: a partner measured weaker
than the memory bank (batch scoring, benchmarks/batch_scoring.md) may tip close calls, never
outvote it; above 0.2 the fused image AUROC fell below the bank's on every category tried."""


MIN_WEIGHT_IMAGES = 20
"""Fewest normal images :func:`choose_fusion_weight` chooses a weight on: below this it cannot
see whether the partner adds false alarms (an outlier among 3 images is no outlier at all), and
the partner gets weight 0. On cookie (31 normal images, 3 held out) a discriminator given weight
0.2 took the memory bank's image AUROC from 0.998 to 0.955 (benchmarks/results/detector_study.md,
row lite2-fused-auto)."""


def normal_outliers(scores: Sequence[float] | np.ndarray, limit: float = 3.0) -> int:
    """How many of ``scores`` stand more than ``limit`` robust standard deviations
    (1.4826 · MAD) above their median: false alarms a normal set raises against itself."""
    values = np.asarray(scores, np.float64)
    median, spread = robust_units(values)
    return int(np.sum((values - median) / spread > limit))


def choose_fusion_weight(
    primary_normal: Sequence[float],
    secondary_normal: Sequence[float],
    primary: NormalStatistics,
    secondary: NormalStatistics,
    candidates: Sequence[float] = WEIGHT_CANDIDATES,
    mode: str = "sum",
) -> float:
    """The secondary's fusion weight, chosen on normal images only: the largest candidate whose
    fused scores of the same normal images (each member on its normal scale, combined as
    :func:`fuse` does in ``mode``) hold no more outliers (:func:`normal_outliers`) than the
    primary's alone.

    Why: with no defective image to measure separation on, what normal images can say is
    whether the secondary adds false alarms — a secondary whose normal scores have a heavy
    tail (images that look unusual to it but are fine) raises outliers and is given weight 0;
    one whose errors are mild and independent of the primary's averages noise away. Fewer than
    :data:`MIN_WEIGHT_IMAGES` images cannot show that: weight 0."""
    a = np.array([primary.normalise_score(x) for x in primary_normal])
    b = np.array([secondary.normalise_score(x) for x in secondary_normal])
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"need the same normal images scored by both detectors, got {a.size} and {b.size} scores")
    if a.size < MIN_WEIGHT_IMAGES:
        return 0.0
    allowed = normal_outliers(a)
    chosen = 0.0
    for w in sorted(candidates):
        if normal_outliers(_combine(a, b, FusionConfig(mode, float(w)))) <= allowed:
            chosen = float(w)
    return chosen


FUSION_FILE = "fusion.json"
FUSION_FORMAT = "defectlens.fusion"
FUSION_FORMAT_VERSION = 2
"""1: memory bank + grounding by construction (taxonomy in fusion.json); 2: any two detectors,
each named by its kind and folder."""
PRIMARY_DIR = "."
"""The primary's files sit in the model folder itself (a fused folder reads like the memory
bank it extends)."""
LEGACY_SECONDARY_DIR = "grounding"
"""Where version 1 kept its grounding model (version 2 uses the secondary's kind name)."""


class FusedDetector:
    """Look twice: two detectors read every image; their maps and scores, each normalised by
    statistics of the same held-out normal images, are fused, and the decision thresholds
    are set on the fused scale with those images too.

    Any detector with ``score``/``save`` and a registered kind can be a member; one whose
    scores are batch-relative (``batch_relative`` true) cannot, since normal statistics need
    fixed units.
    """

    name = "fused"

    def __init__(
        self,
        primary: Detector,
        secondary: Detector,
        primary_stats: NormalStatistics,
        secondary_stats: NormalStatistics,
        config: FusionConfig,
        normal_stats: NormalStatistics,
        weight_chosen_on: int | None = None,
    ):
        if config.weight is None:
            raise ValueError("a fused detector needs a fusion weight: use FusedDetector.calibrate to choose one")
        self.primary = primary
        self.secondary = secondary
        self.primary_stats = primary_stats
        self.secondary_stats = secondary_stats
        self.config = config
        self.normal_stats = normal_stats
        """Statistics of the fused output on the held-out normal images."""
        self.weight_chosen_on = weight_chosen_on
        """How many normal images the secondary's weight was chosen on (None: it was given)."""
        self.thresholds: Thresholds | None = thresholds_from_normal(normal_stats)

    @property
    def taxonomy(self) -> Taxonomy | None:
        """The part's taxonomy when a member reads images through one (a grounding model)."""
        found: Taxonomy | None = getattr(self.primary, "taxonomy", None) or getattr(self.secondary, "taxonomy", None)
        return found

    @classmethod
    def calibrate(
        cls,
        primary: Detector,
        secondary: Detector,
        normal_images: Sequence[np.ndarray],
        config: FusionConfig | None = None,
        quantile: float = DEFAULT_QUANTILE,
    ) -> FusedDetector:
        """Normalise both detectors on normal images neither trained on (in units of
        :data:`~defectlens.detect.calibration.UNIT_QUANTILE`, so the fused ranking does not depend
        on the false-alarm target), choose the secondary's weight on them when ``config`` gives
        none (:func:`choose_fusion_weight`), then set thresholds at the ``quantile`` of the fused
        output on those images."""
        if not normal_images:
            raise ValueError("fusion needs held-out normal images to normalise both detectors on")
        config = config or FusionConfig()
        for member in (primary, secondary):
            # Normal statistics need fixed units; batch-relative scores change with every batch.
            if getattr(member, "batch_relative", False):
                raise ValueError(
                    f"the {member.name} detector scores relative to its batch and cannot be fused: give it fixed units (e.g. cue='token')"
                )
        a = primary.score(normal_images)
        b = secondary.score(normal_images)
        primary_stats = normal_statistics([r.score for r in a], [r.anomaly_map for r in a], UNIT_QUANTILE)
        secondary_stats = normal_statistics([r.score for r in b], [r.anomaly_map for r in b], UNIT_QUANTILE)
        for member, stats in ((primary, primary_stats), (secondary, secondary_stats)):
            if not stats.image_quantile > stats.image_median:
                # No unit: every score would be divided by ~0 and every image flagged.
                raise ValueError(
                    f"fusion cannot put the {member.name} detector on a normal scale: its {len(normal_images)} held-out normal "
                    "image(s) all score alike — fit on more normal images (or without fusion)"
                )
        chosen_on = None
        if config.weight is None:
            weight = choose_fusion_weight([r.score for r in a], [r.score for r in b], primary_stats, secondary_stats, mode=config.mode)
            config, chosen_on = replace(config, weight=weight), len(normal_images)
        fused = [
            fuse(x.score, x.anomaly_map, y.score, y.anomaly_map, primary_stats, secondary_stats, config)
            for x, y in zip(a, b, strict=True)
        ]
        stats = normal_statistics([f[0] for f in fused], [f[1] for f in fused], quantile)
        return cls(primary, secondary, primary_stats, secondary_stats, config, stats, chosen_on)

    @classmethod
    def primary_decides(cls, primary: Detector, secondary: Detector, normal_images: Sequence[np.ndarray]) -> FusedDetector:
        """The partner at weight 0 and the primary's own thresholds, for a normal set too small to
        hold out the :data:`MIN_WEIGHT_IMAGES` a weight is chosen on (``weight_chosen_on`` 0).

        The primary was calibrated on all of ``normal_images`` (leave-one-out); its normal
        statistics are its scale, so its thresholds are 1 on the fused scale and every verdict is
        its own. The partner still reads each image (a grounding model types regions from words);
        its scale comes from up to 20 of the same images, and counts for nothing at weight 0."""
        stats, thresholds = getattr(primary, "normal_stats", None), getattr(primary, "thresholds", None)
        if stats is None or thresholds is None or thresholds.source != "normal-quantile":
            raise ValueError(f"the {primary.name} detector has no label-free thresholds of its own to decide with")
        sample = list(normal_images)[: MIN_WEIGHT_IMAGES]
        b = secondary.score(sample)
        secondary_stats = normal_statistics([r.score for r in b], [r.anomaly_map for r in b], UNIT_QUANTILE)
        # On the primary's scale its thresholds are 1 (weight 0: 'sum' and 'product' both give max(x, 0) there).
        fused_stats = NormalStatistics(0.0, 1.0, 0.0, 1.0, stats.quantile, stats.n_images)
        return cls(primary, secondary, stats, secondary_stats, FusionConfig(weight=0.0), fused_stats, weight_chosen_on=0)

    def score(self, images: Sequence[np.ndarray], progress: Progress | None = None) -> list[AnomalyResult]:
        """Fused score and map per RGB image (normal-relative units); a member's grounding
        reading is passed on (it types regions from words)."""
        a = self.primary.score(images, progress)
        if self.config.weight == 0 and getattr(self.secondary, "taxonomy", None) is None:
            # Weighted 0, a partner that reads no words (nothing to type regions with) changes
            # nothing: its place is filled with its normal median instead of scoring every image.
            b = [AnomalyResult(self.secondary_stats.image_median, np.full_like(x.anomaly_map, self.secondary_stats.pixel_median)) for x in a]
        else:
            b = self.secondary.score(images)
        out = []
        for x, y in zip(a, b, strict=True):
            score, fused_map = fuse(x.score, x.anomaly_map, y.score, y.anomaly_map, self.primary_stats, self.secondary_stats, self.config)
            # The primary's frame check (a memory bank's) stands in the fused verdict too.
            out.append(AnomalyResult(score, fused_map, grounding=y.grounding or x.grounding, unlike_normal=x.unlike_normal,
                                     frame_units=x.frame_units))
        return out

    def describe(self) -> dict:
        """What the model card says about this detector: the members, how they are fused,
        and what the members say about themselves (the primary's encoder first)."""
        parts: list[dict] = [getattr(m, "describe", dict)() for m in (self.secondary, self.primary)]
        merged = {k: v for part in parts for k, v in part.items()}
        return {
            **merged,
            "members": f"{self.primary.name} (primary) + {self.secondary.name} (secondary)",
            "fusion": f"{self.config.mode}, secondary weight {self.config.weight}"
            + self._weight_origin(),
        }

    def _weight_origin(self) -> str:
        """Where the secondary's weight came from, for the model card."""
        n = self.weight_chosen_on
        if n is None:
            return " (given)"
        if n == 0:
            return (f" (not chosen: a weight is chosen on {MIN_WEIGHT_IMAGES} held-out normal images, 10 % of at least "
                    f"{10 * MIN_WEIGHT_IMAGES}; with fewer, the primary decides with its own thresholds)")
        if n < MIN_WEIGHT_IMAGES:
            return f" (only {n} held-out normal images, fewer than the {MIN_WEIGHT_IMAGES} a weight is chosen on: the primary decides)"
        candidates = ", ".join(str(w) for w in WEIGHT_CANDIDATES)
        return f" (chosen on {n} held-out normal images: the largest of {candidates} that adds no outlier among them)"

    def save(self, directory: str | Path) -> None:
        """The primary's files in the folder, the secondary's in a subfolder named after its
        kind, and ``fusion.json`` naming both."""
        out = Path(directory)
        # fusion.json goes last and any older one first: a save cut short never pairs old
        # statistics with new member files.
        (out / FUSION_FILE).unlink(missing_ok=True)
        secondary_dir = self.secondary.name
        self.primary.save(out / PRIMARY_DIR)
        self.secondary.save(out / secondary_dir)
        write_json_atomic(
            out / FUSION_FILE,
            {
                "format": FUSION_FORMAT,
                "format_version": FUSION_FORMAT_VERSION,
                "primary": {"kind": self.primary.name, "dir": PRIMARY_DIR},
                "secondary": {"kind": self.secondary.name, "dir": secondary_dir},
                "config": {"mode": self.config.mode, "weight": self.config.weight},
                "weight_chosen_on": self.weight_chosen_on,
                "primary_stats": self.primary_stats.to_json(),
                "secondary_stats": self.secondary_stats.to_json(),
                "normal_stats": self.normal_stats.to_json(),
                "thresholds": self.thresholds.to_json() if self.thresholds else None,
            },
        )

    @classmethod
    def needs_taxonomy(cls, directory: str | Path) -> bool:
        """Never: a fused model's members are bound to their part when it is fitted."""
        return False

    @classmethod
    def load(cls, directory: str | Path, *, context: LoadContext | None = None) -> FusedDetector:
        """Load a folder written by :meth:`save` (or by version 1, memory bank + grounding);
        each member is loaded by its kind through :mod:`defectlens.detect.registry`."""
        # Imported here: the registry imports this module to register the fused kind.
        from defectlens.detect.registry import load_detector

        root = Path(directory)
        remedy = "`defectlens fit --grounding`"
        meta = read_model_json(root, FUSION_FILE, FUSION_FORMAT, FUSION_FORMAT_VERSION, "fused model", remedy, oldest=1)
        path = root / FUSION_FILE
        try:
            config = FusionConfig(**meta["config"])
            if config.weight is None:
                raise ValueError("no fusion weight")
            chosen_on = None if meta.get("weight_chosen_on") is None else int(meta["weight_chosen_on"])
            thresholds = Thresholds(**meta["thresholds"]) if meta.get("thresholds") else None
            if meta["format_version"] == 1:
                # Version 1: memory bank in the folder, grounding in grounding/, the part's
                # taxonomy in fusion.json and the token cue implied.
                part = parse_taxonomy(meta["taxonomy"], path, require_descriptions=True)
                members = [("memory-bank", PRIMARY_DIR, None), ("grounding", LEGACY_SECONDARY_DIR, part)]
                keys = ("vision_stats", "grounding_stats", "normal_stats")
            else:
                members = [(str(meta[m]["kind"]), str(meta[m]["dir"]), None) for m in ("primary", "secondary")]
                keys = ("primary_stats", "secondary_stats", "normal_stats")
            stats = [NormalStatistics.from_json(meta[k]) for k in keys]
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ModelFileError(f"invalid fusion settings ({exc})", path, f"re-fit with {remedy}") from None
        for _, sub, _ in members:
            # A member folder outside the model would let a hand-edited file read anything.
            if Path(sub).is_absolute() or ".." in Path(sub).parts:
                raise ModelFileError(f"member folder {sub!r} lies outside the model", path, f"re-fit with {remedy}")
        primary, secondary = (
            load_detector(kind, root / sub, LoadContext(taxonomy=taxonomy, cue="token") if taxonomy else None, where=path)
            for kind, sub, taxonomy in members
        )
        detector = cls(primary, secondary, stats[0], stats[1], config, stats[2], chosen_on)
        detector.thresholds = thresholds
        return detector
