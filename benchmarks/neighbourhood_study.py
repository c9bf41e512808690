"""Neighbourhood study: memory-bank maps from several neighbourhood sizes, averaged.

The encoder averages each level's patch features over a neighbourhood before the levels are
fused (``EncoderConfig.aggregate``, 3 x 3 by default). The detector study measured 1 x 1, 3 x 3
and 5 x 5 one at a time (rows ``lite2-current-agg1`` / ``-agg5``): none is best on image AUROC,
pixel AUROC and AUPRO together. This study asks whether maps from several sizes, averaged (as
MuSc aggregates several degrees), keep the best of each. Per category and size it fits the
default memory bank on the detector study's cached features (all normal images; maps made
relative to each position, so every size's map is in the same units), scores the test split,
then averages the maps of each combination of sizes and re-scores the averages (top-1 % image
score). Results: ``benchmarks/results/neighbourhood_study.{json,md}``.

    python benchmarks/neighbourhood_study.py [--categories NAME ...] [--tables]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import detector_study as ds  # noqa: E402  (the study's feature cache and helpers)
from defectlens.detect import MemoryBankConfig, MemoryBankDetector  # noqa: E402
from defectlens.detect.maps import image_score  # noqa: E402
from defectlens.encode import PatchEncoder  # noqa: E402
from defectlens.evaluate.metrics import aupro, image_auroc, pixel_auroc  # noqa: E402

SIZES = (1, 3, 5)
COMBINATIONS = ((1,), (3,), (5,), (1, 3), (3, 5), (1, 5), (1, 3, 5))
METRICS = ("image_auroc", "pixel_auroc", "aupro")
CATEGORIES = ("ball_screw_drive", "commutator", "cookie", "magnetic_tile")


def study(data: Path, cache_dir: Path, name: str) -> dict[str, dict[str, float]]:
    """Metrics of every combination of neighbourhood sizes on one category."""
    maps_by_size: dict[int, list[np.ndarray]] = {}
    labels: np.ndarray | None = None
    masks: list[np.ndarray] | None = None
    for size in SIZES:
        cache = ds.open_cache(data / name, cache_dir, "efficientnet-lite2", (2, 4), 256, size)
        encoder = PatchEncoder(cache.encoder)
        detector = MemoryBankDetector(MemoryBankConfig(encoder=cache.encoder), encoder)
        t0 = time.perf_counter()
        detector.fit_encoded(cache.batches("train", list(range(len(cache.paths["train"]))), encoder))
        results = ds._score_split(detector, cache, "test", list(range(len(cache.labels))), False)
        print(f"{name}: {size}x{size} fitted and scored in {time.perf_counter() - t0:.0f} s (load {os.getloadavg()[0]:.1f})", flush=True)
        maps_by_size[size] = [r.anomaly_map for r in results]
        labels = np.asarray(cache.labels)
        masks = masks if masks is not None else ds._masks(cache, results)
    assert labels is not None and masks is not None
    out = {}
    for combination in COMBINATIONS:
        maps = [np.mean([maps_by_size[s][i] for s in combination], axis=0) for i in range(len(labels))]
        scores = [image_score(m, 0.01) for m in maps]
        out["+".join(map(str, combination))] = {
            "image_auroc": image_auroc(labels, scores),
            "pixel_auroc": pixel_auroc(masks, maps),
            "aupro": aupro(masks, maps),
        }
        print(name, combination, {k: round(v, 4) for k, v in out["+".join(map(str, combination))].items()}, flush=True)
    return out


def write_tables(results: dict[str, dict[str, dict[str, float]]], out: Path) -> None:
    """The Markdown table: image / pixel AUROC / AUPRO per category and combination, and the mean."""
    names = sorted(results)
    lines = [
        "# Neighbourhood study",
        "",
        "Memory-bank maps from each neighbourhood size (each level's features averaged over s x s before the levels are fused),",
        "alone and averaged; image AUROC / pixel AUROC / AUPRO. `python benchmarks/neighbourhood_study.py`.",
        "",
        "| sizes | " + " | ".join(names) + " | mean |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for combination in results[names[0]]:
        cells = [" / ".join(f"{results[n][combination][m]:.3f}" for m in METRICS) for n in names]
        mean = " / ".join(f"{np.mean([results[n][combination][m] for n in names]):.3f}" for m in METRICS)
        lines.append(f"| {combination.replace('+', ' + ')} | " + " | ".join(cells) + f" | {mean} |")
    (out / "neighbourhood_study.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    """Run the study on the chosen categories and write the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DEFECTLENS_DATA", HERE.parent.parent / "shared" / "datasets")))
    parser.add_argument("--cache", type=Path, default=HERE.parent / "runs" / "detector_cache")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--categories", nargs="*", default=list(CATEGORIES))
    parser.add_argument("--tables", action="store_true", help="rewrite the table from the results JSON and exit")
    args = parser.parse_args()
    path = args.out / "neighbourhood_study.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if not args.tables:
        for name in args.categories:
            results[name] = study(args.data, args.cache, name)
            path.write_text(json.dumps(results, indent=1))
    write_tables(results, args.out)


if __name__ == "__main__":
    main()
