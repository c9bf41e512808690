"""Study (issue 8): does a global image score beside the memory bank's lift recall at low false alarms?

The memory bank judges each patch against its nearest normal patches, so a part that is unusual
*as a whole* — a tile ground hotter everywhere, a band that looks locally normal — is seen only
through its patches. A classic complement (Gaussian anomaly detection, Rippel et al. 2020) pools
each image's patch features into one vector and scores it by its Mahalanobis distance under a
Gaussian fitted to the normal images' vectors (Ledoit–Wolf shrinkage, as the normal images are
few against the features' dimension).

For each (category, fitted default model): the test images' bank scores come from the model; the
pooled vectors (mean — or standard deviation — of the fused patch features over the image's
on-image cells) of the normal training images give the Gaussian, and 5-fold out-of-fold distances
of those same images put it in units (median 0, 98th percentile 1, as fusion does:
``calibration.UNIT_QUANTILE``). The Ledoit–Wolf rows are the product's own score
(:class:`~defectlens.detect.global_score.GlobalScore`). Fused score: bank + w × global, for several
scorers and weights. Reported: image AUROC and recall at 3 % false alarms on the test good images
(the oracle threshold: this compares rankings, not label-free thresholds), per category and mean;
and recall / false alarms with the threshold set as a line sets it with labelled parts (3 % on a
random half of the test images, measured on the other half). ``fit --global-weight`` is the same
score in the product (label-free thresholds: see the README).

    .venv/bin/python benchmarks/global_score_study.py [--data ../shared/datasets] [--out DIR] \\
        --pair magnetic_tile runs/mt --pair commutator runs/comm ...

A pair's category is a name under ``--data``, or a category folder given as a path (``../shared/datasets/cookie``).

Each model is one `defectlens fit CATEGORY -o MODEL --false-alarm-target 0.02`: the defaults, with the
normal statistics the model keeps at the 98th percentile, the fusion unit (the target moves only the
threshold, not the maps or scores). Writes ``global_score_study.{md,json}`` in ``--out`` (default
``benchmarks/results``); the categories of earlier runs that this one does not pair are kept there, and named.
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
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from defectlens.detect.calibration import UNIT_QUANTILE, normal_units
from defectlens.detect.global_score import GlobalScore, pooled_features
from defectlens.detect.maps import on_image_cells
from defectlens.detect.memory_bank import MemoryBankDetector
from defectlens.io import load_category
from defectlens.io.dataset import folder_any_case
from defectlens.io.images import load_image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (  # noqa: E402 - the benchmarks' shared module
    add_data_argument,
    earlier_note,
    finish_record,
    has_normal_images,
    measured_stamp,
    require_categories,
    require_output_folder,
    run_record,
)

RESULTS = HERE / "results"
WEIGHTS = (0.1, 0.25, 0.5)
FALSE_ALARMS = 0.03
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def image_vectors(detector: MemoryBankDetector, paths: list[Path], with_bank: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per image: [mean, standard deviation] of the fused patch features over its on-image cells
    (the mean as ``fit --global-weight`` pools them), and (``with_bank``) the model's image score;
    NaN scores otherwise."""
    vectors, scores = [], []
    for start in range(0, len(paths), 32):
        images = [load_image(p) for p in paths[start : start + 32]]
        for _, encoded in detector.encoder.iter_groups(images, 8):
            cells = list(on_image_cells([encoded]))
            spread = np.stack([feat[:, keep].numpy().astype(np.float64).std(axis=1) for feat, keep in cells])
            vectors += list(np.concatenate([pooled_features(cells), spread], axis=1))
            scores += [r.score for r in detector.score_encoded(encoded)] if with_bank else [np.nan] * len(cells)
    return np.asarray(vectors), np.asarray(scores)


