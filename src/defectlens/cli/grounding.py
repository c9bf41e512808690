"""`defectlens train-grounding DATASET_DIR... -o MODEL_DIR`: train the vision-language grounding model.

Registered by the CLI root (``app.command("train-grounding")(grounding.train_grounding)``).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from defectlens.cli.progress import console, fail, progress_bar
from defectlens.errors import DefectlensError


def train_grounding(
    dataset_dirs: list[Path] = typer.Argument(..., help="MVTec-layout category folders with masks and taxonomy.json."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write the grounding model to."),
    epochs: int = typer.Option(12, min=1, help="Passes over the cached features."),
    n_normal: int = typer.Option(40, min=0, help="Normal images per category used as all-normal negatives."),
    max_defective: int | None = typer.Option(None, min=1, help="Cap on defective images per category."),
    side: int = typer.Option(256, min=64, max=1024, help="Images are encoded on a canvas of about SIDE² pixels (64..1024)."),
    cache_dir: Path | None = typer.Option(
        None, help="Where to cache encoded features (default: OUTPUT/feature_cache; re-runs skip encoding)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Keep features in memory only."),
    seed: int = typer.Option(0, help="Seed for sampling and training."),
    paraphrases: int = typer.Option(
        0,
        min=0,
        max=20,
        help="Paraphrases per defect description, written by the local language model (checked by rules; "
        "cached in CACHE_DIR/paraphrases.json) and drawn as text augmentation. 0: the taxonomy's sentences only.",
    ),
) -> None:
    """Train connector + segmentation tokens on categories with masks; encoders stay frozen.

    Exit status: 0 trained, 2 bad usage, 130 interrupted (no model written; the features cached so far are kept for the next run)."""
    from defectlens.descriptor import ModelDescriptor, Provenance, combine_digests, require_outside_models, utc_now, write_descriptor
    from defectlens.detect.grounding import GroundingConfig, GroundingDetector, TrainingConfig
    from defectlens.detect.grounding.data import FeatureCache
    from defectlens.detect.grounding.train import Paraphrases, prepare_training, train_prepared
    from defectlens.io.dataset import picture_digest
    from defectlens.taxonomy import Taxonomy

    try:
        require_outside_models(output, "grounding model")  # before the training, as fit and save refuse it (regression probe)
        config = GroundingConfig(side=side)
        training = TrainingConfig(epochs=epochs, n_normal=n_normal, max_defective=max_defective, seed=seed, paraphrases=paraphrases)
        cache_folder = None if no_cache else (cache_dir or output / "feature_cache")
        source: Paraphrases | None = None
        if paraphrases:
            from defectlens.explain.paraphrase import ParaphraseStore

            store = ParaphraseStore(cache_folder / "paraphrases.json" if cache_folder else None)

            def from_store(taxonomy: Taxonomy, n: int) -> dict[str, list[str]]:
                with console.status(f"paraphrasing the {taxonomy.object_name} descriptions (local language model)"):
                    return {tp.name: tp.accepted for tp in store.for_taxonomy(taxonomy, n)}

            source = from_store

        # Every dataset check first: a missing description fails now, not after encoding.
        model, categories = prepare_training(dataset_dirs, config, training, paraphrases=source)
        train_prepared(model, categories, training, FeatureCache(model.encoder, config.side, config.grey, cache_folder), progress_bar)
        summary = model.fit_summary
        assert summary is not None  # train_prepared sets it
        model.save(output, extra={**summary.to_json(), "training": training.to_json()})
        # The descriptor last: it names the folder a zero-shot grounding model for every loader.
        paths = [smp.path for c in categories for smp in c.samples]
        write_descriptor(
            output,
            ModelDescriptor(
                detector=GroundingDetector.name,
                # Of the pictures, as a fit's (code review 2026-12-06: names and sizes here, one field meaning two things).
                provenance=Provenance.now(summary.n_images, combine_digests([d for p in paths if (d := picture_digest(Path(p))) is not None])),
                saved_at=utc_now(),
                detector_info={"encoder": config.encoder.to_json(), "text_model": config.text_model, "trained_on": [c.name for c in categories]},
            ),
        )
    except DefectlensError as exc:
        raise fail(exc) from None
    final_loss = f", final loss {summary.losses[-1]:.4f}" if summary.losses else ""
    console.print(
        f"trained on {summary.n_images} images of {escape(', '.join(summary.categories))} "
        f"(encoding {summary.cache_seconds:.0f} s, training {summary.train_seconds:.0f} s{final_loss}) → {escape(str(output))}"
    )
