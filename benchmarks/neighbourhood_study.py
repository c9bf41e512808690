"""Neighbourhood study: memory-bank maps from several neighbourhood sizes, averaged.

The encoder averages each level's patch features over a neighbourhood before the levels are
fused (``EncoderConfig.aggregate``, 3 x 3 by default). The detector study measured 1 x 1, 3 x 3
and 5 x 5 one at a time (rows ``lite2-current-agg1`` / ``-agg5``): none is best on image AUROC,
pixel AUROC and AUPRO together. This study asks whether maps from several sizes, averaged (as
MuSc aggregates several degrees), keep the best of each. Per category and size it fits the
default memory bank on the detector study's cached features (all normal images; maps made
relative to each position, so every size's map is in the same units), scores the test split,
then averages the maps of each combination of sizes and re-scores the averages (top-1 % image
score). ``--bank-sizes`` caps each bank's coreset at other sizes too (``1@8192`` is the 1 x 1 bank
of 8 192 patches) and ``--probes`` searches other numbers of IVF cells (``1@8192p4``: in 4 of its
128 cells): two banks of half the size, each searched in half as many cells, compare as many rows
per patch as one default bank.
Results: ``neighbourhood_study.{json,md}`` in ``--out`` (default ``benchmarks/results``); a run adds its rows to them,
each row with when and by which code it was measured (``measured``), the latest run's record under ``run``, and the
tables name the categories the latest run did not cover.

    python benchmarks/neighbourhood_study.py [--data ../shared/datasets] [--categories NAME ...] [--sizes 1 3]
        [--bank-sizes 16384 8192] [--probes 8 4] [--tables] [--out DIR]
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import detector_study as ds  # noqa: E402  (the study's feature cache and helpers)
from common import (  # noqa: E402  (the benchmarks' shared module)
    earlier_note,
    finish_record,
    has_normal_images,
    measured_stamp,
    require_categories,
    require_output_folder,
    run_record,
    saved_results,
    tables_written,
)
from defectlens.detect import MemoryBankConfig, MemoryBankDetector  # noqa: E402
from defectlens.detect.maps import image_score  # noqa: E402
from defectlens.encode import PatchEncoder  # noqa: E402
from defectlens.evaluate.metrics import aupro, image_auroc, pixel_auroc  # noqa: E402
from defectlens.io.dataset import folder_any_case  # noqa: E402

SIZES = (1, 3, 5)
COMBINATIONS = ((1,), (3,), (5,), (1, 3), (3, 5), (1, 5), (1, 3, 5))
METRICS = ("image_auroc", "pixel_auroc", "aupro")
CATEGORIES = ("ball_screw_drive", "commutator", "cookie", "magnetic_tile")
DEFAULT_BANK = MemoryBankConfig().max_bank_size
DEFAULT_PROBES = MemoryBankConfig().ivf_probes
Variant = tuple[int, int, int]
"""(neighbourhood size, bank cap, IVF cells probed)."""


def variant_key(combination: tuple[Variant, ...]) -> str:
    """'1+3' for sizes with default banks; '1@8192p4' for the 1 x 1 bank capped at 8 192 patches
    and searched in 4 cells."""
    def one(size: int, bank: int, probes: int) -> str:
        return f"{size}" + ("" if bank == DEFAULT_BANK else f"@{bank}") + ("" if probes == DEFAULT_PROBES else f"p{probes}")

    return "+".join(one(*v) for v in combination)


def study(data: Path, cache_dir: Path, name: str, sizes: tuple[int, ...] = SIZES, banks: tuple[int, ...] = (DEFAULT_BANK,),
          probes: tuple[int, ...] = (DEFAULT_PROBES,)) -> dict[str, dict[str, float]]:
    """Metrics of combinations of neighbourhood sizes on one category: with the default sizes and
    banks, :data:`COMBINATIONS`; otherwise each variant alone and the pair of every two variants of
    different sizes, a variant being a size with a bank cap (each bank's coreset capped at that many
    patches) and a number of IVF cells searched."""
    maps_by_variant: dict[Variant, list[np.ndarray]] = {}
    labels: np.ndarray | None = None
    masks: list[np.ndarray] | None = None
    for size in sizes:
        cache = ds.open_cache(data / name, cache_dir, "efficientnet-lite2", (2, 4), 256, size)
        encoder = PatchEncoder(cache.encoder)
        for bank, n_probes in itertools.product(banks, probes):
            detector = MemoryBankDetector(MemoryBankConfig(encoder=cache.encoder, max_bank_size=bank, ivf_probes=n_probes), encoder)
            t0 = time.perf_counter()
            detector.fit_encoded(cache.batches("train", list(range(len(cache.paths["train"]))), encoder))
            fit_s = time.perf_counter() - t0
            results = ds._score_split(detector, cache, "test", list(range(len(cache.labels))), False)
            took = time.perf_counter() - t0
            print(f"{name}: {size}x{size}, bank {bank}, {n_probes} probes: fitted in {fit_s:.0f} s, fitted and scored in {took:.0f} s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
            maps_by_variant[(size, bank, n_probes)] = [r.anomaly_map for r in results]
            labels = np.asarray(cache.labels)
            masks = masks if masks is not None else ds._masks(cache, results)
    assert labels is not None and masks is not None
    if sizes == SIZES and banks == (DEFAULT_BANK,) and probes == (DEFAULT_PROBES,):
        combinations = [tuple((s, DEFAULT_BANK, DEFAULT_PROBES) for s in c) for c in COMBINATIONS]
    else:
        variants = sorted(maps_by_variant)
        combinations = [(v,) for v in variants] + [(a, b) for i, a in enumerate(variants) for b in variants[i + 1 :] if a[0] != b[0]]
    out = {}
    for combination in combinations:
        maps = [np.mean([maps_by_variant[v][i] for v in combination], axis=0) for i in range(len(labels))]
        scores = [image_score(m, 0.01) for m in maps]
        key = variant_key(combination)
        out[key] = {
            "image_auroc": image_auroc(labels, scores),
            "pixel_auroc": pixel_auroc(masks, maps),
            "aupro": aupro(masks, maps),
        }
        print(name, key, {k: round(v, 4) for k, v in out[key].items()}, flush=True)
    return out


def write_tables(results: dict[str, dict[str, dict[str, float]]], out: Path, earlier: list[str] | None = None) -> None:
    """The Markdown table: image / pixel AUROC / AUPRO per category and combination, and the mean; ``earlier``: the
    categories the latest run did not cover, named under the table."""
    names = sorted(results)
    lines = [
        "# Neighbourhood study",
        "",
        "Memory-bank maps from each neighbourhood size (each level's features averaged over s x s before the levels are fused),",
        "alone and averaged; image AUROC / pixel AUROC / AUPRO. `python benchmarks/neighbourhood_study.py`.",
        "`s@n`: the bank of size s capped at n patches (otherwise 16 384); `pk`: searched in k IVF cells (otherwise 8).",
        "Cookie's bank (under 4 096 patches) is searched exactly: it has no `pk` rows, and those rows' means are over three parts.",
        "Rows with 5 were measured before the coreset's selection moved to NumPy (2026-12-04 17:10 UTC: the same algorithm,",
        "rows chosen may differ by rounding); the others after it.",
        "",
        "| sizes | " + " | ".join(names) + " | mean |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    combinations = list(dict.fromkeys(c for n in names for c in results[n]))
    for combination in combinations:
        have = [n for n in names if combination in results[n]]
        cells = [" / ".join(f"{results[n][combination][m]:.3f}" for m in METRICS) if n in have else "–" for n in names]
        mean = " / ".join(f"{np.mean([results[n][combination][m] for n in have]):.3f}" for m in METRICS)
        if len(have) < len(names):
            mean += f" ({len(have)} parts)"
        lines.append(f"| {combination.replace('+', ' + ')} | " + " | ".join(cells) + f" | {mean} |")
    lines += earlier_note(earlier or [])
    (out / "neighbourhood_study.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    """Run the study on the chosen categories and write the results."""
    parser = ds.cached_study_parser(__doc__ or "", CATEGORIES)
    parser.add_argument("--sizes", nargs="*", type=int, default=list(SIZES), help="neighbourhood sizes (default 1 3 5)")
    parser.add_argument("--bank-sizes", nargs="*", type=int, default=[DEFAULT_BANK], help="caps on each bank's coreset (patches)")
    parser.add_argument("--probes", nargs="*", type=int, default=[DEFAULT_PROBES], help="IVF cells searched per patch")
    parser.add_argument("--tables", action="store_true", help="rewrite the table from the results JSON and exit")
    args = parser.parse_args()
    # Checked before the work: a missing category had been a traceback, a missing --out folder one after minutes of it.
    names: list[str] = []
    if not args.tables:  # the tables alone need no data (regression probe 2026-12-06)
        names = require_categories(args.data, args.categories, lambda p: has_normal_images(p) and folder_any_case(p, "test").is_dir())
    path = args.out / "neighbourhood_study.json"
    if args.tables:  # an empty table written with status 0 had passed for the tables of a run (regression probes 2026-12-06)
        results = saved_results(path)
    else:
        require_output_folder(args.out)
        results = json.loads(path.read_text()) if path.is_file() else {}
    # The latest run's record sits beside the categories (top-level keys, as before); the categories it covered tell the tables
    # which are an earlier run's.
    run = results.pop("run", None)
    if not args.tables:
        record = run_record()
        for i, name in enumerate(names):
            # Merged, so runs with other sizes or bank caps add rows rather than replace them.
            rows = study(args.data, args.cache, name, tuple(args.sizes), tuple(args.bank_sizes), tuple(args.probes))
            stamp = measured_stamp(record)
            results[name] = {**results.get(name, {}), **{key: {**row, "measured": stamp} for key, row in rows.items()}}
            run = {**finish_record(record), "categories": names[: i + 1]}
            path.write_text(json.dumps({**results, "run": run}, indent=1))
    tables_written(path, lambda: write_tables(results, args.out, [n for n in results if run is not None and n not in run["categories"]]))


if __name__ == "__main__":
    main()
