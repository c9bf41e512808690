"""The command line end to end on a synthetic category, including bad input."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from defectlens.cli import app
from defectlens.io import write_text_atomic

runner = CliRunner()


def test_fit_inspect_evaluate(synthetic_category, tmp_path):
    model = tmp_path / "model"
    result = runner.invoke(app, ["fit", str(synthetic_category), "-o", str(model), "--image-size", "128", "--coreset-ratio", "0.5"])
    assert result.exit_code == 0, result.output
    assert (model / "detector.json").is_file() and (model / "memory_bank.safetensors").is_file()

    out = tmp_path / "out"
    result = runner.invoke(app, ["inspect", str(model), str(synthetic_category / "test"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    jsons = sorted(out.glob("*.json"))
    assert len(jsons) == 8 and len(list(out.glob("*.png"))) == 8  # same stems in two folders get unique names
    verdicts = [json.loads(p.read_text())["is_defective"] for p in jsons]
    assert sum(verdicts) >= 4

    metrics_file = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", str(model), str(synthetic_category), "--json", str(metrics_file)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(metrics_file.read_text())
    for key in ("image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_ap", "pixel_f1max", "aupro", "ms_per_image", "fit_seconds", "n_test"):
        assert key in metrics
    assert metrics["n_test"] == 8 and metrics["image_auroc"] == 1.0 and 0.9 < metrics["pixel_auroc"] <= 1.0


def test_batch_continues_past_bad_images(fitted_model, synthetic_category, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    shutil.copy(synthetic_category / "test/spot/000.png", folder / "a.png")
    (folder / "b.png").write_bytes(b"")
    (folder / "c.png").write_bytes((synthetic_category / "test/spot/001.png").read_bytes()[:80])
    out = tmp_path / "out"
    result = runner.invoke(app, ["inspect", str(fitted_model), str(folder), str(tmp_path / "missing.png"), "-o", str(out)])
    assert result.exit_code == 3, result.output
    assert (out / "a.json").is_file() and not (out / "b.json").exists()
    text = " ".join(result.output.split())
    assert "3 input(s) skipped" in text and "b.png" in text and "c.png" in text and "missing.png" in text


def test_clear_errors_for_bad_folders(tmp_path, fitted_model):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["fit", str(empty), "-o", str(tmp_path / "m")])
    assert result.exit_code == 2 and "no images found" in " ".join(result.output.split())

    no_train = tmp_path / "cat"
    (no_train / "test/good").mkdir(parents=True)
    from PIL import Image

    Image.new("L", (32, 32)).save(no_train / "test/good/0.png")
    result = runner.invoke(app, ["fit", str(no_train), "-o", str(tmp_path / "m")])
    assert result.exit_code == 2 and "train/good" in " ".join(result.output.split())

    result = runner.invoke(app, ["inspect", str(fitted_model), str(empty), "-o", str(tmp_path / "o")])
    assert result.exit_code == 3 and "holds no images" in " ".join(result.output.split())

    result = runner.invoke(app, ["inspect", str(tmp_path / "nomodel"), str(empty), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "run `defectlens fit` first" in " ".join(result.output.split())


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "result.json"
    write_text_atomic(target, "old")

    class Boom(Exception):
        pass

    from defectlens.io import atomic_write

    with pytest.raises(Boom):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise Boom
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]
