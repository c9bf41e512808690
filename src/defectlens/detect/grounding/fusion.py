"""Look twice: fuse the grounding model's map and score with a vision expert's (memory bank).

The two detectors speak different units — a memory bank gives feature distances, the
grounding model probabilities — so each is first put on a common scale with statistics of
*normal* images it did not train on: ``(x - median) / (q - median)``, where ``q`` is a high
quantile. After that 0 means "typical of normal" and 1 "as high as the rare normal extreme",
for both. They are then combined by a weighted sum (either detector can raise an alarm) or a
weighted geometric mean (both must agree; fewer false alarms).

Works on plain numpy maps and scores, so it does not depend on either detector's class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FUSION_MODES = ("sum", "product")


@dataclass(frozen=True)
class NormalStats:
    """Median and high quantile of one detector's scores and map values on normal images."""

    image_median: float
    image_quantile: float
    pixel_median: float
    pixel_quantile: float
    quantile: float = 0.99
    n_images: int = 0

    @classmethod
    def from_normal(
        cls, scores: Sequence[float], maps: Sequence[np.ndarray], quantile: float = 0.99, max_pixels: int = 2_000_000
    ) -> NormalStats:
        """Statistics of held-out normal images' scores and maps (pixels subsampled, seeded)."""
        if len(scores) == 0 or len(maps) == 0:
            raise ValueError("need at least one normal image to normalise a detector")
        if not 0.5 <= quantile < 1.0:
            raise ValueError(f"quantile must be in [0.5, 1), got {quantile}")
        s = np.asarray(scores, dtype=np.float64)
        px = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in maps])
        if px.size > max_pixels:
            px = np.random.default_rng(0).choice(px, max_pixels, replace=False)
        return cls(
            image_median=float(np.median(s)),
            image_quantile=float(np.quantile(s, quantile)),
            pixel_median=float(np.median(px)),
            pixel_quantile=float(np.quantile(px, quantile)),
            quantile=quantile,
            n_images=len(s),
        )

    def normalise_score(self, score: float) -> float:
        """Image score in normal-relative units (0 = normal median, 1 = normal quantile)."""
        return float((score - self.image_median) / max(self.image_quantile - self.image_median, 1e-12))

    def normalise_map(self, anomaly_map: np.ndarray) -> np.ndarray:
        """Map in normal-relative units, float32."""
        span = max(self.pixel_quantile - self.pixel_median, 1e-12)
        return ((np.asarray(anomaly_map, dtype=np.float32) - self.pixel_median) / span).astype(np.float32)

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict) -> NormalStats:
        """Inverse of :meth:`to_json`."""
        return cls(**d)


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
    vision_map: np.ndarray, grounding_map: np.ndarray, vision: NormalStats, grounding: NormalStats, cfg: FusionConfig
) -> np.ndarray:
    """Fused (H, W) float32 map from two maps of the same image at the same resolution."""
    if vision_map.shape != grounding_map.shape:
        raise ValueError(f"maps differ in shape: {vision_map.shape} vs {grounding_map.shape}")
    return np.asarray(_combine(vision.normalise_map(vision_map), grounding.normalise_map(grounding_map), cfg), dtype=np.float32)


def fuse_scores(vision_score: float, grounding_score: float, vision: NormalStats, grounding: NormalStats, cfg: FusionConfig) -> float:
    """Fused image score in normal-relative units (1 ≈ the rare normal extreme)."""
    return float(_combine(vision.normalise_score(vision_score), grounding.normalise_score(grounding_score), cfg))


def fuse(
    vision_score: float,
    vision_map: np.ndarray,
    grounding_score: float,
    grounding_map: np.ndarray,
    vision: NormalStats,
    grounding: NormalStats,
    cfg: FusionConfig | None = None,
) -> tuple[float, np.ndarray]:
    """(fused score, fused map) of one image; see :func:`fuse_scores` and :func:`fuse_maps`."""
    cfg = cfg or FusionConfig()
    return (
        fuse_scores(vision_score, grounding_score, vision, grounding, cfg),
        fuse_maps(vision_map, grounding_map, vision, grounding, cfg),
    )
