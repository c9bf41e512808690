"""Zero-shot benchmark of the grounding model: leave one category out.

For each category with masks under the data root: train the grounding head on all *other*
categories (their defective images with masks + a few normal images each), then test on the
held-out category's test split — no image of it was seen in training, and its defect types
are known only from the sentences in its taxonomy.json. Reports image AUROC, pixel AUROC,
AUPRO and type accuracy (each defective test image's ground-truth mask as the region, the
type chosen from text only). Features are encoded once and cached on disk, shared by all
folds. With ``--fusion`` (and the memory-bank detector available) magnetic_tile is also
scored by the memory bank fitted on its normal images, and fused with the grounding map.

    python benchmarks/zero_shot.py [--data ../shared/datasets] [--epochs 25] [--fusion] [--only NAME ...] [--out DIR]

Writes ``zero_shot.{json,md}`` in ``--out`` (default ``benchmarks/results``); a run with ``--only`` keeps the other
held-out categories' rows there, and the tables name them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (  # noqa: E402 - the benchmarks' shared module
    add_data_argument,
    earlier_note,
    finish_record,
    measured_stamp,
    require_categories,
    require_output_folder,
    run_record,
)


def has_masks_and_taxonomy(category: Path) -> bool:
    """Whether ``category`` can be held out or trained on: masks (``ground_truth``, in any case) and a ``taxonomy.json``."""
    from defectlens.io.dataset import folder_any_case

    return folder_any_case(category, "ground_truth").is_dir() and (category / "taxonomy.json").is_file()


def _metrics():
    """The project's metrics module, or an sklearn fallback while it is not there."""
    try:
        from defectlens.evaluate import metrics

        return metrics.image_auroc, metrics.pixel_auroc, metrics.aupro, metrics.type_accuracy
    except ImportError:  # pragma: no cover - only before evaluate.metrics existed
        from sklearn.metrics import roc_auc_score

        def image_auroc(y, s):
            return float(roc_auc_score(y, s)) if len(set(y)) == 2 else math.nan

        def pixel_auroc(masks, maps):
            y = np.concatenate([m.ravel() for m in masks])
            return float(roc_auc_score(y, np.concatenate([a.ravel() for a in maps])))

        def aupro(masks, maps):
            return math.nan

        def type_accuracy(t, p):
            return float(np.mean([a == b for a, b in zip(t, p, strict=True)])) if t else math.nan

        return image_auroc, pixel_auroc, aupro, type_accuracy


