"""Benchmark: few-shot defect-type accuracy, and the cost of the two report writers.

Classification is scored with the ground-truth masks as the regions (one region per image:
its whole true mask), so detection errors do not blur it. k examples per type are drawn with
a fixed seed by :func:`examples_from_category` and excluded from the scored images. Every image
is encoded once; each k then fits on its examples' vectors and scores the rest.

    .venv/bin/python benchmarks/classify_bench.py [--data ../shared/datasets] [--seeds 0 1 2] [--lm-reports 6]

Writes ``benchmarks/results/classify.json`` and ``classify.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from defectlens.classify import FewShotClassifier, FewShotConfig, examples_from_category, load_taxonomy
from defectlens.evaluate.classification import embed_items, evaluate_embedded
from defectlens.explain import build_report
from defectlens.explain.llm import LMConfig, LMWriter
from defectlens.io import load_category, load_image, load_mask, write_json_atomic, write_text_atomic
from defectlens.locate import extract_regions
from defectlens.types import Inspection

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from common import add_data_argument, finish_record, require_categories, run_record  # noqa: E402 - the benchmarks' shared module

PLAN = {"magnetic_tile": (1, 5, 10), "steel_strip": (5,)}
TARGETS = {("magnetic_tile", 5): 0.80, ("steel_strip", 5): 0.90}


def classification(data: Path, seeds: list[int], config: FewShotConfig) -> tuple[list[dict], dict[str, FewShotClassifier]]:
    """Accuracy/macro-F1 per (category, k), mean and spread over ``seeds``."""
    rows: list[dict] = []
    fitted: dict[str, FewShotClassifier] = {}
    for cat, ks in PLAN.items():
        root = data / cat
        if not root.is_dir():
            print(f"skip {cat}: {root} not found")
            continue
        clf = FewShotClassifier(config)
        t0 = time.perf_counter()
        embedded = embed_items(clf, load_category(root).test)
        print(f"{cat}: embedded {len(embedded.items)} regions in {time.perf_counter() - t0:.0f}s")
        index = {it.path: i for i, it in enumerate(embedded.items)}
        for k in ks:
            runs = []
            for seed in seeds:
                examples, _held_out = examples_from_category(root, k, seed)
                ids = [index[e.path] for e in examples.examples if e.path in index]
                names = sorted({e.defect_type for e in examples.examples})
                run_clf = FewShotClassifier(config, encoder=clf.encoder)
                run_clf.fit_vectors(embedded.vectors[ids], np.array([names.index(embedded.items[i].defect_type) for i in ids]), names)
                runs.append(evaluate_embedded(run_clf, embedded, exclude={e.path for e in examples.examples}))
                if k == 5 and seed == seeds[0]:
                    fitted[cat] = run_clf
            acc = [r.accuracy for r in runs]
            f1 = [r.macro_f1 for r in runs]
            row = {
                "category": cat,
                "k": k,
                "seeds": seeds,
                "n_scored": runs[0].n_images,
                "accuracy": round(statistics.mean(acc), 4),
                "accuracy_std": round(statistics.pstdev(acc), 4),
                "macro_f1": round(statistics.mean(f1), 4),
                "macro_f1_std": round(statistics.pstdev(f1), 4),
                "unknown_rate": round(statistics.mean(r.unknown_rate for r in runs), 4),
                "per_type_f1_seed0": {t: None if math.isnan(v) else round(v, 3) for t, v in runs[0].per_type_f1.items()},  # JSON null, not NaN
                "confusion_seed0": {"labels": runs[0].labels, "matrix": runs[0].confusion},
                "seconds_per_region": round(runs[0].seconds_per_region, 4),
                "target": TARGETS.get((cat, k)),
            }
            rows.append(row)
            print(f"{cat} k={k}: accuracy {row['accuracy']:.3f} ± {row['accuracy_std']:.3f}, macro-F1 {row['macro_f1']:.3f}")
    return rows, fitted


def report_cases(data: Path, clf: FewShotClassifier | None, n: int) -> list[tuple[Inspection, list]]:
    """Inspections built from true masks of a few magnetic-tile images (defective and good)."""
    root = data / "magnetic_tile"
    cat = load_category(root)
    rng = np.random.default_rng(0)
    defective = [x for x in cat.test if x.is_defective]
    good = [x for x in cat.test if not x.is_defective]
    picks = [defective[i] for i in rng.choice(len(defective), max(1, n - n // 3), replace=False)]
    picks += [good[i] for i in rng.choice(len(good), n // 3, replace=False)]
    cases = []
    for item in picks:
        img = load_image(item.path)
        h, w = img.shape[:2]
        mask = load_mask(item.mask_path, (w, h)) if item.mask_path else np.zeros((h, w), bool)
        binary, labels, regions = extract_regions(mask.astype(np.float32), 0.5)
        insp = Inspection(
            str(item.path), (w, h), 1.0 if regions else 0.0, bool(regions), mask.astype(np.float32), binary, regions, region_labels=labels
        )
        types = clf.classify_inspection(img, insp).region_types if clf is not None and regions else []
        cases.append((insp, types))
    return cases


def writers(data: Path, clf: FewShotClassifier | None, n_lm: int) -> dict:
    """Template ms/report (many repeats) and LM s/report with its verification outcome."""
    tax = load_taxonomy(data / "magnetic_tile" / "taxonomy.json")
    cases = report_cases(data, clf, max(n_lm, 3))
    reps = 200
    t0 = time.perf_counter()
    for _ in range(reps):
        for insp, types in cases:
            build_report(insp, types, tax, writer="template")
    template_ms = 1000 * (time.perf_counter() - t0) / (reps * len(cases))
    out: dict = {"template_ms_per_report": round(template_ms, 3), "template_reports": len(cases)}
    if n_lm <= 0:
        return out
    t0 = time.perf_counter()
    try:
        LMWriter().load()
    except Exception as exc:  # noqa: BLE001 - report and go on without the LM numbers
        out["lm_error"] = str(exc)
        return out
    out["lm_load_s"] = round(time.perf_counter() - t0, 2)
    out["lm_max_new_tokens"] = LMConfig().max_new_tokens
    samples = []
    for insp, types in cases[:n_lm]:
        t0 = time.perf_counter()
        rep = build_report(insp, types, tax, writer="llm")
        samples.append(
            {
                "source": Path(insp.source).name,
                "verdict": rep.verdict,
                "types": [f.defect_type for f in rep.findings],
                "writer": rep.writer,
                "lm_seconds": round(rep.writer_seconds, 2),
                "wall_seconds": round(time.perf_counter() - t0, 2),
                "text": rep.text,
                "notes": [n for n in rep.notes if "language-model" in n],
            }
        )
        print(f"LM report {len(samples)}: {rep.writer} in {rep.writer_seconds:.2f}s")
    times = [s["lm_seconds"] for s in samples]
    out.update(
        {
            "lm_seconds_per_report_mean": round(statistics.mean(times), 2),
            "lm_seconds_per_report_max": round(max(times), 2),
            "lm_verified_share": round(sum(s["writer"] == "llm" for s in samples) / len(samples), 3),
            "lm_samples": samples,
        }
    )
    return out


def markdown(result: dict) -> str:
    """The results as a markdown page."""
    lines = [
        "# Defect-type classification and report writers",
        "",
        f"Machine: {result['machine']}; load average at start {result['load_average']}. "
        "Ground-truth masks as regions; k examples per type drawn with fixed seeds and excluded from scoring.",
        "",
        f"Few-shot config: `{result['config']}`",
        "",
        "| category | k | images scored | accuracy | macro-F1 | unknown rate | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["classification"]:
        target = f"≥ {r['target']:.2f} {'met' if r['accuracy'] >= r['target'] else 'MISSED'}" if r["target"] else ""
        lines.append(
            f"| {r['category']} | {r['k']} | {r['n_scored']} | {r['accuracy']:.3f} ± {r['accuracy_std']:.3f} | "
            f"{r['macro_f1']:.3f} ± {r['macro_f1_std']:.3f} | {r['unknown_rate']:.3f} | {target} |"
        )
    w = result["writers"]
    if not w:
        return "\n".join(lines) + "\n"
    lines += ["", "## Writers", "", f"- template: {w['template_ms_per_report']:.3f} ms per report (target < 5 ms)"]
    if "lm_seconds_per_report_mean" in w:
        lines += [
            f"- language model (SmolLM2-135M, max_new_tokens={w['lm_max_new_tokens']}): {w['lm_seconds_per_report_mean']:.2f} s "
            f"per report (max {w['lm_seconds_per_report_max']:.2f} s; target ≤ 3 s), load {w['lm_load_s']:.1f} s once; "
            f"{w['lm_verified_share']:.0%} of texts passed verification (the rest fell back to the template)",
            "",
            "| image | verdict | types | writer | s | text |",
            "|---|---|---|---|---|---|",
        ]
        for s in w["lm_samples"]:
            lines.append(
                f"| {s['source']} | {s['verdict']} | {', '.join(s['types'])} | {s['writer']} | {s['lm_seconds']} | {s['text'].replace('|', '/')} |"
            )
    elif "lm_error" in w:
        lines.append(f"- language model not measured: {w['lm_error']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the benchmark and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(ap)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--lm-reports", type=int, default=6, help="reports written by the language model (0 = skip)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    # Every category of the plan, or nothing written: without them it had written empty tables over the committed ones.
    require_categories(args.data, list(PLAN))
    record = run_record()
    config = FewShotConfig()
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "config": config.to_json(),
    }
    result["classification"], fitted = classification(args.data, args.seeds, config)
    result["writers"] = writers(args.data, fitted.get("magnetic_tile"), args.lm_reports) if (args.data / "magnetic_tile").is_dir() else {}
    result["run"] = finish_record(record)
    write_json_atomic(args.out / "classify.json", result)
    write_text_atomic(args.out / "classify.md", markdown(result))
    print(f"wrote {args.out / 'classify.json'} and classify.md")


if __name__ == "__main__":
    main()
