"""Defect types from words alone: pool the grounding model's patch–description similarities
inside each region and pick the description that fits best.

No labelled example of a type is needed — a new type needs only a sentence in the taxonomy.
Pooling is weighted by the anomaly map when given (the defect's core counts more than its
rim), and by default the image's similarity outside every region is subtracted first, so a
description that is simply close to *any* surface of this part gains nothing from that.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import softmax

from defectlens.taxonomy import UNKNOWN
from defectlens.types import GroundingResult, RegionType


def classify_regions_from_text(
    type_maps: np.ndarray,
    type_names: Sequence[str],
    region_masks: Sequence[np.ndarray],
    region_indices: Sequence[int] | None = None,
    logit_scale: float = 10.0,
    weights: np.ndarray | None = None,
    subtract_background: bool = True,
    min_similarity: float | None = None,
) -> list[RegionType]:
    """Type of each region from per-type similarity maps.

    Args:
        type_maps: (T, H, W) similarity of each pixel to each type's description
            (:attr:`GroundingResult.type_maps`).
        type_names: the T type names.
        region_masks: one bool (H, W) mask per region.
        region_indices: :attr:`Region.index` of each mask (default 1, 2, ...).
        logit_scale: inverse temperature for the softmax over types
            (:attr:`GroundingResult.type_logit_scale`).
        weights: optional (H, W) non-negative pixel weights, e.g. the anomaly map.
        subtract_background: compare each region with the image outside all regions.
        min_similarity: when set, a region whose best pooled similarity is below it is
            'unknown' (far from every described type).

    Returns:
        One :class:`RegionType` per region (method 'text'), candidates best first.
    """
    maps = np.asarray(type_maps, dtype=np.float64)
    if maps.ndim != 3 or maps.shape[0] != len(type_names):
        raise ValueError(f"type_maps must be (T, H, W) with T={len(type_names)}, got {maps.shape}")
    if region_indices is None:
        region_indices = list(range(1, len(region_masks) + 1))
    if len(region_indices) != len(region_masks):
        raise ValueError("region_indices and region_masks differ in length")
    if not region_masks:
        return []
    union = np.zeros(maps.shape[1:], dtype=bool)
    for m in region_masks:
        if m.shape != maps.shape[1:]:
            raise ValueError(f"region mask shape {m.shape} differs from the type maps' {maps.shape[1:]}")
        union |= m
    background = None
    if subtract_background and (~union).any():
        background = maps[:, ~union].mean(axis=1)
    out = []
    for idx, m in zip(region_indices, region_masks, strict=True):
        if not m.any():
            continue
        w = np.ones(int(m.sum())) if weights is None else np.clip(np.asarray(weights)[m], 0, None) + 1e-6
        pooled = (maps[:, m] * w).sum(axis=1) / w.sum()
        raw_best = float(pooled.max())
        score = pooled - background if background is not None else pooled
        probs = softmax(logit_scale * score)
        order = np.argsort(-probs)
        best = int(order[0])
        name = type_names[best]
        if min_similarity is not None and raw_best < min_similarity:
            name = UNKNOWN
        out.append(
            RegionType(
                region_index=int(idx),
                defect_type=name,
                confidence=float(probs[best]),
                method="text",
                candidates=tuple((type_names[i], float(probs[i])) for i in order),
            )
        )
    return out


def classify_from_grounding(
    result: GroundingResult, region_labels: np.ndarray, subtract_background: bool = True
) -> list[RegionType]:
    """Types of the regions of an :class:`Inspection` (``region_labels``: 0 outside, else the
    region's index) from a :class:`GroundingResult` of the same image."""
    labels = np.asarray(region_labels)
    indices = [int(i) for i in np.unique(labels) if i > 0]
    return classify_regions_from_text(
        result.type_maps,
        result.type_names,
        [labels == i for i in indices],
        indices,
        logit_scale=result.type_logit_scale,
        weights=result.anomaly_map,
        subtract_background=subtract_background,
    )
