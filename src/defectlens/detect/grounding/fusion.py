"""Look twice: fuse the grounding model's map and score with a vision expert's (memory bank).

The two detectors speak different units — a memory bank gives feature distances, the
grounding model probabilities — so each is first put on a common scale with statistics of
*normal* images it did not train on (:class:`~defectlens.detect.NormalStatistics`):
``(x - median) / (q - median)``, where ``q`` is a high quantile. After that 0 means "typical
of normal" and 1 "as high as the rare normal extreme", for both. They are then combined by a
weighted sum (either detector can raise an alarm) or a weighted geometric mean (both must
agree; fewer false alarms).

The functions work on plain numpy maps and scores; :class:`FusedDetector` wires a memory
bank and a :class:`~defectlens.detect.grounding.detector.GroundingDetector` together and is
what ``defectlens fit --grounding`` saves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defectlens.detect.calibration import NormalStatistics, normal_statistics, thresholds_from_normal
from defectlens.detect.grounding.detector import GroundingDetector
from defectlens.detect.grounding.model import GroundingModel
from defectlens.detect.memory_bank import MemoryBankDetector
from defectlens.errors import ModelFileError
from defectlens.io.atomic import read_model_json, write_json_atomic
from defectlens.taxonomy import Taxonomy, parse_taxonomy
from defectlens.types import AnomalyResult, Thresholds

FUSION_MODES = ("sum", "product")


@dataclass(frozen=True)
class FusionConfig:
    """How to combine the two normalised opinions."""

    mode: str = "sum"
    """'sum': weighted mean; 'product': weighted geometric mean of the positive parts."""
    weight: float = 0.5
    """Weight of the grounding model (the vision expert gets 1 - weight)."""

    def __post_init__(self) -> None:
        if self.mode not in FUSION_MODES:
            raise ValueError(f"fusion mode must be one of {', '.join(FUSION_MODES)}, got {self.mode!r}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"fusion weight must be in [0, 1], got {self.weight}")


def _combine(vision: np.ndarray | float, grounding: np.ndarray | float, cfg: FusionConfig):
    w = cfg.weight
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
    """(fused score, fused map) of one image; see :func:`fuse_scores` and :func:`fuse_maps`."""
    cfg = cfg or FusionConfig()
    return (
        fuse_scores(vision_score, grounding_score, vision, grounding, cfg),
        fuse_maps(vision_map, grounding_map, vision, grounding, cfg),
    )


FUSION_FILE = "fusion.json"
FUSION_FORMAT = "defectlens.fusion"
FUSION_FORMAT_VERSION = 1
GROUNDING_SUBDIR = "grounding"
"""The grounding model is copied into the fused model's folder: the folder stands alone."""


