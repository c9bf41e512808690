"""The benchmark scripts on ``benchmarks/common.py``: a missing category refused in one line before any work or any file,
results written where ``--out`` says with the run's record, and the categories of earlier runs kept and named."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))


def run_main(monkeypatch, script: str, *args: str | Path) -> None:
    """``benchmarks/<script>.py``'s ``main()`` with ``args`` on its command line."""
    module = importlib.import_module(script)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *map(str, args)])
    module.main()


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("zero_shot", ["--only", "platee"]),
        ("located_examples", ["--category", "platee"]),
        ("global_score_study", ["--pair", "platee", "runs/none"]),
        ("throughput", ["--category", "platee"]),
        ("frame_check_study", ["--categories", "platee"]),
        ("neighbourhood_study", ["--categories", "platee"]),
    ],
)
def test_a_mistyped_category_is_one_line_before_any_work_or_file(script, args, synthetic_category, tmp_path, monkeypatch):
    # Benchmarks probe 2026-12-06: a mistyped category had been a traceback after minutes of work, or passed over in silence
    # (zero_shot's --only) with the results rewritten without it.
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        run_main(monkeypatch, script, "--data", synthetic_category.parent, "--out", out, *args)
    message = str(exc.value.code)
    assert "no category platee there (there: plate)" in message and "\n" not in message
    assert not out.exists()


