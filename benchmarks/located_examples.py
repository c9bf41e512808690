"""Benchmark: defect-type examples without masks, located by the fitted detector (issue 11).

On magnetic_tile: fit the memory bank on ``--max-train`` normal images; draw k = 5 examples per
type (seed 0) and fit two few-shot classifiers — one on the ground-truth masks, one on the
regions the detector locates in the same images with their masks thrown away. Then:

1. type accuracy of both on every other defective image, classified on its true mask (the
   classification benchmark's protocol; target: located within 0.05 of ground truth);
2. the line engineer's view: 2 other images per type inspected end to end — flagged as
   defective, and named with the true type (the type of the strongest region) when flagged.

    .venv/bin/python benchmarks/located_examples.py [--data ../shared/datasets] [--max-train 200]

Writes ``benchmarks/results/located_examples.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from defectlens import Inspector, InspectorSettings
from defectlens.classify import ExampleSet, FewShotClassifier, examples_from_category, locate_examples
from defectlens.errors import DatasetLayoutError
from defectlens.evaluate.classification import embed_items, evaluate_embedded
from defectlens.io import load_category, load_image, load_mask, write_json_atomic

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DEFECTLENS_DATA", REPO.parent / "shared" / "datasets")))
    parser.add_argument("--category", default="magnetic_tile")
    parser.add_argument("--max-train", type=int, default=200)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--per-type", type=int, default=2, help="images per type inspected end to end")
    parser.add_argument("--max-eval", type=int, default=0, help="score at most this many other defective images (seeded; 0 = all)")
    parser.add_argument("--model", type=Path, default=None, help="a model folder to reuse (fitted and saved there when absent)")
    args = parser.parse_args()
    root = args.data / args.category
    start = time.perf_counter()
    paths = load_category(root).require_train_good()
    rng = np.random.default_rng(0)
    if len(paths) > args.max_train:
        paths = [paths[i] for i in sorted(rng.choice(len(paths), args.max_train, replace=False))]
    if args.model is not None and Inspector.is_model_dir(args.model):
        inspector = Inspector.load(args.model)
    else:
        inspector = Inspector.fit([load_image(p) for p in paths], InspectorSettings())
        if args.model is not None:
            inspector.save(args.model)
    fit_s = time.perf_counter() - start
    print(f"fitted on {len(paths)} images in {fit_s:.0f} s; thresholds {inspector.thresholds}")

    truth, held_out = examples_from_category(root, args.k, seed=0, will_locate=True)
    maskless = ExampleSet([replace(e, mask_path=None) for e in truth.examples])
    true_masks = {e.path: e.mask_path for e in truth.examples}
    if args.max_eval and len(held_out) > args.max_eval:
        held_out = random.Random(2).sample(held_out, args.max_eval)
    with_truth = FewShotClassifier()
    with_truth.fit(truth.examples)
    embedded = embed_items(with_truth, held_out)
    acc_truth = evaluate_embedded(with_truth, embedded).accuracy
    print(f"type accuracy on {len(embedded.items)} true regions, ground-truth masks: {acc_truth:.3f}")
    stats = inspector.detector.normal_stats
    variants = {
        "peak anywhere, above the pixel threshold": {},
        "peak off the 10 % border, above the pixel threshold": {"border": 0.1},
        "peak off the 10 % border, any height": {"border": 0.1, "min_peak": stats.pixel_median if stats else None},
    }
    results, best = {}, None
    for name, options in variants.items():
        try:
            located = locate_examples(maskless, inspector.score, inspector.thresholds.pixel, inspector.settings.min_region_px, **options)
        except DatasetLayoutError as exc:
            print(f"{name}: {exc}")
            continue
        # How often the located region lies on the true defect (the masks were only hidden).
        on_defect = 0
        for e in located.examples:
            mask_path = true_masks[e.path]
            if mask_path is not None and e.mask is not None:
                on_defect += bool((load_mask(mask_path, expected_size=(e.mask.shape[1], e.mask.shape[0])) & e.mask).any())
        classifier = FewShotClassifier(encoder=with_truth.encoder)
        classifier.fit(located.examples)
        evaluation = evaluate_embedded(classifier, embedded)
        results[name] = {
            "located": len(located.examples), "on_true_defect": on_defect, "accuracy": evaluation.accuracy,
            "confusion": {"labels": evaluation.labels, "matrix": evaluation.confusion}, "options": {k: v for k, v in options.items()},
        }
        print(f"{name}: located {len(located.examples)}/{len(maskless.examples)}, on the true defect {on_defect}, accuracy {evaluation.accuracy:.3f}")
        if best is None or evaluation.accuracy > results[best]["accuracy"]:
            best, with_located = name, classifier
    acc_located = results[best]["accuracy"] if best else float("nan")

    # End to end: a few other images per type, as `inspect --examples` would see them.
    pick = random.Random(1)
    by_type: dict[str, list] = {}
    for item in held_out:
        by_type.setdefault(item.defect_type, []).append(item)
    rows = []
    for defect, items in sorted(by_type.items()):
        for item in pick.sample(items, min(args.per_type, len(items))):
            image = load_image(item.path)
            inspection = inspector.decide(inspector.score([image])[0], str(item.path))
            types = with_located.classify_inspection(image, inspection).region_types if inspection.is_defective else []
            named = types[0].defect_type if types else None  # regions[0] is the strongest
            rows.append({"image": str(item.path.relative_to(root)), "true": defect, "flagged": inspection.is_defective, "named": named})
    n = len(rows)
    flagged = sum(r["flagged"] for r in rows)
    right = sum(r["flagged"] and r["named"] == r["true"] for r in rows)
    print(f"end to end, {n} images: flagged {flagged}/{n}, flagged and named right {right}/{n} ({right}/{max(flagged, 1)} of the flagged)")
    result = {
        "category": args.category,
        "k": args.k,
        "max_train": len(paths),
        "examples": len(maskless.examples),
        "type_accuracy_ground_truth_masks": acc_truth,
        "type_accuracy_located_best": acc_located,
        "best_variant": best,
        "variants": results,
        "n_scored_regions": len(embedded.items),
        "end_to_end": {"n": n, "flagged": flagged, "flagged_and_named_right": right, "rows": rows},
        "seconds": round(time.perf_counter() - start, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "load_average": os.getloadavg(),
    }
    out = REPO / "benchmarks" / "results" / "located_examples.json"
    write_json_atomic(out, result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("end_to_end", "variants")}))
    print(f"→ {out}")


if __name__ == "__main__":
    main()
