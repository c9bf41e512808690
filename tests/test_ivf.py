"""The cell-by-cell IVF search: the rows faiss's IVF-flat and flat indexes find, own rows skipped;
and the OpenMP wait policy it runs beside."""

from __future__ import annotations

import os
import subprocess
import sys

import faiss
import numpy as np
import pytest

from defectlens.detect.ivf import CHUNK_PAIRS, CellSearch


def clustered(rng: np.random.Generator, n: int, dim: int = 24, centres: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows around ``centres`` random centres, and the centres."""
    middle = rng.normal(0, 4, (centres, dim)).astype(np.float32)
    return (middle[rng.integers(0, centres, n)] + rng.normal(0, 1, (n, dim))).astype(np.float32), middle


def faiss_ivf_flat(bank: np.ndarray, centres: np.ndarray, probes: int) -> faiss.IndexIVFFlat:
    """faiss's own IVF-flat index over the same cells: the rows a cell-by-cell search must find."""
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(bank.shape[1]), bank.shape[1], len(centres))
    index.quantizer.add(centres)
    index.is_trained = True
    index.add(bank)
    index.nprobe = probes
    return index


@pytest.mark.parametrize("k", [1, 5])
def test_finds_the_rows_faiss_ivf_flat_finds(k: int) -> None:
    rng = np.random.default_rng(0)
    bank, centres = clustered(rng, 3000)
    # More queries than one chunk holds, so a crowded cell is split across chunks.
    queries, _ = clustered(rng, 3 * CHUNK_PAIRS)
    want_dist, want_rows = faiss_ivf_flat(bank, centres, probes=3).search(queries, k)
    dist, rows = CellSearch(bank, centres, probes=3).search(queries, k)
    assert (rows == want_rows).mean() > 0.999  # only exact ties may differ
    np.testing.assert_allclose(dist, want_dist, rtol=1e-4, atol=1e-3)
    assert (np.diff(dist, axis=1) >= 0).all()  # nearest first


def test_exact_search_is_faiss_flat() -> None:
    rng = np.random.default_rng(1)
    bank, _ = clustered(rng, 1500)
    queries, _ = clustered(rng, 400)
    flat = faiss.IndexFlatL2(bank.shape[1])
    flat.add(bank)
    want_dist, want_rows = flat.search(queries, 3)
    dist, rows = CellSearch.exact(bank).search(queries, 3)
    assert (rows == want_rows).all()
    np.testing.assert_allclose(dist, want_dist, rtol=1e-4, atol=1e-3)


def test_rows_of_the_query_s_own_source_are_never_its_neighbours() -> None:
    rng = np.random.default_rng(2)
    bank, centres = clustered(rng, 2000)
    row_source = rng.integers(0, 10, len(bank))
    # Each query is a bank row itself: without the exclusion it would find its own row at 0.
    picked = rng.choice(len(bank), 300, replace=False)
    queries, query_source = bank[picked], row_source[picked]
    dist, rows = CellSearch(bank, centres, probes=len(centres)).search(queries, 1, (query_source, row_source))
    full = ((queries[:, None, :] - bank[None]) ** 2).sum(-1)
    full[query_source[:, None] == row_source[None, :]] = np.inf
    assert (rows[:, 0] == full.argmin(1)).all()
    assert (row_source[rows[:, 0]] != query_source).all()
    np.testing.assert_allclose(dist[:, 0], full.min(1), rtol=1e-4, atol=1e-3)


def test_cells_short_of_k_rows_pad_with_minus_one() -> None:
    rng = np.random.default_rng(3)
    bank, centres = clustered(rng, 200, centres=20)
    dist, rows = CellSearch(bank, centres, probes=1).search(bank[:50], 64)
    # One cell of about 10 rows cannot give 64: the rest are -1 at inf, as faiss pads.
    assert (rows == -1).any(axis=1).all()
    assert np.isinf(dist[rows == -1]).all()
    assert (rows[:, 0] == np.arange(50)).all()


def test_a_single_image_s_few_queries_find_the_rows_faiss_finds_and_a_batch_finds() -> None:
    # A single image gives a cell a few dozen queries (here about one): scanned cell by cell all the same.
    rng = np.random.default_rng(4)
    bank, centres = clustered(rng, 3000)
    search = CellSearch(bank, centres, probes=4)
    queries, _ = clustered(rng, 3 * CHUNK_PAIRS)
    few = 10
    want_dist, want_rows = faiss_ivf_flat(bank, centres, probes=4).search(queries[:few], 2)
    alone_dist, alone_rows = search.search(queries[:few], 2)
    batch_dist, batch_rows = search.search(queries, 2)
    assert (alone_rows == want_rows).all()
    assert (alone_rows == batch_rows[:few]).all()
    np.testing.assert_allclose(alone_dist, want_dist, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(alone_dist, batch_dist[:few], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(("set_by_user", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_wait_asleep_unless_the_user_says_otherwise(set_by_user: str | None, expected: str) -> None:
    # The package sets it before PyTorch and faiss load OpenMP: only a fresh interpreter shows it.
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if set_by_user:
        env["OMP_WAIT_POLICY"] = set_by_user
    code = "import defectlens, os; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_searches_from_several_threads_find_what_one_finds_and_leave_blas_as_it_was() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    rng = np.random.default_rng(5)
    bank, centres = clustered(rng, 3000)
    search = CellSearch(bank, centres, probes=4)
    batches = [clustered(rng, CHUNK_PAIRS)[0] for _ in range(4)]
    alone = [search.search(q, 1)[1] for q in batches]
    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda q: search.search(q, 1)[1], batches))
    assert all((a == b).all() for a, b in zip(alone, together, strict=True))
    assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == before


def test_a_search_runs_after_the_main_thread_returned_and_in_a_forked_child(tmp_path) -> None:
    # API probe 2026-12-06: a camera thread still inspecting after the application's main thread had returned got "cannot
    # schedule new futures after interpreter shutdown" from every search; a process forked after a search waited for ever
    # on the pool's threads, which it does not have.
    code = """
import multiprocessing, sys, threading
import numpy as np
from defectlens.detect.ivf import CellSearch
rng = np.random.default_rng(0)
bank = rng.normal(0, 1, (3000, 16)).astype(np.float32)
search = CellSearch(bank, bank[:40], probes=3)
want = search.search(bank[:500], 1)[1]

def child(queue):
    queue.put(bool((search.search(bank[:500], 1)[1] == want).all()))

queue = multiprocessing.get_context("fork").Queue()
forked = multiprocessing.get_context("fork").Process(target=child, args=(queue,))
forked.start()
print("forked", queue.get(timeout=60), flush=True)
forked.join()

def late():
    print("late", bool((search.search(bank[:500], 1)[1] == want).all()), flush=True)

threading.Timer(0.5, late).start()  # runs after the main thread has returned
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.split() == ["forked", "True", "late", "True"], run.stdout + run.stderr