def test_a_data_folder_without_runnable_categories_is_refused_in_one_line_by_the_script(tmp_path):
    # As a user runs it: exit status 1, one line on stderr, no --out folder made.
    (tmp_path / "data" / "plate").mkdir(parents=True)  # no normal images: nothing hot_spot can run
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "hot_spot.py"), "--data", str(tmp_path / "data"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{tmp_path / 'data'}: no category this benchmark can run")
    assert not out.exists()


@pytest.mark.slow  # a study run end to end (10-20 s): with the slow tests, so `make test` stays under 5 minutes
def test_the_drift_study_writes_where_out_says_with_its_run(synthetic_category, fitted_model, tmp_path, monkeypatch):
    committed = BENCHMARKS / "results" / "drift_study.json"
    before = committed.stat().st_mtime_ns if committed.is_file() else None
    out = tmp_path / "nested" / "out"  # made with its parents before the work
    run_main(monkeypatch, "drift_study", "--data", synthetic_category.parent, "--model", f"plate={fitted_model}", "--n", "1", "--out", out)
    saved = json.loads((out / "drift_study.json").read_text())
    assert set(saved) == {"plate", "run"} and saved["plate"]["good"]["n"] == 1
    assert {"started_utc", "finished_utc", "commit", "load_average_at_start", "load_average_at_end"} <= set(saved["run"])
    assert "| good |" in (out / "drift_study.md").read_text(encoding="utf-8")
    # The committed results are not written over by a run sent elsewhere.
    assert (committed.stat().st_mtime_ns if committed.is_file() else None) == before


@pytest.fixture(scope="module")
def global_score_pair(tmp_path_factory) -> tuple[Path, Path]:
    """A category with 20 good and 20 defective test images (every seeded half of them holds good ones) and a model fitted on
    it as the study asks (normal statistics at the fusion unit's 98th percentile)."""
    from defectlens import Inspector, InspectorSettings
    from defectlens.io import load_category, load_image
    from tests.conftest import write_spot_category

    root = write_spot_category(tmp_path_factory.mktemp("data") / "plate", np.random.default_rng(3), 96, 128, 12,
                               [(10 + 3 * i, 10 + 5 * i, 12) for i in range(20)])
    images = [load_image(p) for p in load_category(root).train_good]
    model = tmp_path_factory.mktemp("model")
    Inspector.fit(images, InspectorSettings(image_size=128, coreset_ratio=0.5, false_alarm_target=0.02)).save(model)
    return root, model


@pytest.mark.slow  # a study run end to end (10-20 s): with the slow tests, so `make test` stays under 5 minutes
def test_the_global_score_study_keeps_and_names_categories_it_did_not_pair(global_score_pair, tmp_path, monkeypatch):
    root, model = global_score_pair
    out = tmp_path / "out"
    out.mkdir()
    cookie = {"model": "runs/cookie", "n_train": 3,
              "rows": {"bank alone": {"auroc": 0.9, "recall": 0.5, "half_recall": 0.4, "half_false_alarms": 0.03}}}
    (out / "global_score_study.json").write_text(json.dumps({"categories": {"cookie": cookie, "plate": {"stale": True}}}))
    run_main(monkeypatch, "global_score_study", "--data", root.parent, "--pair", "plate", model, "--out", out)
    saved = json.loads((out / "global_score_study.json").read_text())
    assert list(saved["categories"]) == ["plate", "cookie"] and saved["categories"]["cookie"] == cookie
    assert "stale" not in saved["categories"]["plate"] and saved["categories"]["plate"]["measured"]["commit"] == saved["run"]["commit"]
    assert saved["from_earlier_runs"] == ["cookie"] and "finished_utc" in saved["run"]
    table = (out / "global_score_study.md").read_text()
    assert "From an earlier run (kept, not measured by the latest): cookie." in table
    assert "| bank + 0.1 x mean, Ledoit-Wolf | " in table and " | – | " in table  # cookie has no row of it


def test_the_global_score_study_refuses_a_model_at_another_quantile_before_encoding(synthetic_category, fitted_model, tmp_path, monkeypatch):
    # The check had come after every image of the category was encoded.
    import global_score_study

    def encoded(*_args, **_kwargs):
        raise AssertionError("images encoded before the model was checked")

    monkeypatch.setattr(global_score_study, "image_vectors", encoded)
    with pytest.raises(SystemExit, match=r"refit it with --false-alarm-target 0\.02"):
        run_main(monkeypatch, "global_score_study", "--data", synthetic_category.parent, "--pair", "plate", fitted_model, "--out", tmp_path)
    assert not (tmp_path / "global_score_study.json").exists()


def test_the_neighbourhood_tables_name_the_categories_the_latest_run_did_not_cover(tmp_path, monkeypatch):
    row = {"image_auroc": 0.9, "pixel_auroc": 0.8, "aupro": 0.7}
    (tmp_path / "neighbourhood_study.json").write_text(json.dumps({
        "cookie": {"3": row}, "plate": {"3": {**row, "measured": {"utc": "2026-12-06T00:00:00+00:00", "commit": "abc"}}},
        "run": {"commit": "abc", "categories": ["plate"]},
    }))
    run_main(monkeypatch, "neighbourhood_study", "--tables", "--data", tmp_path / "nowhere", "--out", tmp_path)
    table = (tmp_path / "neighbourhood_study.md").read_text()
    assert "| 3 | 0.900 / 0.800 / 0.700 | 0.900 / 0.800 / 0.700 | 0.900 / 0.800 / 0.700 |" in table  # "run" is no category
    assert table.rstrip().endswith("From an earlier run (kept, not measured by the latest): cookie.")
    # Nothing to make the tables from: one line, no empty table written with status 0 (regression probe 2026-12-06).
    with pytest.raises(SystemExit, match=r"neighbourhood_study\.json: no results file to make the tables from"):
        run_main(monkeypatch, "neighbourhood_study", "--tables", "--out", tmp_path / "empty")
    assert not (tmp_path / "empty").exists()
    # Nor from one with no results, one cut short or one of another shape (the second regression probe: a table of no
    # rows and status 0; tracebacks); detector_study's the same (a traceback where there was none).
    for script, text, said in (("neighbourhood_study", "{}", "holds no results"),
                               ("neighbourhood_study", '{"run": {"categories": []}}', "holds no results"),
                               ("neighbourhood_study", '{"cookie": {"3"', "the results cannot be read"),
                               ("neighbourhood_study", "[]", "holds no results"),
                               ("detector_study", '{"rows": [], "meta": {}}', "holds no results"),
                               ("detector_study", None, "no results file"),
                               ("neighbourhood_study", '{"cookie": null}', "not of the shape this study writes"),
                               ("detector_study", '{"rows": [{"a": 1}], "meta": {"x": 1}}', "not of the shape this study writes")):
        out = tmp_path / "saved"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        if text is not None:
            (out / f"{script}.json").write_text(text)
        with pytest.raises(SystemExit, match=said):
            run_main(monkeypatch, script, "--tables", "--out", out)
        assert sorted(p.name for p in out.iterdir()) == ([] if text is None else [f"{script}.json"]), script


def test_types_from_words_refuses_a_model_it_cannot_read_and_a_reuse_of_no_training(synthetic_category, fitted_model, tmp_path, monkeypatch,
                                                                                     capsys):
    # Regression probe 2026-12-07: another part's model was reported as this part's end-to-end result, a one-type category's
    # model ignored in silence, and --reuse-training with no trained rows wrote nan rows said to be reused.
    data = synthetic_category.parent
    with pytest.raises(SystemExit, match="it has one defect type, so it is not typed here"):
        run_main(monkeypatch, "types_from_words", "--data", data, "--out", tmp_path, "--model", f"plate={fitted_model}")
    with pytest.raises(SystemExit) as usage:
        run_main(monkeypatch, "types_from_words", "--data", data, "--out", tmp_path, "--model", "plate")
    assert usage.value.code == 2 and "--model takes CATEGORY=MODEL_DIR, got 'plate'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"--reuse-training: no trained rows in .*types_from_words\.json to keep — run once without it"):
        run_main(monkeypatch, "types_from_words", "--data", data, "--out", tmp_path, "--reuse-training")
    assert not (tmp_path / "types_from_words.json").exists()
    (tmp_path / "types_from_words.json").write_text('{"results": [')  # a run cut short (second regression probe: a traceback)
    with pytest.raises(SystemExit, match=r"types_from_words\.json: the results cannot be read"):
        run_main(monkeypatch, "types_from_words", "--data", data, "--out", tmp_path, "--reuse-training")
