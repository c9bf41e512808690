"""Greedy k-center coreset selection (PatchCore's memory-bank subsampling).

Picking the point farthest from everything selected so far keeps the bank's coverage of
normal appearance while cutting its size (and the search cost) by 10x or more.
"""

from __future__ import annotations

import torch


def greedy_coreset(
    features: torch.Tensor, n_select: int, projection_dim: int = 64, seed: int = 0
) -> torch.Tensor:
    """Indices of ``n_select`` rows of ``features`` (N, C) chosen by greedy k-center.

    Distances are computed in a random Gaussian projection to ``projection_dim`` dimensions
    (Johnson-Lindenstrauss): k-center only needs relative distances, and the projection makes
    each of the ``n_select`` passes over the N points several times cheaper.
    """
    n = features.shape[0]
    if n_select >= n:
        return torch.arange(n)
    if n_select < 1:
        raise ValueError(f"n_select must be >= 1, got {n_select}")
    gen = torch.Generator().manual_seed(seed)
    x = features.float()
    if projection_dim and projection_dim < x.shape[1]:
        proj = torch.randn(x.shape[1], projection_dim, generator=gen) / projection_dim**0.5
        x = x @ proj
    x = x.contiguous()
    sq = (x * x).sum(1)
    selected = torch.empty(n_select, dtype=torch.long)
    current = int(torch.randint(n, (1,), generator=gen))
    min_dist = torch.full((n,), float("inf"))
    for i in range(n_select):
        selected[i] = current
        c = x[current]
        # ||x - c||^2 via one mat-vec: far cheaper than materialising x - c.
        d = sq - 2.0 * (x @ c) + sq[current]
        torch.minimum(min_dist, d, out=min_dist)
        current = int(torch.argmax(min_dist))
    return selected
