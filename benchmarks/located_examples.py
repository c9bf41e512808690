"""Benchmark: defect-type examples without masks, located by the fitted detector (issue 11).

On one category (magnetic_tile by default): fit the memory bank on every normal image (as
``defectlens fit`` does; ``--max-train`` caps them, seeded), or reuse a saved model
(``--model``: loaded when it holds one, fitted and saved there when not). Draw k = 5 examples
per type (seeds 0, 1 and 2 by default: which 5 are drawn decides a lot) and fit one few-shot
classifier on their ground-truth masks and one per locating variant (:class:`~defectlens.classify.LocateOptions`) on the regions the detector
locates in the same images with their masks thrown away. Each example's map is scored once and
every variant reads it. Then:

1. type accuracy of each on every other defective image, classified on its true mask (the
   classification benchmark's protocol; target: located within 0.05 of ground truth), with
   where the located regions lie: on the true defect or not, and how big against its mask;
2. the line engineer's view: 2 other images per type inspected end to end — flagged as
   defective, and named with the true type (the type of the strongest region) when flagged.

    .venv/bin/python benchmarks/located_examples.py [--data ../shared/datasets] [--category magnetic_tile]
        [--model runs/mt] [--seeds 0 1 2] [--out DIR]

Accuracies are reported per draw and as their mean; end-to-end counts are summed over the draws.
Writes the category's entry, with the record of its run, of ``located_examples.json`` in ``--out``
(default ``benchmarks/results``; other categories' entries are kept, each with its own run's record).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from defectlens import Inspector, InspectorSettings
from defectlens.classify import Example, FewShotClassifier, LocateOptions, examples_from_category, locate_defect
from defectlens.engine.analysis import Locator
from defectlens.errors import DatasetLayoutError
from defectlens.evaluate.classification import embed_items, evaluate_embedded
from defectlens.io import load_category, load_image, load_mask, write_json_atomic

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (  # noqa: E402 - the benchmarks' shared module
    add_data_argument,
    finish_record,
    has_normal_images,
    require_categories,
    require_output_folder,
    run_record,
)

RESULTS_FILE = "located_examples.json"

VARIANTS: dict[str, LocateOptions] = {
    "default (what `inspect --examples` does)": LocateOptions(),
    "cuts at 25 / 50 / 75 %, no contrast view (the default before)": LocateOptions(contrast=0.0),
    "contrast view at 2 deviations": LocateOptions(contrast=2.0),
    "contrast view at 2.5 deviations": LocateOptions(contrast=2.5),
    "one cut (50 %), no views": LocateOptions(view_levels=(), contrast=0.0),
    "one cut at 25 %, no views": LocateOptions(level=0.25, view_levels=(), contrast=0.0),
    "one cut at 75 %, no views": LocateOptions(level=0.75, view_levels=(), contrast=0.0),
    "cuts at 50 % and 25 / 37.5 / 62.5 / 75 %": LocateOptions(view_levels=(0.25, 0.375, 0.625, 0.75)),
    "cuts at 50 % and 10 / 25 / 75 %": LocateOptions(view_levels=(0.1, 0.25, 0.75)),
    "peak anywhere, above the pixel threshold (before)": LocateOptions(border=0.0, found=1.0),
    "peak off a 10 % border, above the pixel threshold": LocateOptions(border=0.1, found=1.0),
    "peak off a 5 % border, half height": LocateOptions(border=0.05, found=0.5),
    "peak off a 10 % border, any height": LocateOptions(border=0.1, found=0.0),
    "peak off a 15 % border, half height": LocateOptions(border=0.15, found=0.5),
    "peak anywhere, half height": LocateOptions(border=0.0, found=0.5),
    "peak off a 10 % border, half height, skipped above 50 % abnormal (before)": LocateOptions(max_share=0.5),
    "peak off a 10 % border, half height, never skipped as abnormal": LocateOptions(max_share=1.0),
}
"""Locating variants measured side by side; the first is the library default (peak off a 10 %
border, half height, cut at 50 % with views cut at 25 % and 75 % and the contrast view at 1.5
deviations; the variants change only what they name). Heights: how far from the normal images'
median pixel up to the pixel threshold the peak must rise (any = 0, half = 0.5, the threshold = 1)."""


def _fit_or_load(args: argparse.Namespace, root: Path) -> tuple[Inspector, int]:
    """The model (loaded from ``--model`` when it holds one) and the number of images it was fitted on."""
    if args.model is not None and Inspector.is_model_dir(args.model):
        inspector = Inspector.load(args.model)
        return inspector, inspector.provenance.n_images if inspector.provenance else -1
    paths = load_category(root).require_train_good()
    if args.max_train and len(paths) > args.max_train:
        rng = np.random.default_rng(0)
        paths = [paths[i] for i in sorted(rng.choice(len(paths), args.max_train, replace=False))]
    inspector = Inspector.fit([load_image(p) for p in paths], InspectorSettings())
    if args.model is not None:
        inspector.save(args.model)
    return inspector, len(paths)


def _where(region: np.ndarray, truth: np.ndarray) -> dict:
    """How a located region sits on the true defect's mask."""
    return {
        "overlaps": bool((region & truth).any()),
        "share_on_defect": float((region & truth).sum() / region.sum()),
        "area_ratio": float(region.sum() / max(int(truth.sum()), 1)),
    }


