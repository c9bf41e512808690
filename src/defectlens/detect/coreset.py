"""Greedy k-center coreset selection (PatchCore's memory-bank subsampling).

Picking the point farthest from everything selected so far keeps the bank's coverage of
normal appearance while cutting its size (and the search cost) by 10x or more.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def greedy_coreset(
    features: torch.Tensor | Sequence[torch.Tensor], n_select: int, projection_dim: int = 64, seed: int = 0
) -> torch.Tensor:
    """Indices of ``n_select`` rows of ``features`` (N, C) chosen by greedy k-center.

    ``features`` may also be given as blocks of rows (each (n_i, C); the indices then count rows
    of the blocks one after another, see :func:`take_rows`): each block is read once and only its
    projection kept, so the N × C rows are never held together — on 1 200 magnetic tiles a second
    copy of every fit patch (0.6 GB) beside the encoded images.

    Distances are computed in a random Gaussian projection to ``projection_dim`` dimensions
    (Johnson-Lindenstrauss): k-center only needs relative distances, and the projection makes
    each of the ``n_select`` passes over the N points several times cheaper.
    """
    blocks = [features] if isinstance(features, torch.Tensor) else features
    gen = torch.Generator().manual_seed(seed)
    dim = int(blocks[0].shape[1]) if len(blocks) else 0
    proj = None
    if projection_dim and projection_dim < dim:
        proj = torch.randn(dim, projection_dim, generator=gen) / projection_dim**0.5
    projected = [(block.float() @ proj if proj is not None else block.float()).numpy() for block in blocks]
    # One array for the selection's passes (the blocks' projections, a fraction of their size).
    points = np.ascontiguousarray(np.concatenate(projected) if projected else np.zeros((0, 1)), dtype=np.float32)
    del projected
    n = len(points)
    if n_select >= n:
        return torch.arange(n)
    if n_select < 1:
        raise ValueError(f"n_select must be >= 1, got {n_select}")
    # The loop runs in NumPy: its BLAS mat-vec and argmax were 2.5x and 8x torch's on this
    # 2-core CPU (147 k patches x 32 dimensions), the whole selection 4.7x faster with the same
    # rows chosen; each pass is bound by reading the projected patches once.
    sq = np.einsum("ij,ij->i", points, points)
    selected = np.empty(n_select, dtype=np.int64)
    current = int(torch.randint(n, (1,), generator=gen))
    min_dist = np.full(n, np.inf, dtype=np.float32)
    dist = np.empty(n, dtype=np.float32)
    for i in range(n_select):
        selected[i] = current
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2, from one mat-vec and in place: far cheaper than
        # materialising x - c.
        np.dot(points, points[current], out=dist)
        dist *= -2.0
        dist += sq
        dist += sq[current]
        np.minimum(min_dist, dist, out=min_dist)
        current = int(min_dist.argmax())
    return torch.from_numpy(selected)


def take_rows(blocks: Sequence[torch.Tensor], indices: torch.Tensor, sizes: Sequence[int] | None = None) -> torch.Tensor:
    """Rows ``indices`` of the blocks' rows read one block after another (what
    :func:`greedy_coreset` numbers), in the order of ``indices``: the same as
    ``torch.cat(blocks)[indices]`` without building the concatenation. ``sizes``, each block's
    number of rows, spares reading every block when the blocks are made as they are read."""
    rows = torch.tensor([int(block.shape[0]) for block in blocks] if sizes is None else list(sizes))
    starts = torch.cumsum(rows, 0) - rows
    owner = torch.searchsorted(starts, indices, right=True) - 1
    out = torch.empty(len(indices), int(blocks[0].shape[1]), dtype=blocks[0].dtype)
    for b in torch.unique(owner).tolist():
        here = owner == b
        out[here] = blocks[b][indices[here] - starts[b]]
    return out
