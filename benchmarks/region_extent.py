"""Study: how far should a region reach? The label-free pixel threshold against a per-region cut.

A region is today every connected pixel of the anomaly map above the pixel threshold. That
threshold is set so that normal images show almost no pixel over it, which is right for saying
*whether* a part is defective, but a strong small defect raises the map well beyond its edges:
on ball screws a pit of a few hundred pixels is marked over a quarter of the part. This study
measures the alternative of cutting each region at ``threshold + a * (peak - threshold)``
(``a = 0`` is today's rule; ``a = 0.5`` keeps the pixels above half the region's height over
the threshold) on every shared category with normal images and masks:

- pixel precision, recall and F1 of the regions' union against the true masks, every test image;
- for each defective image's strongest region: its area against the true defects it touches
  (median of the ratio; 1 is the right size) and their intersection over union.

The memory bank is fitted with the default settings on every normal image of each category
(``--model CATEGORY=DIR`` reuses a saved model instead).

    .venv/bin/python benchmarks/region_extent.py [--data ../shared/datasets] [--model magnetic_tile=runs/mt ...]

Writes ``region_extent.{json,md}`` in ``--out`` (default ``benchmarks/results``), with the run's record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from defectlens import Inspector, InspectorSettings
from defectlens.io import load_category, load_mask, write_json_atomic
from defectlens.io.dataset import folder_any_case
from defectlens.locate import extract_regions

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
CUTS = (0.0, 0.25, 0.5, 0.75)


def study(inspector: Inspector, category_root: Path) -> dict[str, dict[str, float]]:
    """Every cut's pixel precision / recall / F1 and strongest-region size and IoU on one category."""
    category = load_category(category_root)
    counts = {cut: np.zeros(3, np.int64) for cut in CUTS}  # true positives, false positives, false negatives
    ratios: dict[float, list[float]] = {cut: [] for cut in CUTS}
    overlaps: dict[float, list[float]] = {cut: [] for cut in CUTS}
    threshold = inspector.thresholds.pixel
    for item in category.test:
        anomaly_map = inspector.inspect(item.path).anomaly_map
        truth = load_mask(item.mask_path) > 0 if item.mask_path else np.zeros(anomaly_map.shape, bool)
        _, labels, regions = extract_regions(anomaly_map, threshold)
        truth_labels, _ = ndimage.label(truth, structure=np.ones((3, 3), bool))
        for cut in CUTS:
            kept = [(labels == r.index) & (anomaly_map > threshold + cut * (r.peak_score - threshold)) for r in regions]
            union = np.logical_or.reduce(kept) if kept else np.zeros_like(truth)
            counts[cut] += [(union & truth).sum(), (union & ~truth).sum(), (~union & truth).sum()]
            if truth.any() and kept:
                # The true defects the strongest region touches (all of them when it touches none).
                touched = np.setdiff1d(np.unique(truth_labels[kept[0]]), [0])
                target = np.isin(truth_labels, touched) if touched.size else truth
                ratios[cut].append(kept[0].sum() / target.sum())
                overlaps[cut].append((kept[0] & target).sum() / (kept[0] | target).sum())
    rows = {}
    for cut in CUTS:
        tp, fp, fn = (int(v) for v in counts[cut])
        precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        rows[str(cut)] = {"pixel_precision": round(precision, 3), "pixel_recall": round(recall, 3),
                          "pixel_f1": round(2 * precision * recall / max(precision + recall, 1e-12), 3),
                          "strongest_area_ratio_median": round(float(np.median(ratios[cut])), 2) if ratios[cut] else None,
                          "strongest_iou_mean": round(float(np.mean(overlaps[cut])), 3) if overlaps[cut] else None}
    return rows


def main() -> None:
    """Fit (or load) each category's model and measure every cut."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(ap)
    ap.add_argument("--model", action="append", default=[], metavar="CATEGORY=DIR", help="a saved model to use for a category")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    names = require_categories(args.data, None, lambda p: has_normal_images(p) and folder_any_case(p, "ground_truth").is_dir())
    saved = saved_models(args.model, args.data, names)
    # Made before the models are fitted: a missing --out folder had been found only after them.
    out = require_output_folder(args.out)
    record = run_record()
    load_before = [round(v, 2) for v in os.getloadavg()]
    started = time.time()
    results: dict[str, dict] = {}
    for root in (args.data / n for n in names):
        name = root.name
        inspector = Inspector.load(saved[name]) if name in saved else Inspector.fit(load_category(root).train_good, InspectorSettings())
        results[name] = study(inspector, root)
        print(name, json.dumps(results[name]), flush=True)
    mean_f1 = {str(cut): round(float(np.mean([r[str(cut)]["pixel_f1"] for r in results.values()])), 3) for cut in CUTS}
    report = {"cuts": list(CUTS), "categories": results, "mean_pixel_f1": mean_f1,
              "load_average_before": load_before, "load_average_after": [round(v, 2) for v in os.getloadavg()],
              "minutes": round((time.time() - started) / 60, 1),
              "run": finish_record(record)}
    write_json_atomic(out / "region_extent.json", report)
    lines = [f"# Region extent: cut at threshold + a × (peak − threshold) ({report['minutes']} min, load "
             f"{load_before} → {report['load_average_after']})", "",
             "| category | a | pixel precision | pixel recall | pixel F1 | strongest region ÷ its defect (median) | strongest IoU |",
             "|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        lines += [f"| {name} | {cut} | {r['pixel_precision']} | {r['pixel_recall']} | {r['pixel_f1']} | "
                  f"{r['strongest_area_ratio_median']} | {r['strongest_iou_mean']} |" for cut, r in rows.items()]
    lines += ["", "Mean pixel F1 over the categories: " + ", ".join(f"a = {cut}: {f1}" for cut, f1 in mean_f1.items())]
    (out / "region_extent.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