def run_seed(args: argparse.Namespace, root: Path, inspector: Inspector, seed: int) -> dict:
    """One draw of k examples per type (``seed``): ground-truth masks and every locating variant."""
    pixel, min_px = inspector.thresholds.pixel, inspector.settings.min_region_px
    truth, held_out = examples_from_category(root, args.k, seed=seed, will_locate=True)
    if args.max_eval and len(held_out) > args.max_eval:
        held_out = random.Random(2).sample(held_out, args.max_eval)
    with_truth = FewShotClassifier()
    with_truth.fit(truth.examples)
    embedded = embed_items(with_truth, held_out)
    eval_truth = evaluate_embedded(with_truth, embedded)
    print(f"seed {seed}: type accuracy on {len(embedded.items)} true regions, ground-truth masks: {eval_truth.accuracy:.3f}")

    # Each example's image, map and true mask once; every variant reads them. The maps are the ones
    # `inspect --examples` locates on (Locator.of: a memory bank's, smoothed less).
    locate_score = Locator.of(inspector).score
    images, maps, masks = {}, {}, {}
    for e in truth.examples:
        images[e.path] = load_image(e.path)
        anomaly_map = locate_score([images[e.path]])[0].anomaly_map
        maps[e.path] = np.asarray(anomaly_map, np.float32)
        masks[e.path] = load_mask(e.mask_path, expected_size=(anomaly_map.shape[1], anomaly_map.shape[0])) if e.mask_path else None

    # End to end: a few other images per type, as `inspect --examples` would see them (scored once).
    pick = random.Random(1)
    by_type: dict[str, list] = {}
    for item in held_out:
        by_type.setdefault(item.defect_type, []).append(item)
    inspected = []
    for defect, items in sorted(by_type.items()):
        for item in pick.sample(items, min(args.per_type, len(items))):
            image = load_image(item.path)
            inspected.append((item, defect, image, inspector.decide(inspector.score([image])[0], str(item.path))))

    results: dict[str, dict] = {}
    stats = inspector.detector.normal_stats
    median = stats.pixel_median if stats else None
    for name, options in VARIANTS.items():
        located: list[Example] = []
        where, skipped = [], []
        for e in truth.examples:
            found = locate_defect(maps[e.path], pixel, min_px, options, median, images[e.path])
            if found.mask is None:
                skipped.append(f"{e.path.name}: {found.reason}")
                continue
            located.append(replace(e, mask_path=None, mask=found.mask, views=found.views))
            if masks[e.path] is not None:
                where.append(_where(found.mask, masks[e.path]))
        row: dict = {"options": asdict(options), "located": len(located), "skipped": skipped}
        row["on_true_defect"] = sum(w["overlaps"] for w in where)
        row["median_share_on_defect"] = float(np.median([w["share_on_defect"] for w in where])) if where else None
        row["median_area_ratio"] = float(np.median([w["area_ratio"] for w in where])) if where else None
        if located:
            classifier = FewShotClassifier(encoder=with_truth.encoder)
            classifier.fit(located)
            evaluation = evaluate_embedded(classifier, embedded)
            rows = []
            for item, defect, image, inspection in inspected:
                types = classifier.classify_inspection(image, inspection).region_types if inspection.is_defective else []
                named = types[0].defect_type if types else None  # regions[0] is the strongest
                rows.append({"image": str(item.path.relative_to(root)), "true": defect, "flagged": inspection.is_defective, "named": named})
            row["accuracy"] = evaluation.accuracy
            row["confusion"] = {"labels": evaluation.labels, "matrix": evaluation.confusion}
            row["end_to_end"] = {
                "n": len(rows),
                "flagged": sum(r["flagged"] for r in rows),
                "flagged_and_named_right": sum(r["flagged"] and r["named"] == r["true"] for r in rows),
                "rows": rows,
            }
        else:
            row["accuracy"] = None
        results[name] = row
        e2e = row.get("end_to_end", {})
        print(
            f"  {name}: located {len(located)}/{len(truth.examples)}, on the true defect {row['on_true_defect']}, "
            f"median area/mask {row['median_area_ratio']}, accuracy {row['accuracy']}, "
            f"end to end flagged {e2e.get('flagged')}/{e2e.get('n')}, named right {e2e.get('flagged_and_named_right')}",
            flush=True,
        )
    return {
        "seed": seed,
        "examples": len(truth.examples),
        "types": truth.types,
        "n_scored_regions": len(embedded.items),
        "type_accuracy_ground_truth_masks": eval_truth.accuracy,
        "variants": results,
    }


