"""Defect types from words on a category never trained on: do LM paraphrases of the training
sentences help?

Leave one category out, as ``zero_shot.py`` does, for every held-out category with at least
two defect types. The grounding head is trained on the other categories twice per seed:

* ``original`` — each training type known by its one taxonomy sentence (today's training);
* ``paraphrased`` — each step draws one phrasing per type among the sentence and up to
  ``--paraphrases`` paraphrases written by the local language model and accepted by
  :func:`defectlens.explain.paraphrase.check_paraphrase`.

Each trained head types the held-out category's defective test images (ground-truth mask as
the region, the whole split read as one batch, as ``zero_shot.py``) two ways: from the held-out
taxonomy's own sentences (what ``inspect`` does), and from the mean of those sentences and their
paraphrases (``+ensemble``). Accuracy, macro recall (the mean of per-type accuracies, so a model
that calls everything one type scores chance) and chance are reported per held-out category.

    python benchmarks/types_from_words.py [--data ../shared/datasets] [--seeds 0 1] [--paraphrases 6] [--out DIR]
        [--reuse-training] [--model CATEGORY=MODEL_DIR ...]

Words and region shape are read twice: on the ground-truth masks as regions, and, for each category given a fitted model
with ``--model``, end to end as ``inspect`` types without examples: every defective test image inspected, and the type of
the strongest region of each flagged one against the truth (a located region is larger and looser than its mask).

Writes ``types_from_words.{json,md}`` in ``--out`` (default ``benchmarks/results``) and the paraphrases, accepted and
rejected with the rules' reasons, to ``benchmarks/results/paraphrases.json`` (``--paraphrase-cache``: a cache the
language model's slow answers are read back from, so it stays where earlier runs left it whatever ``--out`` is).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (  # noqa: E402 - the benchmarks' shared module
    add_data_argument,
    finish_record,
    has_normal_images,
    require_categories,
    require_output_folder,
    run_record,
    saved_results,
)
from zero_shot import has_masks_and_taxonomy  # noqa: E402 - the categories zero_shot.py holds out and trains on


def type_predictions(model, vocab, category_root: Path, cache) -> tuple[list[str], list[str]]:
    """True and predicted type of every defective test image with a mask (mask as the region)."""
    from defectlens.classify.from_text import classify_regions_from_text
    from defectlens.detect.grounding.features import add_batch_context
    from defectlens.io import load_category, load_mask

    test = list(load_category(category_root).require_test())
    grids = cache.get_many([t.path for t in test])
    results = model.predict_inputs(add_batch_context(grids), vocab)
    truth, predicted = [], []
    for t, g, r in zip(test, grids, results, strict=True):
        if not t.is_defective or t.mask_path is None:
            continue
        mask = load_mask(t.mask_path, (g.placement.original_width, g.placement.original_height))
        if not mask.any():
            continue
        region = classify_regions_from_text(r.type_maps, r.type_names, [mask], logit_scale=r.type_logit_scale, weights=r.anomaly_map)[0]
        truth.append(t.defect_type)
        predicted.append(region.defect_type)
    return truth, predicted


def word_predictions(category_root: Path, taxonomy) -> tuple[list[str], list[str]]:
    """True type and the type from words and region shape (no model at all) of every
    defective test image with a mask (mask as the region)."""
    from defectlens.classify.from_words import classify_regions_from_words
    from defectlens.io import load_category, load_image, load_mask

    truth, predicted = [], []
    for t in load_category(category_root).require_test():
        if not t.is_defective or t.mask_path is None:
            continue
        image = load_image(t.path)
        mask = load_mask(t.mask_path, (image.shape[1], image.shape[0]))
        if mask.any():
            truth.append(t.defect_type)
            predicted.append(classify_regions_from_words(image, [mask], taxonomy)[0].defect_type)
    return truth, predicted


def end_to_end_word_predictions(model_dir: Path, category_root: Path, taxonomy) -> tuple[list[str], list[str], int]:
    """True type and the type ``inspect`` names from words (no examples) for the strongest region of every defective test
    image the model at ``model_dir`` flags, and how many defective test images there were."""
    from defectlens import Inspector
    from defectlens.classify.regions import type_regions
    from defectlens.io import load_category, load_image

    inspector = Inspector.load(model_dir)
    truth, predicted, n = [], [], 0
    for t in load_category(category_root).require_test():
        if not t.is_defective:
            continue
        n += 1
        image = load_image(t.path)
        inspection = inspector.inspect(image, str(t.path))
        types = type_regions(image, inspection, taxonomy=taxonomy).region_types if inspection.is_defective else []
        if types:
            truth.append(t.defect_type)
            predicted.append(types[0].defect_type)  # regions[0] is the strongest
    return truth, predicted, n


def require_models(models: dict[str, Path], data: Path, names: list[str]) -> None:
    """Exit with one line unless each ``--model`` is a fitted model of a category typed here (two types or more) that reads
    images one at a time: another part's model had been reported as this one's result, and a batch-scoring model failed after
    the slow rows (regression probe 2026-12-07)."""
    from defectlens import Inspector
    from defectlens.taxonomy import load_taxonomy

    for name, folder in models.items():
        if name not in names:
            raise SystemExit(f"--model names {name}, not a category with masks and a taxonomy under {data}")
        if len(load_taxonomy(data / name / "taxonomy.json").names) < 2:
            raise SystemExit(f"--model {name}: it has one defect type, so it is not typed here — drop it")
        if not (folder / "inspector.json").is_file():
            raise SystemExit(f"--model: no fitted model (inspector.json) in {folder}: fit one with `defectlens fit`")
        inspector = Inspector.load(folder)
        if inspector.settings.detector == "batch-scoring":
            raise SystemExit(f"--model {name}: {folder} is a batch-scoring model, which judges no image alone — fit one on its normal images")
        trained_on = inspector.trained_on
        if trained_on is None or not Path(os.path.realpath(trained_on)).is_relative_to(os.path.realpath(data / name)):
            # A part with no normal images has no such model to give (steel strip): said so, not a fit that cannot run.
            fix = f"fit one with `defectlens fit {data / name}`" if has_normal_images(data / name) else "it has no normal images to fit one on"
            raise SystemExit(f"--model {name}: {folder} was fitted on {trained_on or 'images it did not record'}, not on {data / name} — {fix}")


def _model_argument(text: str) -> tuple[str, Path]:
    """``CATEGORY=MODEL_DIR`` of ``--model``."""
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"--model takes CATEGORY=MODEL_DIR, got {text!r}")
    return name, Path(folder)


def summarise(truth: list[str], predicted: list[str], names: list[str]) -> dict:
    """Accuracy, macro recall and per-type accuracy."""
    per_type = {n: float(np.mean([p == n for t, p in zip(truth, predicted, strict=True) if t == n])) for n in names if n in truth}
    return {
        "accuracy": round(float(np.mean([t == p for t, p in zip(truth, predicted, strict=True)])), 4),
        "macro_recall": round(float(np.mean(list(per_type.values()))), 4),
        "per_type": {k: round(v, 4) for k, v in per_type.items()},
        "predicted_counts": {n: predicted.count(n) for n in names},
        "n": len(truth),
    }


def main() -> None:
    """Train per held-out category, variant and seed; write the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "defectlens" / "zero_shot")
    parser.add_argument("--paraphrase-cache", type=Path, default=HERE / "results" / "paraphrases.json")
    parser.add_argument("--paraphrases", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reuse-training", action="store_true", help="keep the trained rows of the last results JSON; redo the words rows only")
    parser.add_argument("--model", type=_model_argument, action="append", default=[],
                        help="CATEGORY=MODEL_DIR: also type that category's defective test images end to end with this fitted model")
    args = parser.parse_args()
    # Checked before the language model and the training: a missing data root had been found only after them.
    names = require_categories(args.data, None, has_masks_and_taxonomy)
    models = dict(args.model)
    out = require_output_folder(args.out)
    require_models(models, args.data, names)
    previous = out / "types_from_words.json"
    # Checked first: with no earlier trained rows, the table had shown nan and claimed a reused training (regression probe
    # 2026-12-07).
    # A file an interrupted run cut short is one line too, as other studies' (regression probe 2026-12-07: a traceback).
    earlier = saved_results(previous, ("results",)) if args.reuse_training and previous.is_file() else {"results": []}
    trained = [r for r in earlier["results"] if isinstance(r, dict) and r.get("variant") != "words"] if isinstance(earlier["results"], list) else []
    if args.reuse_training and not trained:
        raise SystemExit(f"--reuse-training: no trained rows in {previous} to keep — run once without it")
    record = run_record()
    torch.set_num_threads(max(1, args.threads))

    from defectlens.detect.grounding import GroundingConfig, TrainingConfig, train_grounding_model
    from defectlens.detect.grounding.data import FeatureCache
    from defectlens.detect.grounding.model import Vocabulary, embed_taxonomy
    from defectlens.encode import PatchEncoder
    from defectlens.encode.text import TextEncoder
    from defectlens.explain.paraphrase import ParaphraseStore
    from defectlens.taxonomy import load_taxonomy

    roots = [args.data / name for name in names]
    taxonomies = {r.name: load_taxonomy(r / "taxonomy.json", require_descriptions=True) for r in roots}
    held_out = [r for r in roots if len(taxonomies[r.name].names) >= 2]
    if not held_out:
        raise SystemExit("no category with masks has two or more defect types: nothing to type")
    store = ParaphraseStore(args.paraphrase_cache)
    t0 = time.perf_counter()
    # All paraphrases first (the language model is the slow part; cached after the first run).
    phrasings = {name: {tp.name: tp.accepted for tp in store.for_taxonomy(tax, args.paraphrases)} for name, tax in taxonomies.items()}
    paraphrase_seconds = round(time.perf_counter() - t0, 1)

    config = GroundingConfig()
    encoder = PatchEncoder(config.encoder)
    text = TextEncoder()
    cache = FeatureCache(encoder, config.side, config.grey, args.cache)
    rows = []
    start = time.perf_counter()
    load_start = os.getloadavg()
    for held in held_out:
        t1 = time.perf_counter()
        truth, predicted = word_predictions(held, taxonomies[held.name])
        row = {
            "held_out": held.name, "variant": "words", "reading": "region shape", "seed": None,
            "chance": round(1 / len(taxonomies[held.name].names), 4), "seconds": round(time.perf_counter() - t1, 1),
            **summarise(truth, predicted, list(taxonomies[held.name].names)),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        if held.name in models:
            t1 = time.perf_counter()
            truth, predicted, n_defective = end_to_end_word_predictions(models[held.name], held, taxonomies[held.name])
            row = {
                "held_out": held.name, "variant": "words", "reading": "end to end", "seed": None, "model": str(models[held.name]),
                "chance": round(1 / len(taxonomies[held.name].names), 4), "seconds": round(time.perf_counter() - t1, 1),
                "defective_images": n_defective, "flagged_with_regions": len(truth),
                **summarise(truth, predicted, list(taxonomies[held.name].names)),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    training_run = None
    if args.reuse_training:
        rows += trained
        settings = earlier.get("settings") if isinstance(earlier.get("settings"), dict) else {}
        training_run = settings.get("training_run") or settings
    for held in [] if args.reuse_training else held_out:
        tax = taxonomies[held.name]
        train_roots = [r for r in roots if r != held]
        for seed in args.seeds:
            for variant, n in (("original", 0), ("paraphrased", args.paraphrases)):
                training = TrainingConfig(seed=seed, paraphrases=n)
                t1 = time.perf_counter()
                model = train_grounding_model(
                    train_roots, config, training, encoder=encoder, text=text, cache=cache,
                    paraphrases=lambda taxonomy, n: {tp.name: tp.accepted for tp in store.for_taxonomy(taxonomy, n)},
                )
                train_s = round(time.perf_counter() - t1, 1)
                own = model.vocabulary(tax)
                with_para = embed_taxonomy(model.text, tax, config.templates, phrasings[held.name])
                ensemble = Vocabulary(
                    tax, own.object_embedding, torch.stack([F.normalize(s.mean(0), dim=0) for s in with_para.sentence_embeddings])
                ) if with_para.sentence_embeddings else own
                for reading, vocab in (("own sentences", own), ("+ensemble", ensemble)):
                    truth, predicted = type_predictions(model, vocab, held, cache)
                    row = {
                        "held_out": held.name,
                        "variant": variant,
                        "reading": reading,
                        "seed": seed,
                        "chance": round(1 / len(tax.names), 4),
                        "train_seconds": train_s,
                        **summarise(truth, predicted, list(tax.names)),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "paraphrases_per_type": args.paraphrases,
        "paraphrase_seconds": paraphrase_seconds,
        "accepted_per_type": {c: {t: len(v) for t, v in p.items()} for c, p in phrasings.items()},
        "training_config": replace(TrainingConfig(), paraphrases=args.paraphrases).to_json(),
        "total_seconds": round(time.perf_counter() - start, 1),
        "load_start": [round(x, 2) for x in load_start],
        "load_end": [round(x, 2) for x in os.getloadavg()],
        "run": finish_record(record),
    }
    if training_run is not None:
        meta["training_run"] = training_run  # the trained rows are that run's, not this one's
    (out / "types_from_words.json").write_text(json.dumps({"settings": meta, "results": rows}, indent=2) + "\n")
    lines = [
        "# Defect types from words on a held-out category",
        "",
        f"{meta['machine']}; {meta['total_seconds'] / 60:.1f} min, load {meta['load_start'][0]}–{meta['load_end'][0]}. "
        f"Paraphrases: up to {args.paraphrases} per type, accepted {meta['accepted_per_type']}.",
        *(
            [f"Trained rows reused from an earlier run: {training_run['total_seconds'] / 60:.1f} min, load "
             f"{training_run['load_start'][0]}–{training_run['load_end'][0]}."]
            if training_run else []
        ),
        "Mean over seeds " + ", ".join(map(str, args.seeds)) + " (accuracy / macro recall; chance in brackets).",
        "",
        "| held out (chance) | training sentences | own sentences | + their paraphrases |",
        "|---|---|---|---|",
    ]
    for held in held_out:
        for words in (r for r in rows if r["held_out"] == held.name and r["variant"] == "words"):
            regions = ("ground-truth masks" if words["reading"] == "region shape" else
                       f"end to end: strongest region of the {words['flagged_with_regions']} of {words['defective_images']} "
                       "defective images the model flags")
            lines.append(
                f"| {held.name} ({words['chance']:.2f}) | none: words and region shape (`classify_regions_from_words`), {regions} "
                f"| {words['accuracy']:.3f} / {words['macro_recall']:.3f} | – |"
            )
        for variant in ("original", "paraphrased"):
            cells = []
            for reading in ("own sentences", "+ensemble"):
                sel = [r for r in rows if r["held_out"] == held.name and r["variant"] == variant and r["reading"] == reading]
                cells.append(f"{np.mean([r['accuracy'] for r in sel]):.3f} / {np.mean([r['macro_recall'] for r in sel]):.3f}")
            lines.append(f"| {held.name} ({1 / len(taxonomies[held.name].names):.2f}) | {variant} | {cells[0]} | {cells[1]} |")
    lines.append("")
    for r in rows:
        if r["variant"] == "words":
            per_type = ", ".join(f"{k} {v:.2f}" for k, v in r["per_type"].items())
            lines.append(f"Words and region shape on {r['held_out']} ({r['reading']}), per type: {per_type}; predicted {r['predicted_counts']}.")
    (out / "types_from_words.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
