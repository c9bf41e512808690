"""The memory bank's options beyond the nearest neighbour itself: approximate (IVF) search —
close to exact, identical after save/load, exact for small banks, refused clearly when its saved
cells are damaged — and maps made relative to the normal maps at each position."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import defectlens.detect.maps as maps_module
from defectlens import ModelFileError
from defectlens.detect.maps import PositionNormaliser, image_score
from defectlens.detect.memory_bank import IVF_MIN_BANK, IVF_ROWS_PER_LIST, MemoryBankConfig, MemoryBankDetector
from defectlens.encode import CanvasSpec, EncodedBatch, EncoderConfig, Placement
from defectlens.encode.features import fuse_levels

CANVAS = CanvasSpec(64, 64)  # an 8 x 8 grid of stride-8 cells
DIM = 168  # Lite2's fused feature size: a loaded bank is checked against the encoder


def _batch(features: torch.Tensor) -> EncodedBatch:
    n = len(features)
    return EncodedBatch(features, [Placement(64, 64, 0, 0, 64, 64)] * n, CANVAS, [])


def _normal_features(n_images: int, seed: int) -> torch.Tensor:
    """Patch features drawn around 40 'texture' centres, like a part's normal surface."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(0, 3, size=(40, DIM))
    picks = rng.integers(0, 40, size=(n_images, 8, 8))
    feats = centres[picks] + rng.normal(0, 0.5, size=(n_images, 8, 8, DIM))
    return torch.from_numpy(feats.astype(np.float32)).permute(0, 3, 1, 2).contiguous()


def _detector(search: str, position_normalise: str = "none") -> MemoryBankDetector:
    encoder = EncoderConfig(canvas_height=64, canvas_width=64)
    config = MemoryBankConfig(encoder=encoder, coreset_ratio=1.0, search=search, blur_sigma=1.0, position_normalise=position_normalise)
    return MemoryBankDetector(config)  # its network is never run here: features are given encoded


@pytest.fixture(scope="module")
def fitted() -> tuple[MemoryBankDetector, MemoryBankDetector, torch.Tensor]:
    train = _normal_features(IVF_MIN_BANK // 64 + 8, seed=1)
    exact, ivf = _detector("exact"), _detector("ivf")
    for d in (exact, ivf):
        d.fit_encoded([_batch(train[i : i + 16]) for i in range(0, len(train), 16)])
    test = _normal_features(12, seed=2)
    test[6:, :, 2:5, 2:5] += 6.0  # six images with a patch of far-off features
    return exact, ivf, test


def test_ivf_bank_has_cells_and_scores_close_to_exact(fitted):
    exact, ivf, test = fitted
    assert exact.ivf_centroids is None
    assert ivf.ivf_centroids is not None and len(ivf.ivf_centroids) == len(ivf.bank) // IVF_ROWS_PER_LIST
    e = exact.score_encoded(_batch(test))
    a = ivf.score_encoded(_batch(test))
    e_scores, a_scores = np.array([r.score for r in e]), np.array([r.score for r in a])
    # An approximate neighbour is never nearer than the true one, and rarely farther here.
    assert np.all(a_scores >= e_scores - 1e-4)
    assert np.allclose(a_scores, e_scores, rtol=0.05)
    # The ranking that decides verdicts is the same: every planted image above every normal one.
    assert a_scores[6:].min() > a_scores[:6].max()
    assert "ivf" in ivf.describe()["search"]


def test_ivf_model_scores_identically_after_save_and_load(fitted, tmp_path):
    _, ivf, test = fitted
    ivf.save(tmp_path)
    loaded = MemoryBankDetector.load(tmp_path)
    assert loaded.ivf_centroids is not None and torch.equal(loaded.ivf_centroids, ivf.ivf_centroids)
    before = ivf.score_encoded(_batch(test))
    after = loaded.score_encoded(_batch(test))
    for b, a in zip(before, after, strict=True):
        assert a.score == b.score
        assert np.array_equal(a.anomaly_map, b.anomaly_map)


def test_small_bank_is_searched_exactly():
    small = _detector("ivf")
    small.fit_encoded([_batch(_normal_features(8, seed=3))])
    assert small.ivf_centroids is None and len(small.bank) < IVF_MIN_BANK


def test_damaged_cells_or_unknown_search_are_refused(fitted, tmp_path):
    _, ivf, _ = fitted
    ivf.save(tmp_path)
    bank_file = tmp_path / "memory_bank.safetensors"
    tensors = load_file(str(bank_file))
    save_file({"bank": tensors["bank"], "ivf_centroids": tensors["ivf_centroids"][:, :3].contiguous()}, str(bank_file))
    with pytest.raises(ModelFileError, match="IVF cell centres"):
        MemoryBankDetector.load(tmp_path)
    with pytest.raises(ValueError, match="search must be one of"):
        MemoryBankConfig(search="hnsw")


def test_position_normaliser_levels_what_every_normal_map_shares():
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(1.0, 3.0, 80, dtype=np.float32), (60, 1))  # every normal map runs hot on the right
    normal = [ramp + rng.normal(0, 0.1, ramp.shape).astype(np.float32) for _ in range(20)]
    # Few images: each position's statistics lean on the whole map's, so most of the ramp stays.
    shrunk = PositionNormaliser.from_maps(normal).apply(ramp)
    assert shrunk[:, -10:].mean() - shrunk[:, :10].mean() > 0.5
    positions = PositionNormaliser.from_maps(normal, prior_images=0)
    flat = positions.apply(ramp)
    assert flat[:, :10].mean() == pytest.approx(flat[:, -10:].mean(), abs=0.05)  # the shared ramp is gone
    spot = ramp.copy()
    spot[20:30, 5:15] += 1.0  # an excess on the cool side, where normal maps are low
    out = positions.apply(spot)
    assert out[20:30, 5:15].mean() > out[:, -10:].max()  # it now stands above the hot side
    assert positions.apply(spot, "mean")[20:30, 5:15].mean() == pytest.approx(positions.overall_mean + 1.0, abs=0.1)
    # Other image sizes share the statistics (positions are relative to the image).
    assert positions.apply(np.tile(np.linspace(1.0, 3.0, 40, dtype=np.float32), (30, 1))).shape == (30, 40)
    with pytest.raises(ValueError, match="at least 2"):
        PositionNormaliser.from_maps(normal[:1])


