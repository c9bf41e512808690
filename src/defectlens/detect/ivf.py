"""Nearest bank rows within the closest cells of an inverted file, searched cell by cell.

The memory bank is split into cells (k-means centres); each query is compared with the rows of
the ``probes`` cells whose centres are nearest, as in faiss's IVF-flat index. faiss scans those
rows query by query. Here the queries of a batch are grouped by the cell they probe, so each
cell's rows are compared with all of its queries in one matrix product: on a batch of images a
cell's queries number in the hundreds, and a product of that size runs faster than
row-by-row distances (magnetic tile, 16 384 rows in 256 cells, 8 probed: 8.1–8.6 ms an image
with faiss at batch 8, 4.7–4.8 here). A single image gives a cell only some 30–60 queries, and
grouped it still ran faster than faiss's scan in the throughput benchmark, on real parts and on
its synthetic textures (single images 1–6 ms faster in 11 of 12 part and runtime pairs). The rows found
are faiss's IVF-flat ones: only the cells probed decide them, and both take the exact nearest
within those (distances differ by float rounding, 1e-5 relative; the tests compare the two).

Exact search is the same scan over one cell holding every row. Leave-one-out calibration passes
each query's source and each row's: rows from the query's own source are skipped in the scan
itself, so the nearest row of another image is found however many of the image's own come first.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import faiss
import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = ["CellSearch"]

T = TypeVar("T")

CHUNK_PAIRS = 2048
"""Queries of one cell compared in one product: bounds the distance block (2048 x the cell's
rows; an exact search's one cell holds up to 4 096) and splits a crowded cell across threads."""


_SCANNING = threading.Lock()
"""Held while a grouped scan runs: its BLAS limit is process-wide, and two scans overlapping would
restore it out of order (and share the same threads anyway)."""


@functools.cache
def _blas() -> ThreadpoolController:
    """The BLAS libraries loaded in this process (inspected once: it walks the loaded libraries)."""
    return ThreadpoolController().select(user_api="blas")


@functools.cache
def _thread_count() -> int:
    """Threads that scan cells side by side: as many as BLAS may use here (its count already
    follows OMP_NUM_THREADS / OPENBLAS_NUM_THREADS, so a Ray worker given one core gets one)."""
    return max(1, max([int(lib["num_threads"]) for lib in _blas().info()] or [1]))


@functools.cache
def _workers() -> ThreadPoolExecutor:
    """The pool of :func:`_thread_count` threads, shared by every search in the process."""
    return ThreadPoolExecutor(max_workers=_thread_count(), thread_name_prefix="defectlens-ivf")


def _side_by_side(scan: Callable[[T], None], parts: Sequence[T]) -> None:
    """Run ``scan`` on each of ``parts`` on the pool's threads, and wait for all; on the calling thread the parts the pool
    takes no more. It takes none once the interpreter has begun to shut down: an application whose main thread had
    returned, its camera thread still inspecting, got "cannot schedule new futures after interpreter shutdown" from every
    inspection (API probe 2026-12-06)."""
    done = []
    for part in parts:
        try:
            done.append(_workers().submit(scan, part))
        except RuntimeError:
            scan(part)
    for future in done:
        future.result()


def _after_fork_in_child() -> None:
    """A process forked from one that had searched has none of its pool's threads (the pool believed them idle, and a
    search waited for ever) and may hold the scan's lock locked (API probe 2026-12-06): both are made anew in the child.
    faiss's OpenMP threads are not there either, and its next search waited for them: the child's faiss runs on one."""
    global _SCANNING
    _workers.cache_clear()
    _SCANNING = threading.Lock()
    faiss.omp_set_num_threads(1)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


class CellSearch:
    """The ``k`` nearest rows of ``bank`` (squared L2) among the rows of each query's ``probes``
    nearest cells (``centroids``); every bank row belongs to the cell of its nearest centre."""

    def __init__(self, bank: np.ndarray, centroids: np.ndarray, probes: int) -> None:
        bank = np.ascontiguousarray(bank, dtype=np.float32)
        dim = bank.shape[1]
        self.n_cells = len(centroids)
        self.probes = max(1, min(probes, self.n_cells))
        self._centres = faiss.IndexFlatL2(dim)
        self._centres.add(np.ascontiguousarray(centroids, dtype=np.float32))
        _, cell_of_row = self._centres.search(bank, 1)
        self._row_at = np.argsort(cell_of_row[:, 0], kind="stable")
        """Bank row at each position of the cell order."""
        self._first = np.searchsorted(cell_of_row[self._row_at, 0], np.arange(self.n_cells + 1))
        """Position of each cell's first row in the cell order (and the end, last)."""
        by_cell = bank[self._row_at]
        # ||q - x||² = ||q||² - 2 q·x + ||x||²: each cell keeps -2 xᵀ and ||x||², so its scan is
        # one product plus one addition (||q||² is added once per query at the end).
        self._cells = [
            (np.ascontiguousarray(-2 * by_cell[a:b].T), np.einsum("ij,ij->i", by_cell[a:b], by_cell[a:b]))
            for a, b in zip(self._first[:-1], self._first[1:], strict=True)
        ]

    @classmethod
    def exact(cls, bank: np.ndarray) -> CellSearch:
        """Every row searched: one cell."""
        return cls(bank, np.zeros((1, bank.shape[1]), dtype=np.float32), 1)

    def search(self, queries: np.ndarray, k: int, exclude: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Squared distances and bank rows of the ``k`` nearest rows of each query, nearest first;
        where the probed cells hold fewer than ``k`` rows, rows -1 at distance inf (as faiss).

        ``exclude`` = (source of each query, source of each bank row): a row is never the
        neighbour of a query from its own source."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n, probes = len(queries), self.probes
        if probes == self.n_cells:
            cells = np.broadcast_to(np.arange(probes), (n, probes))
        else:
            _, cells = self._centres.search(queries, probes)
        # Each (query, probe) pair, grouped by the cell it probes, in chunks of one cell's pairs.
        pairs = np.argsort(cells.ravel(), kind="stable")
        starts = np.searchsorted(cells.ravel()[pairs], np.arange(self.n_cells + 1))
        chunks = [
            (cell, a, min(a + CHUNK_PAIRS, end))
            for cell, (start, end) in enumerate(itertools.pairwise(starts))
            for a in range(start, end, CHUNK_PAIRS)
        ]
        # Results are written in the pairs' grouped order (slices, not scattered writes: on a
        # single image a cell holds some 30 pairs and per-cell overhead is what the scan costs),
        # then put back in the pairs' own order once.
        found = np.full((n * probes, k), np.inf, dtype=np.float32)
        positions = np.full((n * probes, k), -1, dtype=np.int64)
        of_query = pairs // probes
        row_sources = None if exclude is None else exclude[1][self._row_at]
        counting = np.arange(min(CHUNK_PAIRS, n * probes))

        def scan(work: Sequence[tuple[int, int, int]]) -> None:
            for cell, a, b in work:
                minus_two_xt, norms = self._cells[cell]
                if not len(norms):
                    continue
                first = self._first[cell]
                dist = queries[of_query[a:b]] @ minus_two_xt
                dist += norms
                if exclude is not None and row_sources is not None:
                    np.putmask(dist, exclude[0][of_query[a:b]][:, None] == row_sources[None, first : first + len(norms)], np.inf)
                if k == 1:
                    nearest = dist.argmin(axis=1)
                    found[a:b, 0] = dist[counting[: b - a], nearest]
                    positions[a:b, 0] = nearest + first
                    continue
                # All of a cell's rows when it holds no more than k, else its k nearest.
                nearest = np.broadcast_to(np.arange(dist.shape[1]), dist.shape) if dist.shape[1] <= k else np.argpartition(dist, k - 1, axis=1)[:, :k]
                found[a:b, : nearest.shape[1]] = np.take_along_axis(dist, nearest, axis=1)
                positions[a:b, : nearest.shape[1]] = first + nearest

        # One BLAS thread per product and the chunks split over threads: products this small
        # gain little from BLAS's own threads, and both at once oversubscribe the cores.
        threads = _thread_count()
        with _SCANNING, _blas().limit(limits=1):
            _side_by_side(scan, [chunks[i::threads] for i in range(threads)])
        grouped_found, grouped_positions = found, positions
        found, positions = np.empty_like(found), np.empty_like(positions)
        found[pairs], positions[pairs] = grouped_found, grouped_positions
        found = found.reshape(n, probes * k)
        positions = positions.reshape(n, probes * k)
        if k == 1:
            best = found.argmin(axis=1)[:, None]
        else:
            best = np.argpartition(found, k - 1, axis=1)[:, :k]
            best = np.take_along_axis(best, np.argsort(np.take_along_axis(found, best, axis=1), axis=1, kind="stable"), axis=1)
        dist2 = np.take_along_axis(found, best, axis=1) + np.einsum("ij,ij->i", queries, queries)[:, None]
        positions = np.take_along_axis(positions, best, axis=1)
        # Excluded rows (inf) and cells short of k rows (-1) both come back as row -1 at inf.
        missing = np.isinf(dist2) | (positions < 0)
        rows = np.where(missing, -1, self._row_at[np.maximum(positions, 0)])
        dist2[missing] = np.inf
        # The expansion can round a zero distance a little below zero.
        return np.maximum(dist2, 0, out=dist2), rows
