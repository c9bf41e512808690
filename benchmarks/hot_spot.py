"""Study: a part judged good whose map still peaks above the image threshold — worth a look?

The image score is the mean of the map's top pixels, so a small defect can leave the score under
the image threshold while the map's peak is over it. `inspect` then says where the map peaks
("look there before the part passes": ``Inspection.hot_spot``). This study counts, on the test
images of every shared category with normal images, how many passing parts have such a peak,
good and defective, and how far over the threshold it is (peak ÷ threshold): whether the pointer
finds missed defects without sending inspectors to look at many good parts.

    .venv/bin/python benchmarks/hot_spot.py [--data ../shared/datasets] [--model magnetic_tile=runs/mt ...] [--sample 300]

Each category's model is fitted with the default settings on every normal image unless
``--model CATEGORY=DIR`` names a saved one; ``--sample N`` draws N test images of a larger split
(seeded). Writes ``hot_spot.{json,md}`` in ``--out`` (default ``benchmarks/results``), with the run's record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from defectlens import Inspector, InspectorSettings
from defectlens.io import load_category, write_json_atomic
from defectlens.io.dataset import folder_any_case

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402 - the benchmarks' shared module
    add_data_argument,
    finish_record,
    has_normal_images,
    require_categories,
    require_output_folder,
    run_record,
    saved_models,
)

RESULTS = REPO / "benchmarks" / "results"
PEAK_OVER = (1.0, 1.05, 1.1, 1.25)
"""Peak ÷ image threshold at or above which a passing part counts (1.0 is `inspect`'s rule)."""


def study(inspector: Inspector, root: Path, sample: int) -> dict:
    """Per test image of ``root``: its label, score, threshold, map peak and whether `inspect` set a hot spot."""
    items = load_category(root).require_test()
    paths = [item.path for item in items]
    if sample and len(paths) > sample:
        paths = [Path(p) for p in np.random.default_rng(0).choice([str(p) for p in paths], sample, replace=False)]
    rows = []
    for batch in inspector.iter_batches(paths):
        for item in batch.images:
            i = item.inspection
            assert i.thresholds is not None
            rows.append({"defective": item.path.parent.name != "good", "score": float(i.score), "threshold": float(i.thresholds.image),
                         "peak": float(i.anomaly_map.max()), "flagged": bool(i.is_defective), "hot_spot": i.hot_spot is not None})
    passing = [r for r in rows if not r["flagged"]]
    counts = {}
    for over in PEAK_OVER:
        pointed = [r for r in passing if r["peak"] > over * r["threshold"]]
        counts[str(over)] = {"missed_defective": sum(r["defective"] for r in pointed), "passing_good": sum(not r["defective"] for r in pointed)}
    return {
        "n_images": len(rows),
        "passing_good": sum(not r["defective"] for r in passing),
        "missed_defective": sum(r["defective"] for r in passing),
        "hot_spot_set": {"missed_defective": sum(r["defective"] and r["hot_spot"] for r in passing),
                         "passing_good": sum(not r["defective"] and r["hot_spot"] for r in passing)},
        "peak_over": counts,
    }


def main() -> None:
    """Fit (or load) each category's model and count the passing parts whose map peaks over the threshold."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(ap)
    ap.add_argument("--model", action="append", default=[], metavar="CATEGORY=DIR", help="a saved model to use for a category")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--sample", type=int, default=0, help="at most this many test images a category (0 = all)")
    args = ap.parse_args()
    names = require_categories(args.data, None, lambda p: has_normal_images(p) and folder_any_case(p, "test").is_dir())
    saved = saved_models(args.model, args.data, names)
    # Made before the models are fitted: a missing --out folder had been found only after them.
    out = require_output_folder(args.out)
    record = run_record()
    load_before = [round(v, 2) for v in os.getloadavg()]
    started = time.time()
    results: dict[str, dict] = {}
    for name in names:
        root = args.data / name
        inspector = Inspector.load(saved[name]) if name in saved else Inspector.fit(load_category(root).train_good, InspectorSettings())
        results[name] = study(inspector, root, args.sample)
        print(name, json.dumps(results[name]), flush=True)
    total = {key: sum(r["hot_spot_set"][key] for r in results.values()) for key in ("missed_defective", "passing_good")}
    report = {"categories": results, "hot_spot_total": total,
              "missed_defective_total": sum(r["missed_defective"] for r in results.values()),
              "passing_good_total": sum(r["passing_good"] for r in results.values()),
              "load_average_before": load_before, "load_average_after": [round(v, 2) for v in os.getloadavg()],
              "minutes": round((time.time() - started) / 60, 1), "sample": args.sample,
              "run": finish_record(record)}
    write_json_atomic(out / "hot_spot.json", report)
    lines = [f"# Passing parts whose map peaks above the image threshold ({report['minutes']} min, load "
             f"{load_before} → {report['load_average_after']})", "",
             "| category | test images | missed defective | with a hot spot | passing good | with a hot spot |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {r['n_images']} | {r['missed_defective']} | {r['hot_spot_set']['missed_defective']} | {r['passing_good']} | "
              f"{r['hot_spot_set']['passing_good']} |" for name, r in results.items()]
    lines += [f"| **all** | | {report['missed_defective_total']} | **{total['missed_defective']}** | {report['passing_good_total']} | "
              f"**{total['passing_good']}** |", "", "Peak ÷ threshold at least x (missed defective / passing good):", ""]
    lines += [f"- {name}: " + ", ".join(f"{x}: {c['missed_defective']} / {c['passing_good']}" for x, c in r["peak_over"].items())
              for name, r in results.items()]
    (out / "hot_spot.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
