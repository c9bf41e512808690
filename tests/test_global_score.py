"""The whole-image (global) score beside the memory bank: a part unusual as a whole."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from defectlens import Inspector, InspectorSettings
from defectlens.cli import app
from defectlens.detect.global_score import MIN_IMAGES, GlobalScore
from defectlens.detect.memory_bank import BANK_FILE, CONFIG_FILE, MemoryBankDetector
from defectlens.errors import ConfigError, ModelFileError
from tests.conftest import texture


def test_units_are_out_of_fold_and_an_outlier_stands_out():
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(60, 6))
    model, out_of_fold = GlobalScore.fit(normal, seed=0)
    # By construction: median 0 and the UNIT_QUANTILE at 1 of the normal images' own distances.
    assert np.median(out_of_fold) == pytest.approx(0.0, abs=1e-9)
    assert np.quantile(out_of_fold, 0.98) == pytest.approx(1.0)
    # Out of fold: normal images sit further from a Gaussian fitted without them than with them.
    assert out_of_fold.mean() > model.units(normal).mean()
    assert model.units(np.full((1, 6), 6.0))[0] > 10  # 6 standard deviations on every axis
    again = GlobalScore.from_tensors(model.tensors(), 6)
    assert again is not None and np.allclose(again.units(normal), model.units(normal))
    assert GlobalScore.from_tensors({}, 6) is None
    with pytest.raises(ValueError, match="for 7-d"):
        GlobalScore.from_tensors(model.tensors(), 7)
    with pytest.raises(ValueError, match=f"at least {MIN_IMAGES}"):
        GlobalScore.fit(normal[: MIN_IMAGES - 1])


def _two_textures(rng: np.random.Generator, share_a: float, h: int = 96, w: int = 128) -> np.ndarray:
    """Vertical streaks on the left ``share_a`` of the image, horizontal ones on the rest."""
    a = texture(rng, h, w)
    b = texture(rng, w, h).T  # (h, w): its streaks run across
    split = round(share_a * w)
    out = np.concatenate([a[:, :split], b[:, split:]], axis=1)
    return np.repeat(out[..., None], 3, axis=2)


def test_a_part_unusual_as_a_whole_is_flagged_only_with_the_global_score(tmp_path):
    # Normal parts show both textures, about half and half; the odd ones show only one. Every
    # patch of an odd part looks like some normal patch, so the bank alone sees nothing; their
    # average features are far from every normal part's.
    rng = np.random.default_rng(3)
    train = [_two_textures(rng, rng.uniform(0.4, 0.6)) for _ in range(24)]
    good = [_two_textures(rng, rng.uniform(0.4, 0.6)) for _ in range(6)]
    odd = [_two_textures(rng, share) for share in (1.0, 1.0, 0.0, 0.0)]

    def scores(weight: float) -> tuple[np.ndarray, np.ndarray, Inspector]:
        inspector = Inspector.fit(train, InspectorSettings(image_size=128, coreset_ratio=0.5, global_weight=weight))
        detector = inspector.detector
        assert isinstance(detector, MemoryBankDetector)
        return np.array([r.score for r in detector.score(good)]), np.array([r.score for r in detector.score(odd)]), inspector

    good_alone, odd_alone, _ = scores(0.0)
    good_global, odd_global, inspector = scores(1.0)
    assert odd_alone.min() < good_alone.max()  # the bank alone cannot tell them apart
    assert odd_global.min() > good_global.max()
    assert (odd_global > inspector.thresholds.image).all()
    # The maps are the bank's either way: only the image score gains the global term.
    detector = inspector.detector
    assert isinstance(detector, MemoryBankDetector) and detector.global_score is not None

    # Saved and loaded: the same scores; version 3 only for a model with a global score.
    inspector.save(tmp_path / "m")
    loaded = MemoryBankDetector.load(tmp_path / "m")
    assert np.allclose([r.score for r in loaded.score(odd)], odd_global, rtol=1e-6)
    meta = json.loads((tmp_path / "m" / CONFIG_FILE).read_text())
    assert meta["format_version"] == 3 and meta["config"]["global_weight"] == 1.0
    # A bank file without the global score, under a descriptor that says there is one: refused.
    tensors = {k: v for k, v in load_file(str(tmp_path / "m" / BANK_FILE)).items() if not k.startswith("global_")}
    save_file({k: torch.as_tensor(v) for k, v in tensors.items()}, str(tmp_path / "m" / BANK_FILE))
    with pytest.raises(ModelFileError, match=r"global_weight 1\.0 does not match"):
        MemoryBankDetector.load(tmp_path / "m")


def test_models_without_a_global_score_keep_format_version_2(fitted_model):
    assert json.loads((fitted_model / CONFIG_FILE).read_text())["format_version"] == 2


def test_global_weight_is_checked_before_fitting(synthetic_category, tmp_path):
    with pytest.raises(ConfigError, match="needs the memory-bank detector"):
        InspectorSettings(detector="discriminator", global_weight=0.5)
    with pytest.raises(ConfigError, match="outside"):
        InspectorSettings(global_weight=-1)
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match=f"at least {MIN_IMAGES} normal images"):
        Inspector.fit([_two_textures(rng, 0.5) for _ in range(MIN_IMAGES - 1)], InspectorSettings(image_size=128, global_weight=0.5))
    command = ["fit", str(synthetic_category), "-o", str(tmp_path / "m"), "--global-weight", "0.5", "--detector", "discriminator"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2 and "global weight needs the memory-bank detector" in " ".join(result.output.split())
    assert not (tmp_path / "m").exists()
