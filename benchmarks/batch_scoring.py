"""Batch scoring (MuSc-style) against today's batch cue, and fused with the memory bank.

For every shared category with masks, the test split is read three ways: in seeded random
batches of the detector's ``inspect_batch`` (``batches48``, what ``defectlens inspect`` does;
``--batch`` changes it), in seeded random batches of 16 (``batches16``, what it did before and
what the grounding model's batch cue reads) and as one batch (``split``; each image compared
with 16 seeded others). Detectors, all training-free and without a
normal image unless said:

* ``batch_scoring`` — :class:`~defectlens.detect.batch_scoring.BatchScoringDetector`
  defaults (batch-outlier units); ``batch_scoring_no_rescore`` the same before the image
  re-scoring step;
* ``batch_cue`` — today's batch cue of the grounding detector (:func:`add_batch_context`, the
  map :func:`batch_cue_map` and ``results_for_cue(..., "batch")``) computed live on the
  grounding model's own inputs (grey, per-image canvas) for ``--cue-live`` categories, and
  copied from ``benchmarks/results/zero_shot.json`` (same code, same regimes) for the others.

On categories with normal images (``--fusion``): the memory bank fitted on up to
``--fusion-fit`` normal images (leave-one-out calibrated), alone and fused with batch scoring
(typical-patch units) by :class:`~defectlens.detect.fusion` ``fuse``, the weight chosen on
normal images only by :func:`~defectlens.detect.fusion.choose_fusion_weight` (the bank's
leave-one-out scores and batch scoring of the same images in the inspection's batches); every
weight of the sweep is reported too (for reading, not for choosing).

Shared-defect warning: the shared-pattern ratio of normal-only batches (fit images, the
inspection's batch size), of the test batches, and of batches where three quarters of the parts
share one defect type (the rest good).

Encoder levels are cached on disk per image (``--cache``), so a rerun only scores.

    python benchmarks/batch_scoring.py [--data ../shared/datasets] [--only cookie] [--limit 48]

Writes ``benchmarks/results/batch_scoring.{json,md}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from common import add_data_argument, finish_record, require_categories, run_record  # noqa: E402 - the benchmarks' shared module

MAJORITY_SHARE = 0.75
"""Share of a 'most share one defect' batch that has the one defect type (the rest are good)."""


def _r(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


class LevelCache:
    """Per-image encoder levels (float16 safetensors), keyed by file, size, mtime, encoder and canvas."""

    def __init__(self, encoder, directory: Path):
        self.encoder = encoder
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _key(self, path: Path, spec) -> str:
        st = path.stat()
        raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{json.dumps(self.encoder.config.to_json(), sort_keys=True)}|{spec}"
        return hashlib.sha1(raw.encode()).hexdigest()

    def get(self, paths: list[Path], spec) -> list[tuple[list[torch.Tensor], object]]:
        """(levels, placement) per path, encoding the missing ones in chunks of 8."""
        from safetensors import safe_open
        from safetensors.torch import save_file

        from defectlens.encode import Placement
        from defectlens.io import load_image

        out: list = [None] * len(paths)
        todo = []
        for i, p in enumerate(paths):
            f = self.directory / f"{self._key(p, spec)}.safetensors"
            if f.is_file():
                with safe_open(str(f), framework="pt") as fh:
                    meta = fh.metadata()
                    levels = [fh.get_tensor(f"level{j}") for j in range(int(meta["n"]))]
                out[i] = (levels, Placement(**json.loads(meta["placement"])))
            else:
                todo.append(i)
        for start in range(0, len(todo), 8):
            chunk = todo[start : start + 8]
            encoded = self.encoder.encode([load_image(paths[i]) for i in chunk], spec)
            for j, i in enumerate(chunk):
                levels = [lvl[j].half().contiguous() for lvl in encoded.levels]
                placement = encoded.placements[j]
                meta = {"n": str(len(levels)), "placement": json.dumps(placement.__dict__)}
                target = self.directory / f"{self._key(paths[i], spec)}.safetensors"
                save_file({f"level{k}": v for k, v in enumerate(levels)}, str(target), metadata=meta)
                out[i] = (levels, placement)
        return out


def encoded_batch(items, spec, with_features: bool = False):
    """An EncodedBatch of cached (levels, placement) items on one canvas (fused features only when asked: the bank's)."""
    from defectlens.encode import EncodedBatch, fuse_levels

    levels = [torch.stack([it[0][k] for it in items]).float() for k in range(len(items[0][0]))]
    features = fuse_levels(levels, 3) if with_features else torch.empty(0)
    return EncodedBatch(features, [it[1] for it in items], spec, levels)


def line_batches(n: int, size: int) -> list[list[int]]:
    """The seeded random balanced batches ``defectlens inspect`` reads (``Inspector.plan_batches``)."""
    from defectlens.inspector import balanced_batches

    order = np.random.default_rng(0).permutation(n)
    return [[int(order[i]) for i in b] for b in balanced_batches(n, size)]


def regimes(n: int, size: int) -> list[tuple[str, list[list[int]]]]:
    """(name, batches): the inspection's batches, batches of 16 (when that differs) and the whole split."""
    sizes = [size] if size == 16 else [size, 16]
    return [(f"batches{b}", line_batches(n, b)) for b in sizes] + [("split", [list(range(n))])]


def metrics(labels, scores, masks, maps) -> dict:
    from defectlens.evaluate.metrics import aupro, image_auroc, pixel_auroc

    return {
        "image_auroc": _r(image_auroc(labels, scores)) if len(set(labels)) == 2 else None,
        "pixel_auroc": _r(pixel_auroc(masks, maps)),
        "aupro": _r(aupro(masks, maps)),
    }


def score_regimes(items, spec, config, n: int) -> tuple[dict, dict]:
    """Per regime: detector name -> (scores, maps), plus the typical-patch readings and shared ratios."""
    from defectlens.detect.batch_scoring import read_batch, results_in_units
    from defectlens.detect.maps import batch_relative_scores

    out, extra = {}, {}
    for regime, batches in regimes(n, config.inspect_batch):
        scores = {k: [0.0] * n for k in ("batch_scoring", "batch_scoring_no_rescore")}
        maps: list = [None] * n
        typical: dict[str, list] = {"scores": [0.0] * n, "maps": [None] * n}
        shared = []
        t0 = time.perf_counter()
        for idx in batches:
            reading = read_batch(encoded_batch([items[i] for i in idx], spec), config)
            shared.append(reading.shared_pattern)
            results = results_in_units(reading, "batch-outlier")
            raw = batch_relative_scores(reading.raw_scores)
            for j, i in enumerate(idx):
                scores["batch_scoring"][i] = results[j].score
                scores["batch_scoring_no_rescore"][i] = raw[j]
                maps[i] = results[j].anomaly_map
                typical["scores"][i] = float(reading.scores[j])
                typical["maps"][i] = reading.maps[j]
        out[regime] = {"batch_scoring": (scores["batch_scoring"], maps), "batch_scoring_no_rescore": (scores["batch_scoring_no_rescore"], maps)}
        extra[regime] = {"typical": typical, "shared": shared, "ms_per_image": round(1000 * (time.perf_counter() - t0) / n, 1)}
    return out, extra


def batch_cue_live(paths: list[Path], n: int, cache_dir: Path) -> dict:
    """Today's batch cue on the grounding model's own inputs, both regimes."""
    from defectlens.detect.grounding.data import FeatureCache
    from defectlens.detect.grounding.detector import results_for_cue
    from defectlens.detect.grounding.features import add_batch_context
    from defectlens.detect.grounding.model import GroundingConfig, batch_cue_map
    from defectlens.encode import PatchEncoder
    from defectlens.types import GroundingResult

    config = GroundingConfig()
    cache = FeatureCache(PatchEncoder(config.encoder), config.side, config.grey, cache_dir)
    grids = cache.get_many(paths)
    out = {}
    for regime, batches in (("batches16", line_batches(n, 16)), ("split", [list(range(n))])):
        scores, maps = [0.0] * n, [None] * n
        for idx in batches:
            read = add_batch_context([grids[i] for i in idx])
            res = [GroundingResult(0.0, np.zeros((1, 1), np.float32), (), np.zeros((0, 1, 1), np.float32), 1.0, batch_cue_map(g)) for g in read]
            for i, a in zip(idx, results_for_cue(res, "batch"), strict=True):
                scores[i], maps[i] = a.score, a.anomaly_map
        out[regime] = (scores, maps)
    return out


def fusion_study(bank_cls, root, normal_paths, items_test, spec, enc_config, config, cache, labels, masks, typical) -> dict:
    """Memory bank alone vs fused with batch scoring; weight chosen on normal images only."""
    from defectlens.detect.batch_scoring import read_batch
    from defectlens.detect.calibration import UNIT_QUANTILE, normal_statistics
    from defectlens.detect.fusion import WEIGHT_CANDIDATES, FusionConfig, choose_fusion_weight, fuse
    from defectlens.detect.memory_bank import MemoryBankConfig

    t0 = time.perf_counter()
    normals = cache.get(normal_paths, spec)
    bank = bank_cls(MemoryBankConfig(encoder=enc_config))
    train = [encoded_batch(normals[s : s + 8], spec, with_features=True) for s in range(0, len(normals), 8)]
    bank.fit_encoded(train)
    loo = list(bank.leave_one_out_results(train))
    # Batch scoring of the same normal images, read in the inspection's batches as on the line.
    normal_scores, normal_maps, shared = [0.0] * len(normals), [None] * len(normals), []
    for idx in line_batches(len(normals), config.inspect_batch):
        reading = read_batch(encoded_batch([normals[i] for i in idx], spec), config)
        shared.append(reading.shared_pattern)
        for j, i in enumerate(idx):
            normal_scores[i], normal_maps[i] = float(reading.scores[j]), reading.maps[j]
    # leave_one_out_results scores every fit image (calibration_images is None by default).
    assert len(loo) == len(normals), "every normal image must be scored left out"
    bank_stats = normal_statistics([r.score for r in loo], [r.anomaly_map for r in loo], UNIT_QUANTILE)
    batch_stats = normal_statistics(normal_scores, normal_maps, UNIT_QUANTILE)
    weight = choose_fusion_weight([r.score for r in loo], normal_scores, bank_stats, batch_stats)
    bank_test = []
    for s in range(0, len(items_test), 8):
        bank_test += bank.score_encoded(encoded_batch(items_test[s : s + 8], spec, with_features=True))
    out = {
        "n_fit": len(normals),
        "chosen_weight": weight,
        "normal_shared_pattern": [_r(x) for x in shared],
        "memory_bank": metrics(labels, [r.score for r in bank_test], masks, [r.anomaly_map for r in bank_test]),
    }
    for w in sorted((set(WEIGHT_CANDIDATES) | {0.3, 0.4, 0.5}) - {0.0} | {weight}):
        cfg = FusionConfig(mode="sum", weight=w)
        fused = [
            fuse(r.score, r.anomaly_map, s, m, bank_stats, batch_stats, cfg)
            for r, s, m in zip(bank_test, typical["scores"], typical["maps"], strict=True)
        ]
        out[f"fused_w{w}"] = metrics(labels, [f[0] for f in fused], masks, [f[1] for f in fused])
    out["fused_chosen"] = out.get(f"fused_w{weight}", out["memory_bank"])
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def majority_batches(test, items, spec, config, n_batches: int = 3) -> list[float]:
    """Shared-pattern ratios of batches (the inspection's size) where three quarters of the parts share
    one of the two most frequent defect types and the rest are good."""
    from defectlens.detect.batch_scoring import read_batch

    rng = np.random.default_rng(1)
    by_type: dict[str, list[int]] = {}
    for i, t in enumerate(test):
        by_type.setdefault(t.defect_type if t.is_defective else "good", []).append(i)
    good = by_type.pop("good", [])
    out = []
    n_defective = round(MAJORITY_SHARE * config.inspect_batch)
    for _ in range(n_batches):
        for kind, members in sorted(by_type.items(), key=lambda kv: -len(kv[1]))[:2]:
            if len(members) < n_defective:
                continue
            n_good = min(config.inspect_batch - n_defective, len(good))
            idx = list(rng.choice(members, n_defective, replace=False)) + list(rng.choice(good, n_good, replace=False) if n_good else [])
            out.append((kind, read_batch(encoded_batch([items[i] for i in idx], spec), config).shared_pattern))
    return [_r(x) for _, x in out]


def run_category(root: Path, args, encoder, cache: LevelCache, old_cue: dict) -> dict:
    from defectlens.detect.batch_scoring import SHARED_PATTERN_LIMIT, BatchScoringConfig
    from defectlens.detect.memory_bank import MemoryBankDetector
    from defectlens.encode import CanvasSpec
    from defectlens.io import load_category, load_mask

    t0 = time.perf_counter()
    category = load_category(root)
    test = category.require_test()
    if args.limit:
        pick = sorted(np.random.default_rng(0).permutation(len(test))[: args.limit])
        test = [test[i] for i in pick]
    sizes = [Image.open(t.path).size for t in test]
    spec = CanvasSpec.for_sizes(sizes, args.side)
    # One canvas for the category (the detector sets one per batch the same way, from its images' sizes).
    encoder_config = replace(encoder.config, canvas_height=spec.height, canvas_width=spec.width)
    config = BatchScoringConfig(encoder=encoder_config, side=args.side, inspect_batch=args.batch)
    line = f"batches{args.batch}"
    items = cache.get([t.path for t in test], spec)
    labels = [int(t.is_defective) for t in test]
    masks = []
    for t, (_, placement) in zip(test, items, strict=True):
        w, h = placement.original_width, placement.original_height
        masks.append(load_mask(t.mask_path, (w, h)) if t.mask_path is not None else np.zeros((h, w), bool))
    encode_s = time.perf_counter() - t0
    per_regime, extra = score_regimes(items, spec, config, len(test))
    row = {
        "category": category.name, "n_test": len(test), "n_defective": sum(labels),
        "canvas": [spec.height, spec.width], "encode_seconds": round(encode_s, 1), "regimes": {},
    }
    live = batch_cue_live([t.path for t in test], len(test), args.cache / "grounding") if category.name in (args.cue_live or []) else {}
    for regime, detectors in per_regime.items():
        row["regimes"][regime] = {name: metrics(labels, s, masks, m) for name, (s, m) in detectors.items()}
        if regime in live:
            row["regimes"][regime]["batch_cue"] = {**metrics(labels, live[regime][0], masks, live[regime][1]), "source": "live"}
        elif not args.limit and (old := old_cue.get(category.name, {}).get(regime)):
            row["regimes"][regime]["batch_cue"] = {**old, "source": "zero_shot.json"}
        row["regimes"][regime]["ms_per_image"] = extra[regime]["ms_per_image"]
    shared = extra[line]["shared"]
    row["shared_pattern"] = {
        "limit": SHARED_PATTERN_LIMIT,
        "batch": args.batch,
        "test_batches": [_r(x) for x in shared],
        "test_batches_warned": sum(x > SHARED_PATTERN_LIMIT for x in shared),
        "majority_one_type": majority_batches(test, items, spec, config),
    }
    normals = category.train_good[: args.fusion_fit] if args.fusion_fit else category.train_good
    if args.fusion and len(normals) >= 16:
        normal_paths = [normals[i] for i in sorted(np.random.default_rng(0).permutation(len(normals)))]
        row["fusion"] = fusion_study(
            MemoryBankDetector, root, normal_paths, items, spec, config.encoder, config, cache, labels, masks, extra[line]["typical"]
        )
        ns = row["fusion"]["normal_shared_pattern"]
        row["shared_pattern"]["normal_batches"] = ns
        row["shared_pattern"]["normal_batches_warned"] = sum(x > SHARED_PATTERN_LIMIT for x in ns)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def render_markdown(rows: list[dict], meta: dict) -> str:
    """The tables of ``batch_scoring.md``."""
    keys = ("image_auroc", "pixel_auroc", "aupro")
    lines = [
        "# Batch scoring (MuSc-style) vs today's batch cue, and fusion with the memory bank",
        "",
        f"{meta['machine']}; total {meta['total_seconds'] / 60:.1f} min; load (uptime) at start {meta['load_start']}, at end {meta['load_end']}.",
        f"Settings: {json.dumps(meta['config'])}",
        "No normal image is used by either batch detector. Cells: image AUROC / pixel AUROC / AUPRO.",
        "`batch_cue` rows marked * are copied from zero_shot.json (same code and regimes, grounding inputs).",
        "",
    ]
    for regime in rows[0]["regimes"] if rows else ():
        lines += [f"## Regime `{regime}`", "", "| category | batch_scoring | no re-scoring | today's batch cue |", "|---|---|---|---|"]
        sums: dict[str, list[list[float]]] = {}
        for r in rows:
            cells = []
            for name in ("batch_scoring", "batch_scoring_no_rescore", "batch_cue"):
                v = r["regimes"][regime].get(name)
                if v is None:
                    cells.append("-")
                    continue
                star = "*" if v.get("source") == "zero_shot.json" else ""
                cells.append(" / ".join(str(v.get(k)) for k in keys) + star)
                sums.setdefault(name, []).append([v.get(k) for k in keys])
            lines.append(f"| {r['category']} | " + " | ".join(cells) + " |")
        means = []
        for name in ("batch_scoring", "batch_scoring_no_rescore", "batch_cue"):
            vals = sums.get(name, [])
            if not vals:
                means.append("-")
                continue
            cols = list(zip(*vals, strict=True))
            cells = [f"{np.mean([x for x in c if x is not None]):.4f}" if any(x is not None for x in c) else "n/a" for c in cols]
            means.append(" / ".join(cells) + f" (n={len(vals)})")
        lines += ["| **mean** | " + " | ".join(means) + " |", ""]
    lines += ["## Fusion with the memory bank (weight chosen on normal images only)", "",
              "| category | n fit | chosen weight | memory bank | fused (chosen) | Δ image AUROC | sweep image AUROC (w=0.05..0.5) |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        f = r.get("fusion")
        if not f:
            continue
        mb, fc = f["memory_bank"], f["fused_chosen"]
        sweep = ", ".join(f"{k[7:]}: {v['image_auroc']}" for k, v in f.items() if k.startswith("fused_w"))
        delta = None if mb["image_auroc"] is None else round(fc["image_auroc"] - mb["image_auroc"], 4)
        lines.append(
            f"| {r['category']} | {f['n_fit']} | {f['chosen_weight']} | {' / '.join(str(mb[k]) for k in keys)} | "
            f"{' / '.join(str(fc[k]) for k in keys)} | {delta} | {sweep} |"
        )
    lines += ["", "## Shared-defect warning (shared-pattern ratio; warned when above the limit)", "",
              f"Batches of {meta['config']['inspect_batch']}; in the last column three quarters of the parts share one defect type, "
              "the rest are good.",
              "",
              "| category | normal-only batches (warned) | test batches (warned) | most share one type |", "|---|---|---|---|"]
    for r in rows:
        s = r["shared_pattern"]
        normal = f"{s.get('normal_batches')} ({s.get('normal_batches_warned')})" if "normal_batches" in s else "-"
        ratios = s["test_batches"]
        test = f"median {np.median(ratios):.2f}, max {max(ratios):.2f} ({s['test_batches_warned']} of {len(ratios)})"
        lines.append(f"| {r['category']} | {normal} | {test} | {s['majority_one_type']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every category and write the result tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "defectlens" / "batch_scoring")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 when the cores are shared)")
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--only", nargs="*", help="categories to run (default: every one with masks)")
    parser.add_argument("--limit", type=int, default=0, help="seeded subset of test images per category (development)")
    parser.add_argument("--fusion", action=argparse.BooleanOptionalAction, default=True, help="memory bank alone and fused")
    parser.add_argument("--fusion-fit", type=int, default=200, help="normal images the bank is fitted on (0 = all)")
    parser.add_argument("--cue-live", nargs="*", default=None, help="categories whose batch cue is computed live (others: zero_shot.json)")
    parser.add_argument("--name", default="batch_scoring", help="result file stem")
    parser.add_argument("--backbone", default=None, help="encoder backbone (default: the detectors' default)")
    parser.add_argument("--batch", type=int, default=None, help="inspection batch size (default: the detector's inspect_batch)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, args.threads))
    from defectlens.detect.batch_scoring import BatchScoringConfig
    from defectlens.encode import PatchEncoder

    # Every category named (a typo had run none and written empty tables), else every one with masks and a taxonomy.
    roots = [args.data / n for n in require_categories(args.data, args.only,
                                                       lambda d: (d / "ground_truth").is_dir() and (d / "taxonomy.json").is_file())]
    record = run_record()
    old = {}
    zero_shot = HERE / "results" / "zero_shot.json"
    if zero_shot.is_file():
        for r in json.loads(zero_shot.read_text())["results"]:
            old[r["category"]] = {reg: c.get("batch") for reg, c in r["cues"].items() if c.get("batch")}
    base_config = BatchScoringConfig()
    args.batch = args.batch or base_config.inspect_batch
    base_config = replace(base_config, inspect_batch=args.batch)
    if args.backbone:
        base_config = replace(base_config, encoder=replace(base_config.encoder, backbone=args.backbone))
    encoder = PatchEncoder(base_config.encoder)
    cache = LevelCache(encoder, args.cache / "levels")
    load_start = os.getloadavg()
    start = time.perf_counter()
    rows = []
    for root in roots:
        row = run_category(root, args, encoder, cache, old)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "shared_pattern"}), flush=True)
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "config": base_config.to_json(),
        "limit": args.limit,
        "fusion_fit": args.fusion_fit,
        "total_seconds": round(time.perf_counter() - start, 1),
        "load_start": [round(x, 2) for x in load_start],
        "load_end": [round(x, 2) for x in os.getloadavg()],
        "run": finish_record(record),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps({"settings": meta, "results": rows}, indent=2) + "\n")
    text = render_markdown(rows, meta)
    (args.out / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