class FusedDetector:
    """Look twice: a memory bank and a grounding model read every image; their normalised maps
    and scores are fused, and the decision thresholds are set on the fused scale with the
    same held-out normal images that normalised both."""

    name = "fused"

    def __init__(
        self,
        vision: MemoryBankDetector,
        grounding: GroundingDetector,
        vision_stats: NormalStatistics,
        grounding_stats: NormalStatistics,
        config: FusionConfig,
        normal_stats: NormalStatistics,
    ):
        self.vision = vision
        self.grounding = grounding
        self.vision_stats = vision_stats
        self.grounding_stats = grounding_stats
        self.config = config
        self.normal_stats = normal_stats
        """Statistics of the fused output on the held-out normal images."""
        self.thresholds: Thresholds | None = thresholds_from_normal(normal_stats)

    @property
    def taxonomy(self) -> Taxonomy:
        """The part's taxonomy the grounding model reads images with."""
        return self.grounding.taxonomy

    @classmethod
    def calibrate(
        cls,
        vision: MemoryBankDetector,
        grounding: GroundingDetector,
        normal_images: Sequence[np.ndarray],
        config: FusionConfig | None = None,
    ) -> FusedDetector:
        """Normalise both detectors on normal images neither trained on, then set thresholds
        at the normal quantile of the fused output."""
        if not normal_images:
            raise ValueError("fusion needs held-out normal images to normalise both detectors on")
        config = config or FusionConfig()
        if grounding.cue != "token":
            # Normal statistics need fixed units; batch-relative scores change with every batch.
            raise ValueError("fusion normalises the grounding model's token probabilities: give it a detector with cue='token'")
        v = vision.score(normal_images)
        g = grounding.score(normal_images)
        vision_stats = normal_statistics([r.score for r in v], [r.anomaly_map for r in v], vision.config.quantile)
        grounding_stats = normal_statistics([r.score for r in g], [r.anomaly_map for r in g], vision.config.quantile)
        fused = [
            fuse(a.score, a.anomaly_map, b.score, b.anomaly_map, vision_stats, grounding_stats, config)
            for a, b in zip(v, g, strict=True)
        ]
        stats = normal_statistics([f[0] for f in fused], [f[1] for f in fused], vision.config.quantile)
        return cls(vision, grounding, vision_stats, grounding_stats, config, stats)

    def score(self, images: Sequence[np.ndarray], progress: Callable[[int], None] | None = None) -> list[AnomalyResult]:
        """Fused score and map per RGB image (normal-relative units), grounding maps attached."""
        v = self.vision.score(images, progress)
        g = self.grounding.score(images)
        out = []
        for a, b in zip(v, g, strict=True):
            score, fused_map = fuse(a.score, a.anomaly_map, b.score, b.anomaly_map, self.vision_stats, self.grounding_stats, self.config)
            out.append(AnomalyResult(score, fused_map, grounding=b.grounding))
        return out

    def save(self, directory: str | Path) -> None:
        """The memory bank's files, the grounding model in ``grounding/``, and ``fusion.json``."""
        out = Path(directory)
        # fusion.json goes last and any older one first: a save cut short leaves a plain
        # memory-bank model, never old statistics paired with new files.
        (out / FUSION_FILE).unlink(missing_ok=True)
        self.vision.save(out)
        self.grounding.save(out / GROUNDING_SUBDIR)
        write_json_atomic(
            out / FUSION_FILE,
            {
                "format": FUSION_FORMAT,
                "format_version": FUSION_FORMAT_VERSION,
                "config": {"mode": self.config.mode, "weight": self.config.weight},
                "taxonomy": self.taxonomy.to_json(),
                "vision_stats": self.vision_stats.to_json(),
                "grounding_stats": self.grounding_stats.to_json(),
                "normal_stats": self.normal_stats.to_json(),
                "thresholds": self.thresholds.to_json() if self.thresholds else None,
            },
        )

    @classmethod
    def load(cls, directory: str | Path) -> FusedDetector:
        """Load a folder written by :meth:`save`; every file is checked with a clear error."""
        root = Path(directory)
        meta = read_model_json(root, FUSION_FILE, FUSION_FORMAT, FUSION_FORMAT_VERSION, "fused model", "`defectlens fit --grounding`")
        path = root / FUSION_FILE
        try:
            config = FusionConfig(**meta["config"])
            taxonomy = parse_taxonomy(meta["taxonomy"], path, require_descriptions=True)
            stats = [NormalStatistics.from_json(meta[k]) for k in ("vision_stats", "grounding_stats", "normal_stats")]
            thresholds = Thresholds(**meta["thresholds"]) if meta.get("thresholds") else None
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"invalid fusion settings ({exc})", path, "re-fit with `defectlens fit --grounding`") from None
        vision = MemoryBankDetector.load(root)
        grounding = GroundingDetector(GroundingModel.load(root / GROUNDING_SUBDIR), taxonomy, path, cue="token")
        detector = cls(vision, grounding, stats[0], stats[1], config, stats[2])
        detector.thresholds = thresholds
        return detector