def global_score(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The product's score (``fit --global-weight``): Ledoit–Wolf Mahalanobis distance in its own
    out-of-fold units."""
    return GlobalScore.fit(train)[0].units(test)


def in_units(scorer: Scorer) -> Scorer:
    """``scorer``'s distances in units of its normal spread, read out of fold as the product does."""

    def units(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        normal = out_of_fold(scorer, train)
        median, unit = normal_units(normal)
        return (scorer(train, test) - median) / unit

    return units


def diagonal(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Squared distance in per-feature standard deviations (no correlations)."""
    return (((test - train.mean(0)) / (train.std(0) + 1e-6)) ** 2).sum(1)


def whitened_pca(k: int) -> Scorer:
    """Squared distance in the top ``k`` whitened principal components."""

    def score(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        pca = PCA(min(k, len(train) - 2), whiten=True).fit(train)
        return (pca.transform(test) ** 2).sum(1)

    return score


def out_of_fold(scorer: Scorer, train: np.ndarray, folds: int = 5) -> np.ndarray:
    """Each normal image scored by the scorer fitted on the other folds (seeded)."""
    order = np.random.default_rng(0).permutation(len(train))
    out = np.empty(len(train))
    for k in range(folds):
        held = order[k::folds]
        out[held] = scorer(train[np.setdiff1d(order, held)], train[held])
    return out


def recall_at(scores: np.ndarray, labels: np.ndarray, false_alarms: float) -> float:
    """Recall at the threshold that flags ``false_alarms`` of the test good images (oracle)."""
    threshold = np.quantile(scores[labels == 0], 1 - false_alarms, method="higher")
    return float((scores[labels == 1] > threshold).mean())


def half_calibrated(scores: np.ndarray, labels: np.ndarray, false_alarms: float, draws: int = 200) -> tuple[float, float]:
    """A line that sets its threshold with labelled parts (`defectlens calibrate --max-false-alarms`):
    the lowest threshold keeping false alarms within ``false_alarms`` on a random half of the test
    images, and its recall and false-alarm rate on the other half; mean of ``draws`` seeded halves."""
    rng = np.random.default_rng(0)
    recalls, alarms = [], []
    for _ in range(draws):
        first = rng.random(len(labels)) < 0.5
        good = np.sort(scores[first & (labels == 0)])
        threshold = good[len(good) - 1 - int(np.floor(false_alarms * len(good)))]
        recalls.append(float((scores[~first & (labels == 1)] > threshold).mean()))
        alarms.append(float((scores[~first & (labels == 0)] > threshold).mean()))
    return float(np.mean(recalls)), float(np.mean(alarms))


def measured(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Image AUROC, oracle recall at FALSE_ALARMS, and the half-calibrated recall and false alarms."""
    recall, alarms = half_calibrated(scores, labels, FALSE_ALARMS)
    return {
        "auroc": roc_auc_score(labels, scores),
        "recall": recall_at(scores, labels, FALSE_ALARMS),
        "half_recall": recall,
        "half_false_alarms": alarms,
    }


def category_folders(data: Path, pairs: list[list[str]]) -> list[tuple[Path, str]]:
    """Each ``--pair``'s category folder (a name under ``data``, or a path with a folder in it) and model folder, every one
    checked before any work: a mistyped one had been a traceback after the categories before it were scored."""
    checked = []
    for category, model_dir in pairs:
        folder = Path(category) if "/" in category.rstrip("/") or os.sep in category.rstrip(os.sep) else data / category
        name = require_categories(folder.parent, [folder.name], lambda p: has_normal_images(p) and folder_any_case(p, "test").is_dir())[0]
        if not Path(model_dir).is_dir():
            sys.exit(f"{model_dir}: model folder not found — fit it with `defectlens fit {folder.parent / name} -o {model_dir} "
                     f"--false-alarm-target {1 - UNIT_QUANTILE:.2f}`")
        checked.append((folder.parent / name, model_dir))
    return checked


def main() -> None:
    """Score every scorer and weight on every given category; write the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", nargs=2, action="append", metavar=("CATEGORY", "MODEL_DIR"), required=True,
                    help="a category (a name under --data, or its folder) and the default model fitted on it")
    add_data_argument(ap)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    pairs = category_folders(args.data, args.pair)
    out = require_output_folder(args.out)
    record = run_record()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    load_before, start = os.getloadavg(), time.time()
    per_category: dict[str, dict] = {}
    for category_dir, model_dir in pairs:
        detector = MemoryBankDetector.load(model_dir)
        # Checked as soon as the model is read, before its images are encoded (it had been after).
        stats = detector.normal_stats
        if stats is None or stats.quantile != UNIT_QUANTILE:
            raise SystemExit(f"{model_dir}: normal statistics at quantile {stats and stats.quantile}, not {UNIT_QUANTILE}: "
                             f"refit it with --false-alarm-target {1 - UNIT_QUANTILE:.2f}")
        category = load_category(category_dir)
        train, _ = image_vectors(detector, category.train_good, with_bank=False)
        test, bank = image_vectors(detector, [t.path for t in category.test], with_bank=True)
        labels = np.array([t.defect_type != "good" for t in category.test], int)
        bank_units = np.array([stats.normalise_score(s) for s in bank])
        dim = train.shape[1] // 2
        half = slice(0, dim)
        scorers: dict[str, tuple[Scorer, slice]] = {
            "mean, Ledoit-Wolf": (global_score, half),
            "mean, diagonal": (in_units(diagonal), half),
            "mean, whitened PCA 16": (in_units(whitened_pca(16)), half),
            "mean, whitened PCA 32": (in_units(whitened_pca(32)), half),
            "standard deviation, Ledoit-Wolf": (global_score, slice(dim, 2 * dim)),
        }
        rows = {"bank alone": measured(bank_units, labels)}
        for name, (scorer, columns) in scorers.items():
            global_units = scorer(train[:, columns], test[:, columns])
            rows[f"{name} alone"] = measured(global_units, labels)
            for w in WEIGHTS:
                fused = bank_units + w * global_units
                rows[f"bank + {w} x {name}"] = measured(fused, labels)
        per_category[category.name] = {"model": str(model_dir), "n_train": len(train), "rows": rows, "measured": measured_stamp(record)}
        print(f"{category.name}: done ({time.time() - start:.0f} s)", flush=True)
    names = list(next(iter(per_category.values()))["rows"])
    # The categories of earlier runs that this one did not pair are kept (each with its own "measured"), after this run's.
    path = out / "global_score_study.json"
    earlier = json.loads(path.read_text()).get("categories", {}) if path.is_file() else {}
    kept = {name: entry for name, entry in earlier.items() if name not in per_category}
    per_category |= kept
    cats = list(per_category)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "minutes": round((time.time() - start) / 60, 1),
        "load_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "false_alarms": FALSE_ALARMS,
        "categories": per_category,
        "run": finish_record(record),
    }
    if kept:
        result["from_earlier_runs"] = sorted(kept)
    path.write_text(json.dumps(result, indent=1))
    lines = [
        "# A global image score beside the memory bank (issue 8 study)",
        "",
        f"{result['machine']}; {result['minutes']} min, load {result['load_before_after'][0]} → {result['load_before_after'][1]}. "
        "Generated by `benchmarks/global_score_study.py`. Image AUROC / recall at the threshold flagging "
        f"{FALSE_ALARMS:.0%} of the test good images (oracle: compares rankings).",
        "",
        "| score | " + " | ".join(cats) + " | mean |",
        "|---|" + "---|" * (len(cats) + 1),
    ]
    for name in names:
        # A kept category measured before a scorer or weight was added has no row of it: "–", and the mean is over the others.
        cells = [per_category[c]["rows"].get(name) for c in cats]
        have = [x for x in cells if x is not None]
        mean_auroc = np.mean([x["auroc"] for x in have])
        mean_recall = np.mean([x["recall"] for x in have])
        values = " | ".join(f"{x['auroc']:.4f} / {x['recall']:.3f}" if x else "–" for x in cells)
        lines.append(f"| {name} | {values} | {mean_auroc:.4f} / {mean_recall:.3f} |")
    lines += [
        "",
        f"Calibrated with labelled parts: the lowest threshold keeping false alarms within {FALSE_ALARMS:.0%} on a random half of "
        "the test images (as `defectlens calibrate --max-false-alarms` sets it), recall / false alarms on the other half; mean of 200 halves.",
        "",
        "| score | " + " | ".join(cats) + " | mean |",
        "|---|" + "---|" * (len(cats) + 1),
    ]
    for name in names:
        cells = [per_category[c]["rows"].get(name) for c in cats]
        have = [x for x in cells if x is not None]
        values = " | ".join(f"{x['half_recall']:.3f} / {x['half_false_alarms']:.3f}" if x else "–" for x in cells)
        mean_recall = np.mean([x["half_recall"] for x in have])
        mean_alarms = np.mean([x["half_false_alarms"] for x in have])
        lines.append(f"| {name} | {values} | {mean_recall:.3f} / {mean_alarms:.3f} |")
    lines += earlier_note(kept)
    (out / "global_score_study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