def _r(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


REGIMES = ("alone", "split", "batches16")
"""How the held-out test images are read: each by itself; the whole split as one batch; in
seeded random batches of 16 (what `defectlens inspect` does)."""


def _regime_results(model, vocab, grids, regime: str) -> list[tuple[list[int], list]]:
    """(indices, grounding results) per batch of ``grids`` read under ``regime``."""
    from defectlens.detect.grounding.features import add_batch_context
    from defectlens.inspector import balanced_batches

    if regime == "alone":
        return [(list(range(len(grids))), model.predict_inputs(grids, vocab))]
    if regime == "split":
        return [(list(range(len(grids))), model.predict_inputs(add_batch_context(grids), vocab))]
    order = np.random.default_rng(0).permutation(len(grids))
    out = []
    for batch in balanced_batches(len(grids), 16):
        idx = [int(order[i]) for i in batch]
        out.append((idx, model.predict_inputs(add_batch_context([grids[i] for i in idx]), vocab)))
    return out


def evaluate_fold(model, category_root: Path, cache) -> tuple[dict, list]:
    """Score the held-out category's test split under every reading regime and cue; types
    from text come from the whole-split reading. Returns metrics and the whole-split token
    results (for fusion with the memory bank, which uses the token cue)."""
    from defectlens.classify.from_text import classify_regions_from_text
    from defectlens.detect.grounding.detector import DEFAULT_CUE, results_for_cue
    from defectlens.io import load_category, load_mask
    from defectlens.taxonomy import load_taxonomy

    image_auroc, pixel_auroc, aupro, type_accuracy = _metrics()
    category = load_category(category_root)
    taxonomy = load_taxonomy(category.taxonomy_path, require_descriptions=True)
    vocab = model.vocabulary(taxonomy)
    test = category.require_test()
    grids = cache.get_many([t.path for t in test])
    labels = [int(t.is_defective) for t in test]
    masks: list[np.ndarray] = []
    for t, g in zip(test, grids, strict=True):
        w, h = g.placement.original_width, g.placement.original_height
        masks.append(load_mask(t.mask_path, (w, h)) if t.mask_path is not None else np.zeros((h, w), bool))
    cues: dict[str, dict] = {}
    timing: dict[str, float] = {}
    split_results = None
    for regime in REGIMES:
        t0 = time.perf_counter()
        batches = _regime_results(model, vocab, grids, regime)
        timing[regime] = round(1000 * (time.perf_counter() - t0) / len(grids), 2)
        if regime == "split":
            split_results = [None] * len(grids)
            for idx, res in batches:
                for i, r in zip(idx, res, strict=True):
                    split_results[i] = r
        cues[regime] = {}
        for cue in ("token",) if regime == "alone" else ("token", "batch", "both"):
            scores, maps = [0.0] * len(grids), [None] * len(grids)
            for idx, res in batches:
                for i, a in zip(idx, results_for_cue(res, cue), strict=True):
                    scores[i], maps[i] = a.score, a.anomaly_map
            cues[regime][cue] = {
                "image_auroc": _r(image_auroc(labels, scores)),
                "pixel_auroc": _r(pixel_auroc(masks, maps)),
                "aupro": _r(aupro(masks, maps)),
            }
    true_types, pred_types, pred_types_raw = [], [], []
    for t, r, m in zip(test, split_results, masks, strict=True):
        if t.is_defective and m.any():
            true_types.append(t.defect_type)
            for sub, sink in ((True, pred_types), (False, pred_types_raw)):
                rt = classify_regions_from_text(
                    r.type_maps, r.type_names, [m], logit_scale=r.type_logit_scale,
                    weights=r.anomaly_map, subtract_background=sub,
                )[0]
                sink.append(rt.defect_type)
    per_type = {}
    for name in taxonomy.names:
        idx = [i for i, t in enumerate(true_types) if t == name]
        per_type[name] = _r(np.mean([pred_types[i] == name for i in idx])) if idx else None
    headline = cues["batches16"][DEFAULT_CUE]
    row = {
        "category": category.name,
        "n_test": len(test),
        "n_defective": sum(labels),
        "headline": f"batches of 16, cue {DEFAULT_CUE} (the `defectlens inspect` default)",
        **headline,
        "cues": cues,
        "type_accuracy": _r(type_accuracy(true_types, pred_types)) if len(taxonomy.names) > 1 else None,
        "type_accuracy_no_background": _r(type_accuracy(true_types, pred_types_raw)) if len(taxonomy.names) > 1 else None,
        "type_chance": _r(1.0 / len(taxonomy.names)),
        "per_type_accuracy": per_type if len(taxonomy.names) > 1 else None,
        "ms_per_image_by_regime": timing,
    }
    return row, [masks, labels, [r.score for r in split_results], [r.anomaly_map for r in split_results], test]


def fusion_comparison(model, category_root: Path, cache, masks, labels, g_scores, g_maps, test, n_fit: int) -> dict | None:
    """Memory bank alone vs grounding alone vs fused on one category (needs its normal images)."""
    try:
        from defectlens.detect import MemoryBankConfig, MemoryBankDetector
    except ImportError:
        return None
    from defectlens.detect.calibration import UNIT_QUANTILE, normal_statistics
    from defectlens.detect.fusion import FusionConfig, fuse
    from defectlens.io import load_category, load_image

    image_auroc, pixel_auroc, aupro, _ = _metrics()
    category = load_category(category_root)
    normals = category.train_good
    if len(normals) < 10:
        return None
    rng = np.random.default_rng(0)
    order = rng.permutation(len(normals))
    fit_paths = [normals[i] for i in order[:n_fit]]
    # Held-out normal images, never in the bank: they calibrate both detectors' scales.
    calib_paths = [normals[i] for i in order[n_fit : n_fit + 30]]
    detector = MemoryBankDetector(MemoryBankConfig(holdout_fraction=0.0))
    detector.fit([load_image(p) for p in fit_paths])
    mb_calib = detector.score([load_image(p) for p in calib_paths])
    from defectlens.detect.grounding.features import add_batch_context

    g_calib = model.predict_inputs(add_batch_context(cache.get_many(calib_paths)), model.vocabulary(None))
    mb_stats = normal_statistics([r.score for r in mb_calib], [r.anomaly_map for r in mb_calib], UNIT_QUANTILE)
    g_stats = normal_statistics([r.score for r in g_calib], [r.anomaly_map for r in g_calib], UNIT_QUANTILE)
    mb = []
    for start in range(0, len(test), 32):
        mb += detector.score([load_image(t.path) for t in test[start : start + 32]])
    out = {"n_fit": len(fit_paths), "n_calibration": len(calib_paths)}
    variants = {
        "memory_bank": ([r.score for r in mb], [r.anomaly_map for r in mb]),
        "grounding": (g_scores, g_maps),
    }
    for mode in ("sum", "product"):
        cfg = FusionConfig(mode=mode, weight=0.5)
        fused = [fuse(r.score, r.anomaly_map, s, m, mb_stats, g_stats, cfg) for r, s, m in zip(mb, g_scores, g_maps, strict=True)]
        variants[f"fused_{mode}"] = ([f[0] for f in fused], [f[1] for f in fused])
    for name, (s, m) in variants.items():
        out[name] = {
            "image_auroc": _r(image_auroc(labels, s)),
            "pixel_auroc": _r(pixel_auroc(masks, m)),
            "aupro": _r(aupro(masks, m)),
        }
    return out


def headline_mean(rows: list[dict]) -> dict:
    """The headline: means over the held-out categories with normal test images (those with an
    image AUROC); the pixel AUROC over every held-out category is given beside it."""
    with_normal = [r for r in rows if r.get("image_auroc") is not None]
    if not with_normal:
        return {}

    def mean(key: str, among: list[dict]) -> float | None:
        values = [r[key] for r in among if r.get(key) is not None]
        return round(float(np.mean(values)), 4) if values else None

    return {
        "image_auroc": mean("image_auroc", with_normal),
        "pixel_auroc": mean("pixel_auroc", with_normal),
        "aupro": mean("aupro", with_normal),
        "n_categories": len(with_normal),
        "pixel_auroc_all": mean("pixel_auroc", rows),
        "n_all": len(rows),
    }


def render_markdown(rows: list[dict], meta: dict) -> str:
    """The results table of ``zero_shot.md`` from the rows and settings of ``zero_shot.json``."""
    lines = [
        "# Zero-shot grounding (leave one category out)",
        "",
        f"Total {meta['total_seconds'] / 60:.1f} min on {meta['machine']} (feature cache shared by folds; first run encodes).",
        "",
        "Headline: test images read in seeded random batches of 16 with the default cue (see",
        "`headline` in the JSON; the `defectlens inspect` default). None of the images read",
        "together is known to be normal.",
        "",
        "| held out | trained on | image AUROC | pixel AUROC | AUPRO | type acc (chance) | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        acc = "-" if r["type_accuracy"] is None else f"{r['type_accuracy']:.3f} ({r['type_chance']:.2f})"
        lines.append(
            f"| {r['category']} | {', '.join(r['trained_on'])} | {r['image_auroc'] if r['image_auroc'] is not None else 'n/a'} "
            f"| {r['pixel_auroc']} | {r['aupro']} | {acc} | {r['train_seconds']} |"
        )
    mean = headline_mean(rows)
    if mean:
        lines.append(
            f"| **mean over the {mean['n_categories']} held out with normal images** | | "
            f"**{mean['image_auroc']}** | **{mean['pixel_auroc']}** | **{mean['aupro']}** | | |"
        )
        lines += ["", f"Pixel AUROC over all {mean['n_all']} held-out categories: {mean['pixel_auroc_all']}."]
    lines += earlier_note(meta.get("from_earlier_runs", []))
    lines += ["", "Every reading regime and cue (image AUROC / pixel AUROC / AUPRO):", "",
              "| held out | regime | token | batch | both |", "|---|---|---|---|---|"]
    for r in rows:
        for regime, by_cue in r["cues"].items():
            metrics = ("image_auroc", "pixel_auroc", "aupro")
            cells = [" / ".join(str(v.get(k)) for k in metrics) if (v := by_cue.get(c)) else "-" for c in ("token", "batch", "both")]
            lines.append(f"| {r['category']} | {regime} | " + " | ".join(cells) + " |")
    for r in rows:
        if r.get("per_type_accuracy"):
            lines += ["", f"Per-type accuracy on {r['category']}: " + ", ".join(f"{k} {v}" for k, v in r["per_type_accuracy"].items())]
        if r.get("fusion"):
            lines += [
                "",
                f"Fusion on {r['category']} (memory bank fitted on {r['fusion']['n_fit']} normal images):",
                "",
                "| detector | image AUROC | pixel AUROC | AUPRO |",
                "|---|---|---|---|",
            ]
            for k, v in r["fusion"].items():
                if isinstance(v, dict):
                    lines.append(f"| {k} | {v['image_auroc']} | {v['pixel_auroc']} | {v['aupro']} |")
    return "\n".join(lines) + "\n"


def write_results(out: Path, rows: list[dict], meta: dict) -> None:
    """Write ``zero_shot.json`` and ``zero_shot.md``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "zero_shot.json").write_text(json.dumps({"settings": meta, "results": rows, "mean": headline_mean(rows)}, indent=2) + "\n")
    text = render_markdown(rows, meta)
    (out / "zero_shot.md").write_text(text)
    print(text)


def rerender(out: Path) -> None:
    """Re-derive each row's headline from its per-cue numbers with the current default cue and
    rewrite both files (after a presentation change; no model is trained)."""
    from defectlens.detect.grounding.detector import DEFAULT_CUE

    data = json.loads((out / "zero_shot.json").read_text())
    for row in data["results"]:
        row.update(row["cues"]["batches16"][DEFAULT_CUE])
        row["headline"] = f"batches of 16, cue {DEFAULT_CUE} (the `defectlens inspect` default)"
    write_results(out, data["results"], data["settings"])


def main() -> None:
    """Run leave-one-category-out and write the result tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "defectlens" / "zero_shot")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 is faster when the cores are shared)")
    parser.add_argument("--n-normal", type=int, default=40)
    parser.add_argument("--no-condition", action="store_true", help="object-independent segmentation tokens")
    parser.add_argument("--fusion", action="store_true", help="also compare with/fuse the memory bank on magnetic_tile")
    parser.add_argument("--fusion-fit", type=int, default=100)
    parser.add_argument("--only", nargs="*", help="held-out categories to run (default: all; the others' rows in --out are kept)")
    parser.add_argument("--render-only", action="store_true", help="re-render the tables from the existing JSON")
    args = parser.parse_args()
    if args.render_only:
        rerender(args.out)
        return
    # Checked before any training: a mistyped --only had been passed over in silence and the results rewritten without it.
    trainable = require_categories(args.data, None, has_masks_and_taxonomy)
    held_names = require_categories(args.data, args.only, has_masks_and_taxonomy)
    out = require_output_folder(args.out)
    record = run_record()
    # A run on some held-out categories keeps the other categories' rows of the results it rewrites.
    results_path = out / "zero_shot.json"
    earlier = json.loads(results_path.read_text())["results"] if args.only and results_path.is_file() else []
    kept = [r for r in earlier if r["category"] not in held_names]
    torch.set_num_threads(max(1, args.threads))

    from defectlens.detect.grounding import GroundingConfig, TrainingConfig, train_grounding_model
    from defectlens.detect.grounding.data import FeatureCache
    from defectlens.encode import PatchEncoder
    from defectlens.encode.text import TextEncoder

    roots = [args.data / name for name in trainable]
    config = GroundingConfig(conditioned=not args.no_condition)
    training = TrainingConfig(epochs=args.epochs, n_normal=args.n_normal)
    encoder = PatchEncoder(config.encoder)
    text = TextEncoder()
    cache = FeatureCache(encoder, config.side, config.grey, args.cache)
    start = time.perf_counter()
    rows, folds = [], []
    for held in roots:
        if held.name not in held_names:
            continue
        train_roots = [r for r in roots if r != held]
        t0 = time.perf_counter()
        model = train_grounding_model(train_roots, config, training, encoder=encoder, text=text, cache=cache)
        summary = model.fit_summary
        assert summary is not None
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        row, (masks, labels, scores, maps, test) = evaluate_fold(model, held, cache)
        row.update(
            trained_on=list(summary.categories),
            n_train_images=summary.n_images,
            cache_seconds=summary.cache_seconds,
            train_seconds=summary.train_seconds,
            fold_seconds=round(train_s + time.perf_counter() - t1, 1),
            final_loss=round(summary.losses[-1], 4),
        )
        if args.fusion and held.name == "magnetic_tile":
            row["fusion"] = fusion_comparison(model, held, cache, masks, labels, scores, maps, test, args.fusion_fit)
        row["measured"] = measured_stamp(record)
        rows.append(row)
        print(json.dumps(row), flush=True)
        folds.append(held.name)
        # Written after every fold: a run cut short keeps the folds it finished.
        meta = {
            "protocol": "leave-one-category-out; held-out test split; types from taxonomy text only (GT mask as region)",
            "grounding_config": config.to_json(),
            "training_config": training.to_json(),
            "total_seconds": round(time.perf_counter() - start, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
            "run": finish_record(record),
        }
        if kept:
            meta["from_earlier_runs"] = sorted(r["category"] for r in kept)
        write_results(out, sorted(rows + kept, key=lambda r: r["category"]), meta)


if __name__ == "__main__":
    main()
