"""Batch scoring's verdicts against the share of defective parts in a batch.

Batch scoring (``--detector batch-scoring``) calls a part defective when its score is 3 robust
sigmas above its batch's typical part: the batch's median and MAD. Its AUROC says how well it
ranks parts; this benchmark says what its *verdicts* are worth as the share of defective parts in
a batch grows, which a line cannot choose. For every shared category with normal images, batches
of 48 are drawn (seeded, three per share) from its normal images (training and test ``good``:
batch scoring trains on none) and its defective test images, at 0, 5, 10, 20, 30 and 40 %
defective; each batch is scored once, and recall and false-alarm rate at 3 robust sigmas are
read with four ways of taking the batch's location and spread from its raw image scores:

* ``mad`` — median and MAD (what the detector does);
* ``shorth`` — the midpoint and length of the shortest half of the scores (50 % breakdown; a
  cluster of defective parts above it does not widen it);
* ``lower-half`` — the median and the MAD of the scores below it (defects lie above);
* ``qn`` — the median and Rousseeuw and Croux's Qn (the first quartile of pairwise distances).

    python benchmarks/batch_share.py [--data ../shared/datasets] [--only cookie]

Writes ``benchmarks/results/batch_share.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from defectlens.detect.batch_scoring import BatchScoringDetector
from defectlens.detect.maps import MAD_TO_SIGMA, robust_units
from defectlens.io import load_category, load_image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import add_data_argument, finish_record, has_normal_images, require_categories, run_record  # noqa: E402 - the benchmarks' shared module

SHARES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4)
BATCH = 48
DRAWS = 3
OUTLIER = 3.0


def shorth_units(values: np.ndarray) -> tuple[float, float]:
    """Midpoint of the shortest interval holding half the values, and its length in sigmas."""
    s = np.sort(values)
    h = s.size // 2 + 1
    widths = s[h - 1 :] - s[: s.size - h + 1]
    i = int(np.argmin(widths))
    return 0.5 * (s[i] + s[i + h - 1]), max(float(widths[i]) / 1.349, 1e-6)


def lower_half_units(values: np.ndarray) -> tuple[float, float]:
    """Median, and the MAD of the values at or below it."""
    median = float(np.median(values))
    return median, max(MAD_TO_SIGMA * float(np.median(median - values[values <= median])), 1e-6)


def qn_units(values: np.ndarray) -> tuple[float, float]:
    """Median, and Qn: the k-th smallest pairwise distance, k = C(h, 2), h = n // 2 + 1."""
    distances = np.abs(values[:, None] - values[None, :])[np.triu_indices(values.size, 1)]
    h = values.size // 2 + 1
    k = h * (h - 1) // 2
    return float(np.median(values)), max(2.2219 * float(np.partition(distances, k - 1)[k - 1]), 1e-6)


RULES: dict[str, Callable[[np.ndarray], tuple[float, float]]] = {
    "mad": robust_units,
    "shorth": shorth_units,
    "lower-half": lower_half_units,
    "qn": qn_units,
}


def score_batches(root: Path, detector: BatchScoringDetector) -> list[dict]:
    """Every (share, draw) batch of one category: its raw image scores and labels."""
    category = load_category(root)
    goods = list(category.train_good) + [t.path for t in category.test if not t.is_defective]
    bads = [t.path for t in category.test if t.is_defective]
    images: dict[Path, np.ndarray] = {}
    batches = []
    for share in SHARES:
        for draw in range(DRAWS):
            rng = np.random.default_rng(1000 * draw + round(share * 100))
            n_bad = round(BATCH * share)
            n_good = min(BATCH - n_bad, len(goods))
            paths = [goods[i] for i in rng.choice(len(goods), n_good, replace=False)]
            paths += [bads[i] for i in rng.choice(len(bads), n_bad, replace=False)]
            for p in paths:
                if p not in images:
                    images[p] = load_image(p)
            detector.score([images[p] for p in paths])
            reading = detector.last_reading
            assert reading is not None
            batches.append({
                "share": share, "draw": draw, "labels": [0] * n_good + [1] * n_bad,
                "raw_scores": [float(x) for x in reading.scores], "shared_pattern": reading.shared_pattern,
            })
    return batches


def verdicts(batches: list[dict], rule: Callable[[np.ndarray], tuple[float, float]], share: float) -> tuple[float, float]:
    """Recall and false-alarm rate at :data:`OUTLIER` robust sigmas over the batches of one share."""
    tp = fn = fp = tn = 0
    for b in batches:
        if b["share"] != share:
            continue
        raw, y = np.asarray(b["raw_scores"]), np.asarray(b["labels"], bool)
        location, spread = rule(raw)
        flagged = (raw - location) / spread > OUTLIER
        tp, fn = tp + int((flagged & y).sum()), fn + int((~flagged & y).sum())
        fp, tn = fp + int((flagged & ~y).sum()), tn + int((~flagged & ~y).sum())
    return (tp / (tp + fn) if tp + fn else float("nan")), fp / max(fp + tn, 1)


def main() -> None:
    """Score the batches of every category, read every rule, write the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "batch_share")
    args = parser.parse_args()
    categories = require_categories(args.data, args.only, has_normal_images)
    record = run_record()
    detector = BatchScoringDetector()
    started, load = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()[0]
    results: dict[str, dict] = {}
    for name in categories:
        t0 = time.perf_counter()
        batches = score_batches(args.data / name, detector)
        results[name] = {
            "seconds": round(time.perf_counter() - t0, 1),
            "batches": batches,
            "verdicts": {rule: {str(s): verdicts(batches, f, s) for s in SHARES} for rule, f in RULES.items()},
        }
        print(f"{name}: {len(batches)} batches in {results[name]['seconds']} s", flush=True)
    meta = {"started": started, "load_at_start": round(load, 2), "load_at_end": round(os.getloadavg()[0], 2),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "batch": BATCH, "draws": DRAWS, "outlier": OUTLIER,
            "run": finish_record(record)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "categories": results}, indent=1))
    lines = ["# Batch scoring's verdicts against the share of defective parts", "",
             f"{meta['machine']}; {started}, load {meta['load_at_start']} → {meta['load_at_end']}. Batches of {BATCH}, "
             f"{DRAWS} seeded draws per share; recall / false-alarm rate at {OUTLIER:g} robust sigmas.", ""]
    for rule in RULES:
        lines += [f"## {rule}", "", "| defective share | " + " | ".join(categories) + " |", "|---" * (len(categories) + 1) + "|"]
        for share in SHARES:
            cells = [f"{results[c]['verdicts'][rule][str(share)][0]:.2f} / {results[c]['verdicts'][rule][str(share)][1]:.3f}" for c in categories]
            lines.append(f"| {share:.0%} | " + " | ".join(cells) + " |")
        lines.append("")
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
