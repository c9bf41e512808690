"""The frame check: a frame unlike every normal image (noise, another part) is never passed as good."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
import warnings

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from defectlens import Inspector, InspectorSettings, ModelFileError
from defectlens.detect.frame_check import LIMIT_FACTOR, MIN_IMAGES, FrameCheck
from defectlens.detect.memory_bank import BANK_FILE
from defectlens.errors import DefectlensWarning
from defectlens.evaluate.metrics import verdict_point
from defectlens.explain.report import build_report
from tests.conftest import texture


def test_limit_is_read_from_the_normal_images_and_flags_what_lies_far_beyond():
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(60, 6))
    check = FrameCheck.fit(normal)
    assert check is not None and check.limit > LIMIT_FACTOR  # at least twice the unit (its 98th percentile)
    reasons = check.reasons(np.vstack([rng.normal(size=(20, 6)), np.full((1, 6), 25.0)]))
    assert all(r is None for r in reasons[:-1])
    assert reasons[-1] is not None and "unlike every normal image" in reasons[-1]
    # Saved and read back as tensors, it decides alike; none saved reads as none; a part of one is refused.
    tensors = check.tensors()
    read = FrameCheck.from_tensors(tensors, 6)
    assert read is not None and read.limit == check.limit
    probe = rng.normal(size=(5, 6)) * 4
    np.testing.assert_array_equal(read.gaussian.units(probe), check.gaussian.units(probe))
    assert FrameCheck.from_tensors({}, 6) is None
    with pytest.raises(ValueError, match="incomplete"):
        FrameCheck.from_tensors({k: v for k, v in tensors.items() if not k.endswith("limit")}, 6)
    # Too few normal images for a trustworthy limit: no check rather than a trigger-happy one.
    assert FrameCheck.fit(normal[: MIN_IMAGES - 1]) is None


@pytest.fixture(scope="module")
def checked_model(tmp_path_factory):
    """A model fitted on enough synthetic textures for a frame check."""
    rng = np.random.default_rng(11)
    images = [texture(rng, 96, 128) for _ in range(MIN_IMAGES + 2)]
    inspector = Inspector.fit([np.stack([i] * 3, -1) for i in images], InspectorSettings(image_size=128, coreset_ratio=0.5))
    out = tmp_path_factory.mktemp("checked") / "model"
    inspector.save(out)
    return out


def test_noise_frame_is_defective_with_its_reason_and_good_parts_pass(checked_model):
    inspector = Inspector.load(checked_model)
    assert inspector.detector.frame_check is not None
    assert inspector.detector.describe()["frame_check_limit"] == pytest.approx(inspector.detector.frame_check.limit, abs=1e-3)
    rng = np.random.default_rng(12)
    noise = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    goods = [np.stack([texture(rng, 96, 128)] * 3, -1) for _ in range(4)]
    verdict = inspector.inspect(noise)
    assert verdict.is_defective and verdict.unlike_normal and "a large defect, another part, or a faulty frame" in verdict.unlike_normal
    assert verdict.to_json()["unlike_normal"] == verdict.unlike_normal
    # Defective whatever its score: even a threshold no score reaches does not pass it.
    inspector.set_thresholds(image=1e9)
    assert inspector.inspect(noise).is_defective
    assert not any(inspector.inspect(g).is_defective for g in goods)
    assert all("unlike_normal" not in inspector.inspect(g).to_json() for g in goods)
    # The report says why first.
    assert build_report(inspector.inspect(noise)).notes[0] == verdict.unlike_normal


def test_a_frame_unlike_every_normal_one_is_reported_as_such_not_typed(checked_model, tmp_path):
    # Probe 2026-12-05: a cookie inspected with a ball-screw model was flagged by the frame check,
    # yet its report read "a pitting at the centre, reaching the edge, very large (100% of the part)".
    from defectlens.engine import prepare_analysis, type_with_notes
    from defectlens.taxonomy import load_taxonomy

    taxonomy = tmp_path / "taxonomy.json"
    taxonomy.write_text(json.dumps({"object": "plate", "defects": [{"name": "pitting", "description": "small dark pits"}]}))
    inspector = Inspector.load(checked_model)
    # Grey noise, as the model's grey camera gives it (colour noise is also said as a colour image: its own test below).
    noise = np.repeat(np.random.default_rng(12).integers(0, 256, (96, 128, 1), dtype=np.uint8), 3, axis=2)
    verdict = inspector.inspect(noise)
    assert verdict.unlike_normal and verdict.regions
    types, notes = type_with_notes(prepare_analysis(taxonomy, None, 5, "template"), noise, verdict)
    assert types == [] and "regions not typed: the whole image is unlike every normal one" in notes
    report = build_report(verdict, types, load_taxonomy(taxonomy), writer="llm")
    assert "unlike every normal image this model was fitted on" in report.text and "pitting" not in report.text
    # A grey image for a model of colour parts in its own words (drift probe 2026-12-06: read as the frame check's).
    from defectlens.descriptor import GREY_REASON

    grey = dataclasses.replace(verdict, unlike_normal=GREY_REASON)
    assert "regions not typed: a grey image, where the model was fitted on colour images" in type_with_notes(
        prepare_analysis(taxonomy, None, 5, "template"), noise, grey)[1]
    assert report.writer == "template" and report.to_json()["unlike_normal"] == verdict.unlike_normal
    assert any("language model is not asked" in n for n in report.notes)
    # Said on the terminal too, below the drift note's eight images (camera probe 2026-12-06: the table showed it as any
    # DEFECTIVE part with its types blank, the reason in its files alone).
    from PIL import Image
    from typer.testing import CliRunner

    from defectlens.cli import app

    folder = tmp_path / "lot"
    folder.mkdir()
    Image.fromarray(noise).save(folder / "noise.png")
    Image.fromarray(np.stack([texture(np.random.default_rng(13), 96, 128)] * 3, -1)).save(folder / "part.png")
    result = CliRunner().invoke(app, ["inspect", str(checked_model), str(folder), "-o", str(tmp_path / "out")])
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and "note: 1 image(s) judged unlike every normal image, whatever their score" in said, said
    assert "(e.g. noise.png: the whole image is unlike every normal one: a large defect, another part or a faulty frame)" in said


def test_models_without_a_frame_check_load_and_a_damaged_one_is_refused(checked_model, tmp_path):
    tensors = load_file(str(checked_model / BANK_FILE))
    older = tmp_path / "older"
    shutil.copytree(checked_model, older)
    # As saved before the check existed: loads, and judges by the score alone.
    save_file({k: v for k, v in tensors.items() if not k.startswith("frame_check_")}, str(older / BANK_FILE),
              metadata={"format": json.loads((checked_model / "detector.json").read_text())["format"], "version": "2"})
    assert Inspector.load(older).detector.frame_check is None
    save_file({k: v for k, v in tensors.items() if k != "frame_check_limit"}, str(older / BANK_FILE),
              metadata={"format": "defectlens.memory-bank", "version": "2"})
    with pytest.raises(ModelFileError, match="frame check is damaged"):
        Inspector.load(older)


def test_operating_point_counts_the_verdicts_inspect_gives():
    # Scores alone would flag one defective image of two; the frame check flagged the other.
    point = verdict_point(5.0, [1, 1, 0, 0], [True, True, False, True])
    assert (point.recall, point.false_alarm_rate) == (1.0, 0.5)
    assert np.isnan(verdict_point(float("nan"), [1, 0], [True, False]).recall)


def test_an_exported_model_checks_frames_alike(checked_model, tmp_path):
    pytest.importorskip("onnxruntime")
    from defectlens.export import export_model

    export_model(checked_model, tmp_path / "exported")
    exported, original = Inspector.load(tmp_path / "exported"), Inspector.load(checked_model)
    assert exported.detector.frame_check is not None and exported.detector.frame_check.limit == original.detector.frame_check.limit
    noise = np.random.default_rng(13).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    verdict = exported.inspect(noise)
    assert verdict.is_defective and verdict.unlike_normal


def test_calibrate_counts_frames_unlike_every_normal_one_as_inspect_will(checked_model, tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from defectlens.cli import app
    from tests.conftest import plant_square

    rng = np.random.default_rng(14)
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    for i in range(4):
        Image.fromarray(texture(rng, 96, 128)).save(good / f"g{i}.png")
        Image.fromarray(plant_square(texture(rng, 96, 128), 30, 40, 16)).save(bad / f"square{i}.png")
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(bad / "noise.png")
    result = CliRunner().invoke(app, ["calibrate", str(checked_model), "--good", str(good), "--defective", str(bad), "--dry-run",
                                      "--plot", str(tmp_path / "roc.png")])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "0 good and" in text and "defective image(s) are unlike every normal one" in text
    # A noise frame among the good parts is a false alarm at any threshold: at a 1 % target on 5
    # good images none may be flagged, so the new threshold lets every other good part pass.
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(good / "noise.png")
    result = CliRunner().invoke(app, ["calibrate", str(checked_model), "--good", str(good), "--defective", str(bad), "--dry-run",
                                      "--max-false-alarms", "0.01", "--plot", str(tmp_path / "roc.png")])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "1 good and" in text and "images unlike every normal one alone flag 1 of 5 good image(s)" in text
    new_row = next(line for line in result.output.splitlines() if "new (" in line)
    assert "20.0%" in new_row  # the noise frame only: 1 of 5
    # Every good image unlike the normal ones: not a set to calibrate on.
    noise_only = tmp_path / "noise_only"
    noise_only.mkdir()
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(noise_only / "noise.png")
    result = CliRunner().invoke(app, ["calibrate", str(checked_model), "--good", str(noise_only), "--defective", str(bad), "--dry-run",
                                      "--plot", str(tmp_path / "roc.png")])
    assert result.exit_code == 2 and "unlike every normal image" in " ".join(result.output.split()), result.output


def _plate_with_a_noise_frame(tmp_path, rng: np.random.Generator, frame_folder: str):
    """A category of 3 training and 3 good test textures, and a frame of noise in ``frame_folder``."""
    from PIL import Image

    root = tmp_path / "plate"
    for sub in ("train/good", "test/good", frame_folder):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.fromarray(texture(rng, 96, 128)).save(root / "train/good" / f"{i}.png")
        Image.fromarray(texture(rng, 96, 128)).save(root / "test/good" / f"{i}.png")
    # Grey noise, as the grey parts' camera gives it (colour noise is said as a colour image too: its own test).
    Image.fromarray(rng.integers(0, 256, (96, 128), dtype=np.uint8)).save(root / frame_folder / "frame.png")
    return root


def test_evaluate_counts_and_says_what_the_frame_check_flagged(checked_model, tmp_path):
    from typer.testing import CliRunner

    from defectlens.cli import app

    rng = np.random.default_rng(15)
    root = _plate_with_a_noise_frame(tmp_path, rng, "test/noise")
    result = CliRunner().invoke(app, ["evaluate", str(checked_model), str(root), "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert (metrics["unlike_normal_good"], metrics["unlike_normal_defective"]) == (0, 1)
    assert metrics["recall_at_threshold"] == 1.0
    assert "0 good and 1 defective test image(s) are unlike every normal one (frame check)" in " ".join(result.output.split())


def test_with_the_global_score_on_the_check_shares_its_gaussian(tmp_path):
    # One Gaussian of the same images serves both: fitted once, saved once (the check keeps only
    # its limit), read back shared, and it still stops a noise frame.
    rng = np.random.default_rng(16)
    images = [np.stack([texture(rng, 96, 128)] * 3, -1) for _ in range(MIN_IMAGES + 2)]
    inspector = Inspector.fit(images, InspectorSettings(image_size=128, coreset_ratio=0.5, global_weight=0.5))
    detector = inspector.detector
    assert detector.frame_check is not None and detector.frame_check.gaussian is detector.global_score
    inspector.save(tmp_path / "m")
    saved = [k for k in load_file(str(tmp_path / "m" / BANK_FILE)) if k.startswith("frame_check_")]
    assert saved == ["frame_check_limit"]
    loaded = Inspector.load(tmp_path / "m").detector
    assert loaded.frame_check is not None and loaded.frame_check.gaussian is loaded.global_score
    assert loaded.frame_check.limit == detector.frame_check.limit
    noise = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    goods = [np.stack([texture(rng, 96, 128)] * 3, -1) for _ in range(3)]
    results = loaded.score([noise, *goods])
    assert results[0].unlike_normal is not None and all(r.unlike_normal is None for r in results[1:])


def test_a_strip_thinner_than_a_cell_is_judged_on_the_cells_it_covers(checked_model):
    # 32:1 on the canvas: no feature cell is half covered; the pooled features were a mean over no
    # cell (NaN, with numpy's warnings and "nan against a limit" in the verdict).
    inspector = Inspector.load(checked_model)
    strip = np.stack([texture(np.random.default_rng(5), 40, 1280)] * 3, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.warns(DefectlensWarning, match="1280x40"):
            verdict = inspector.inspect(strip)
    assert np.isfinite(verdict.score) and "nan" not in (verdict.unlike_normal or "")


def test_the_reference_point_counts_good_images_the_frame_check_flags(checked_model, tmp_path, monkeypatch):
    # Audit 2026-12-05: the 1 % reference was read on scores alone and said 0 false alarms where
    # `inspect` flags every good image the frame check stops, at any threshold.
    from PIL import Image

    from defectlens import Inspector
    from defectlens.evaluate.harness import evaluate_detection
    from defectlens.io import load_category

    rng = np.random.default_rng(17)
    root = _plate_with_a_noise_frame(tmp_path, rng, "test/good")  # the frame labelled good
    (root / "test/spot").mkdir()
    spot = texture(rng, 96, 128)
    spot[30:50, 40:60] = 255
    Image.fromarray(spot).save(root / "test/spot" / "s.png")
    evaluation, scored = evaluate_detection(Inspector.load(checked_model), load_category(root))
    assert evaluation.unlike_normal[0] == 1
    # One of 4 good images is flagged whatever the threshold: the reference cannot reach 1 %.
    assert evaluation.reference_point.false_alarm_rate == 0.25
    passing = [r.score for r in scored.records if r.defect_type == "good" and not r.unlike_normal]
    # Just above every passing good image (no passing defective score above them to sit midway to).
    # Above it by a margin a re-scored image's last digits do not cross, not one float step (threshold probe 2026-12-06).
    assert max(passing) + 1e-7 * max(passing) < evaluation.reference_point.threshold <= max(passing) * (1 + 1e-6)
    # At 34 %, floor(0.34 × 4) = 1 good image may be flagged, and the frame check's is that one: no passing good image more
    # (mutation audit 2026-12-06: an allowance counted on the 3 passing images alone, floor(0.34 × 3) = 1 more, said 0.5).
    import defectlens.evaluate.harness as harness

    monkeypatch.setattr(harness, "REFERENCE_FALSE_ALARM_RATE", 0.34)
    assert evaluate_detection(Inspector.load(checked_model), load_category(root))[0].reference_point.false_alarm_rate == 0.25


def test_an_image_far_smaller_or_of_another_shape_than_the_training_ones_is_said_so(checked_model, tmp_path):
    # Probe 2026-12-05: a quarter-size part (128×52 against 512×208) was "unlike every normal image" with
    # nothing said of its size; a portrait image of a landscape part too.
    inspector = Inspector.load(checked_model)
    assert inspector.provenance is not None and inspector.provenance.image_sizes == [[128, 96], [128, 96]]
    rng = np.random.default_rng(5)
    noise = np.repeat(rng.integers(0, 256, (96, 128, 1), dtype=np.uint8), 3, axis=2)  # grey, as the model's camera gives it
    same_size = inspector.inspect(noise)
    assert same_size.unlike_normal and "This image is" not in same_size.unlike_normal
    small = inspector.inspect(noise[:40, :50])
    assert small.unlike_normal and small.unlike_normal.endswith(
        "This image is 50×40, the training images 128×96: under half their area, it is a crop, a smaller scale or another view, and "
        "does not show what they show.")
    assert "under half their area" in build_report(small).text and build_report(small).text.endswith("hold it for manual review.")
    # A quarter of the area, each side half (regression probe 2026-12-06: a cookie cropped so kept its shape, and nothing was said).
    assert "under half their area" in (inspector.provenance.size_note(64, 48) or "")
    assert inspector.provenance.size_note(91, 68) is None  # just over half the area: a crop the model can still read
    assert "rotated, or another view" in (inspector.provenance.size_note(90, 200) or "")
    assert inspector.provenance.size_note(256, 190) is None  # larger, of the same shape: nothing to say
    assert "rotated" in (inspector.provenance.size_note(40, 60) or "")  # portrait: its shape first, however small
    # Of their shape and, as a whole, as close to them as 49 in 50 of them: the whole part at a smaller scale (a lower-resolution
    # camera's good parts had all failed the gate; scale probe 2026-12-06). Further away, or with no frame check: said.
    assert inspector.provenance.size_note(64, 48, frame_units=0.7) is None
    assert "under half their area" in (inspector.provenance.size_note(64, 48, frame_units=1.4) or "")
    assert "under half their area" in (inspector.provenance.size_note(64, 48, frame_units=None) or "")
    assert "rotated" in (inspector.provenance.size_note(40, 60, frame_units=0.2) or "")  # another shape: said, however close
    card = (checked_model / "card.md").read_text()
    assert "| training image sizes | 128×96 |" in card  # one size said once
    # Portrait and landscape images: each side's range, not "288×288 to 384×384", two sizes no image had (layout probe 2026-12-06).
    mixed = dataclasses.replace(inspector.provenance, image_sizes=[[288, 288], [384, 384]])
    assert mixed.sizes_text() == "288 to 384 wide, 288 to 384 high"
    assert dataclasses.replace(inspector.provenance, image_sizes=[[288, 200], [384, 200]]).sizes_text() == "288 to 384 wide, 200 high"
    # Said in the report whatever the frame check found (regression probe: a rotated part read "pitting, 100 %
    # of the image" with no word of its shape): through inspect's files, as a line reads them.
    rotated = np.ascontiguousarray(np.rot90(np.stack([texture(rng, 96, 128)] * 3, -1)))
    checked = inspector.inspect(rotated)
    assert checked.view_note is None and "is it rotated" in (checked.unlike_normal or "")  # the frame check's reason says it
    inspector.detector.frame_check = None  # a model without one, or a part the check passes
    assert "rotated, or another view" in (inspector.inspect(rotated).view_note or "")
    from PIL import Image
    from typer.testing import CliRunner

    from defectlens.cli import app

    inspector.save(tmp_path / "unchecked")
    Image.fromarray(rotated).save(tmp_path / "rotated.png")
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "unchecked"), str(tmp_path / "rotated.png"), "-o", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "rotated.report.json").read_text())
    # Beside the verdict, and wherever a verdict is read (camera probe 2026-12-06: a rotated cookie was a confident "crack"
    # on the card, in summary.csv, the JSON and the terminal, its size said in the report's notes alone).
    said = "This image is 96×128, the training images 128×96: is it rotated, or another view?"
    assert report["text"].split(". ", 1)[1].startswith(said) and "may be the view's, not the part's" in report["text"]
    assert json.loads((tmp_path / "out" / "rotated.json").read_text())["view_note"] == said
    assert said in (tmp_path / "out" / "index.html").read_text() and "1 image(s) of another size or shape" in result.output
    summary = (tmp_path / "out" / "summary.csv").read_text()
    assert "WARNING" not in summary
    (row,) = csv.DictReader(io.StringIO(summary))
    # In the report's text once (regression probe: twice a cell), and in a column of its own that a script reads (regression
    # probe 2026-12-06: a script gating on the verdict alone passed a good part in another view).
    assert row["report"].count(said) == 1 and row["view_note"] == said
    # Judged good in another view, a part has not passed: --fail-on-defect says so with its status.
    passed = CliRunner().invoke(app, ["inspect", str(tmp_path / "unchecked"), str(tmp_path / "rotated.png"), "-o", str(tmp_path / "gate"),
                                      "--threshold", "1e9", "--fail-on-defect"])
    assert passed.exit_code == 4 and "1 part(s) judged good in another view than the training images have not passed" in " ".join(
        passed.output.split()), passed.output


def test_a_grey_image_for_a_model_of_colour_parts_is_said_unlike_them_and_colour_is_on_the_card(tmp_path):
    # API probe 2026-12-05: grey (and BGR) good cookies given to a model of colour cookies were all flagged,
    # with nothing said of why.
    from defectlens.descriptor import render_card

    rng = np.random.default_rng(3)
    tint = np.array([1.0, 0.8, 0.55])
    colour = [np.clip(texture(rng, 64, 80)[..., None] * tint, 0, 255).astype(np.uint8) for _ in range(6)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DefectlensWarning)
        inspector = Inspector.fit(colour[:5], InspectorSettings(image_size=96, coreset_ratio=0.5))
        grey_model = Inspector.fit([c[..., 0] for c in colour[:5]], InspectorSettings(image_size=96, coreset_ratio=0.5))
    assert inspector.provenance is not None and inspector.provenance.colour is True
    assert grey_model.provenance is not None and grey_model.provenance.colour is False
    as_grey = colour[5].mean(axis=2).astype(np.uint8)
    judged = inspector.inspect(as_grey)
    assert judged.is_defective and judged.unlike_normal and "A grey image, where the model was fitted on colour images" in judged.unlike_normal
    assert inspector.inspect(colour[5]).unlike_normal is None
    # Said as its own cause, not as a frame check's "a large defect, another part, or a faulty frame?" (regression probe).
    from defectlens.descriptor import GREY_REASON
    from defectlens.explain.gallery import ResultRow, gallery_html

    words = build_report(judged).text
    assert GREY_REASON in words and "faulty frame" not in words
    # What else was said of the image stays in the summary (round 2: a rotated part's size note was dropped).
    import dataclasses

    rotated = dataclasses.replace(judged, unlike_normal=f"{judged.unlike_normal} This image is 64×80, the training images 80×64: is it rotated?")
    assert "is it rotated?" in build_report(rotated).text
    card = gallery_html([ResultRow("g.png", "g", True, judged.score, 0, (), words, unlike_normal=judged.unlike_normal)], "t")
    assert "is the camera set to colour?" in card and "faulty frame" not in card
    # A grey image of another part: the frame check's reason and the size note on the card too (drift probe 2026-12-06: only
    # "is the camera set to colour?", and the camera set to colour would still see the wrong part).
    from defectlens.descriptor import FRAME_REASON

    other_part = f"{FRAME_REASON} (6.1 against a limit of 4.3): a large defect, another part, or a faulty frame? {GREY_REASON} " \
                 "This image is 250×625, the training images 288×384: is it rotated, or another view?"
    card = gallery_html([ResultRow("g.png", "g", True, judged.score, 0, (), words, unlike_normal=other_part)], "t")
    assert "is the camera set to colour?" in card and "another part or a faulty frame" in card
    # After a "; ", as one sentence goes on (regression probe 2026-12-06: "…colour?; This image is…").
    assert "frame; this image is 250×625, the training images 288×384: is it rotated, or another view?" in card
    # In the report, each sentence starts as one, and what is under the camera is asked of too (camera probe 2026-12-06).
    text = build_report(dataclasses.replace(judged, unlike_normal=other_part)).text
    assert ". The whole image is unlike every normal image (6.1" in text and ". the whole" not in text
    assert "Check the camera's settings and what is under it, and hold the part" in text
    assert "Check the camera's settings, and hold the part" in words  # grey alone: its settings
    # A model of grey parts reads grey images as ever; the batch path says it as inspect() does.
    assert grey_model.inspect(as_grey).unlike_normal is None
    from PIL import Image

    Image.fromarray(as_grey).save(tmp_path / "grey.png")
    batch = inspector.inspect_batch([tmp_path / "grey.png"])
    assert batch.images[0].inspection.unlike_normal == judged.unlike_normal
    # evaluate counts them apart, as their own cause (README audit: its note blamed the frame check alone).
    from defectlens.evaluate.harness import evaluate_detection
    from defectlens.io import load_category

    for kind, pictures in (("good", [as_grey, colour[5]]), ("spot", [colour[4]])):
        (tmp_path / "cat" / "test" / kind).mkdir(parents=True)
        for i, picture in enumerate(pictures):
            Image.fromarray(picture).save(tmp_path / "cat" / "test" / kind / f"{i}.png")
    evaluation, _ = evaluate_detection(inspector, load_category(tmp_path / "cat"))
    assert evaluation.unlike_normal[0] >= 1 and evaluation.unlike_grey == 1 and evaluation.to_json()["unlike_normal_grey"] == 1
    # Kept with the model, and on its card.
    inspector.save(tmp_path / "m")
    loaded = Inspector.load(tmp_path / "m")
    assert loaded.provenance is not None and loaded.provenance.colour is True
    assert "training images in colour | yes" in render_card(loaded.descriptor())
    # calibrate on grey good images alone: the camera is named as the fix, not a re-fit on them (round 3).
    from typer.testing import CliRunner

    from defectlens.cli import app

    greys, bad = tmp_path / "greys", tmp_path / "bad"
    greys.mkdir()
    bad.mkdir()
    Image.fromarray(as_grey).save(greys / "g.png")
    Image.fromarray(colour[5]).save(bad / "b.png")  # not one it was fitted on: that is refused as one part under two labels
    refused = CliRunner().invoke(app, ["calibrate", str(tmp_path / "m"), "--good", str(greys), "--defective", str(bad), "--dry-run"])
    said = " ".join(refused.output.split())
    assert refused.exit_code == 2 and "1 of them grey, where the model was fitted on colour images" in said, said
    assert "set the camera to colour" in said
    # Two cameras on one line, grey images among the colour ones: no such check, and the mix is warned of
    # (regression probe: "most in colour" had made every grey good part of such a line defective).
    with pytest.warns(DefectlensWarning, match=r"2 of the 5 normal images checked are grey and the others in colour \(two cameras\?\)"):
        mixed = Inspector.fit([*colour[:3], *(c.mean(axis=2).astype(np.uint8) for c in colour[3:5])],
                              InspectorSettings(image_size=96, coreset_ratio=0.5))
    assert mixed.provenance is not None and mixed.provenance.colour is False and mixed.inspect(as_grey).unlike_normal is None


def test_drift_is_said_over_a_batch_whose_images_moved_away_from_the_normal_ones():
    from defectlens.detect.frame_check import DRIFT_MIN_IMAGES, drift_note

    assert drift_note([3.0] * (DRIFT_MIN_IMAGES - 1) + [None] * 5) is None  # too few known to say
    assert drift_note([0.2] * 5 + [3.0] * 4) is None  # a few far ones (large defects) are no drift
    note = drift_note([0.2] * 4 + [3.0] * 5 + [None])
    assert note is not None and note.startswith("5 of 9 images lie further from the normal images") and "focus" in note
    # More than half by count: 4 of 8 is not (regression probe: the median of the middle two had said so).
    assert drift_note([0, 0, 0, 0.9, 1.5, 2, 2, 2]) is None
    # Most of those beyond it unlike every normal one: another part or the wrong model, not a refit (regression probe).
    other = drift_note([6.0] * 9 + [0.1] * 2, [True] * 9 + [False] * 2)
    assert other is not None and "(median frame distance 6.0), all of them unlike every normal one: another part, the wrong model" in other
    assert other.startswith("9 of 11 images") and "refit" not in other
    # Good parts by their labels (evaluate's): no defect offered as the cause (regression probe 2026-12-06).
    labelled = drift_note([0.2] * 4 + [3.0] * 5, labelled_good=True)
    assert labelled is not None and "large defects" not in labelled and "these figures are of the camera as it is now" in labelled
    # A few among blurred frames too (regression probe round 2: 4 commutators among 5 blurred cookies, told to refit).
    mixed = drift_note([2.2] * 5 + [6.0] * 4, [False] * 5 + [True] * 4)
    assert mixed is not None and "9 of 9" in mixed and "4 of them unlike every normal one" in mixed and "refit" not in mixed
    assert "refit only if the line's images are meant to look so" in (note or "")


def test_a_blurred_line_is_said_to_drift_from_the_fit_in_the_json_the_terminal_and_the_gallery(checked_model, tmp_path):
    # Drift probe 2026-12-06: good cookies blurred by sigma 2 (a camera losing focus): 9 of 14 flagged, no image over the
    # frame check's limit, and nothing said.
    from PIL import Image, ImageFilter
    from typer.testing import CliRunner

    from defectlens.cli import app

    rng = np.random.default_rng(31)
    sharp, blurred = tmp_path / "sharp", tmp_path / "blurred"
    sharp.mkdir(), blurred.mkdir()
    for i in range(8):
        image = Image.fromarray(np.stack([texture(rng, 96, 128)] * 3, -1))
        image.save(sharp / f"part-{i}.png")
        image.filter(ImageFilter.GaussianBlur(2)).save(blurred / f"part-{i}.png")
    inspector = Inspector.load(checked_model)
    good = inspector.inspect(str(sharp / "part-0.png"))
    far = inspector.inspect(str(blurred / "part-0.png"))
    assert good.frame_units is not None and far.frame_units is not None and far.frame_units > 1 > good.frame_units
    assert far.to_json()["frame_units"] == round(far.frame_units, 3)
    # In Python, a batch says it too, apart from the detector's warnings (inspect says it once over a run).
    batch = inspector.inspect_batch(sorted(blurred.iterdir()))
    assert batch.drift is not None and "8 of 8 images lie further" in batch.drift and not batch.warnings
    assert inspector.inspect_batch(sorted(sharp.iterdir())).drift is None
    runner = CliRunner()
    for folder, drifted in ((sharp, False), (blurred, True)):
        out = tmp_path / f"out-{folder.name}"
        result = runner.invoke(app, ["inspect", str(checked_model), str(folder), "-o", str(out)])
        said = " ".join(result.output.split())
        assert result.exit_code == 0, result.output
        assert json.loads((out / "part-1.json").read_text())["frame_units"] is not None
        assert ("images lie further from the normal images" in said) is drifted, said
        # (Blurred by 2 pixels, these synthetic parts are beyond the frame check's limit too: the note asks what is under the camera.)
        assert ("images lie further from the normal images, as a whole" in (out / "index.html").read_text()) is drifted
        assert ("a camera out of focus or faulty?" in said) is drifted
    # `evaluate` says it of its good test images too (camera probe 2026-12-06: its figures had read as the fit's camera's).
    spots = tmp_path / "spots"
    spots.mkdir()
    for i in range(2):
        part = np.stack([texture(rng, 96, 128)] * 3, -1)
        part[30:50, 40:60] = 0
        Image.fromarray(part).save(spots / f"spot-{i}.png")
    for folder, drifted in ((sharp, False), (blurred, True)):
        report = tmp_path / f"metrics-{folder.name}.json"
        result = runner.invoke(app, ["evaluate", str(checked_model), "--good", str(folder), "--defective", str(spots), "--json", str(report)])
        said = " ".join(result.output.split())
        assert result.exit_code == 0, result.output
        assert ("warning: the good test images: 8 of 8 images lie further from the normal images" in said) is drifted, said
        # Good by their labels: no "unless most of these parts bear large defects" (regression probe 2026-12-06).
        assert ("before trusting these figures" in said) is drifted and "large defects" not in said and "these verdicts" not in said
        assert (json.loads(report.read_text())["drift_of_good_images"] is not None) is drifted


def test_inspect_with_the_language_model_says_which_images_it_was_not_asked_about(checked_model, tmp_path, monkeypatch):
    # Regression probe 2026-12-06: a frame unlike every normal one, about which the model is never asked, was counted as a
    # text "rejected by the checks, or the model failed".
    from PIL import Image

    from defectlens.explain import llm as llm_module
    from defectlens.explain.llm import LMText

    monkeypatch.setattr(llm_module.LMWriter, "write", lambda self, report: LMText("The part is good; no defect.", 0.01, ""))
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(folder / "noise.png")
    Image.fromarray(np.stack([texture(rng, 96, 128)] * 3, -1)).save(folder / "part.png")
    from typer.testing import CliRunner

    from defectlens.cli import app

    result = CliRunner().invoke(app, ["inspect", str(checked_model), str(folder), "-o", str(tmp_path / "out"), "--writer", "llm"])
    said = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "the language model was not asked about 1 of 2 image(s), unlike every normal one" in said
    assert "was not used for" not in said


def test_a_colour_image_for_a_model_of_grey_parts_is_said_unlike_them_and_grey_is_on_the_card(tmp_path):
    # Small-shop probe 2026-12-07: a tinted photo of a good part on a model fitted on grey images was flagged with no reason
    # given (or the frame check's "a large defect, another part or a faulty frame"), and the card's "no, or not all" could not
    # tell grey parts from a mix of grey and colour.
    from defectlens.descriptor import COLOUR_REASON, render_card
    from defectlens.explain.gallery import ResultRow, gallery_html

    rng = np.random.default_rng(21)
    grey = [texture(rng, 64, 80) for _ in range(6)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DefectlensWarning)
        grey_model = Inspector.fit(grey[:5], InspectorSettings(image_size=96, coreset_ratio=0.5))
        mixed = Inspector.fit([*grey[:4], np.stack([grey[4], grey[4] // 2, grey[4]], axis=2)], InspectorSettings(image_size=96, coreset_ratio=0.5))
    assert grey_model.provenance is not None and (grey_model.provenance.colour, grey_model.provenance.grey) == (False, True)
    tinted = np.clip(grey[5][..., None] * np.array([1.0, 0.8, 0.6]), 0, 255).astype(np.uint8)
    judged = grey_model.inspect(tinted)
    assert judged.is_defective and judged.unlike_normal is not None and COLOUR_REASON in judged.unlike_normal
    assert grey_model.inspect(grey[5]).unlike_normal is None
    words = build_report(judged).text
    assert COLOUR_REASON in words and "faulty frame" not in words and "Check the camera's settings, and hold the part" in words
    card = gallery_html([ResultRow("c.png", "c", True, judged.score, 0, (), words, unlike_normal=judged.unlike_normal)], "t")
    assert "a colour image, where the model was fitted on grey images: is the camera set to grey?" in card and "faulty frame" not in card
    # A model of a mix judges both alike; the card tells the three apart.
    assert mixed.provenance is not None and (mixed.provenance.colour, mixed.provenance.grey) == (False, False)
    assert mixed.inspect(tinted).unlike_normal is None or COLOUR_REASON not in str(mixed.inspect(tinted).unlike_normal)
    grey_model.save(tmp_path / "g")
    mixed.save(tmp_path / "m")
    assert "training images in colour | no (grey)" in render_card(Inspector.load(tmp_path / "g").descriptor())
    assert "training images in colour | some" in render_card(Inspector.load(tmp_path / "m").descriptor())
    # A cast of a level or two (a camera's white balance) is no colour image (regression probe 2026-12-07: blue +1 was).
    cast = np.stack([grey[5], grey[5], np.minimum(grey[5].astype(int) + 2, 255).astype(np.uint8)], axis=2)
    assert COLOUR_REASON not in str(grey_model.inspect(cast).unlike_normal)
    # Nor is a grey part from a colour camera, each channel's noise its own (σ 2.7 had read as a mean difference of 3.1:
    # regression probe 2026-12-07); a part of faint colour over all of it still is.
    from defectlens.io import is_grey

    noisy = np.clip(grey[5][..., None] + rng.normal(0, 2.7, (*grey[5].shape, 3)), 0, 255).round().astype(np.uint8)
    assert is_grey(noisy) and not is_grey(np.clip(grey[5][..., None] + np.array([0, 0, 4]), 0, 255).astype(np.uint8))
    assert is_grey(noisy[:9, :9]) and not is_grey(tinted[:9, :9])
    # A fine pattern of vivid colours is colour, however its colours average (regression probe: blocks of 8 read it grey).
    cells = (np.indices((64, 64)).sum(axis=0) // 2) % 2 == 1
    checker = np.where(cells[..., None], np.array([255, 0, 255], np.uint8), np.array([0, 255, 0], np.uint8))
    assert not is_grey(checker.astype(np.uint8))
    stripes = np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200]], np.uint8)[(np.arange(96) // 4) % 3][None].repeat(64, axis=0)
    assert not is_grey(stripes)  # red, green and blue stripes of 4 pixels (3 x 3 windows had read them grey)
    # A grey part with edges 10 pixels apart through a colour camera's bilinear demosaicing: fringes at its edges, grey still.
    from scipy import ndimage

    y, x = np.mgrid[:128, :128]
    scene = 128 + 60 * np.sign(np.sin(2 * np.pi * x / 20) * np.sin(2 * np.pi * y / 26))
    red, blue = (y % 2 == 0) & (x % 2 == 0), (y % 2 == 1) & (x % 2 == 1)
    green_kernel, other_kernel = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]]) / 4, np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4
    demosaiced = np.dstack([ndimage.convolve(np.where(m, scene, 0), k, mode="mirror")
                            for m, k in ((red, other_kernel), (~(red | blue), green_kernel), (blue, other_kernel))])
    assert is_grey(np.clip(np.rint(demosaiced), 0, 255).astype(np.uint8))
    # evaluate and calibrate count them apart and name the camera, not the frame check (regression probe 2026-12-07).
    from PIL import Image
    from typer.testing import CliRunner

    from defectlens.cli import app
    from defectlens.evaluate.harness import evaluate_detection
    from defectlens.io import load_category

    for kind, pictures in (("good", [tinted, grey[5]]), ("spot", [tinted[::-1].copy()])):
        (tmp_path / "cat" / "test" / kind).mkdir(parents=True)
        for i, picture in enumerate(pictures):
            Image.fromarray(picture).save(tmp_path / "cat" / "test" / kind / f"{i}.png")
    evaluation, _ = evaluate_detection(grey_model, load_category(tmp_path / "cat"))
    assert evaluation.unlike_colour == 2 and evaluation.to_json()["unlike_normal_colour"] == 2 and evaluation.unlike_grey == 0
    (tmp_path / "colour_good").mkdir()
    Image.fromarray(tinted).save(tmp_path / "colour_good" / "0.png")
    result = CliRunner().invoke(app, ["calibrate", str(tmp_path / "g"), "--good", str(tmp_path / "colour_good"), "--defective",
                                      str(tmp_path / "cat" / "test" / "spot"), "--dry-run"])
    said = " ".join(result.output.split())
    # Of the good images only: the colour defective one had been counted among them ("2 of them colour": regression probe).
    assert result.exit_code == 2 and "1 of them colour, where the model was fitted on grey images — fix: set the camera to grey" in said, said
