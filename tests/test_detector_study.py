"""The detector study's feature cache: encoded once, reused, and never mixed across encoder settings."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
detector_study = pytest.importorskip("detector_study")


def test_cache_is_reused_and_rebuilt_when_settings_differ(synthetic_category, tmp_path, capsys):
    from defectlens.encode import PatchEncoder

    cache = detector_study.open_cache(synthetic_category, tmp_path, "efficientnet-lite0", (2, 4), 128)
    encoder = PatchEncoder(cache.encoder)
    features, placements = cache.split("test", encoder)
    assert features.shape[0] == len(placements) == 8
    # A second opening reads the same tensors back instead of encoding again.
    again = detector_study.open_cache(synthetic_category, tmp_path, "efficientnet-lite0", (2, 4), 128)
    assert (again.split("test", encoder)[0] == features).all()
    # Other settings land in another folder: caches are never mixed.
    other = detector_study.open_cache(synthetic_category, tmp_path, "efficientnet-lite0", (2, 4), 96)
    assert other.folder != cache.folder
    # A folder whose identity was changed under it is emptied and rebuilt, with a message.
    identity = cache.folder / "identity.json"
    identity.write_text(json.dumps({"cache_version": -1}))
    detector_study.open_cache(synthetic_category, tmp_path, "efficientnet-lite0", (2, 4), 128)
    assert "rebuilding" in capsys.readouterr().err
    assert not (cache.folder / "test.safetensors").exists()


def test_one_setting_fits_and_scores_from_the_cache(synthetic_category, tmp_path):
    from defectlens.encode import PatchEncoder

    cache = detector_study.open_cache(synthetic_category, tmp_path, "efficientnet-lite0", (2, 4), 128)
    setting = detector_study.Setting("tiny", "test", image_size=128, bank={"coreset_ratio": 0.5})
    rows = detector_study.run_setting(setting, cache, PatchEncoder(cache.encoder))
    assert rows[0]["image_auroc"] == 1.0  # the planted squares are unmissable
    assert 0.0 <= rows[0]["fpr_at_threshold"] <= 1.0 and rows[0]["pixel_auroc"] > 0.9


def test_a_fused_setting_puts_its_members_in_the_products_fixed_units(synthetic_category, tmp_path):
    from defectlens.encode import PatchEncoder

    cache = detector_study.open_cache(synthetic_category, tmp_path, "efficientnet-lite0", (2, 4), 128)
    setting = detector_study.Setting("tiny-fused", "test", image_size=128, detector="fused", bank={"coreset_ratio": 0.5}, fusion_weight=0.5)
    row = detector_study.run_setting(setting, cache, PatchEncoder(cache.encoder))[0]
    # At the given weight the fused row and its "fused at 0.5" comparison are one computation.
    assert row["image_auroc"] == pytest.approx(row["image_auroc_fused_0.5"]) and row["fusion_weight"] == 0.5


def test_the_benchmarks_refuse_missing_data_before_writing_and_record_their_run(tmp_path, synthetic_category):
    # Benchmarks probe 2026-12-06: a mistyped category had run nothing and written empty tables over the committed results
    # (exit 0) in three scripts and been a traceback in six; most results recorded neither date nor commit.
    import common

    (tmp_path / "data" / "plate").mkdir(parents=True)
    with pytest.raises(SystemExit, match=r"no category platee there \(there: plate\)"):
        common.require_categories(tmp_path / "data", ["platee"])
    with pytest.raises(SystemExit, match="data folder not found"):
        common.require_categories(tmp_path / "nowhere", None)
    with pytest.raises(SystemExit, match="no category this benchmark can run"):
        common.require_categories(tmp_path / "data", None, lambda p: (p / "train").is_dir())
    assert common.require_categories(tmp_path / "data", None) == ["plate"]
    assert common.require_categories(tmp_path / "data", ["plate/", "plate"]) == ["plate"]  # as tab completion gives it, once
    # Normal images in any case, as the library reads a category; an empty train/good is none.
    (tmp_path / "data" / "plate" / "Train" / "Good" / "sub").mkdir(parents=True)
    assert not common.has_normal_images(tmp_path / "data" / "plate")
    # Nor one holding only what a file manager leaves (regression probe 2026-12-06: listed as runnable, its run died).
    for name in (".DS_Store", "Thumbs.db", "notes.txt"):
        (tmp_path / "data" / "plate" / "Train" / "Good" / name).write_bytes(b"x")
    assert not common.has_normal_images(tmp_path / "data" / "plate")
    (tmp_path / "data" / "plate" / "Train" / "Good" / "0.png").write_bytes(b"x")
    assert common.has_normal_images(tmp_path / "data" / "plate")
    # Named, there, but not of the kind the benchmark runs: one line (a spawned run had died and its parent waited for ever).
    with pytest.raises(SystemExit, match=r"plate lacks what this benchmark needs \(it runs: none\)"):
        common.require_categories(tmp_path / "data", ["plate"], lambda p: (p / "train").is_dir())
    with pytest.raises(SystemExit, match=r"--model names no category .* platee"):
        common.saved_models(["platee=m"], tmp_path / "data", ["plate"])
    with pytest.raises(SystemExit, match=r"--model plate=m: no model there"):  # said before any category is fitted (probe)
        common.saved_models(["plate=m"], tmp_path / "data", ["plate"])
    record = common.finish_record(common.run_record())
    assert {"started_utc", "finished_utc", "commit", "load_average_at_start", "load_average_at_end", "torch", "defectlens"} <= set(record)


def test_the_feature_cache_knows_an_image_changed_in_place(tmp_path):
    # Benchmarks probe 2026-12-06: an image painted over and padded to its old size was scored from its stale features.
    import os

    image = tmp_path / "a.png"
    image.write_bytes(b"x" * 100)
    before = detector_study._fingerprint([image])
    image.write_bytes(b"y" * 100)
    os.utime(image, ns=(1, 1))
    assert detector_study._fingerprint([image]) != before


def test_the_service_load_benchmark_times_the_inspect_command(fitted_model, synthetic_category, tmp_path):
    # Benchmarks probe 2026-12-06: it called the command's function without typer's context and failed with a TypeError.
    import service_load

    images = sorted((synthetic_category / "test" / "good").glob("*.png"))[:2]
    baseline = service_load._library_baseline(fitted_model, images, tmp_path)
    assert baseline["inspect_command_images_per_s"] > 0 and (tmp_path / "cli_out" / "summary.csv").is_file()