def test_position_statistics_resampled_once_per_shape_give_the_same_maps():
    rng = np.random.default_rng(3)
    normal = [rng.random((60, 80), dtype=np.float32) for _ in range(5)]
    maps = [rng.random(shape, dtype=np.float32) for shape in [(60, 80), (30, 40), (60, 80), (7, 9), (11, 5), (13, 17), (60, 80)]]
    kept = PositionNormaliser.from_maps(normal)
    fresh = [PositionNormaliser.from_maps(normal).apply(m) for m in maps]  # a new normaliser each time: no reuse
    for m, expected in zip(maps, fresh, strict=True):
        np.testing.assert_array_equal(kept.apply(m), expected)  # bit for bit
        np.testing.assert_array_equal(kept.apply(m, "mean"), PositionNormaliser.from_maps(normal).apply(m, "mean"))
    assert len(kept._at_shape) == maps_module.RESAMPLED_SHAPES_KEPT  # bounded: the oldest shapes go
    assert (60, 80) in kept._at_shape and (30, 40) not in kept._at_shape


def test_position_statistics_are_fitted_saved_and_checked(tmp_path):
    detector = _detector("exact", "z-score")
    train = _normal_features(24, seed=4)
    detector.fit_encoded([_batch(train[i : i + 8]) for i in range(0, 24, 8)])
    assert detector.positions is not None and detector.describe()["position_normalise"] == "z-score"
    assert detector.describe()["position_statistics_images"] == 24  # every calibration map, under position_images
    test = _normal_features(4, seed=5)
    test[2:, :, 3:5, 3:5] += 6.0
    before = detector.score_encoded(_batch(test))
    assert min(r.score for r in before[2:]) > max(r.score for r in before[:2])
    detector.save(tmp_path)
    loaded = MemoryBankDetector.load(tmp_path)
    after = loaded.score_encoded(_batch(test))
    assert [r.score for r in after] == [r.score for r in before]
    # Damaged statistics are refused with the file named, not used.
    bank_file = tmp_path / "memory_bank.safetensors"
    tensors = load_file(str(bank_file))
    tensors["position_spread"] = -tensors["position_spread"]
    save_file(tensors, str(bank_file))
    with pytest.raises(ModelFileError, match="per-position normal statistics"):
        MemoryBankDetector.load(tmp_path)
    with pytest.raises(ValueError, match="position_normalise must be one of"):
        MemoryBankConfig(position_normalise="median")


