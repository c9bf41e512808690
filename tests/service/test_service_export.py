"""`defectlens export-reviews`: reviewed inspections become an examples folder that
`inspect --examples` reads and a good/defective calibration set; and the `serve` command's checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from service_helpers import defective, make_app, upload
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
        other = tmp_path / "other-bad.png"
        Image.fromarray(defective(np.random.default_rng(21))).save(other)  # another photo: the same one is written once
        alarm = upload(client, other, name="false-alarm.png").json()
        reviewed = client.post(f"/inspections/{alarm['id']}/review",
                               json={"reviewer": "Cy", "verdict": "good", "regions": [{"index": idx, "type": "scratch"}]}).json()
        assert reviewed["final_verdict"] == "good" and {r["type"] for r in reviewed["regions"]} == {"not-a-defect"}
        # Its history says what was applied, not what the page sent.
        assert {r["type"] for r in reviewed["reviews"][-1]["regions"]} == {"not-a-defect"}
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
    # No masks beside the calibration images (loop probe 2026-12-06: the model's own regions gave its pixel threshold back,
    # said as "F1-optimal on the pixels of 8 masked defective"), and which fit judged each inspection at what threshold.
    assert not (out / "calibration" / "defective" / "masks").exists()
    ours = pool.models["plate"].inspector.provenance
    assert all((m["model_fitted_at"], m["model_fingerprint"]) == (ours.fitted_at, ours.fingerprint) and m["threshold"] > 0
               for m in manifest["inspections"])
    calibrated = CliRunner().invoke(cli, ["calibrate", str(pool.models["plate"].path), "--good", str(out / "calibration" / "good"),
                                          "--defective", str(out / "calibration" / "defective"), "--dry-run"])
    said = " ".join(calibrated.output.split())
    assert calibrated.exit_code == 0 and "kept (no ground-truth masks" in said, calibrated.output
    # In UTC, said so, as the API says it (SQLite's times had come out without a zone).
    assert all(m["reviewed_at"].endswith("+00:00") for m in manifest["inspections"])
    # When each was judged, and both thresholds with how they were set (the manifest had the image threshold alone).
    held = pool.models["plate"].inspector.thresholds.to_json()
    assert all(m["inspected_at"].endswith("+00:00") and m["thresholds"] == held and len(m["image_digest"]) == 64 for m in manifest["inspections"])
    # And the digest of the model's settings, as inspect's JSON records it (an export had said the fit alone).
    from defectlens.engine.local import audit_record

    settings = audit_record(pool.models["plate"].inspector)["model"]["settings"]  # type: ignore[index]
    assert all(m["model_settings"] == settings for m in manifest["inspections"])
    # Run again: the earlier export is replaced whole; a folder that is not an export is refused.
    assert CliRunner().invoke(cli, ["export-reviews", "--db", db_url, "--data-dir", str(data), "-o", str(out)]).exit_code == 0
    other = tmp_path / "precious"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    refused = CliRunner().invoke(cli, ["export-reviews", "--db", db_url, "--data-dir", str(data), "-o", str(other)])
    assert refused.exit_code == 2 and (other / "keep.txt").read_text() == "mine"
    # Ctrl-C: said what stands (it ended with status 130 and not a word; interruption probe 2026-12-05).
    import defectlens.service.export as export_module

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(export_module, "export_reviews", stopped)
        cut = CliRunner().invoke(cli, ["export-reviews", "--db", db_url, "--data-dir", str(data), "-o", str(out)])
    assert cut.exit_code == 130 and f"nothing written; {out} is as it was" in " ".join(cut.output.split()), cut.output
    assert (out / "manifest.json").is_file()


def test_export_keeps_labels_people_gave_and_earlier_exports(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # Review-loop probe 2026-12-05: a plain confirm exported the machine's weaker regions as labels, a
    # missed defect without a box got a whole-image mask, one photo posted twice landed in both
    # calibration folders, and a second export deleted a note put in the first.
    data = tmp_path / "data"
    db_url = f"sqlite:///{data / 'inspections.db'}"
    two = defective(np.random.default_rng(3))
    two[70:78, 100:108] = 150  # a second, fainter square
    Image.fromarray(two).save(tmp_path / "two.png")
    with make_app(pool, db_url, data) as client:
        ins = upload(client, tmp_path / "two.png").json()
        assert len(ins["regions"]) == 2 and not any(r["weaker"] for r in ins["regions"]), ins["regions"]
        # Its peak set under the image threshold (the synthetic part's window between the pixel and the
        # image threshold is under one unit wide): a weaker region beside the strong one.
        from sqlalchemy import update

        from defectlens.service.db import RegionRow

        with client.app.state.store.session() as s, s.begin():  # type: ignore[attr-defined]
            s.execute(update(RegionRow).where(RegionRow.inspection_id == ins["id"], RegionRow.index == 2).values(peak_score=ins["threshold"] - 0.5))
        ins = client.get(f"/inspections/{ins['id']}").json()
        assert [r["weaker"] for r in ins["regions"]] == [False, True]
        assert client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana"}).status_code == 200
        boxless = upload(client, images["good"]).json()
        assert client.post(f"/inspections/{boxless['id']}/review", json={"reviewer": "Ben", "missed": [{"type": "spot"}]}).status_code == 200
        refused = client.post(f"/inspections/{boxless['id']}/review", json={"reviewer": "Ben", "missed": [{"type": "unknown"}]})
        assert refused.status_code == 422 and "needs its defect type" in refused.text
        again = upload(client, images["good"], name="again.png").json()  # the same photo, reviewed the other way
        assert client.post(f"/inspections/{again['id']}/review", json={"reviewer": "Cy", "verdict": "good"}).status_code == 200
    out = tmp_path / "export"
    result = CliRunner().invoke(cli, ["export-reviews", "--data-dir", str(data), "-o", str(out)])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "2 reviewed inspection(s): 1 good, 1 defective" in text and "disagree on the verdict" in text
    examples = examples_from_folders(out / "examples")
    strong = [r for r in ins["regions"] if not r["weaker"]]
    spot = [e for e in examples.examples if e.defect_type == "spot"]
    assert len(spot) == 1 and spot[0].mask_path is not None  # the confirmed strong region, not the weaker one
    assert (np.asarray(Image.open(spot[0].mask_path)) > 0).sum() == sum(r["area_px"] for r in strong)
    assert len(list((out / "calibration" / "good").iterdir())) == 1 and not (out / "examples" / "spot" / "masks" / "000002").exists()
    # A file put in the export is not deleted by the next one; a wrong data folder is refused, not made.
    (out / "examples" / "note.txt").write_text("mine")
    again_out = CliRunner().invoke(cli, ["export-reviews", "--data-dir", str(data), "-o", str(out)])
    assert again_out.exit_code == 2 and "did not write (examples/note.txt)" in " ".join(again_out.output.split())
    (tmp_path / "wrong").mkdir()
    wrong = CliRunner().invoke(cli, ["export-reviews", "--data-dir", str(tmp_path / "wrong"), "-o", str(out)])
    assert wrong.exit_code == 2 and "no inspections database there" in " ".join(wrong.output.split())
    assert list((tmp_path / "wrong").iterdir()) == [] and (out / "examples" / "note.txt").is_file()


def test_a_weaker_region_kept_alone_is_a_label_and_a_defect_without_example_is_said(pool: ModelPool, tmp_path: Path) -> None:
    # Review-loop probe 2026-12-06: a reviewer rejected every region but the weaker crack the machine had typed crack; the
    # export wrote no example and said nothing, and the reviewer's comments were in the database alone.
    from sqlalchemy import update

    from defectlens.service.db import RegionRow

    data = tmp_path / "data"
    two = defective(np.random.default_rng(3))
    two[70:78, 100:108] = 150  # a second, fainter square
    Image.fromarray(two).save(tmp_path / "two.png")
    Image.fromarray(defective(np.random.default_rng(4))).save(tmp_path / "one.png")
    with make_app(pool, f"sqlite:///{data / 'inspections.db'}", data) as client:
        ins = upload(client, tmp_path / "two.png").json()
        with client.app.state.store.session() as s, s.begin():  # type: ignore[attr-defined]
            s.execute(update(RegionRow).where(RegionRow.inspection_id == ins["id"], RegionRow.index == 2).values(peak_score=ins["threshold"] - 0.5))
        kept = client.post(f"/inspections/{ins['id']}/review", json={
            "reviewer": "Ana", "comment": "the faint square is the defect",
            "regions": [{"index": 1, "type": "not-a-defect"}, {"index": 2, "type": ins["regions"][1]["type"]}]})
        assert kept.status_code == 200 and kept.json()["regions"][1]["weaker"]
        none = upload(client, tmp_path / "one.png").json()
        rejected = [{"index": r["index"], "type": "not-a-defect"} for r in none["regions"]]
        assert client.post(f"/inspections/{none['id']}/review", json={"reviewer": "Ben", "verdict": "defective",
                                                                       "regions": rejected}).status_code == 200
        # The strong region kept as unknown: the weaker one, left as the machine typed it, is no label (regression probe).
        three = two.copy()
        three[0, 0] ^= 1  # another photo of the same part: another image, the same regions
        Image.fromarray(three).save(tmp_path / "three.png")
        unsure = upload(client, tmp_path / "three.png").json()
        assert len(unsure["regions"]) == 2
        with client.app.state.store.session() as s, s.begin():  # type: ignore[attr-defined]
            s.execute(update(RegionRow).where(RegionRow.inspection_id == unsure["id"], RegionRow.index == 2)
                      .values(peak_score=unsure["threshold"] - 0.5))
        assert client.post(f"/inspections/{unsure['id']}/review", json={"reviewer": "Cy", "regions": [{"index": 1, "type": "unknown"}]}
                           ).status_code == 200
        # A comment posted alone (a note) goes into the manifest too.
        assert client.post(f"/inspections/{none['id']}/review", json={"reviewer": "Di", "comment": "see the left edge — Ölfleck?"}).status_code == 200
        # A weaker region named with the machine's own type beside a kept strong one is a label (regression probe 2026-12-06:
        # the store kept no trace of the choice, and the export took it for the machine's guess).
        four = two.copy()
        four[0, 1] ^= 1
        Image.fromarray(four).save(tmp_path / "four.png")
        both = upload(client, tmp_path / "four.png").json()
        with client.app.state.store.session() as s, s.begin():  # type: ignore[attr-defined]
            s.execute(update(RegionRow).where(RegionRow.inspection_id == both["id"], RegionRow.index == 2)
                      .values(peak_score=both["threshold"] - 0.5))
        assert client.post(f"/inspections/{both['id']}/review", json={
            "reviewer": "Ed", "regions": [{"index": 2, "type": both["regions"][1]["type"]}]}).status_code == 200
    out = tmp_path / "export"
    result = CliRunner().invoke(cli, ["export-reviews", "--data-dir", str(data), "-o", str(out)])
    said = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    spot = sorted(examples_from_folders(out / "examples").examples, key=lambda e: e.path.name)
    assert len(spot) == 2 and (np.asarray(Image.open(spot[0].mask_path)) > 0).sum() == ins["regions"][1]["area_px"]
    assert spot[1].path.name.startswith(f"{both['id']:06d}_")
    assert (np.asarray(Image.open(spot[1].mask_path)) > 0).sum() == sum(r["area_px"] for r in both["regions"])
    # The part all rejected, and the one whose strong region was kept as unknown (its weaker guess no label).
    assert "2 inspection(s) reviewed defective give no type example" in said and f"(inspections {none['id']}; {unsure['id']})" in said
    raw = (out / "manifest.json").read_text(encoding="utf-8")
    manifest = json.loads(raw)["inspections"]
    assert [r.get("comment") for m in manifest for r in m["reviews"]] == ["the faint square is the defect", None, None, None]
    # Letters as themselves, as in every other JSON written (code review 2026-12-06: the manifest alone had "\\u00d6lfleck").
    assert [n["comment"] for m in manifest for n in m["notes"]] == ["see the left edge — Ölfleck?"] and "Ölfleck" in raw


def test_a_review_that_corrects_nothing_keeps_the_one_before(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # A comment-only review by a script turned an inspector's "good" back into the machine's verdict,
    # and another wiped a reviewer's re-types and missed box.
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        bad = upload(client, images["bad"]).json()
        idx = bad["regions"][0]["index"]
        client.post(f"/inspections/{bad['id']}/review", json={"reviewer": "Ana", "regions": [{"index": idx, "type": "scratch"}],
                                                                "missed": [{"type": "spot", "bbox": [1, 1, 9, 9]}]})
        after = client.post(f"/inspections/{bad['id']}/review", json={"reviewer": "Fay", "comment": "checked"}).json()
        assert after["regions"][0]["type"] == "scratch" and [r["type"] for r in after["regions"] if r["missed"]] == ["spot"]
        good = upload(client, images["bad"], name="alarm.png").json()
        client.post(f"/inspections/{good['id']}/review", json={"reviewer": "Ana", "verdict": "good"})
        kept = client.post(f"/inspections/{good['id']}/review", json={"reviewer": "Fay", "comment": "checked"}).json()
        assert kept["final_verdict"] == "good" and {r["type"] for r in kept["regions"]} == {"not-a-defect"}
        assert [r["by"] for r in client.get(f"/inspections/{good['id']}").json()["reviews"]] == ["Ana", "Fay"]
        # Good, then defective: the regions are the machine's again, not all still rejected.
        back = client.post(f"/inspections/{good['id']}/review", json={"reviewer": "Gil", "verdict": "defective"}).json()
        assert back["final_verdict"] == "defective" and [r["type"] for r in back["regions"]] == [r["machine_type"] for r in back["regions"]]
        # Good, then a region typed as a defect with no verdict: defective (it was good with a crack in it).
        other = upload(client, images["bad"], name="alarm-2.png").json()
        client.post(f"/inspections/{other['id']}/review", json={"reviewer": "Ana", "verdict": "good"})
        typed = client.post(f"/inspections/{other['id']}/review", json={"reviewer": "Fay", "regions": [{"index": idx, "type": "scratch"}]}).json()
        assert typed["final_verdict"] == "defective" and typed["regions"][0]["type"] == "scratch"
        # The regions it did not name stay as the good review left them, rejected (loop probe 2026-12-06: a second reviewer's
        # one crack made the specks the first had rejected confirmed cracks, exported as examples).
        third = upload(client, images["bad"], name="alarm-3.png").json()
        client.post(f"/inspections/{third['id']}/review", json={"reviewer": "Ana", "verdict": "good"})
        missed = client.post(f"/inspections/{third['id']}/review", json={"reviewer": "Fay", "verdict": "defective",
                                                                          "missed": [{"type": "spot", "bbox": [1, 1, 9, 9]}]}).json()
        assert [(r["type"], r["missed"]) for r in missed["regions"]] == [("not-a-defect", False), ("spot", True)]


def test_a_comment_alone_is_a_note_not_a_label(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # A script's comment on an inspection nobody had judged marked it "reviewed", and export-reviews
    # wrote the machine's verdict out as a person's label, under the commenter's name.
    data, db = tmp_path / "data", f"sqlite:///{tmp_path / 'db.sqlite'}"
    with make_app(pool, db, data) as client:
        ins = upload(client, images["bad"]).json()
        noted = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "bot", "comment": "line 3, shift B"}).json()
        assert noted["review"]["state"] == "unreviewed" and noted["review"]["by"] is None and noted["final_verdict"] == ins["verdict"]
        assert [(r["by"], r["note"], r["comment"]) for r in noted["reviews"]] == [("bot", True, "line 3, shift B")]
        assert client.get("/inspections", params={"review": "reviewed"}).json()["total"] == 0
        assert CliRunner().invoke(cli, ["export-reviews", "--db", db, "--data-dir", str(data), "-o", str(tmp_path / "none")]).exit_code == 2
        # A person's review counts (the note was seen: one review in the view), and a note after it leaves it standing.
        typed = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana", "verdict": "defective", "seen_reviews": 1,
                                                                     "regions": [{"index": ins["regions"][0]["index"], "type": "scratch"}]}).json()
        after = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "bot", "comment": "sent to rework"}).json()
        assert after["review"] == typed["review"] and after["regions"] == typed["regions"]
        assert [(r["by"], r["note"]) for r in after["reviews"]] == [("bot", True), ("Ana", False), ("bot", True)]
        # A review naming nothing, not even a comment (a blank one is none), still confirms what stands (scripts send it).
        confirmed = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Cy", "comment": "   "}).json()
        assert confirmed["review"]["by"] == "Cy" and confirmed["review"]["comment"] is None and not confirmed["reviews"][-1]["note"]
        # The history says what was applied: a missed "Crack" without a box is crack over the whole image; kept ones are null.
        marked = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Dee", "missed": [{"type": "Scratch"}]}).json()
        assert marked["reviews"][-1]["missed"] == [{"type": "scratch", "bbox": [0, 0, ins["width"], ins["height"]]}]
        kept = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Eve", "verdict": "defective"}).json()
        assert kept["reviews"][-1]["missed"] is None and [r["type"] for r in kept["regions"] if r["missed"]] == ["scratch"]
        # The metrics count the two notes apart from the four reviews that label.
        metrics = client.get("/metrics").text
        assert 'defectlens_reviews_total{kind="note"} 2.0' in metrics and 'defectlens_reviews_total{kind="review"} 4.0' in metrics
    out = tmp_path / "export"
    assert CliRunner().invoke(cli, ["export-reviews", "--db", db, "--data-dir", str(data), "-o", str(out)]).exit_code == 0
    assert [m["reviewed_by"] for m in json.loads((out / "manifest.json").read_text())["inspections"]] == ["Eve"]


def test_an_image_reviewed_unusable_is_kept_and_never_exported(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # Another part's image posted to this model, or a bad frame: reviewed good, it went into this part's calibration set
    # (2026-12-06); a reviewer now says "unusable", kept in the history, labelling nothing.
    data, db = tmp_path / "data", f"sqlite:///{tmp_path / 'db.sqlite'}"
    runner = CliRunner()
    with make_app(pool, db, data) as client:
        ins = upload(client, images["bad"]).json()
        index = ins["regions"][0]["index"]
        typed = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana", "regions": [{"index": index, "type": "scratch"}],
                                                                     "missed": [{"type": "spot", "bbox": [4, 6, 20, 16]}]}).json()
        assert typed["final_verdict"] == "defective"
        labelled = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ben", "verdict": "unusable",
                                                                        "regions": [{"index": index, "type": "scratch"}]})
        assert labelled.status_code == 422 and "an unusable image is not labelled" in labelled.text
        unusable = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ben", "verdict": "unusable",
                                                                        "comment": "a gear, posted to the plate line"}).json()
        # The machine's regions as they were (the scratch and the missed spot taken back), the history kept.
        assert unusable["final_verdict"] == "unusable" and unusable["verdict"] == ins["verdict"]
        assert [(r["index"], r["type"], r["missed"]) for r in unusable["regions"]] == [(r["index"], r["type"], False) for r in ins["regions"]]
        assert all(r["reviewed_type"] is None for r in unusable["regions"])  # no person's type (regression probe round 3)
        assert [r["verdict"] for r in unusable["reviews"]] == ["defective", "unusable"]
        # Confirmed as it stands, it stays unusable; the history finds it by its verdict, and not by the machine's types
        # it keeps (regression probe: counted among the scratches).
        confirmed = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Cy"}).json()
        assert confirmed["final_verdict"] == "unusable"
        assert [i["id"] for i in client.get("/inspections", params={"verdict": "unusable"}).json()["items"]] == [ins["id"]]
        assert client.get("/inspections", params={"type": ins["regions"][0]["type"]}).json()["total"] == 0
        # A re-type without a verdict keeps it unusable, so it is refused as one sent with the verdict is (regression probe:
        # stored, then undone by the next confirm).
        retyped = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Cy", "regions": [{"index": index, "type": "not-a-defect"}]})
        assert retyped.status_code == 422 and "review it good or defective" in retyped.text
        assert 'defectlens_reviews_total{kind="unusable"} 2.0' in client.get("/metrics").text  # Ben's, and Cy's confirm
        nothing = runner.invoke(cli, ["export-reviews", "--db", db, "--data-dir", str(data), "-o", str(tmp_path / "none")])
        assert nothing.exit_code == 2 and "(1 reviewed unusable, which are never exported)" in " ".join(nothing.output.split())
        good = upload(client, images["good"]).json()
        client.post(f"/inspections/{good['id']}/review", json={"reviewer": "Ana", "verdict": "good"})
    out = tmp_path / "export"
    result = runner.invoke(cli, ["export-reviews", "--db", db, "--data-dir", str(data), "-o", str(out)])
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and "1 reviewed inspection(s): 1 good, 0 defective" in said, result.output
    assert f"1 image(s) reviewed unusable left out (inspections {ins['id']})" in said
    assert [m["inspection"] for m in json.loads((out / "manifest.json").read_text())["inspections"]] == [good["id"]]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [f"calibration/good/{good['id']:06d}_{p}"
                                                                                  for p in [next((out / "calibration" / "good").iterdir()).name[7:]]]
    assert not any((out / "examples").iterdir())


def test_an_export_past_a_million_inspections_is_still_its_own(tmp_path: Path) -> None:
    from defectlens.service.export import _foreign_files

    (tmp_path / "examples" / "spot").mkdir(parents=True)
    (tmp_path / "manifest.json").write_text(json.dumps({"inspections": [{"file": "1000000_0123456789ab"}]}))
    (tmp_path / "examples" / "spot" / "1000000_0123456789ab.png").write_bytes(b"x")
    assert _foreign_files(tmp_path) == []
    (tmp_path / "note.txt").write_text("mine")
    assert _foreign_files(tmp_path) == [tmp_path / "note.txt"]


def test_export_with_no_review_writes_nothing(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "data"
    with make_app(pool, f"sqlite:///{data / 'inspections.db'}", data) as client:
        upload(client, images["bad"])
    result = CliRunner().invoke(cli, ["export-reviews", "--data-dir", str(data), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "nothing to export" in " ".join(result.output.split()) and not (tmp_path / "o").exists()


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


def test_an_export_given_whole_as_examples_says_where_its_examples_are(fitted_model: Path, images: dict[str, Path], tmp_path: Path) -> None:
    # Review-loop probe 2026-12-05: "no example images in any type folder" for the export's own root.
    export = tmp_path / "export"
    (export / "examples" / "spot").mkdir(parents=True)
    (export / "calibration" / "good").mkdir(parents=True)
    result = CliRunner().invoke(cli, ["inspect", str(fitted_model), str(images["bad"]), "-o", str(tmp_path / "o"), "--examples", str(export)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and f"pass {export / 'examples'} with --examples" in text, result.output


def test_export_says_when_reviewers_disagree_and_lists_every_review(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # Loop probe 2026-12-06: Ana's "good" and then Ben's "defective" on one inspection went out as defective with no word,
    # the manifest naming Ben alone; one person changing their mind is no disagreement.
    data, db = tmp_path / "data", f"sqlite:///{tmp_path / 'db.sqlite'}"
    with make_app(pool, db, data) as client:
        argued = upload(client, images["bad"]).json()
        client.post(f"/inspections/{argued['id']}/review", json={"reviewer": "Ana", "verdict": "good"})
        client.post(f"/inspections/{argued['id']}/review", json={"reviewer": "Bo", "comment": "glare?"})
        client.post(f"/inspections/{argued['id']}/review", json={"reviewer": "Ben", "verdict": "defective", "seen_reviews": 2})
        changed = upload(client, images["good"]).json()
        client.post(f"/inspections/{changed['id']}/review", json={"reviewer": "Ana", "verdict": "defective"})
        client.post(f"/inspections/{changed['id']}/review", json={"reviewer": "ana", "verdict": "good"})  # one person, any case
        # The same photo posted again and reviewed: the review of the inspection left out is in the manifest too.
        again = upload(client, images["good"], name="again.png").json()
        client.post(f"/inspections/{again['id']}/review", json={"reviewer": "Cy", "verdict": "good"})
    out = tmp_path / "export"
    result = CliRunner().invoke(cli, ["export-reviews", "--db", db, "--data-dir", str(data), "-o", str(out)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert f"the reviewers of 1 inspection(s) disagree on the verdict (inspections {argued['id']})" in said
    entries = {e["inspection"]: e for e in json.loads((out / "manifest.json").read_text())["inspections"]}
    assert [(r["by"], r["verdict"]) for r in entries[argued["id"]]["reviews"]] == [("Ana", "good"), ("Ben", "defective")]
    assert entries[argued["id"]]["verdict"] == "defective" and all(r["at"].endswith("+00:00") for r in entries[argued["id"]]["reviews"])
    assert [(r["inspection"], r["by"], r["verdict"]) for r in entries[again["id"]]["reviews"]] == [
        (changed["id"], "Ana", "defective"), (changed["id"], "ana", "good"), (again["id"], "Cy", "good")]


def test_a_mask_drawn_beside_a_calibration_image_is_not_deleted_by_the_next_export(pool: ModelPool, images: dict[str, Path],
                                                                                   tmp_path: Path) -> None:
    # Regression probe 2026-12-06: the README says to draw masks in calibration/defective/masks/, and the next export
    # deleted them without a word (they looked like the masks exports used to write there).
    data, db = tmp_path / "data", f"sqlite:///{tmp_path / 'db.sqlite'}"
    with make_app(pool, db, data) as client:
        bad = upload(client, images["bad"]).json()
        client.post(f"/inspections/{bad['id']}/review", json={"reviewer": "Ana", "verdict": "defective"})
    out = tmp_path / "export"
    args = ["export-reviews", "--db", db, "--data-dir", str(data), "-o", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    entry = json.loads((out / "manifest.json").read_text())["inspections"][0]
    drawn = out / "calibration" / "defective" / "masks" / f"{entry['file']}_mask.png"
    drawn.parent.mkdir()
    Image.fromarray(np.zeros((bad["height"], bad["width"]), np.uint8)).save(drawn)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2 and f"cannot tell) (calibration/defective/masks/{drawn.name})" in " ".join(again.output.split())
    assert drawn.is_file()
    # One an export before 0.3.4 wrote (its manifest entry says "mask": true, the manifest written after it) is the export's
    # own: calibrate leaves it out (upgrade probe 2026-12-06: it gave the pixel threshold back, said as set on masks) ...
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["inspections"][0]["mask"] = True
    (out / "manifest.json").write_text(json.dumps(manifest))
    Image.fromarray(np.full((bad["height"], bad["width"]), 255, np.uint8)).save(out / "calibration" / "good" / "g.png")
    model = str(pool.models["plate"].path)
    # (found from the images' own place, however the folder is named: a link to it, here; regression probe)
    (tmp_path / "link").symlink_to(out / "calibration" / "defective")
    calibrated = CliRunner().invoke(cli, ["calibrate", model, "--good", str(out / "calibration" / "good"),
                                          "--defective", str(tmp_path / "link"), "--dry-run", "--plot", str(tmp_path / "p.png")])
    said = " ".join(calibrated.output.split())
    assert "1 mask(s) beside the calibration images are the model's own regions" in said and "kept (the only masks were the model's" in said, said
    # ... uses one changed since the manifest was written, as a person's ...
    later = (out / "manifest.json").stat().st_mtime + 60
    os.utime(drawn, (later, later))
    used = CliRunner().invoke(cli, ["calibrate", model, "--good", str(out / "calibration" / "good"), "--defective",
                                    str(out / "calibration" / "defective"), "--dry-run", "--plot", str(tmp_path / "p.png")])
    assert "model's own regions" not in " ".join(used.output.split())
    (out / "calibration" / "good" / "g.png").unlink()
    # ... and a re-export deletes neither: which is which, a file's time cannot tell (a copy resets it; regression probe).
    os.utime(drawn, (later - 120, later - 120))
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 2 and "which, this defectlens cannot tell" in " ".join(refused.output.split()) and drawn.is_file()


def test_another_view_reviewed_is_left_out_of_the_calibration_set(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # Regression probe 2026-12-06: a quarter crop reviewed good went to calibration/good, and `calibrate` on the export set a
    # threshold over its score (recall 100 % → 0 %).
    data, db = tmp_path / "data", f"sqlite:///{tmp_path / 'db.sqlite'}"
    with Image.open(images["good"]) as im:
        quarter = tmp_path / "quarter.png"
        im.crop((0, 0, im.width // 2, im.height // 2)).save(quarter)
    with make_app(pool, db, data) as client:
        crop = upload(client, quarter).json()
        assert crop["report"].get("view_note"), crop["report"]
        whole = upload(client, images["good"]).json()
        for ins in (crop, whole):
            client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana", "verdict": "good"})
    out = tmp_path / "export"
    result = CliRunner().invoke(cli, ["export-reviews", "--db", db, "--data-dir", str(data), "-o", str(out)])
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and "2 reviewed inspection(s): 1 good, 0 defective in calibration/ (1 of another view left out of it)" in said
    assert ("1 image(s) show the part in another view than the training images (cropped, turned or of another size; inspections "
            f"{crop['id']})") in said
    assert [p.name[:6] for p in (out / "calibration" / "good").iterdir()] == [f"{whole['id']:06d}"]
    entries = {m["inspection"]: m for m in json.loads((out / "manifest.json").read_text())["inspections"]}
    assert entries[crop["id"]]["calibration"] is False and entries[crop["id"]]["view_note"] == crop["report"]["view_note"]
    assert entries[whole["id"]]["calibration"] is True and "view_note" not in entries[whole["id"]]
