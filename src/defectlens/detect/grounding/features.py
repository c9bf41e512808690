"""Visual inputs of the grounding connector: frozen patch features made comparable across parts.

A connector trained on two or three kinds of part must work on a part it has never seen, so
it is not fed raw features (whose absolute values say "this is a commutator") but:

* the features standardised per image over the image's own footprint — how each patch
  differs from the typical patch of *this* image, whatever the part;
* three self-similarity channels: each patch's distance to its nearest, its 3 %-nearest and
  its 10 %-nearest patches elsewhere in the same image (cells next to it excluded), divided
  by the image's median of that distance. Defects are rare within an image; normal surface
  repeats. This is the zero-shot cue that transfers between parts.

Every image gets its own canvas of about ``side``² pixels with its aspect ratio kept, so a tall
commutator is not squashed into a square.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from defectlens.encode import CanvasSpec, PatchEncoder, Placement, footprint_grid

N_SIMILARITY_CHANNELS = 3
_RARITY_FRACTIONS = (0.03, 0.10)
_EXCLUDE_RADIUS = 1
"""Cells within this Chebyshev distance of a patch are not its reference: they overlap it."""

Progress = Callable[[int], None]


@dataclass
class GridInputs:
    """Connector inputs of one image on its feature grid."""

    inputs: torch.Tensor
    """(C + 3, h, w) float32: standardised features + self-similarity channels."""
    footprint: torch.Tensor
    """(h, w) float32: share of each cell on the image (not the mirrored border)."""
    placement: Placement
    canvas: CanvasSpec


def to_grey(image: np.ndarray) -> np.ndarray:
    """RGB uint8 -> the same image in grey, replicated on 3 channels (ITU-R 601 luma).

    Colour differs between parts and cameras but says little about surface defects here;
    dropping it removes one way for the connector to latch onto the part's identity.
    """
    luma = image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114
    grey = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def canvas_for_image(height: int, width: int, side: int) -> CanvasSpec:
    """A canvas of about ``side``² pixels with the image's own aspect ratio (sides multiples of 32)."""
    return CanvasSpec.for_sizes([(width, height)], side)


def _self_similarity(flat: torch.Tensor, keep: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(3, h, w) log relative distances of each cell to other on-image cells of the same image."""
    ref = flat[keep]
    n_ref = ref.shape[0]
    dist = torch.cdist(flat, ref)  # (h*w, n_ref)
    ys, xs = torch.div(torch.arange(h * w), w, rounding_mode="floor"), torch.arange(h * w) % w
    ref_idx = torch.nonzero(keep, as_tuple=False)[:, 0]
    near = ((ys[:, None] - ys[ref_idx][None]).abs() <= _EXCLUDE_RADIUS) & (
        (xs[:, None] - xs[ref_idx][None]).abs() <= _EXCLUDE_RADIUS
    )
    dist = dist.masked_fill(near, float("inf"))
    n_valid = max(1, n_ref - (2 * _EXCLUDE_RADIUS + 1) ** 2)
    ks = [1] + [max(1, min(n_valid, math.ceil(f * n_ref))) for f in _RARITY_FRACTIONS]
    smallest = torch.topk(dist, max(ks), dim=1, largest=False).values
    # A tiny image may have fewer references than k outside the exclusion zone: ignore the infs.
    smallest = torch.where(torch.isfinite(smallest), smallest, torch.nan)
    channels = []
    for k in ks:
        d = smallest[:, :k].nanmean(dim=1) if k > 1 else smallest[:, 0]
        d = torch.nan_to_num(d, nan=0.0)
        # Relative to the image's typical value: texture coarseness differs between parts.
        med = d[keep].median().clamp_min(1e-6)
        channels.append(torch.log((d / med).clamp_min(1e-3)))
    return torch.stack(channels).reshape(len(ks), h, w)


def grid_inputs(features: torch.Tensor, footprint: torch.Tensor) -> torch.Tensor:
    """Connector inputs (C + 3, h, w) from one image's fused features (C, h, w)."""
    c, h, w = features.shape
    flat = features.reshape(c, h * w).T.float()
    keep = footprint.reshape(-1) > 0.5
    if int(keep.sum()) < 2:
        keep = torch.ones_like(keep)
    ref = flat[keep]
    mean, std = ref.mean(0), ref.std(0).clamp_min(1e-3)
    standardised = ((flat - mean) / std).T.reshape(c, h, w)
    return torch.cat([standardised, _self_similarity(flat, keep, h, w)], dim=0)


def iter_grid_inputs(
    encoder: PatchEncoder,
    images: Sequence[np.ndarray],
    side: int,
    grey: bool = True,
    batch_size: int = 8,
    progress: Progress | None = None,
) -> Iterator[tuple[int, GridInputs]]:
    """Encode ``images`` (RGB uint8) and yield (index, :class:`GridInputs`) for each, in batches
    of images that share a canvas."""
    groups: dict[CanvasSpec, list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(canvas_for_image(img.shape[0], img.shape[1], side), []).append(i)
    for spec, members in groups.items():
        grid = encoder.grid_for(spec)
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            batch = [to_grey(images[i]) if grey else images[i] for i in chunk]
            encoded = encoder.encode(batch, spec)
            for i, feat, placement in zip(chunk, encoded.features, encoded.placements, strict=True):
                fp = torch.from_numpy(footprint_grid(placement, spec, grid)).float()
                yield i, GridInputs(grid_inputs(feat, fp), fp, placement, spec)
            if progress:
                progress(len(chunk))
