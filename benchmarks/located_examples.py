"""Benchmark: defect-type examples without masks, located by the fitted detector (issue 11).

On one category (magnetic_tile by default): fit the memory bank on every normal image (as
``defectlens fit`` does; ``--max-train`` caps them, seeded), or reuse a saved model
(``--model``: loaded when it holds one, fitted and saved there when not). Draw k = 5 examples
per type (seed 0) and fit one few-shot classifier on their ground-truth masks and one per
locating variant (:class:`~defectlens.classify.LocateOptions`) on the regions the detector
locates in the same images with their masks thrown away. Each example's map is scored once and
every variant reads it. Then:

1. type accuracy of each on every other defective image, classified on its true mask (the
   classification benchmark's protocol; target: located within 0.05 of ground truth), with
   where the located regions lie: on the true defect or not, and how big against its mask;
2. the line engineer's view: 2 other images per type inspected end to end — flagged as
   defective, and named with the true type (the type of the strongest region) when flagged.

    .venv/bin/python benchmarks/located_examples.py [--data ../shared/datasets] [--category magnetic_tile]
        [--model runs/mt]

Writes the category's entry of ``benchmarks/results/located_examples.json`` (other categories'
entries are kept).
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
from defectlens.errors import DatasetLayoutError
from defectlens.evaluate.classification import embed_items, evaluate_embedded
from defectlens.io import load_category, load_image, load_mask, write_json_atomic

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "located_examples.json"

VARIANTS: dict[str, LocateOptions] = {
    "default (what `inspect --examples` does)": LocateOptions(),
    "one cut (50 %), no views (the default before)": LocateOptions(view_levels=()),
    "one cut at 25 %, no views": LocateOptions(level=0.25, view_levels=()),
    "one cut at 75 %, no views": LocateOptions(level=0.75, view_levels=()),
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
border, half height, cut at 50 % with views cut at 25 % and 75 %; the variants change only what
they name). Heights: how far from the normal images' median pixel up to the pixel threshold the
peak must rise (any = 0, half = 0.5, the threshold = 1)."""


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


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DEFECTLENS_DATA", REPO.parent / "shared" / "datasets")))
    parser.add_argument("--category", default="magnetic_tile")
    parser.add_argument("--max-train", type=int, default=0, help="fit on at most this many normal images (seeded; 0 = all)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--per-type", type=int, default=2, help="images per type inspected end to end")
    parser.add_argument("--max-eval", type=int, default=0, help="score at most this many other defective images (seeded; 0 = all)")
    parser.add_argument("--model", type=Path, default=None, help="model folder to reuse (fitted and saved there when it holds none)")
    args = parser.parse_args()
    root = args.data / args.category
    start = time.perf_counter()
    try:
        inspector, n_train = _fit_or_load(args, root)
    except DatasetLayoutError as exc:
        # steel_strip: no normal images, so no detector to locate anything with.
        sys.exit(f"{args.category}: {exc}")
    print(f"model on {n_train} normal images ready in {time.perf_counter() - start:.0f} s; thresholds {inspector.thresholds}")
    pixel, min_px = inspector.thresholds.pixel, inspector.settings.min_region_px

    truth, held_out = examples_from_category(root, args.k, seed=0, will_locate=True)
    if args.max_eval and len(held_out) > args.max_eval:
        held_out = random.Random(2).sample(held_out, args.max_eval)
    with_truth = FewShotClassifier()
    with_truth.fit(truth.examples)
    embedded = embed_items(with_truth, held_out)
    eval_truth = evaluate_embedded(with_truth, embedded)
    print(f"type accuracy on {len(embedded.items)} true regions, ground-truth masks: {eval_truth.accuracy:.3f}")

    # Each example's map and true mask once; every variant reads them.
    maps, masks = {}, {}
    for e in truth.examples:
        anomaly_map = inspector.score([load_image(e.path)])[0].anomaly_map
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
            found = locate_defect(maps[e.path], pixel, min_px, options, median)
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
            f"{name}: located {len(located)}/{len(truth.examples)}, on the true defect {row['on_true_defect']}, "
            f"median area/mask {row['median_area_ratio']}, accuracy {row['accuracy']}, "
            f"end to end flagged {e2e.get('flagged')}/{e2e.get('n')}, named right {e2e.get('flagged_and_named_right')}",
            flush=True,
        )

    default = results[next(iter(VARIANTS))]
    result = {
        "category": args.category,
        "k": args.k,
        "n_train": n_train,
        "model": str(args.model) if args.model else None,
        "thresholds": {"image": inspector.thresholds.image, "pixel": pixel},
        "examples": len(truth.examples),
        "types": truth.types,
        "n_scored_regions": len(embedded.items),
        "type_accuracy_ground_truth_masks": eval_truth.accuracy,
        "type_accuracy_located_default": default["accuracy"],
        "end_to_end_default": default.get("end_to_end"),
        "variants": results,
        "seconds": round(time.perf_counter() - start, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    previous = json.loads(OUT.read_text()) if OUT.is_file() else {}
    entries = previous.get("categories", {}) if isinstance(previous.get("categories"), dict) else {}
    entries[args.category] = result
    write_json_atomic(OUT, {"benchmark": "located_examples", "categories": entries})
    print(json.dumps({k: v for k, v in result.items() if k not in ("end_to_end_default", "variants")}))
    print(f"→ {OUT} [{args.category}]")


if __name__ == "__main__":
    main()