def test_out_of_fold_position_statistics_judge_each_calibration_map_by_the_others():
    train = _normal_features(40, seed=6)
    train[3, :, 1:3, 5:7] += 4.0  # one calibration image with its own hot spot
    fitted = {}
    for folds in (0, 5):
        encoder = EncoderConfig(canvas_height=64, canvas_width=64)
        # The 98th percentile of 40 scores sits between the top two: the hot-spot image decides it.
        config = MemoryBankConfig(encoder=encoder, coreset_ratio=1.0, search="exact", blur_sigma=1.0, position_folds=folds, quantile=0.98)
        detector = MemoryBankDetector(config)
        detector.fit_encoded([_batch(train[i : i + 8]) for i in range(0, 40, 8)])
        fitted[folds] = detector
    in_sample, out_of_fold = fitted[0], fitted[5]
    # Inspection uses the same statistics either way: only the thresholds change.
    assert in_sample.positions is not None and out_of_fold.positions is not None
    assert torch.equal(in_sample.positions.mean, out_of_fold.positions.mean)
    assert torch.equal(in_sample.positions.spread, out_of_fold.positions.spread)
    # In-sample, the hot spot raised the spread it is divided by, hiding part of it; judged by
    # the other folds it is not, so the threshold (the top calibration scores) rises.
    assert out_of_fold.thresholds.image > in_sample.thresholds.image
    assert out_of_fold.config.to_json()["position_folds"] == 5
    saved_before = {k: v for k, v in out_of_fold.config.to_json().items() if k != "position_folds"}
    assert MemoryBankConfig.from_json(saved_before).position_folds == 0  # older models: in-sample, as they were made
    with pytest.raises(ValueError, match="position_folds"):
        MemoryBankConfig(position_folds=1)


def _levelled_batches(n_images: int, seed: int, defect: bool = False) -> list[EncodedBatch]:
    """Batches that carry the encoder's levels (48 channels on the 8 x 8 grid, 120 on 4 x 4) and
    their 3 x 3 fusion as features, as the encoder hands them over."""
    rng = np.random.default_rng(seed)
    fine = torch.from_numpy(rng.normal(0, 1, (n_images, 48, 8, 8)).astype(np.float32))
    coarse = torch.from_numpy(rng.normal(0, 1, (n_images, 120, 4, 4)).astype(np.float32))
    if defect:
        fine[:, :, 3, 4] += 8.0  # one far-off fine cell: sharpest at 1 x 1
    batches = []
    for start in range(0, n_images, 8):
        levels = [fine[start : start + 8], coarse[start : start + 8]]
        features = fuse_levels(levels, 3, (8, 8))
        batches.append(EncodedBatch(features, [Placement(64, 64, 0, 0, 64, 64)] * len(levels[0]), CANVAS, levels))
    return batches


def test_extra_neighbourhood_banks_average_their_maps_and_round_trip(tmp_path):
    encoder = EncoderConfig(canvas_height=64, canvas_width=64)
    config = MemoryBankConfig(encoder=encoder, coreset_ratio=1.0, search="exact", blur_sigma=1.0, extra_neighbourhoods=(1,))
    detector = MemoryBankDetector(config)
    detector.fit_encoded(_levelled_batches(24, seed=1))
    assert [n.config.neighbourhood for n in detector.neighbours] == [1] and detector.thresholds is not None
    assert detector.describe()["extra_neighbourhoods"] == [1]
    test = _levelled_batches(4, seed=2)[0]
    averaged = detector.score_encoded(test)
    own = detector._score_own(test)
    other = detector.neighbours[0].score_encoded(test)
    for a, b, c in zip(averaged, own, other, strict=True):
        np.testing.assert_allclose(a.anomaly_map, (b.anomaly_map + c.anomaly_map) / 2, rtol=1e-5)
        # Only the average is scored (the banks' own maps are not), and it is scored as one map.
        assert a.score == pytest.approx(image_score(a.anomaly_map, config.score_top_fraction))
    # The thresholds are read from the averaged normal maps, not from either bank's.
    assert detector.thresholds.image not in (detector.neighbours[0].thresholds.image,)
    defective = detector.score_encoded(_levelled_batches(4, seed=3, defect=True)[0])
    assert min(r.score for r in defective) > max(r.score for r in averaged)
    detector.save(tmp_path)
    loaded = MemoryBankDetector.load(tmp_path)
    assert [r.score for r in loaded.score_encoded(test)] == [r.score for r in averaged]
    # A model missing a bank, or features without the levels a bank re-fuses, are refused clearly.
    (tmp_path / "neighbourhood-1" / "detector.json").unlink()
    with pytest.raises(ModelFileError, match="bank of neighbourhood 1 is missing"):
        MemoryBankDetector.load(tmp_path)
    with pytest.raises(ValueError, match="needs the encoder's levels"):
        detector.score_encoded(EncodedBatch(test.features, test.placements, CANVAS, []))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"extra_neighbourhoods": (2,)}, "odd sizes up to 9 other than"),
        ({"extra_neighbourhoods": (3,)}, "odd sizes up to 9 other than"),
        ({"extra_neighbourhoods": (101,)}, "odd sizes up to 9 other than"),
        ({"extra_neighbourhoods": (1, 1)}, "repeat a size"),
        ({"extra_neighbourhoods": (1,), "position_normalise": "none"}, "relative per position"),
    ],
)
def test_extra_neighbourhoods_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        MemoryBankConfig(**changes)
