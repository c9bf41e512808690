"""Visual inputs of the grounding connector: frozen patch features made comparable across parts.

A connector trained on two or three kinds of part must work on a part it has never seen, so
it is not fed raw features (whose absolute values say "this is a commutator") but:

* the features standardised per image over the image's own footprint — how each patch
  differs from the typical patch of *this* image, whatever the part;
* three self-similarity channels: each patch's distance to its nearest, its 3 %-nearest and
  its 10 %-nearest patches elsewhere in the same image (cells next to it excluded), divided
  by the image's median of that distance. Defects are rare within an image; normal surface
  repeats. This is the zero-shot cue that transfers between parts.
* two batch-context channels (mutual scoring across the images inspected together, as in
  MuSc): each patch's distance to its nearest patch in each of up to 16 other images of the
  batch, averaged over the closest 30 % of those images — a defect is rare *across* images
  of the part even when it fills much of its own image. One channel is relative to the
  batch's median (so a wholly unusual image stands out), one to the image's own median.
  With a single image there is no batch: the channels are 0, "typical", and the model
  (trained with them dropped at random) falls back on the within-image cues.

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

N_IMAGE_CHANNELS = 3
"""Within-image self-similarity channels."""
N_BATCH_CHANNELS = 2
"""Batch-context channels (zero when an image is read alone)."""
N_SIMILARITY_CHANNELS = N_IMAGE_CHANNELS + N_BATCH_CHANNELS
BATCH_REFERENCES = 16
"""Other images of the batch each image is compared with (random, seeded)."""
BATCH_CLOSEST_FRACTION = 0.3
"""Share of those references, the closest ones, whose distances are averaged: robust to
another image having the same defect in the same place."""
_RARITY_FRACTIONS = (0.03, 0.10)
_EXCLUDE_RADIUS = 1
"""Cells within this Chebyshev distance of a patch are not its reference: they overlap it."""

Progress = Callable[[int], None]


@dataclass
class GridInputs:
    """Connector inputs of one image on its feature grid."""

    inputs: torch.Tensor
    """(C + 5, h, w): standardised features, self-similarity channels, batch-context channels."""
    footprint: torch.Tensor
    """(h, w) float32: share of each cell on the image (not the mirrored border)."""
    placement: Placement
    canvas: CanvasSpec
    moments: torch.Tensor | None = None
    """(2, C) per-image mean and std the features were standardised with: batch context
    compares images in the encoder's own units, where a wholly unusual image still shows."""

    def features(self) -> torch.Tensor:
        """(h*w, C) float32 features in the encoder's units (standardised ones without moments)."""
        c = self.inputs.shape[0] - N_SIMILARITY_CHANNELS
        flat = self.inputs[:c].float().reshape(c, -1).T
        if self.moments is None:
            return flat.contiguous()
        return (flat * self.moments[1].float() + self.moments[0].float()).contiguous()

    @property
    def has_context(self) -> bool:
        """True once :func:`add_batch_context` has filled the batch channels from other images."""
        return bool(self.inputs[-N_BATCH_CHANNELS:].abs().amax() > 0)


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


def grid_inputs(features: torch.Tensor, footprint: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Connector inputs (C + 5, h, w) from one image's fused features (C, h, w), and the (2, C)
    mean and std they were standardised with. The batch channels are 0 until
    :func:`add_batch_context` fills them."""
    c, h, w = features.shape
    flat = features.reshape(c, h * w).T.float()
    keep = footprint.reshape(-1) > 0.5
    if int(keep.sum()) < 2:
        keep = torch.ones_like(keep)
    ref = flat[keep]
    mean, std = ref.mean(0), ref.std(0).clamp_min(1e-3)
    standardised = ((flat - mean) / std).T.reshape(c, h, w)
    inputs = torch.cat([standardised, _self_similarity(flat, keep, h, w), torch.zeros(N_BATCH_CHANNELS, h, w)], dim=0)
    return inputs, torch.stack([mean, std])


def add_batch_context(
    grids: Sequence[GridInputs],
    n_references: int = BATCH_REFERENCES,
    closest_fraction: float = BATCH_CLOSEST_FRACTION,
    seed: int = 0,
) -> list[GridInputs]:
    """The same grids with their batch-context channels filled from each other.

    Each image is compared with up to ``n_references`` other images of ``grids`` (its own
    patches never count). Fewer than two images: returned unchanged (channels stay 0).
    """
    if len(grids) < 2:
        return list(grids)
    flats, keeps = [], []
    for g in grids:
        flats.append(g.features())
        keep = g.footprint.reshape(-1) > 0.5
        keeps.append(keep if bool(keep.any()) else torch.ones_like(keep))
    refs = [f[k] for f, k in zip(flats, keeps, strict=True)]
    rng = np.random.default_rng(seed)
    distances = []
    for i, flat in enumerate(flats):
        others = np.delete(np.arange(len(grids)), i)
        picked = rng.choice(others, min(n_references, len(others)), replace=False)
        nearest = torch.stack([torch.cdist(flat, refs[j]).min(dim=1).values for j in picked], dim=1)
        k = max(1, math.ceil(closest_fraction * len(picked)))
        distances.append(torch.topk(nearest, k, dim=1, largest=False).values.mean(dim=1))
    batch_median = torch.cat([d[k] for d, k in zip(distances, keeps, strict=True)]).median().clamp_min(1e-6)
    out = []
    for g, d, keep in zip(grids, distances, keeps, strict=True):
        _, h, w = g.inputs.shape
        own_median = d[keep].median().clamp_min(1e-6)
        context = torch.stack(
            [torch.log((d / batch_median).clamp_min(1e-3)), torch.log((d / own_median).clamp_min(1e-3))]
        ).reshape(N_BATCH_CHANNELS, h, w)
        inputs = g.inputs.clone()
        inputs[-N_BATCH_CHANNELS:] = context.to(inputs.dtype)
        out.append(GridInputs(inputs, g.footprint, g.placement, g.canvas, g.moments))
    return out


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
                inputs, moments = grid_inputs(feat, fp)
                yield i, GridInputs(inputs, fp, placement, spec, moments)
            if progress:
                progress(len(chunk))
