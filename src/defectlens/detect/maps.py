"""Anomaly maps: the one smoothing and the one image score every detector uses.

A patch's anomaly value is noisy and a defect covers an area, so maps are smoothed with a
Gaussian before anything reads them, and an image's score is the mean of its map's top share
of pixels rather than the single hottest pixel. Both live here so the memory bank and the
grounding model (and any later detector) agree on what "smoothed" and "score" mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from defectlens.detect.calibration import subsample
from defectlens.encode import CanvasSpec, EncodedBatch, Placement, footprint_grid, map_to_original
from defectlens.types import AnomalyResult


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of radius ``ceil(3 sigma)`` (at least 1)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def smooth_maps(maps: torch.Tensor, sigma: float, kernel: torch.Tensor | None = None) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W) maps; ``sigma <= 0`` returns them unchanged.

    Borders are replicate-padded so they are not pulled towards zero (a defect at the edge
    of the image keeps its height). ``kernel`` lets a caller reuse :func:`gaussian_kernel`.
    """
    if sigma <= 0:
        return maps
    k = gaussian_kernel(sigma) if kernel is None else kernel
    r = k.numel() // 2
    x = F.conv2d(F.pad(maps, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


def smooth_map(anomaly_map: np.ndarray, sigma: float) -> np.ndarray:
    """:func:`smooth_maps` for one (H, W) numpy map; returns float32."""
    maps = torch.from_numpy(np.ascontiguousarray(anomaly_map, dtype=np.float32))[None, None]
    return smooth_maps(maps, sigma)[0, 0].numpy()


def image_score(anomaly_map: np.ndarray, top_fraction: float) -> float:
    """Mean of the highest ``top_fraction`` of the map's values (``round``, at least one
    pixel); the maximum when ``top_fraction`` is 0."""
    values = np.asarray(anomaly_map).ravel()
    k = max(1, round(values.size * top_fraction))
    if k == 1:
        return float(values.max())
    return float(np.partition(values, values.size - k)[values.size - k :].mean())


def grid_to_results(grid_values: torch.Tensor, encoded: EncodedBatch, sigma: float, top_fraction: float) -> list[AnomalyResult]:
    """Turn (N, h, w) cell values of ``encoded``'s images into results: upsampled to the canvas,
    smoothed, cropped to each image's footprint and resized to its original size."""
    spec = encoded.canvas
    grid = grid_values.float().unsqueeze(1)
    canvas_maps = smooth_maps(F.interpolate(grid, size=(spec.height, spec.width), mode="bilinear", align_corners=False), sigma)
    results = []
    for cmap, placement in zip(canvas_maps[:, 0], encoded.placements, strict=True):
        full = map_to_original(cmap, placement)
        results.append(AnomalyResult(score=image_score(full, top_fraction), anomaly_map=full))
    return results


@lru_cache(maxsize=256)
def _on_image(placement: Placement, spec: CanvasSpec, grid: tuple[int, int]) -> torch.Tensor:
    return torch.from_numpy(footprint_grid(placement, spec, grid) > 0.5)


def on_image_cells(batches: Iterable[EncodedBatch]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(features (C, h, w), on-image cells (h, w) bool) per image of encoded normal batches.

    Only cells that lie on the image train a detector: the mirrored border around an image
    placed on its canvas is not part of the part."""
    for encoded in batches:
        grid = (int(encoded.features.shape[-2]), int(encoded.features.shape[-1]))
        for feat, placement in zip(encoded.features, encoded.placements, strict=True):
            yield feat, _on_image(placement, encoded.canvas, grid)


MIN_BATCH = 8
"""Fewest images a batch-relative detector (the grounding batch cue, batch scoring) reads
together: below this a median and MAD, or a closest share of the others, say little."""
MAD_TO_SIGMA = 1.4826
"""Median absolute deviation -> standard deviation of a normal distribution."""


def robust_units(values: np.ndarray) -> tuple[float, float]:
    """Median and MAD-based spread of ``values`` (subsampled, seeded): the units of a batch in
    which most values are normal, whatever the few outliers do."""
    values = subsample(np.asarray(values, np.float64).ravel())
    median = float(np.median(values))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
    return median, max(spread, 1e-6)


def batch_relative_maps(maps: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each map in robust z-scores over all pixels of the batch (what batch-relative detectors report)."""
    median, spread = robust_units(np.concatenate([np.asarray(m, np.float64).ravel() for m in maps]))
    return [((np.asarray(m, np.float32) - median) / spread).astype(np.float32) for m in maps]


def batch_relative_scores(scores: Sequence[float] | np.ndarray) -> list[float]:
    """Image scores in robust z-scores of the batch's image scores."""
    values = np.asarray(scores, np.float64)
    median, spread = robust_units(values)
    return [float((s - median) / spread) for s in values]