def _mean(values: list) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--category", default="magnetic_tile")
    parser.add_argument("--max-train", type=int, default=0, help="fit on at most this many normal images (seeded; 0 = all)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="draws of the k examples per type (results: mean and each)")
    parser.add_argument("--per-type", type=int, default=2, help="images per type inspected end to end")
    parser.add_argument("--max-eval", type=int, default=0, help="score at most this many other defective images (seeded; 0 = all)")
    parser.add_argument("--model", type=Path, default=None, help="model folder to reuse (fitted and saved there when it holds none)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    # Checked before the model is fitted: a missing category or --out folder had been found only after it.
    args.category = require_categories(args.data, [args.category], has_normal_images)[0]
    out = require_output_folder(args.out) / RESULTS_FILE
    record = run_record()
    root = args.data / args.category
    start = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        inspector, n_train = _fit_or_load(args, root)
    except DatasetLayoutError as exc:
        # steel_strip: no normal images, so no detector to locate anything with.
        sys.exit(f"{args.category}: {exc}")
    print(f"model on {n_train} normal images ready in {time.perf_counter() - start:.0f} s; thresholds {inspector.thresholds}")
    draws = [run_seed(args, root, inspector, seed) for seed in args.seeds]

    variants = {}
    for name in VARIANTS:
        rows = [d["variants"][name] for d in draws]
        e2e = [r.get("end_to_end") or {} for r in rows]
        variants[name] = {
            "options": rows[0]["options"],
            "accuracy": _mean([r["accuracy"] for r in rows]),
            "accuracy_by_seed": [r["accuracy"] for r in rows],
            "located": sum(r["located"] for r in rows),
            "on_true_defect": sum(r["on_true_defect"] for r in rows),
            "end_to_end": {k: sum(e.get(k, 0) for e in e2e) for k in ("n", "flagged", "flagged_and_named_right")},
            "by_seed": rows,
        }
    default = variants[next(iter(VARIANTS))]
    truth_by_seed = [d["type_accuracy_ground_truth_masks"] for d in draws]
    result = {
        "category": args.category,
        "k": args.k,
        "seeds": args.seeds,
        "n_train": n_train,
        "model": str(args.model) if args.model else None,
        "thresholds": {"image": inspector.thresholds.image, "pixel": inspector.thresholds.pixel},
        "examples_per_seed": [d["examples"] for d in draws],
        "types": draws[0]["types"],
        "n_scored_regions_per_seed": [d["n_scored_regions"] for d in draws],
        "type_accuracy_ground_truth_masks": _mean(truth_by_seed),
        "type_accuracy_ground_truth_masks_by_seed": truth_by_seed,
        "type_accuracy_located_default": default["accuracy"],
        "type_accuracy_located_default_by_seed": default["accuracy_by_seed"],
        "end_to_end_default": default["end_to_end"],
        "variants": variants,
        "seconds": round(time.perf_counter() - start, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "load_average": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        # In the category's entry: the file keeps other categories' entries, each measured by its own run.
        "run": finish_record(record),
    }
    previous = json.loads(out.read_text()) if out.is_file() else {}
    entries = previous.get("categories", {}) if isinstance(previous.get("categories"), dict) else {}
    entries[args.category] = result
    write_json_atomic(out, {"benchmark": "located_examples", "categories": entries})
    print(f"ground-truth masks: {_fmt(truth_by_seed)}")
    for name, v in variants.items():
        e = v["end_to_end"]
        named = e["flagged_and_named_right"]
        print(f"{name}: accuracy {_fmt(v['accuracy_by_seed'])}; end to end {e['flagged']}/{e['n']} flagged, {named} named right")
    print(f"→ {out} [{args.category}]")


def _fmt(values: list) -> str:
    """'mean (a / b / c)' of per-seed accuracies."""
    mean = _mean(values)
    each = " / ".join("-" if v is None else f"{v:.3f}" for v in values)
    return f"{mean:.3f} ({each})" if mean is not None else "-"


if __name__ == "__main__":
    main()
