"""Look twice: fuse the grounding model's map and score with a vision expert's (memory bank).

The two detectors speak different units — a memory bank gives feature distances, the
grounding model probabilities — so each is first put on a common scale with statistics of
*normal* images it did not train on (:class:`~defectlens.detect.NormalStatistics`):
``(x - median) / (q - median)``, where ``q`` is a high quantile. After that 0 means "typical
of normal" and 1 "as high as the rare normal extreme",
for both. They are then combined by a weighted sum (either detector can raise an alarm) or a
weighted geometric mean (both must agree; fewer false alarms).

Works on plain numpy maps and scores, so it does not depend on either detector's class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from defectlens.detect.calibration import NormalStatistics

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
