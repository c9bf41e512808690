"""Leave-one-out calibration, the feature-discriminator detector and the shared map helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from defectlens import ModelFileError
from defectlens.detect import MemoryBankConfig, MemoryBankDetector
from defectlens.detect.calibration import sample_map_values
from defectlens.detect.discriminator import WEIGHTS_FILE, DiscriminatorConfig, DiscriminatorDetector
from defectlens.detect.maps import smooth_maps, upsample_smooth_operator
from defectlens.detect.memory_bank import squared_distances
from defectlens.encode import EncoderConfig, PatchEncoder
from defectlens.encode.features import grey_statistics
from defectlens.io import load_category, load_image

ENCODER = EncoderConfig(canvas_height=96, canvas_width=128, standardize=True)


@pytest.fixture(scope="module")
def encoder() -> PatchEncoder:
    return PatchEncoder(ENCODER)


@pytest.fixture(scope="module")
def category(synthetic_category):
    cat = load_category(synthetic_category)
    train = [load_image(p) for p in cat.train_good]
    good = [load_image(t.path) for t in cat.test if not t.is_defective]
    bad = [load_image(t.path) for t in cat.test if t.is_defective]
    return train, good, bad


def test_smoothing_matches_scipy_gaussian_filter():
    rng = np.random.default_rng(0)
    maps = rng.random((2, 1, 40, 50)).astype(np.float32)
    ours = smooth_maps(torch.from_numpy(maps), 2.0).numpy()
    for m, o in zip(maps[:, 0], ours[:, 0], strict=True):
        reference = gaussian_filter(m, 2.0, mode="nearest", truncate=3.0)
        assert np.abs(o - reference).max() < 1e-4


@pytest.mark.parametrize(("cells", "pixels", "sigma"), [((36, 28), (288, 224), 4.0), ((7, 11), (50, 90), 2.5), ((5, 5), (40, 40), 0.0)])
def test_map_operators_equal_upsampling_then_smoothing(cells, pixels, sigma):
    # Maps are made as rows @ grid @ cols.T; that must be the upsampled, blurred grid it replaced,
    # edges included (replicate padding), whatever the shapes and sigma.
    grid = torch.rand(3, *cells, generator=torch.Generator().manual_seed(1)) * 40
    slow = smooth_maps(F.interpolate(grid[:, None], size=pixels, mode="bilinear", align_corners=False), sigma)[:, 0]
    rows = upsample_smooth_operator(cells[0], pixels[0], sigma)
    cols = upsample_smooth_operator(cells[1], pixels[1], sigma)
    assert rows.shape == (pixels[0], cells[0]) and cols.shape == (pixels[1], cells[1])
    torch.testing.assert_close(rows @ grid @ cols.T, slow, rtol=1e-5, atol=1e-4)


def test_grey_statistics_are_exact():
    pixels = np.random.default_rng(3).integers(0, 256, (301, 207, 3), dtype=np.uint8)
    mean, std = grey_statistics(pixels)
    reference = pixels.astype(np.float64)
    assert mean == pytest.approx(reference.mean(), rel=1e-15)
    assert std == pytest.approx(reference.std(ddof=1), rel=1e-12)
    assert grey_statistics(np.full((4, 4, 3), 9, np.uint8)) == (9.0, 0.0)


def test_standardised_canvases_do_not_depend_on_the_thread_count():
    # A Ray worker of an exported model runs on one thread, the local engine on every core; both
    # must write the same scores. A float32 mean over a large image is split across threads, and
    # the exposure statistics taken that way differed in the last digit on every image here.
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, (330 + 17 * i, 410 - 13 * i, 3), dtype=np.uint8) for i in range(8)]
    encoder = PatchEncoder(EncoderConfig(canvas_height=288, canvas_width=352, standardize=True))
    threads = torch.get_num_threads()
    try:
        prepared = []
        for n in (1, 2):
            torch.set_num_threads(n)
            prepared.append(encoder.prepare(images, encoder.config.canvas)[0])
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(prepared[0], prepared[1])


def test_leave_one_out_keeps_every_image_in_the_bank_and_calibrates_on_them(encoder, category):
    train, good, bad = category
    # Raw distances (no per-position statistics): what is checked is the distance itself.
    loo = MemoryBankDetector(MemoryBankConfig(encoder=ENCODER, coreset_ratio=1.0, position_normalise="none"), encoder)
    summary = loo.fit(train)
    assert summary.n_holdout == 0 and summary.n_images == len(train)
    assert loo.normal_stats is not None and loo.normal_stats.n_images == len(train)
    # With every patch in the bank, a training image scored plainly finds itself (distance 0):
    # leave-one-out scoring must not, or the thresholds would sit at zero.
    plain = loo.score(train[:1])[0].score
    assert plain == pytest.approx(0.0, abs=1e-3)
    assert loo.thresholds is not None and loo.thresholds.image > 10 * max(plain, 1e-3)
    scores_good = [r.score for r in loo.score(good)]
    scores_bad = [r.score for r in loo.score(bad)]
    assert min(scores_bad) > max(scores_good)
    # Held-out normals sit below the threshold that leave-one-out set; the planted defects above.
    assert max(scores_good) < loo.thresholds.image * 1.5 and min(scores_bad) > loo.thresholds.image


def test_leave_one_out_scores_every_image_unless_bounded(encoder, category):
    # Every normal image by default: a 98th percentile of 200 of magnetic tile's 600 scores missed
    # the 2 % target by a point. A bound scores a seeded few, each exactly as the full run does
    # (a batch re-scored whole is scored in place, a partial one as a copy: both paths are here).
    train, _, _ = category
    batches = [encoder.encode(train[i : i + 4]) for i in range(0, len(train), 4)]

    def left_out_scores(cap):
        detector = MemoryBankDetector(MemoryBankConfig(encoder=ENCODER, calibration_images=cap, position_normalise="none"), encoder)
        detector.fit_encoded(batches)
        assert detector.normal_stats is not None
        return detector.normal_stats.n_images, [r.score for r in detector.leave_one_out_results(batches)]

    n_every, every = left_out_scores(None)
    assert n_every == len(every) == len(train)
    n_few, few = left_out_scores(5)
    assert n_few == len(few) == 5
    assert all(any(score == s for s in every) for score in few)
    with pytest.raises(ValueError, match="calibration_images"):
        MemoryBankConfig(encoder=ENCODER, calibration_images=0)


def test_per_position_statistics_come_from_their_own_seeded_few_whatever_calibration_scores(encoder, category):
    # Thresholds gain every image; the maps keep statistics from position_images of them — the
    # same images a capped calibration scored, so the maps are those of the capped fit (to float
    # rounding: a batch scored whole and the same images copied out of it round apart by 1e-5).
    train, _, _ = category
    batches = [encoder.encode(train[i : i + 4]) for i in range(0, len(train), 4)]

    def fitted(**options):
        detector = MemoryBankDetector(MemoryBankConfig(encoder=ENCODER, **options), encoder)
        detector.fit_encoded(batches)
        assert detector.positions is not None and detector.normal_stats is not None
        return detector

    capped, every = fitted(calibration_images=6, position_images=6), fitted(position_images=6)
    assert capped.normal_stats.n_images == 6 and every.normal_stats.n_images == len(train) > 6
    for a, b in ((capped.positions.mean, every.positions.mean), (capped.positions.spread, every.positions.spread)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert (fitted().positions.spread - every.positions.spread).abs().max() > 1e-2  # all of them: other statistics
    with pytest.raises(ValueError, match="position_images"):
        MemoryBankConfig(encoder=ENCODER, position_images=1)


def test_map_values_are_all_taken_or_drawn_in_proportion_to_each_maps_size():
    maps = [np.zeros((30, 40), np.float32), np.ones((10, 40), np.float32), np.full((5, 8), 7, np.float32)]
    every = sample_map_values(maps, limit=10_000)
    assert every.dtype == np.float64 and np.array_equal(every, np.concatenate([m.ravel() for m in maps]))
    drawn = sample_map_values(maps, limit=1000)
    # 1200 : 400 : 40 values: each map is drawn from in proportion, and only its own values come back.
    assert drawn.size == 1000 and set(np.unique(drawn)) <= {0.0, 1.0, 7.0}
    assert abs((drawn == 0).mean() - 1200 / 1640) < 0.05 and abs((drawn == 1).mean() - 400 / 1640) < 0.05
    assert np.array_equal(drawn, sample_map_values(maps, limit=1000))  # seeded


def test_exact_search_scores_do_not_depend_on_the_thread_count(encoder, category):
    # Exact search's own distances come from a threaded matrix product; near a bank patch (the
    # training images here) they differed in the 4th digit between 1 and 2 threads.
    import faiss

    train, good, bad = category
    detector = MemoryBankDetector(MemoryBankConfig(encoder=ENCODER, coreset_ratio=1.0, search="exact"), encoder)
    detector.fit(train)
    encoded = encoder.encode(train + good + bad)
    queries = encoded.features.permute(0, 2, 3, 1).reshape(-1, encoded.features.shape[1]).numpy()
    results = []
    try:
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            results.append(detector.score_encoded(encoded))
    finally:
        faiss.omp_set_num_threads(torch.get_num_threads())
    for one, two in zip(*results, strict=True):
        assert one.score == two.score and np.array_equal(one.anomaly_map, two.anomaly_map)
    # The distances are summed pair by pair: exact at a bank patch's own position, where a
    # matrix product's |q|² + |b|² - 2 q·b is off by ~1e-4 (float64 reference).
    _, rows = detector.index.search(queries, 1)
    bank = detector.bank.numpy()
    got = squared_distances(queries, bank, rows)[:, 0]
    reference = ((queries.astype(np.float64) - bank[rows[:, 0]]) ** 2).sum(1)
    assert np.allclose(got, reference, rtol=1e-5, atol=1e-6)


def test_holdout_calibration_is_kept_for_old_models():
    cfg = MemoryBankConfig.from_json({"encoder": ENCODER.to_json(), "coreset_ratio": 0.1})
    assert cfg.calibration == "holdout" and cfg.score_top_fraction == 0.0
    assert MemoryBankDetector(cfg).holdout_indices(20) != []
    with pytest.raises(ValueError, match="calibration must be one of"):
        MemoryBankConfig(calibration="guess")


def test_discriminator_finds_planted_defects_and_round_trips(encoder, category, tmp_path):
    train, good, bad = category
    detector = DiscriminatorDetector(DiscriminatorConfig(encoder=ENCODER, steps=100, patches_per_step=256), encoder)
    summary = detector.fit(train)
    assert summary.n_holdout >= 1 and detector.thresholds is not None
    scores_good = [r.score for r in detector.score(good)]
    results_bad = detector.score(bad)
    assert min(r.score for r in results_bad) > max(scores_good)
    detector.save(tmp_path / "d")
    again = DiscriminatorDetector.load(tmp_path / "d")
    assert [r.score for r in again.score(bad)] == [r.score for r in results_bad]
    assert again.thresholds == detector.thresholds
    (tmp_path / "d" / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFileError, match="corrupt"):
        DiscriminatorDetector.load(tmp_path / "d")


@pytest.mark.slow  # trains the discriminator with its default steps
def test_fit_names_the_detector_and_fused_models_load_back(synthetic_category, tmp_path):
    from defectlens import Inspector, InspectorSettings
    from defectlens.errors import ConfigError

    cat = load_category(synthetic_category)
    train = [load_image(p) for p in cat.train_good]
    inspector = Inspector.fit(train, InspectorSettings(image_size=128, coreset_ratio=0.5, detector="bank+discriminator"))
    assert inspector.detector.name == "fused"
    inspector.save(tmp_path / "m")
    # Every name a fused model writes is known as the model's: none would be kept as a person's file by the next save.
    from defectlens.inspector import _not_model_entries

    assert _not_model_entries(tmp_path / "m") == []
    again = Inspector.load(tmp_path / "m")
    verdicts = {t.is_defective: [] for t in cat.test}
    for t in cat.test:
        verdicts[t.is_defective].append(again.inspect(t.path).score)
    assert min(verdicts[True]) > max(verdicts[False])
    with pytest.raises(ConfigError, match="choose one of memory-bank, discriminator, bank"):
        InspectorSettings(detector="flow")


def test_false_alarm_target_sets_the_label_free_threshold(synthetic_category, fitted_model):
    from defectlens import Inspector, InspectorSettings
    from defectlens.detect import DEFAULT_FALSE_ALARM_TARGET
    from defectlens.errors import ConfigError

    default = Inspector.load(fitted_model)
    assert default.detector.config.quantile == pytest.approx(1 - DEFAULT_FALSE_ALARM_TARGET)
    train = [load_image(p) for p in load_category(synthetic_category).train_good]
    lenient = Inspector.fit(train, InspectorSettings(image_size=128, coreset_ratio=0.5, false_alarm_target=0.3))
    assert lenient.detector.config.quantile == pytest.approx(0.7)
    # Same images and bank: a larger share of good parts allowed to be flagged is a lower bar.
    assert lenient.thresholds.image < default.thresholds.image
    for bad in (0.0, 0.6, -0.1):
        with pytest.raises(ConfigError, match="false-alarm target"):
            InspectorSettings(false_alarm_target=bad)
