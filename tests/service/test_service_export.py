"""`defectlens export-reviews`: reviewed inspections become an examples folder that
`inspect --examples` reads and a good/defective calibration set; and the `serve` command's checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from service_helpers import make_app, upload
from typer.testing import CliRunner

from defectlens.classify.examples import examples_from_folders
from defectlens.cli import app as cli
from defectlens.errors import ConfigError
from defectlens.service.models import ModelPool, load_model


def test_export_reviews_writes_examples_and_calibration(pool: ModelPool, images: dict[str, Path], db_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with make_app(pool, db_url, data) as client:
        bad = upload(client, images["bad"]).json()
        good = upload(client, images["good"]).json()
        upload(client, images["bad"], name="never-reviewed.png")
        idx = bad["regions"][0]["index"]
        client.post(f"/inspections/{bad['id']}/review", json={"reviewer": "Ana", "regions": [{"index": idx, "type": "scratch"}]})
        client.post(f"/inspections/{good['id']}/review", json={"reviewer": "Ben", "missed": [{"type": "spot", "bbox": [4, 6, 20, 16]}]})
        # A false alarm reviewed good, its region still typed as the page had it selected: it was
        # kept as a confirmed scratch, and exported as an example of a scratch on a good part.
        alarm = upload(client, images["bad"], name="false-alarm.png").json()
        reviewed = client.post(f"/inspections/{alarm['id']}/review",
                               json={"reviewer": "Cy", "verdict": "good", "regions": [{"index": idx, "type": "scratch"}]}).json()
        assert reviewed["final_verdict"] == "good" and {r["type"] for r in reviewed["regions"]} == {"not-a-defect"}
    out = tmp_path / "export"
    result = CliRunner().invoke(cli, ["export-reviews", "--db", db_url, "--data-dir", str(data), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 reviewed inspection(s): 1 good, 2 defective" in result.output
    assert len(list((out / "calibration" / "defective").glob("*.png"))) == 2
    assert len(list((out / "calibration" / "good").iterdir())) == 1
    examples = examples_from_folders(out / "examples")
    assert sorted(e.defect_type for e in examples.examples) == ["scratch", "spot"]
    assert all(e.mask_path is not None for e in examples.examples)
    spot = next(e for e in examples.examples if e.defect_type == "spot")
    mask = np.asarray(Image.open(spot.mask_path)) > 0  # type: ignore[arg-type]
    assert mask.sum() == 16 * 10 and mask[6:16, 4:20].all()
    scratch = next(e for e in examples.examples if e.defect_type == "scratch")
    assert (np.asarray(Image.open(scratch.mask_path)) > 0).sum() == bad["regions"][0]["area_px"]  # type: ignore[arg-type]
    manifest = json.loads((out / "manifest.json").read_text())
    assert {m["reviewed_by"] for m in manifest["inspections"]} == {"Ana", "Ben", "Cy"}
    # Run again: the earlier export is replaced whole; a folder that is not an export is refused.
    assert CliRunner().invoke(cli, ["export-reviews", "--db", db_url, "--data-dir", str(data), "-o", str(out)]).exit_code == 0
    other = tmp_path / "precious"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    refused = CliRunner().invoke(cli, ["export-reviews", "--db", db_url, "--data-dir", str(data), "-o", str(other)])
    assert refused.exit_code == 2 and (other / "keep.txt").read_text() == "mine"


def test_export_with_database_down_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(cli, ["export-reviews", "--db", "postgresql+psycopg://x@127.0.0.1:9/none", "--data-dir", str(tmp_path / "data"),
                                      "-o", str(tmp_path / "o")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "database unavailable" in text and "Traceback" not in text


def test_export_from_a_data_folder_that_does_not_exist_creates_nothing(tmp_path: Path, monkeypatch) -> None:
    # The default data folder is relative to where the command runs: from elsewhere, it is not
    # there, and reading the service's images from it must not make one.
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["export-reviews", "-o", str(tmp_path / "o")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "no service data folder" in text and "--data-dir" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_serve_refuses_a_missing_model_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "nope"), "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 2 and "model folder not found" in " ".join(result.output.split())


def test_serve_refuses_a_model_that_scores_images_against_each_other(tmp_path: Path) -> None:
    # Batch scoring needs the other images of a lot; uploads arrive one by one.
    (tmp_path / "part").mkdir()
    model = tmp_path / "batch"
    assert CliRunner().invoke(cli, ["fit", str(tmp_path / "part"), "-o", str(model), "--detector", "batch-scoring"]).exit_code == 0
    # Checked on the loader `serve` calls first: were the check missing, `serve` would start and never return.
    with pytest.raises(ConfigError, match="scores images only against others inspected with them"):
        load_model(model)
