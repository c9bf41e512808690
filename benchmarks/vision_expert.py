"""Benchmark the vision expert on every shared category that has normal training images.

For each category, in a fresh process (so peak memory is per category): fit on all normal images
(or ``--max-train``) with default settings, evaluate on the full test split, and
record metrics, fit seconds, ms per image and peak memory. Writes
``benchmarks/results/vision_expert.{json,md}``.

    python benchmarks/vision_expert.py [--data ../shared/datasets] [--max-train 200]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path
from queue import Empty

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_data_argument, finish_record, has_normal_images, require_categories, run_record  # noqa: E402 - the benchmarks' shared module


def _run_category(root: str, max_train: int, image_size: int, backbone: str | None, queue) -> None:
    from defectlens import Inspector, InspectorSettings
    from defectlens.evaluate.harness import evaluate_detection
    from defectlens.inspector import scan_images
    from defectlens.io import load_category

    category = load_category(root)
    paths = category.require_train_good()
    # A fixed, seeded subset when more normal images exist than the budget.
    rng = np.random.default_rng(0)
    if 0 < max_train < len(paths):
        paths = [paths[i] for i in sorted(rng.choice(len(paths), max_train, replace=False))]
    t0 = time.perf_counter()
    # As `defectlens fit` reads them: checked once, then decoded again batch by batch as encoded.
    images, failures = scan_images(paths)
    if failures:
        raise SystemExit(f"{root}: unreadable normal images: {failures[0].message}")
    decode_s = time.perf_counter() - t0
    inspector = Inspector.fit(images, InspectorSettings(image_size=image_size, **({"backbone": backbone} if backbone else {})))
    summary = inspector.fit_summary
    assert summary is not None
    evaluation, _ = evaluate_detection(inspector, category)
    result = evaluation.to_json()
    result.update(fit_seconds=round(summary.seconds + decode_s, 2), n_train=len(images), bank_size=summary.bank_size)
    queue.put(result)


def main() -> None:
    """Run the benchmark and write the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--max-train", type=int, default=0, help="fit on at most this many normal images (0 = all, as `defectlens fit`)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--backbone", default=None, help="default: the one `defectlens fit` uses")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--categories", nargs="*", default=None)
    args = parser.parse_args()
    names = require_categories(args.data, args.categories, has_normal_images)
    record = run_record()
    ctx = mp.get_context("spawn")
    rows = []
    for name in names:
        queue = ctx.Queue()
        proc = ctx.Process(target=_run_category, args=(str(args.data / name), args.max_train, args.image_size, args.backbone, queue))
        proc.start()
        # The run's row, or its end: a run that died had left this process waiting for ever (regression probe 2026-12-06).
        while True:
            try:
                row = queue.get(timeout=5)
                break
            except Empty:
                if not proc.is_alive():
                    sys.exit(f"{name}: its run ended with exit code {proc.exitcode} and no result (its error is above)")
        proc.join()
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("category", "image_auroc", "pixel_auroc", "aupro", "fit_seconds", "ms_per_image", "peak_memory_mb")}))
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "backbone": args.backbone or "default",
        "image_size": args.image_size,
        "max_train": args.max_train,
        "run": finish_record(record),
    }
    (args.out / "vision_expert.json").write_text(json.dumps({"settings": meta, "results": rows}, indent=2) + "\n")
    cols = [
        "image_auroc",
        "image_ap",
        "image_f1max",
        "pixel_auroc",
        "pixel_ap",
        "pixel_f1max",
        "aupro",
        "fit_seconds",
        "ms_per_image",
        "peak_memory_mb",
    ]
    lines = ["| category | n_train | n_test | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 3)]
    for r in rows:
        cells = [
            f"{r[c]:.3f}"
            if isinstance(r[c], float) and c not in ("fit_seconds", "ms_per_image", "peak_memory_mb")
            else f"{r[c]:.0f}"
            if r[c] is not None
            else "n/a"
            for c in cols
        ]
        lines.append(f"| {r['category']} | {r['n_train']} | {r['n_test']} | " + " | ".join(cells) + " |")
    (args.out / "vision_expert.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
