"""The evaluation harness on the synthetic category: streamed pixels, compact records, the operating point."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from defectlens import Inspector
from defectlens.cli import app
from defectlens.detect import threshold_for_false_alarms
from defectlens.evaluate.harness import REFERENCE_NOTE, evaluate_detection
from defectlens.evaluate.metrics import detection_metrics
from defectlens.io import load_category, load_image, load_mask

runner = CliRunner()


def test_streamed_evaluation_equals_the_list_based_metrics(fitted_model, synthetic_category):
    inspector = Inspector.load(fitted_model)
    category = load_category(synthetic_category)
    evaluation, scored = evaluate_detection(inspector, category)
    # Records keep the verdict and regions, not the maps.
    assert not scored.inspections and not scored.images
    assert scored.pixels.n_images == evaluation.n_test == 8
    # The same numbers as holding every map and mask and computing the metrics on the lists.
    masks, maps, labels, scores = [], [], [], []
    for item in category.test:
        image = load_image(item.path)
        h, w = image.shape[:2]
        inspection = inspector.inspect(image, str(item.path))
        masks.append(load_mask(item.mask_path, (w, h)) if item.mask_path else np.zeros((h, w), bool))
        maps.append(inspection.anomaly_map)
        labels.append(int(item.is_defective))
        scores.append(inspection.score)
    reference = detection_metrics(labels, scores, masks, maps)
    assert evaluation.metrics.pixel_auroc == pytest.approx(reference.pixel_auroc, abs=1e-6)
    assert evaluation.metrics.aupro == pytest.approx(reference.aupro, abs=1e-6)
    assert evaluation.metrics.image_auroc == reference.image_auroc
    # The operating point is the inspector's own verdicts counted.
    verdicts = {r.source: r.is_defective for r in scored.records}
    defective = [r.source for r in scored.records if r.defect_type != "good"]
    good = [r.source for r in scored.records if r.defect_type == "good"]
    assert evaluation.threshold_source == inspector.thresholds.source == "normal-quantile"
    assert evaluation.operating_point.threshold == inspector.thresholds.image
    assert evaluation.operating_point.recall == sum(verdicts[s] for s in defective) / len(defective)
    assert evaluation.operating_point.false_alarm_rate == sum(verdicts[s] for s in good) / len(good)
    good_scores = [r.score for r in scored.records if r.defect_type == "good"]
    defective_scores = [r.score for r in scored.records if r.defect_type != "good"]
    # The threshold calibrate would save on these labels: midway above the highest good score.
    assert evaluation.reference_point.threshold == threshold_for_false_alarms(good_scores, 0.01, defective_scores) > max(good_scores)
    assert evaluation.reference_point.false_alarm_rate == 0.0
    assert (evaluation.n_good, evaluation.n_defective) == (4, 4)


def test_keep_images_keeps_full_inspections(fitted_model, synthetic_category):
    _, scored = evaluate_detection(Inspector.load(fitted_model), load_category(synthetic_category), keep_images=True)
    assert len(scored.inspections) == len(scored.images) == len(scored.records) == 8
    assert [i.source for i in scored.inspections] == scored.sources


def test_evaluate_reports_the_operating_point(fitted_model, synthetic_category, tmp_path):
    inspector = Inspector.load(fitted_model)
    user_model = tmp_path / "model"
    inspector.set_thresholds(image=inspector.thresholds.image * 0.5)
    inspector.save(user_model)
    metrics_file = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", str(user_model), str(synthetic_category), "--json", str(metrics_file)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(metrics_file.read_text())
    assert metrics["threshold_source"] == "user" and metrics["image_threshold"] == pytest.approx(inspector.thresholds.image)
    assert metrics["false_alarm_target"] is None and "(set for" not in result.output  # a user's threshold states no rate
    assert 0.0 <= metrics["recall_at_threshold"] <= 1.0 and 0.0 <= metrics["false_alarm_rate_at_threshold"] <= 1.0
    reference = metrics["reference_1pct_false_alarms"]
    assert reference["note"] == REFERENCE_NOTE and reference["target_false_alarm_rate"] == 0.01
    assert reference["false_alarm_rate"] == 0.0 and reference["recall"] == 1.0  # spots are easy
    text = " ".join(result.output.split())
    assert "(user)" in text and "from test labels, for reference: not a deployable threshold" in text
    assert "4 defective and 4 good test images" in text


def test_evaluation_says_repeated_images_and_refuses_one_part_under_both_labels(fitted_model, synthetic_category, tmp_path):
    # Metrics audit 2026-12-06: a crack copied into test/good (image AUROC 1.0 -> 0.94), a duplicated test image and a copy of
    # a training image in a test folder beside no train/ all went without a word.
    import dataclasses
    import shutil

    from defectlens.errors import DatasetLayoutError

    inspector = Inspector.load(fitted_model)
    train = synthetic_category / "train" / "good"
    inspector.provenance = dataclasses.replace(inspector.provenance, trained_on=str(train))
    plant = tmp_path / "plant"
    shutil.copytree(synthetic_category / "test", plant / "test")
    shutil.copytree(synthetic_category / "ground_truth", plant / "ground_truth")
    good = sorted((plant / "test" / "good").glob("*.png"))
    from PIL import Image

    # Re-saved copies (other bytes, the same pictures): told apart by their pixels (regression probe 2026-12-06: by bytes,
    # a re-saved crack in test/good and a re-saved training image went without a word).
    for original, copy in ((good[0], "again.png"), (sorted(train.glob("*.png"))[0], "from_training.png")):
        with Image.open(original) as im:
            im.save(plant / "test" / "good" / copy, compress_level=0)
        assert (plant / "test" / "good" / copy).read_bytes() != original.read_bytes()
    evaluation, _ = evaluate_detection(inspector, load_category(plant))
    assert evaluation.repeated_test == [f"{plant / 'test' / 'good' / 'again.png'} is {good[0]}"]
    assert evaluation.copies_of_train == [str(plant / "test" / "good" / "from_training.png")]
    assert evaluation.to_json()["repeated_test"] == evaluation.repeated_test
    with Image.open(sorted((plant / "test" / "spot").glob("*.png"))[0]) as im:
        im.save(plant / "test" / "good" / "a_crack.png", compress_level=0)
    with pytest.raises(DatasetLayoutError, match=r"1 defective test image\(s\) are copies of good ones, pixel for pixel"):
        evaluate_detection(inspector, load_category(plant))


def test_time_per_image_counts_images_not_their_unusable_masks(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Own-dataset probe 2026-12-07: masks of the wrong size, listed as failures while their images were scored, were
    # counted as images too (14 images and 8 such masks timed as 22: ms_per_image 11 against 18 ms).
    import shutil

    from PIL import Image

    import defectlens.evaluate.harness as harness

    plant = tmp_path / "plant"
    shutil.copytree(synthetic_category, plant)
    for mask in (plant / "ground_truth" / "spot").iterdir():
        Image.new("L", (10, 10), 255).save(mask)  # not the image's size: unusable
    timed = harness.run_inspections

    def eight_seconds(*args, **kwargs):
        scored, failures, _ = timed(*args, **kwargs)
        return scored, failures, 8.0

    monkeypatch.setattr(harness, "run_inspections", eight_seconds)
    evaluation, _ = evaluate_detection(Inspector.load(fitted_model), load_category(plant))
    assert evaluation.n_test == 8 and len(evaluation.failures) == 4
    assert evaluation.ms_per_image == pytest.approx(1000.0)
