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
