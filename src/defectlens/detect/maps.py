"""Anomaly maps: the one smoothing and the one image score every detector uses.

A patch's anomaly value is noisy and a defect covers an area, so maps are smoothed with a
Gaussian before anything reads them, and an image's score is the mean of its map's top share
of pixels rather than the single hottest pixel. Both live here so the memory bank and the
grounding model (and any later detector) agree on what "smoothed" and "score" mean.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


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
