"""The versioned model descriptor, its one loader (the detector registry), the model card,
generic fusion, and the one map smoothing / image score."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from defectlens import Inspector, InspectorSettings, __version__
from defectlens.descriptor import CARD_FILE, DESCRIPTOR_FILE, FORMAT, FORMAT_VERSION, fingerprint_images, read_descriptor, render_card
from defectlens.detect.fusion import FusedDetector, FusionConfig
from defectlens.detect.maps import image_score, smooth_map
from defectlens.detect.registry import DETECTORS
from defectlens.encode import DEFAULT_BACKBONE
from defectlens.errors import DefectlensWarning, ModelFileError, NoteWarning
from defectlens.io import load_category, load_image
from defectlens.types import AnomalyResult
from tests.conftest import texture


def _copy(fitted_model: Path, tmp_path: Path, name: str = "model") -> Path:
    out = tmp_path / name
    shutil.copytree(fitted_model, out)
    return out


def _edit_descriptor(model: Path, **changes) -> None:
    meta = json.loads((model / DESCRIPTOR_FILE).read_text())
    meta.update(changes)
    (model / DESCRIPTOR_FILE).write_text(json.dumps(meta))


# ---------------------------------------------------------------------- descriptor and loader
def test_descriptor_names_the_kind_and_round_trips(fitted_model, synthetic_category):
    meta = json.loads((fitted_model / DESCRIPTOR_FILE).read_text())
    assert meta["format"] == FORMAT and meta["format_version"] == FORMAT_VERSION == 2
    assert meta["detector"] == "memory-bank" and meta["detector"] in DETECTORS
    prov = meta["provenance"]
    assert prov["defectlens_version"] == __version__ and prov["n_images"] == 12
    assert prov["fitted_at"].endswith("+00:00")  # UTC ISO
    images = [load_image(p) for p in load_category(synthetic_category).train_good]
    assert prov["fingerprint"] == fingerprint_images(images)
    assert meta["thresholds"]["source"] == "normal-quantile" and meta["normal_stats"]["n_images"] == 12  # leave-one-out: every image
    assert meta["detector_info"]["encoder"]["backbone"] == DEFAULT_BACKBONE

    loaded = Inspector.load(fitted_model)
    assert loaded.settings.image_size == 128 and loaded.settings.coreset_ratio == 0.5
    assert loaded.fit_summary is not None and loaded.fit_summary.n_images == 12
    assert loaded.provenance is not None and loaded.provenance.fingerprint == prov["fingerprint"]
    assert Inspector.is_model_dir(fitted_model) and not Inspector.needs_taxonomy(fitted_model)


def test_a_fit_is_named_by_when_it_finished_to_the_microsecond(monkeypatch):
    # Audit probe 2026-12-07: two fits of one folder with other settings in one second had one fitted_at (kept to the
    # second), and with the same training images one identity in every record; it was also taken before the bank was built.
    import datetime as dt

    from defectlens.detect.memory_bank import MemoryBankDetector

    rng = np.random.default_rng(5)
    images = [texture(rng, 48, 64) for _ in range(4)]
    built_at: list[dt.datetime] = []
    fit_bank = MemoryBankDetector.fit
    monkeypatch.setattr(MemoryBankDetector, "fit", lambda self, *a, **k: (fit_bank(self, *a, **k), built_at.append(dt.datetime.now(dt.UTC)))[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DefectlensWarning)
        first, second = (Inspector.fit(images, InspectorSettings(seed=seed, image_size=64)) for seed in (1, 2))
    assert first.provenance.fingerprint == second.provenance.fingerprint
    times = [dt.datetime.fromisoformat(m.provenance.fitted_at) for m in (first, second)]
    assert times[0] < times[1] and times[0] >= built_at[0] and times[0].utcoffset() == dt.timedelta(0)
    # ... and with the threads it computed with: at another count a fit differs in the last digits (recorded nowhere).
    import torch

    assert first.provenance.threads == torch.get_num_threads() >= 1
    card = render_card(first.descriptor())
    assert f"| CPU threads of the fit | {torch.get_num_threads()} (refit with as many to reproduce it bit for bit) |" in card


def test_unknown_kind_names_the_known_ones(fitted_model, tmp_path):
    model = _copy(fitted_model, tmp_path)
    _edit_descriptor(model, detector="normalizing-flow")
    known = r"unknown detector kind 'normalizing-flow' \(this defectlens knows batch-scoring, discriminator, fused, grounding, memory-bank\)"
    with pytest.raises(ModelFileError, match=known) as err:
        Inspector.load(model)
    assert DESCRIPTOR_FILE in str(err.value)


def test_newer_descriptor_version_says_which(fitted_model, tmp_path):
    model = _copy(fitted_model, tmp_path)
    _edit_descriptor(model, format_version=4)
    with pytest.raises(ModelFileError, match=r"format version 4 is newer than this defectlens reads \(3\)"):
        Inspector.load(model)
    # Still a model: re-fitting into its folder may replace it.
    assert Inspector.is_model_dir(model) and not Inspector.needs_taxonomy(model)
    _edit_descriptor(model, format_version=2, format="defectlens.something-else")
    with pytest.raises(ModelFileError, match="not a defectlens model"):
        Inspector.load(model)


def test_settings_a_newer_defectlens_records_say_upgrade_not_refit(fitted_model, tmp_path):
    # Probe 2026-12-05: an older defectlens reading a newer model's settings said "re-fit the model".
    model = _copy(fitted_model, tmp_path)
    meta = json.loads((model / DESCRIPTOR_FILE).read_text())
    _edit_descriptor(model, settings={**meta["settings"], "tomorrows_setting": 1},
                     provenance={**meta["provenance"], "defectlens_version": "9.0.0"})
    with pytest.raises(ModelFileError, match=rf"written by defectlens 9.0.0, with settings this defectlens \({__version__}\) does not know "
                                             r"\(tomorrows_setting\) — fix: upgrade defectlens to read it"):
        Inspector.load(model)


def test_legacy_folders_still_load(fitted_model, tmp_path):
    model = _copy(fitted_model, tmp_path)
    meta = json.loads((model / DESCRIPTOR_FILE).read_text())
    # What Inspector.save wrote before the descriptor had a format and a version.
    (model / DESCRIPTOR_FILE).write_text(json.dumps({"settings": meta["settings"], "fit_summary": meta["fit_summary"]}))
    (model / CARD_FILE).unlink()
    descriptor = read_descriptor(model)
    assert descriptor.detector == "memory-bank" and descriptor.format_version == 1 and descriptor.provenance is None
    loaded = Inspector.load(model)
    assert loaded.settings.image_size == 128 and loaded.fit_summary is not None and loaded.provenance is None
    assert Inspector.is_model_dir(model) and not Inspector.needs_taxonomy(model)
    # Older still: no inspector.json at all, the detector's files alone.
    (model / DESCRIPTOR_FILE).unlink()
    assert Inspector.load(model).detector.name == "memory-bank" and Inspector.is_model_dir(model)
    # Re-saving a legacy model upgrades it: descriptor version 2 and a card.
    Inspector.load(model).save(model)
    assert read_descriptor(model).format_version == 2 and (model / CARD_FILE).is_file()


def test_incomplete_provenance_or_thresholds_load_and_the_card_says_what_is_missing(fitted_model, tmp_path):
    from defectlens.descriptor import render_card

    model = _copy(fitted_model, tmp_path)
    meta = json.loads((model / DESCRIPTOR_FILE).read_text())
    provenance = {k: v for k, v in meta["provenance"].items() if k != "fingerprint"} | {"written_by": "a newer defectlens"}
    _edit_descriptor(model, provenance=provenance, thresholds=None)
    # Provenance is a record: a field missing or unknown never stops the model from working.
    assert Inspector.load(model).inspect(np.zeros((64, 64, 3), np.uint8)) is not None
    card = render_card(read_descriptor(model))
    assert "fingerprint not recorded" in card and "written_by" not in card
    assert "zero-shot" not in card and "detector's own files hold them" in card
    _edit_descriptor(model, provenance=None)
    assert "all of it not recorded" in render_card(read_descriptor(model))


def test_the_card_shows_names_and_texts_as_written(fitted_model, tmp_path):
    # Security probe 2026-12-06: a training folder named "tr|ain <img …>\n# Verdict GOOD" split the provenance table,
    # ran as HTML in a Markdown viewer and wrote a heading; the taxonomy's texts went in raw too.
    from markdown_it import MarkdownIt

    from defectlens.descriptor import part_card_section

    model = _copy(fitted_model, tmp_path)
    meta = json.loads((model / DESCRIPTOR_FILE).read_text())
    _edit_descriptor(model, provenance=meta["provenance"] | {"trained_on": "/x/tr|ain <img src=x onerror=alert(1)>\n# Verdict GOOD"},
                     settings=meta["settings"] | {"extra_neighbourhoods": []})
    (model / "taxonomy.json").write_text(json.dumps({"object": "part <script>alert(2)</script>", "defects": [
        {"name": "spot", "description": "a dark spot\n# Verdict: GOOD <iframe src=javascript:alert(3)>"}]}))
    card = render_card(read_descriptor(model)) + part_card_section(model)
    page = MarkdownIt("commonmark").enable("table").render(card)
    assert not any(tag in page for tag in ("<img", "<script", "<iframe"))
    assert "Verdict" not in "".join(line for line in page.splitlines() if line.startswith("<h"))  # no heading of its own
    row = next(line for line in card.splitlines() if line.startswith("| training folder |"))
    # A path in a code span, as written (regression probe 2026-12-06: "_lot7_" in a folder name had read as emphasis).
    assert row == "| training folder | `/x/tr\\|ain <img src=x onerror=alert(1)>\ufffd# Verdict GOOD` |"
    assert "<code>/x/tr|ain &lt;img src=x onerror=alert(1)&gt;\ufffd# Verdict GOOD</code>" in page
    assert "- **spot**: a dark spot # Verdict: GOOD \\<iframe src=javascript:alert(3)>" in card
    assert "| extra_neighbourhoods | none |" in card  # an empty cell had read as not recorded (README probe 2026-12-06)


def test_a_folder_with_no_model_is_refused_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    assert not Inspector.is_model_dir(tmp_path / "empty") and not Inspector.needs_taxonomy(tmp_path / "empty")
    with pytest.raises(ModelFileError, match=r"no inspector\.json and no detector files"):
        Inspector.load(tmp_path / "empty")
    # An image given where the model goes was "not found — run defectlens fit first", though it exists.
    (tmp_path / "part.png").write_bytes(b"x")
    with pytest.raises(ModelFileError, match=r"is a file, not a model folder .*holds inspector\.json"):
        Inspector.load(tmp_path / "part.png")


# ---------------------------------------------------------------------- model card
def test_card_carries_the_model_data_and_follows_a_resave(fitted_model, tmp_path):
    card = (fitted_model / CARD_FILE).read_text()
    prov = read_descriptor(fitted_model).provenance
    assert prov is not None
    needles = ("memory-bank", DEFAULT_BACKBONE, prov.fingerprint, prov.fitted_at, "| training images | 12 |", "normal-quantile", "Normal-score")
    for needle in needles:
        assert needle in card, needle
    # `defectlens calibrate` (or anyone) re-saving with new thresholds rewrites the card from them.
    model = _copy(fitted_model, tmp_path)
    inspector = Inspector.load(model)
    inspector.set_thresholds(image=7.25)
    inspector.save(model)
    card = (model / CARD_FILE).read_text()
    assert "| image | 7.2500 |" in card and "| how set | user |" in card  # at 4 places (first-week probe 2026-12-07)
    assert prov.fitted_at in card  # the fit's provenance survives the re-save
    # A model of 8-bit images records no depth and says 8 bits; one fitted before 0.3.1 may have been fitted on deep frames,
    # read each at its own depth: the card says to refit (automation probe 2026-12-06: nothing said).
    assert "| sensor depth | 8 bits (no training image deeper" in card
    meta = json.loads((model / DESCRIPTOR_FILE).read_text())
    meta["provenance"]["defectlens_version"] = "0.3.0"
    (model / DESCRIPTOR_FILE).write_text(json.dumps(meta))
    assert "| sensor depth | not recorded (fitted before 0.3.1)" in render_card(read_descriptor(model))
    from defectlens.descriptor import released_before

    versions = ("0.3.0rc1", "0.2", "0.3.1", "0.3.1rc1", "1.0.0", None, "dev")
    assert [released_before(v, (0, 3, 1)) for v in versions] == [True, True, False, False, False, False, False]


def test_info_prints_the_card(fitted_model, tmp_path):
    from typer.testing import CliRunner

    from defectlens.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["info", str(fitted_model)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Model card" in result.output and "memory-bank" in result.output and "normal-quantile" in result.output
    result = runner.invoke(app, ["info", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "not found" in result.output
    # --check loads every file: a detector file from another version is found, as `inspect` finds it.
    result = runner.invoke(app, ["info", str(fitted_model), "--check"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "every file of the model loads" in result.output, result.output
    model = _copy(fitted_model, tmp_path)
    meta = json.loads((model / "detector.json").read_text())
    meta["format_version"] = 99
    (model / "detector.json").write_text(json.dumps(meta))
    assert runner.invoke(app, ["info", str(model)]).exit_code == 0  # the card alone reads the descriptor
    result = runner.invoke(app, ["info", str(model), "--check"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "99" in result.output and "detector.json" in result.output, result.output
    # The part's taxonomy is a file of the model too (Windows-inputs probe 2026-12-06: one in a code page passed the check).
    model = _copy(fitted_model, tmp_path / "taxonomy")
    (model / "taxonomy.json").write_bytes('{"object": "Keks", "defects": [{"name": "Riss", "description": "20 °C"}]}'.encode("cp1252"))
    result = runner.invoke(app, ["info", str(model), "--check"], env={"COLUMNS": "200"})
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "taxonomy.json: not UTF-8 text" in said and "every file of the model loads" not in said, said
    # The card's thresholds (the descriptor's record) edited by hand: --check says they are not the ones used.
    model = _copy(fitted_model, tmp_path / "edited")
    thresholds = json.loads((model / DESCRIPTOR_FILE).read_text())["thresholds"]
    for value in (10.0, "abc"):
        _edit_descriptor(model, thresholds={**thresholds, "image": value})
        result = runner.invoke(app, ["info", str(model), "--check"])
        assert result.exit_code == 2 and "records the image threshold as" in result.output and "calibrate" in result.output, result.output


def test_fingerprint_ignores_order_and_sees_one_pixel():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)
    assert fingerprint_images([a, b]) == fingerprint_images([b, a])
    c = b.copy()
    c[0, 0, 0] ^= 1
    assert fingerprint_images([a, c]) != fingerprint_images([a, b])


# ---------------------------------------------------------------------- generic fusion
def test_fusion_is_generic_over_its_members_and_round_trips(fitted_model, synthetic_category, tmp_path):
    """Two memory banks stand in for any two normal-statistics detectors (a flow detector, say)."""
    category = load_category(synthetic_category)
    normals = [load_image(p) for p in category.train_good[:3]]
    primary, secondary = Inspector.load(fitted_model).detector, Inspector.load(fitted_model).detector
    fused = FusedDetector.calibrate(primary, secondary, normals, FusionConfig(mode="sum", weight=0.3))
    assert fused.thresholds is not None and fused.thresholds.source == "normal-quantile"
    model = tmp_path / "fused"
    Inspector(fused).save(model)
    meta = json.loads((model / "fusion.json").read_text())
    assert meta["format_version"] == 2 and meta["primary"]["kind"] == meta["secondary"]["kind"] == "memory-bank"
    assert read_descriptor(model).detector == "fused"
    loaded = Inspector.load(model)
    assert isinstance(loaded.detector, FusedDetector) and loaded.detector.config.weight == 0.3
    spot = next(t.path for t in category.test if t.is_defective)
    good = next(t.path for t in category.test if not t.is_defective)
    images = [load_image(spot), load_image(good)]
    before, after = fused.score(images), loaded.detector.score(images)
    assert [r.score for r in after] == pytest.approx([r.score for r in before])
    assert after[0].score > after[1].score
    # A weight chosen on the held-out images is saved as chosen, with how many it was chosen on.
    auto = FusedDetector.calibrate(primary, secondary, normals)
    Inspector(auto).save(tmp_path / "auto")
    reloaded = Inspector.load(tmp_path / "auto").detector
    assert isinstance(reloaded, FusedDetector) and reloaded.weight_chosen_on == 3 and reloaded.config.weight == auto.config.weight
    # Three images cannot show a partner adds no false alarm: it gets no weight, and the card says why.
    assert auto.config.weight == 0.0 and "fewer than the 20" in auto.describe()["fusion"]


class _Scripted:
    """A detector whose normal scores are given: what the weight choice reads, nothing else."""

    name = "memory-bank"
    batch_relative = False

    def __init__(self, scores):
        self.scores = list(scores)

    def score(self, images, progress=None):
        return [AnomalyResult(score=float(s), anomaly_map=np.full((4, 4), float(s), np.float32)) for s in self.scores[: len(images)]]


def test_fusion_refuses_a_normal_scale_without_a_unit_and_holds_out_enough_images():
    from defectlens import InspectorSettings
    from defectlens.detect.patch_detector import MIN_HOLDOUT_IMAGES, holdout_indices

    # One held-out image (or several scoring alike) gives median == quantile: every image would be flagged.
    images = [np.zeros((4, 4, 3), np.uint8)] * 3
    with pytest.raises(ValueError, match="all score alike — fit on more normal images"):
        FusedDetector.calibrate(_Scripted([10.0, 10.0, 10.0]), _Scripted([1.0, 2.0, 3.0]), images)
    assert [len(holdout_indices(n, 0.1, 0)) for n in (2, 4, 6, 12, 600)] == [1, 2, MIN_HOLDOUT_IMAGES, MIN_HOLDOUT_IMAGES, 60]
    with pytest.raises(ValueError, match=f"fusion needs at least {2 * MIN_HOLDOUT_IMAGES} normal images"):
        Inspector.fit([np.full((64, 64, 3), i, np.uint8) for i in range(5)], InspectorSettings(image_size=64), secondary=_Scripted([0.0] * 5),
                      fusion=FusionConfig(weight=0.3))


def test_fusion_on_too_few_normal_images_leaves_every_verdict_to_the_bank(synthetic_category, fitted_model, tmp_path):
    # Probe 2026-12-05: fused on cookie's 31 normal images, the bank held out 3, the partner got
    # weight 0 (too few to choose one on) and the thresholds rested on those 3: 8 of 14 good
    # cookies flagged against 1 for the bank alone, and nothing said.
    from defectlens import InspectorSettings

    category = load_category(synthetic_category)
    train = [load_image(p) for p in category.train_good]
    alone = Inspector.load(fitted_model)
    fused = Inspector.fit(train, InspectorSettings(image_size=128, coreset_ratio=0.5), secondary=Inspector.load(fitted_model).detector)
    assert isinstance(fused.detector, FusedDetector) and fused.detector.config.weight == 0.0
    assert (fused.thresholds.image, fused.thresholds.pixel) == (1.0, 1.0)
    assert "the primary decides with its own thresholds" in fused.detector.describe()["fusion"]
    fused.save(tmp_path / "fused")
    loaded = Inspector.load(tmp_path / "fused")
    for item in category.test:
        own, both, back = alone.inspect(item.path), fused.inspect(item.path), loaded.inspect(item.path)
        assert own.is_defective == both.is_defective == back.is_defective, item.path
        assert len(own.regions) == len(both.regions)


def test_fusion_weight_is_chosen_on_the_held_out_normal_images_unless_given():
    rng = np.random.default_rng(0)
    images = [np.zeros((4, 4, 3), np.uint8)] * 100
    bank, quiet = _Scripted(rng.normal(10, 1, 100)), _Scripted(rng.normal(5, 1, 100))
    strange_scores = rng.normal(5, 1, 100)
    strange_scores[0] += 300  # a good part the partner finds very odd: a false alarm it would add
    chosen = FusedDetector.calibrate(bank, quiet, images)
    assert 0.0 < chosen.config.weight <= 0.2 and chosen.weight_chosen_on == 100
    assert "chosen on 100 held-out normal images" in chosen.describe()["fusion"]
    refused = FusedDetector.calibrate(bank, _Scripted(strange_scores), images)
    assert refused.config.weight == 0.0 and refused.weight_chosen_on == 100
    given = FusedDetector.calibrate(bank, _Scripted(strange_scores), images, FusionConfig(weight=0.5))
    assert given.config.weight == 0.5 and given.weight_chosen_on is None and "(given)" in given.describe()["fusion"]
    for mode in ("sum", "product"):  # the choice reads the fused scores the mode makes
        assert FusedDetector.calibrate(bank, _Scripted(strange_scores), images, FusionConfig(mode=mode)).config.weight == 0.0
    # Weighted 0, the partner is not even asked: the same scores, without its time.
    strange = _Scripted(strange_scores)
    fused = FusedDetector.calibrate(bank, strange, images)
    asked = FusedDetector.calibrate(bank, strange, images, FusionConfig(weight=1e-12))
    expected = [r.score for r in asked.score(images[:5])]
    strange.scores = []  # it would now fail to score anything
    assert [r.score for r in fused.score(images[:5])] == pytest.approx(expected, abs=1e-9)


def test_a_fused_detectors_scores_do_not_move_with_its_false_alarm_target():
    # Members are put on one scale in fixed units; only the fused threshold follows the target.
    rng = np.random.default_rng(1)
    images = [np.zeros((4, 4, 3), np.uint8)] * 100
    bank, partner = _Scripted(rng.gamma(2.0, 2.0, 100) + 10), _Scripted(rng.gamma(5.0, 1.0, 100))
    at = {q: FusedDetector.calibrate(bank, partner, images, FusionConfig(weight=0.3), quantile=q) for q in (0.98, 0.95)}
    assert [r.score for r in at[0.98].score(images)] == pytest.approx([r.score for r in at[0.95].score(images)], abs=1e-12)
    assert at[0.95].thresholds is not None and at[0.98].thresholds is not None
    assert at[0.95].thresholds.image < at[0.98].thresholds.image


def test_a_member_folder_outside_the_model_is_refused(fitted_model, synthetic_category, tmp_path):
    normals = [load_image(p) for p in load_category(synthetic_category).train_good[:2]]
    d = Inspector.load(fitted_model).detector
    model = tmp_path / "fused"
    Inspector(FusedDetector.calibrate(d, d, normals)).save(model)
    meta = json.loads((model / "fusion.json").read_text())
    meta["secondary"]["dir"] = "../elsewhere"
    (model / "fusion.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="outside the model"):
        Inspector.load(model)


# ---------------------------------------------------------------------- maps
@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.5, 4.0])
def test_smoothing_matches_scipy_gaussian_filter(sigma):
    rng = np.random.default_rng(int(sigma * 10))
    amap = rng.random((37, 53)).astype(np.float32) * 5
    ours = smooth_map(amap, sigma)
    # Same kernel radius (ceil(3 sigma) == int(3 sigma + 0.5) for these sigmas) and border rule.
    theirs = gaussian_filter(amap.astype(np.float64), sigma, mode="nearest", truncate=3.0)
    assert ours.shape == amap.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert np.abs(ours - amap).max() > 0.1  # it did smooth


def test_image_score_is_shared_by_the_grounding_cues():
    from defectlens.detect.grounding import detector as grounding_detector

    assert grounding_detector.image_score is image_score
    amap = np.arange(250, dtype=np.float32)
    # round(250 * 0.01) = 2 (ceil would take 3): the memory bank's rule everywhere.
    assert image_score(amap, 0.01) == pytest.approx(248.5)


def test_a_bad_saved_setting_is_named_with_one_fix(fitted_model, tmp_path):
    from dataclasses import replace

    from defectlens.encode import EncoderConfig

    model = _copy(fitted_model, tmp_path)
    meta = json.loads((model / DESCRIPTOR_FILE).read_text())
    _edit_descriptor(model, settings={**meta["settings"], "detector": "banana"})
    with pytest.raises(ModelFileError) as info:
        Inspector.load(model)
    # The kind is checked first (it was reported as a clash of extra neighbourhoods), and the
    # command-line fix of that check is not appended to the model's.
    assert "unknown detector 'banana'" in str(info.value) and str(info.value).count("fix:") == 1
    built = EncoderConfig()
    other = replace(built, canvas_height=built.canvas_height + 32)
    with pytest.raises(ModelFileError, match=f"with canvas_height {built.canvas_height}, not canvas_height {other.canvas_height}"):
        built.require_same(other, model, "re-fit the model")


def test_the_package_ships_its_type_annotations():
    # Without py.typed (PEP 561) a user's mypy skipped defectlens ("missing library stubs or
    # py.typed marker") and every value from it was Any.
    import tomllib

    from tests.conftest import REPO

    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["defectlens"]
    assert (REPO / "src" / "defectlens" / "py.typed").is_file()


def test_saving_over_another_model_says_which_was_replaced_and_a_re_save_says_nothing(fitted_model, tmp_path):
    # API probe 2026-12-05: Inspector.save over a model of other images (and its taxonomy) went without a word.
    import dataclasses
    import warnings

    from defectlens import InspectorSettings
    from defectlens.errors import DefectlensWarning, NoteWarning
    from tests.conftest import texture

    target = tmp_path / "model"
    shutil.copytree(fitted_model, target)
    loaded = Inspector.load(target)
    with warnings.catch_warnings(record=True) as resaved:
        warnings.simplefilter("always")
        loaded.save(target)  # the same model, re-saved (calibrate does it): nothing to say
    assert not [w for w in resaved if issubclass(w.category, NoteWarning)]
    # ... nor of a model an older defectlens saved, its settings lacking newer keys (regression probe round 3).
    descriptor = json.loads((target / "inspector.json").read_text())
    descriptor["settings"] = {k: v for k, v in descriptor["settings"].items() if k not in ("extra_neighbourhoods", "seed", "global_weight")}
    (target / "inspector.json").write_text(json.dumps(descriptor))
    older = Inspector.load(target)
    older.set_thresholds(image=older.thresholds.image)
    with warnings.catch_warnings(record=True) as resaved:
        warnings.simplefilter("always")
        older.save(target)
    assert not [w for w in resaved if issubclass(w.category, NoteWarning)]
    rng = np.random.default_rng(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DefectlensWarning)
        other = Inspector.fit([texture(rng, 48, 64) for _ in range(4)])
    with pytest.warns(NoteWarning, match=r"the memory-bank model .*that was there is replaced"):
        other.save(target)
    assert read_descriptor(target).provenance.n_images == 4
    # Thresholds set by hand, then a refit of the same images (another seed) saved over them: said too (regression
    # probe: the same training images counted as "the same model", and the thresholds went without a word).
    by_hand = Inspector.load(target)
    by_hand.set_thresholds(58.0, 60.0)
    by_hand.save(target)
    rng = np.random.default_rng(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DefectlensWarning)
        refit = Inspector.fit([texture(rng, 48, 64) for _ in range(4)], InspectorSettings(seed=7))
    assert refit.provenance.fingerprint == other.provenance.fingerprint
    with pytest.warns(NoteWarning, match=r"with thresholds set by user that was there is replaced"):
        refit.save(target)
    # ... also when the two fits fall in the same second (fitted_at is kept to the second; regression probe round 2).
    same_second = Inspector.load(target)
    same_second.set_thresholds(70.0)
    same_second.save(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DefectlensWarning)
        again = np.random.default_rng(2)
        other_seed = Inspector.fit([texture(again, 48, 64) for _ in range(4)], InspectorSettings(seed=8))
    assert other_seed.provenance.fingerprint == same_second.provenance.fingerprint
    other_seed.provenance = dataclasses.replace(other_seed.provenance, fitted_at=same_second.provenance.fitted_at)
    with pytest.warns(NoteWarning, match=r"with thresholds set by user that was there is replaced"):
        other_seed.save(target)


def test_a_model_folder_replaced_while_it_is_read_is_read_again_whole(fitted_model, tmp_path, monkeypatch):
    # Interruption probe 2026-12-05: `inspect` loading a model while `fit` saved over it took one fit's bank
    # and the other's thresholds (3 of 8 good parts flagged), or failed with "re-fit the model".
    import warnings

    import defectlens.inspector as inspector_module
    from defectlens.errors import DefectlensWarning
    from tests.conftest import texture

    target = tmp_path / "model"
    shutil.copytree(fitted_model, target)
    rng = np.random.default_rng(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DefectlensWarning)
        other = Inspector.fit([texture(rng, 48, 64) for _ in range(4)])
    real = inspector_module.load_detector
    swaps = []

    def swapped_midway(*args, **kwargs):
        if not swaps:  # the descriptor is read; now a save swaps another model in
            swaps.append(1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                other.save(target)
        return real(*args, **kwargs)

    monkeypatch.setattr(inspector_module, "load_detector", swapped_midway)
    loaded = Inspector.load(target)
    assert swaps and loaded.provenance.fingerprint == other.provenance.fingerprint
    assert loaded.thresholds == other.thresholds and loaded.fit_summary.n_images == 4

    def always_swapped(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other.save(target)
        return real(*args, **kwargs)

    monkeypatch.setattr(inspector_module, "load_detector", always_swapped)
    with pytest.raises(ModelFileError, match="replaced while it was read, 3 times"):
        Inspector.load(target)


def test_a_model_is_described_with_the_right_article(fitted_model, tmp_path):
    # Ops probe 2026-12-06: "the memory-bank model of a electrical commutator surface that was there is replaced".
    from defectlens.descriptor import describe_model_in

    model = tmp_path / "model"
    shutil.copytree(fitted_model, model)
    (model / "taxonomy.json").write_text(json.dumps({"object": "electrical commutator", "defects": [{"name": "crack"}]}))
    assert describe_model_in(model) == "memory-bank model of an electrical commutator"


def test_a_model_without_a_fingerprint_is_another_model_even_fitted_in_the_same_second(fitted_model, tmp_path, monkeypatch):
    # Found by the full suite (2026-12-06): a batch-scoring fit (no image, no fingerprint) saved over a memory bank in the
    # same second counted as the same model by its fit time, and kept the other part's examples.
    from defectlens import InspectorSettings

    target = _copy(fitted_model, tmp_path)
    (target / "examples" / "spot").mkdir(parents=True)
    import defectlens.inspector as inspector_module

    monkeypatch.setattr(inspector_module, "utc_now", lambda microseconds=False: read_descriptor(target).provenance.fitted_at)
    batch = Inspector.fit([], InspectorSettings(detector="batch-scoring"))
    assert batch.provenance.fitted_at == read_descriptor(target).provenance.fitted_at
    gear = tmp_path / "taxonomy.json"
    gear.write_text(json.dumps({"object": "gear", "defects": [{"name": "dent", "description": "a dent"}]}))
    # Another model, whose part cannot be told (the folder had no taxonomy): its examples/ kept, and said (lifecycle probe
    # 2026-12-08: a person's examples had been deleted for want of a taxonomy).
    with pytest.warns(NoteWarning, match=r"examples/ kept \(no taxonomy to tell its part by: remove it if of another part\)"):
        batch.save(target, taxonomy=gear)
    assert (target / "examples" / "spot").is_dir()
    # Saved from Python with no taxonomy over a folder holding one: kept, and said (regression probe: dropped
    # without a word; lifecycle probe 2026-12-08: a person's files had been deleted for want of a taxonomy).
    with pytest.warns(NoteWarning, match=r"its taxonomy\.json and examples/ kept \(no taxonomy to tell its part by: remove them if of"):
        Inspector.load(fitted_model).save(target)
    assert json.loads((target / "taxonomy.json").read_text())["object"] == "gear"


def test_a_taxonomy_given_to_load_is_saved_with_the_model(fitted_model, synthetic_category, tmp_path):
    # API probe 2026-12-06: Inspector.load(model, taxonomy=...) read and checked the file, then a save dropped it unsaid.
    given = synthetic_category / "taxonomy.json"
    Inspector.load(fitted_model, taxonomy=given).save(tmp_path / "with")
    assert json.loads((tmp_path / "with" / "taxonomy.json").read_text()) == json.loads(given.read_text())
    assert "## Part" in (tmp_path / "with" / CARD_FILE).read_text()
    Inspector.load(fitted_model).save(tmp_path / "without")
    assert not (tmp_path / "without" / "taxonomy.json").exists()
    # Given to load a model with its own taxonomy of another part, it does not replace that one on a re-save (regression
    # probe 2026-12-06: a magnetic tile's taxonomy replaced a cookie model's, unsaid, and its cracks were typed "fray?").
    own = json.loads(given.read_text())
    gear = tmp_path / "gear.json"
    gear.write_text(json.dumps({"object": "gear", "defects": [{"name": "dent", "description": "a dent"}]}))
    with pytest.warns(NoteWarning, match=r"the taxonomy given to load \(gear: dent\) is not saved: the model's own .* is kept — pass taxonomy="):
        Inspector.load(tmp_path / "with", taxonomy=gear).save(tmp_path / "with")
    assert json.loads((tmp_path / "with" / "taxonomy.json").read_text()) == own
    # The same part's taxonomy with a type added is saved (regression probe 2026-12-06: kept the model's, with a note).
    extended = tmp_path / "extended.json"
    extended.write_text(json.dumps({**own, "defects": [*own["defects"], {"name": "burnt", "description": "a dark burnt patch"}]}))
    Inspector.load(tmp_path / "with", taxonomy=extended).save(tmp_path / "with")
    assert [d["name"] for d in json.loads((tmp_path / "with" / "taxonomy.json").read_text())["defects"]][-1] == "burnt"
    Inspector.load(tmp_path / "with", taxonomy=gear).save(tmp_path / "with", taxonomy=gear)  # asked for: replaced
    assert json.loads((tmp_path / "with" / "taxonomy.json").read_text())["object"] == "gear"


def test_a_model_is_not_saved_inside_another_model(fitted_model, synthetic_category, tmp_path):
    # Regression probe 2026-12-06: `fit -o A/inner` and load(A).save(A/"sub") were taken without a word, and every later save
    # of A carried the nested model along as a person's folder (an export of A copied its bank), where export refuses it.
    from typer.testing import CliRunner

    from defectlens.cli import app
    from defectlens.errors import ConfigError

    model = _copy(fitted_model, tmp_path)
    with pytest.raises(ConfigError, match=rf"the model would be written inside the model folder {model}"):
        Inspector.load(model).save(model / "sub")
    fitted = CliRunner().invoke(app, ["fit", str(synthetic_category), "-o", str(model / "inner" / "v1"), "--max-images", "4"])
    assert fitted.exit_code == 2 and "inside the model folder" in fitted.output and "fitting" not in fitted.output.lower()
    trained = CliRunner().invoke(app, ["train-grounding", str(synthetic_category), "-o", str(model / "grounding")])
    assert trained.exit_code == 2 and "the grounding model would be written inside the model folder" in " ".join(trained.output.split())
    assert not (model / "sub").exists() and not (model / "inner").exists()
    Inspector.load(model).save(model)  # its own folder is no model inside a model
    # One already there (an older layout) is saved again where it is (regression probe 2026-12-06: calibrate scored every
    # image, then refused), and another tool's detector.json above a folder makes no model of it.
    shutil.copytree(fitted_model, model / "v2")
    Inspector.load(model / "v2").save(model / "v2")
    project = tmp_path / "project"
    project.mkdir()
    (project / "detector.json").write_text('{"name": "some other tool"}')
    Inspector.load(model).save(project / "models" / "cookie")


def test_the_digests_follow_the_recipe_the_readme_gives(fitted_model, synthetic_category):
    # Audit probe 2026-12-07: the card's "training-set fingerprint (sha256)" matched no sha256sum, and its recipe was in
    # docstrings only. The README now gives it; this holds the code to it.
    import hashlib

    images = [load_image(p) for p in load_category(synthetic_category).train_good]
    digests = [hashlib.sha256(f"({a.shape[0]}, {a.shape[1]}, 3)||u1|".encode() + a.tobytes()).hexdigest() for a in images]
    prov = json.loads((fitted_model / DESCRIPTOR_FILE).read_text())["provenance"]
    assert sorted(prov["image_digests"]) == sorted(digests)
    assert prov["fingerprint"] == hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()


def test_a_model_saved_over_another_parts_folder_is_told_by_the_taxonomy_it_brings(fitted_model, tmp_path):
    # Regression probe 2026-12-08: Inspector.load(A).save(B) had told no part (none given), kept B's taxonomy of another part for
    # A, and kept B's examples; a folder whose descriptor cannot be read had its examples deleted as another part's; a new
    # camera's scene ("on a white conveyor belt") had been another object; another part's taxonomy replaced went unsaid.
    from defectlens.errors import OutputError
    from defectlens.inspector import part_relation

    cookie = _copy(fitted_model, tmp_path, "cookie")
    (cookie / "taxonomy.json").write_text(json.dumps({"object": "chocolate-chip cookie lying on a dark baking tray",
                                                      "defects": [{"name": "crack", "description": "a crack"}]}))
    tile = _copy(fitted_model, tmp_path, "tile")
    (tile / "taxonomy.json").write_text(json.dumps({"object": "magnetic tile", "defects": [{"name": "fray", "description": "a fray"}]}))

    def another_fit(model: Path) -> None:
        meta = json.loads((model / DESCRIPTOR_FILE).read_text())
        meta["provenance"].update(fitted_at="2001-01-01T00:00:00+00:00", fingerprint="0" * 64)  # another fit than the cookie's
        (model / DESCRIPTOR_FILE).write_text(json.dumps(meta))

    another_fit(tile)
    with pytest.warns(NoteWarning, match=r"its taxonomy\.json replaced by this part's \(it was of another part\)"):
        Inspector.load(cookie).save(tile)
    assert json.loads((tile / "taxonomy.json").read_text())["object"].startswith("chocolate-chip cookie")
    (tile / "taxonomy.json").write_text(json.dumps({"object": "magnetic tile", "defects": [{"name": "fray", "description": "a fray"}]}))
    (tile / "examples" / "fray").mkdir(parents=True)
    (tile / "examples" / "fray" / "a.png").write_bytes(b"a person's labelled example")
    another_fit(tile)
    with pytest.raises(OutputError, match=r"examples \(examples/\) of another part by its taxonomy \('magnetic tile', not 'chocolate-chip"):
        Inspector.load(cookie).save(tile)
    assert (tile / "examples" / "fray" / "a.png").is_file() and json.loads((tile / "taxonomy.json").read_text())["object"] == "magnetic tile"
    # The same part in another scene, spaced otherwise; a folder whose descriptor cannot be read, told by its taxonomy.
    belt = {"object": "Chocolate-chip  cookie on a white conveyor belt", "defects": [{"name": "crack", "description": "a crack"}]}
    (tmp_path / "belt.json").write_text(json.dumps(belt))
    assert part_relation(cookie, tmp_path / "belt.json", None) == "same"
    # Third probe: a part name added to the same object's taxonomy is the same part; the same training folder with another
    # part's taxonomy is another part (a staging folder reused had kept the first part's examples).
    named = {"object": "chocolate-chip cookie lying on a dark baking tray", "part": "cookie", "defects": belt["defects"]}
    (tmp_path / "named.json").write_text(json.dumps(named))
    assert part_relation(cookie, tmp_path / "named.json", None) == "same"
    meta = json.loads((cookie / DESCRIPTOR_FILE).read_text())
    meta["provenance"]["trained_on"] = trained_on = "/line/current/good"
    (cookie / DESCRIPTOR_FILE).write_text(json.dumps(meta))
    (tmp_path / "tile.json").write_text(json.dumps({"object": "magnetic tile", "defects": [{"name": "fray", "description": "a fray"}]}))
    assert part_relation(cookie, tmp_path / "tile.json", trained_on) == "other" and part_relation(cookie, None, trained_on) == "same"
    # Fourth probe: two parts of one object told apart by their part fields are two parts.
    (cookie / "taxonomy.json").write_text(json.dumps({**named, "part": "M8 nut"}))
    (tmp_path / "m10.json").write_text(json.dumps({**named, "part": "M10 nut"}))
    assert part_relation(cookie, tmp_path / "m10.json", trained_on) == "other"
    (cookie / "taxonomy.json").write_text(json.dumps(named))
    (cookie / "examples" / "crack").mkdir(parents=True)
    (cookie / "examples" / "crack" / "b.png").write_bytes(b"another labelled example")
    (cookie / DESCRIPTOR_FILE).write_text("{ not json")
    Inspector.load(fitted_model).save(cookie, taxonomy=tmp_path / "belt.json")
    assert (cookie / "examples" / "crack" / "b.png").is_file()


def test_folders_shown_by_their_last_names(tmp_path):
    # Security probe 2026-12-07: GET /models, which needs no token, told where the training data lies; regression probes: a fit's
    # notes name images by the path typed (through a link), a short form was shortened again ("……/train"), a folder ending a
    # sentence was left whole, and "/home/alice/good" was shown whole behind an ellipsis.
    from defectlens.descriptor import shown_folder, without_folders

    assert shown_folder("/work/shared/datasets/cookie/train/good", False) == "…/cookie/train/good"
    assert shown_folder("/home/alice/good", False) == "…/alice/good" and shown_folder("relative/a/b/c/d", False) == "relative/a/b/c/d"
    assert shown_folder("C:\\Users\\alice\\plant3\\lots\\cookie\\train\\good", False) == "…/cookie/train/good"
    assert shown_folder("/work/shared/datasets/cookie/train/good") == "/work/shared/datasets/cookie/train/good"
    assert without_folders("model /models/data/train, train /data/train", ["/models/data/train", "/data/train"]) == \
        "model …/data/train, train …/train"
    assert without_folders("trained on /data/lots/cookie.", ["/data/lots/cookie"]) == "trained on …/lots/cookie."
    assert without_folders("see /plant/train data/good/x.png: bad", ["/plant/train data/good"]) == "see …/train data/good/x.png: bad"
    # Any other path of this machine (typed through a link, say), not routes or paths of no file here.
    (tmp_path / "real" / "lot7" / "good").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    typed = tmp_path / "link" / "lot7" / "good" / "broken.png"
    assert without_folders(f"{typed}: not a readable image") == "…/lot7/good/broken.png: not a readable image"
    kept = "12/2026, and/or, 1/2, http://host/x/y, …/cookie/train/good, /health, POST /inspect/batch, /dev/null, ~/refs/crack/a.png"
    assert without_folders(kept) == kept
    # A file's path from the machine that fitted, gone from this one, and a Windows one: paths all the same (regression probe).
    assert without_folders("/home/alice/data/cookie/good/x.png and C:\\a\\b\\c\\d.png") == "…/cookie/good/x.png and …/b/c/d.png"
