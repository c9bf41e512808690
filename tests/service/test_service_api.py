"""The inspection service's HTTP API on SQLite and PostgreSQL: inspect, history, review,
models, health, metrics, security and bad input."""

from __future__ import annotations

import io
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from service_helpers import TOKEN, PgCluster, defective, make_app, upload

import defectlens
import defectlens.service.app as service_app
from defectlens.service.app import PixelBudget
from defectlens.service.db import make_engine, migrate
from defectlens.service.models import ModelPool


def blob_files(data_dir: Path) -> list[Path]:
    """Stored files (the scratch folder and the folder's own records, history.json and service.json, left out)."""
    return [p for p in data_dir.rglob("*") if p.is_file() and p.parent.name != "tmp" and p.parent != data_dir]


def test_inspect_store_and_read_back(pool: ModelPool, images: dict[str, Path], db_url: str, tmp_path: Path) -> None:
    with make_app(pool, db_url, tmp_path / "data") as client:
        r = upload(client, images["bad"])
        assert r.status_code == 201, r.text
        ins = r.json()
        assert ins["verdict"] == "defective" and ins["final_verdict"] == "defective"
        assert ins["score"] > ins["threshold"] and ins["regions"]
        region = ins["regions"][0]
        assert {"type", "confidence", "bbox", "area_px", "area_fraction"} <= set(region)
        assert ins["report"]["verdict"] == "defective" and "DEFECTIVE" in ins["report_text"]
        # Which defectlens and which fit of the model judged it, as `inspect`'s JSON has them (the rows had neither).
        prov = pool.get("plate").inspector.provenance
        assert prov is not None and prov.fingerprint
        made_by = (ins["defectlens_version"], ins["model_fitted_at"], ins["model_fingerprint"])
        assert made_by == (defectlens.__version__, prov.fitted_at, prov.fingerprint)
        # The stored report carries the record `inspect`'s reports do: both thresholds and how they were set, the judged
        # pixels' digest (the row's columns keep the image threshold alone; audit leftover 2026-12-07).
        from defectlens.io import load_image
        from defectlens.io.images import image_digest

        record = ins["report"]["record"]
        thresholds = pool.get("plate").inspector.thresholds
        assert record["thresholds"] == thresholds.to_json() and record["thresholds"]["pixel"] == thresholds.pixel
        assert record["image_digest"] == image_digest(load_image(images["bad"])) and record["model"]["fingerprint"] == prov.fingerprint
        assert f"Image digest (its pixels): {record['image_digest']}" in ins["report_text"]
        good = upload(client, images["good"]).json()
        assert good["verdict"] == "good" and good["regions"] == []

        # The pictures, by the URLs the inspection gives.
        original = client.get(ins["urls"]["image"])
        assert original.status_code == 200 and original.content == images["bad"].read_bytes()
        overlay = client.get(ins["urls"]["overlay"])
        assert overlay.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(overlay.content)) as img:
            assert img.size == (128, 96)
        mask = np.asarray(Image.open(io.BytesIO(client.get(ins["urls"]["mask"]).content)))
        assert mask.max() == len(ins["regions"])
        assert client.get(f"/inspections/{ins['id']}").json()["id"] == ins["id"]
        assert client.get("/inspections/999999").status_code == 404
        assert client.get("/inspections/999999/overlay.png").status_code == 404
        # One inspection, one address: "1.0", "+1" or "1_0" were taken for 1 (probe 2026-12-05).
        for loose in (f"{ins['id']}.0", f"+{ins['id']}", f"{ins['id']}_0", "9" * 20):
            answer = client.get(f"/inspections/{loose}")
            assert answer.status_code == 422, (loose, answer.status_code)

        page = client.get("/inspections").json()
        assert page["total"] == 2 and [i["id"] for i in page["items"]] == [good["id"], ins["id"]]
        assert client.get("/inspections", params={"verdict": "good"}).json()["total"] == 1
        assert client.get("/inspections", params={"verdict": "GOOD"}).json()["total"] == 1  # any case, as the type filter
        assert client.get("/inspections", params={"verdict": " Good "}).json()["total"] == 1  # spaces let go (regression probe)
        # Checked in code, in words: no pattern a JavaScript client cannot read, and no Unicode case fold let through.
        folded = client.get("/inspections", params={"verdict": "unu\u017fable"})
        assert folded.status_code == 422 and "verdict must be good, defective or unusable (any case)" in folded.json()["detail"]
        verdict_param = next(p for p in client.get("/openapi.json").json()["paths"]["/inspections"]["get"]["parameters"] if p["name"] == "verdict")
        assert "pattern" not in str(verdict_param)
        assert client.get("/inspections", params={"model": "plate"}).json()["total"] == 2
        # A model neither served nor stored is refused as an upload refuses it (an empty page read as "nothing yet").
        other = client.get("/inspections", params={"model": "other"})
        assert other.status_code == 422 and other.json()["detail"].endswith("is served or has stored inspections; known: plate")
        assert client.get("/inspections", params={"limit": 1, "offset": 1}).json()["items"][0]["id"] == ins["id"]
        assert client.get("/inspections", params={"since": "2999-01-01T00:00:00Z"}).json()["total"] == 0
        assert client.get("/inspections", params={"since": "2000-01-01T00:00:00+02:00"}).json()["total"] == 2
        bogus = client.get("/inspections", params={"verdict": "BOGUS"})
        assert bogus.status_code == 422 and bogus.json()["detail"].endswith("not 'BOGUS'")  # what was sent, not its lower case
        # Same upload twice: two inspections, one stored image file (content-addressed).
        upload(client, images["bad"])
        assert client.get("/inspections").json()["total"] == 3
        # bad + good images, their 2 overlays and 2 masks: the repeat added no file.
        assert len(blob_files(tmp_path / "data")) == 6


def test_review_override_missed_and_filters(pool: ModelPool, images: dict[str, Path], db_url: str, tmp_path: Path) -> None:
    with make_app(pool, db_url, tmp_path / "data") as client:
        ins = upload(client, images["bad"]).json()
        good = upload(client, images["good"]).json()
        idx = ins["regions"][0]["index"]
        r = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana", "regions": [{"index": idx, "type": "scratch"}]})
        assert r.status_code == 200, r.text
        rev = r.json()
        assert rev["review"]["state"] == "reviewed" and rev["review"]["by"] == "Ana" and rev["review"]["at"]
        assert rev["regions"][0]["type"] == "scratch" and rev["regions"][0]["reviewed_type"] == "scratch"
        assert rev["final_verdict"] == "defective"
        # A missed defect on the good image: the verdict follows, the region is added.
        r = client.post(f"/inspections/{good['id']}/review", json={"reviewer": "Ben", "missed": [{"type": "spot", "bbox": [10, 10, 30, 20]}]})
        assert r.status_code == 200, r.text
        g = r.json()
        assert g["final_verdict"] == "defective" and g["verdict"] == "good"
        assert g["regions"] == [g["regions"][0]] and g["regions"][0]["missed"] and g["regions"][0]["area_px"] == 200
        # Filters on the final state.
        assert [i["id"] for i in client.get("/inspections", params={"type": "scratch"}).json()["items"]] == [ins["id"]]
        # In any case, as reviews take a type (the filter found nothing for 'SCRATCH').
        assert [i["id"] for i in client.get("/inspections", params={"type": "SCRATCH"}).json()["items"]] == [ins["id"]]
        assert client.get("/inspections", params={"type": "spot"}).json()["total"] == 1
        assert client.get("/inspections", params={"review": "reviewed"}).json()["total"] == 2
        assert client.get("/inspections", params={"review": "unreviewed"}).json()["total"] == 0
        assert client.get("/inspections", params={"verdict": "good"}).json()["total"] == 0
        # A second review replaces the first (confirming the machine, no missed defect).
        g2 = client.post(f"/inspections/{good['id']}/review", json={"reviewer": "Cy", "verdict": "good"}).json()
        assert g2["final_verdict"] == "good" and g2["regions"] == [] and g2["review"]["by"] == "Cy"
        assert [(r["by"], r["verdict"]) for r in g2["reviews"]] == [("Ben", "defective"), ("Cy", "good")]
        assert g2["reviews"][0]["missed"] == [{"type": "spot", "bbox": [10, 10, 30, 20]}]
        # Bad reviews: clear 4xx, nothing changed.
        assert client.post("/inspections/424242/review", json={"reviewer": "Ana"}).status_code == 404
        bad_type = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana", "regions": [{"index": idx, "type": "crack"}]})
        assert bad_type.status_code == 422 and "unknown defect type 'crack'" in bad_type.json()["detail"]
        bad_region = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana", "regions": [{"index": 99, "type": "spot"}]})
        assert bad_region.status_code == 422 and "no region 99" in bad_region.json()["detail"]
        # A type the inspection already carries (typed by examples the model no longer offers) stays a choice: the page sends each
        # region's current type back, and every review of it had been refused (regression probe 2026-12-07).
        from sqlalchemy import create_engine, text

        other = upload(client, images["bad"]).json()
        with create_engine(db_url).begin() as conn:
            conn.execute(text('UPDATE regions SET defect_type = \'dent\' WHERE inspection_id = :i AND "index" = :r'), {"i": other["id"], "r": idx})
        carried = client.post(f"/inspections/{other['id']}/review", json={"reviewer": "Ana", "regions": [{"index": idx, "type": "Dent"}]})
        assert carried.status_code == 200, carried.text
        assert next(r for r in carried.json()["regions"] if r["index"] == idx)["reviewed_type"] == "dent"
        bad_box = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana", "missed": [{"type": "spot", "bbox": [0, 0, 999, 5]}]})
        assert bad_box.status_code == 422
        assert client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "  "}).status_code == 422
        assert client.get(f"/inspections/{ins['id']}").json()["regions"][0]["type"] == "scratch"
        # A missed defect needs a defect type and a box with area, and contradicts a good verdict.
        for missed, words in [({"type": "not-a-defect"}, "a missed defect needs its defect type"),
                              ({"type": "spot", "bbox": [20, 20, 10, 10]}, "is empty: give it as x0,y0,x1,y1")]:
            r = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana", "missed": [missed]})
            assert r.status_code == 422 and words in r.json()["detail"], r.text
        r = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana", "verdict": "good", "missed": [{"type": "spot"}]})
        assert r.status_code == 422 and "a part reviewed good has no missed defect" in r.json()["detail"]
        # A type named in other case is the model's type, stored as the model spells it.
        same = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana", "regions": [{"index": idx, "type": "SPOT"}]})
        assert same.status_code == 200 and same.json()["regions"][0]["type"] == "spot"


def test_bad_uploads_are_refused_and_nothing_is_stored(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "data"
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", data, max_upload=200_000) as client:
        for name, status, words in [
            ("text", 422, "not a readable image"),
            ("truncated", 422, "truncated"),
            # The service's own limit, not the library's 64,000,000 pixels (security probe 2026-12-06).
            ("bomb", 422, "image is declared at 400,000,000 pixels, over this service's limit of 36,000,000 pixels"),
        ]:
            r = upload(client, images[name], name=f"{name}.png")
            assert r.status_code == status, (name, r.text)
            assert words in r.json()["detail"] and f"{name}.png" in r.json()["detail"]
            assert str(data) not in r.json()["detail"]  # no server path leaks
        empty = client.post("/inspections", files={"file": ("e.png", b"", "image/png")})
        assert empty.status_code == 422 and "empty" in empty.json()["detail"]
        big = client.post("/inspections", files={"file": ("big.png", b"\0" * 300_000, "image/png")})
        assert big.status_code == 413 and "limit" in big.json()["detail"]
        # Just over the limit: passes the early Content-Length check, caught while reading.
        near = client.post("/inspections", files={"file": ("near.png", b"\0" * 230_000, "image/png")})
        assert near.status_code == 413 and "over the limit of 200000 bytes" in near.json()["detail"]
        unknown = upload(client, images["bad"], model="nope")
        assert unknown.status_code == 422 and "unknown model 'nope'" in unknown.json()["detail"]
        assert client.post("/inspections").status_code == 422  # no file at all
        assert client.get("/inspections").json()["total"] == 0
        assert blob_files(data) == [] and list((data / "tmp").iterdir()) == []
        # Still serving.
        assert upload(client, images["bad"]).status_code == 201
        metrics = client.get("/metrics").text
        assert 'defectlens_rejected_uploads_total{reason="not_an_image"} 2.0' in metrics
        assert 'defectlens_rejected_uploads_total{reason="too_many_pixels"} 1.0' in metrics  # the bomb: by the service's limit
        assert 'defectlens_rejected_uploads_total{reason="too_large"} 2.0' in metrics
        assert 'defectlens_rejected_uploads_total{reason="invalid_request"} 2.0' in metrics  # the unknown model, no file at all


def test_images_over_the_pixel_limit_and_out_of_range_requests_are_422(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "data"
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", data, max_pixels=10_000) as client:
        # 'bad.png' is small on disk but over 10 000 pixels: refused from its header, never decoded.
        r = upload(client, images["bad"], name="wide.png")
        assert r.status_code == 422, r.text
        assert "wide.png" in r.json()["detail"] and "--max-megapixels" in r.json()["detail"]
        assert blob_files(data) == [] and client.get("/inspections").json()["total"] == 0
        assert 'reason="too_many_pixels"} 1.0' in client.get("/metrics").text
        # Numbers a database integer cannot hold, and times that leave the calendar in UTC.
        huge = str(2**64)
        for path in (f"/inspections/{huge}", f"/inspections/{huge}/overlay.png", f"/inspections?offset={huge}",
                     "/inspections?since=0001-01-01T00:00:00%2B05:00", "/inspections?until=9999-12-31T23:00:00-05:00"):
            assert client.get(path).status_code == 422, path
        assert client.post(f"/inspections/{huge}/review", json={"reviewer": "Ana"}).status_code == 422


def test_pictures_are_revalidated_by_digest_so_a_reused_id_shows_its_own(
    pool: ModelPool, images: dict[str, Path], tmp_path: Path
) -> None:
    # Probe 2026-12-05: served "immutable" for a year under /inspections/<id>/…, a picture outlived
    # its record: after the database was replaced, id 1 showed the old part's picture in a browser.
    data = tmp_path / "data"
    tags = []
    for db, name in ((tmp_path / "first.sqlite", "bad"), (tmp_path / "second.sqlite", "good")):
        with make_app(pool, f"sqlite:///{db}", data) as client:
            ins = upload(client, images[name]).json()
            assert ins["id"] == 1
            for url in (ins["urls"][k] for k in ("image", "overlay", "mask")):
                r = client.get(url)
                assert r.status_code == 200 and r.headers["cache-control"] == "no-cache", url
                again = client.get(url, headers={"If-None-Match": r.headers["etag"]})
                assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == r.headers["etag"]
                # Compared weakly, as RFC 9110 has it for If-None-Match; "*" holds any (integration probe 2026-12-06).
                for held in (f'W/{r.headers["etag"]}', '"0000", ' + r.headers["etag"], "*"):
                    assert client.get(url, headers={"If-None-Match": held}).status_code == 304, held
            tags.append(client.get(ins["urls"]["image"]).headers["etag"])
            # "*" holds only what exists: a picture gone from the store is 404, not 304 (regression probe 2026-12-06).
            mask = client.app.state.blobs.path(client.get(ins["urls"]["mask"]).headers["etag"].strip('"'), "png")
            mask.rename(mask.with_suffix(".gone"))
            assert client.get(ins["urls"]["mask"], headers={"If-None-Match": "*"}).status_code == 404
            mask.with_suffix(".gone").rename(mask)
            # A client holding the other record's tag gets the file, not 304.
            stale = client.get(ins["urls"]["image"], headers={"If-None-Match": '"0000"'})
            assert stale.status_code == 200 and stale.content == images[name].read_bytes()
    assert tags[0] != tags[1]


def test_writes_from_another_site_and_requests_to_other_host_names_are_refused(
    pool: ModelPool, images: dict[str, Path], tmp_path: Path
) -> None:
    # Probe 2026-12-05: a page of any site could post inspections and reviews through a visitor's
    # browser (a multipart form needs no preflight), and a rebound host name read the whole history.
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        with images["bad"].open("rb") as fh:
            r = client.post("/inspections", files={"file": ("b.png", fh, "image/png")}, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and "another site (http://evil.example)" in r.json()["detail"]
        review = client.post("/inspections/1/review", json={"reviewer": "x"}, headers={"Origin": "null"})
        assert review.status_code == 403
        for broken in ("http://[", "http://a]b"):  # regression probe 2026-12-07: a 500
            refused = client.post("/inspections/1/review", json={"reviewer": "x"}, headers={"Origin": broken})
            assert refused.status_code == 403 and "write from another site" in refused.json()["detail"], refused.text
        assert client.get("/inspections").json()["total"] == 0
        # The upload counted, the review not: a refused review is no refused upload (regression probe 2026-12-07: 2).
        assert 'reason="cross_site"} 1.0' in client.get("/metrics").text
        with images["bad"].open("rb") as fh:  # the service's own page: its origin is the service's
            mine = client.post("/inspections", files={"file": ("b.png", fh, "image/png")}, headers={"Origin": "http://testserver"})
        assert mine.status_code == 201 and upload(client, images["good"]).status_code == 201  # no Origin: a station
    named = ("inspect.plant.example", "*.line3.example")  # --allowed-host: these names besides addresses and the machine's own
    with make_app(pool, f"sqlite:///{tmp_path / 'db2.sqlite'}", tmp_path / "data2", allowed_hosts=named) as client:
        assert client.get("/inspections").status_code == 400  # Host: testserver
    for base in ("http://inspect.plant.example:8000", "http://cam2.line3.example", "http://127.0.0.1:8000", "http://localhost"):
        # An address and localhost stay allowed when names are added (regression probe: a health check by IP broke).
        with make_app(pool, f"sqlite:///{tmp_path / 'db2.sqlite'}", tmp_path / "data2", allowed_hosts=named, base_url=base) as client:
            assert client.get("/inspections").status_code == 200, base


def test_by_default_a_request_must_name_an_address_or_this_machine(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # Security probe 2026-12-05: on 0.0.0.0 any Host was taken, and a page at attacker.example (rebound to this
    # machine) reviewed a part GOOD through a visitor's browser; on --host ::1 every request was 400.
    import socket

    from fastapi.testclient import TestClient

    from defectlens.service.app import ServiceConfig, create_app, host_is_own

    own = ("localhost", socket.gethostname())
    for host in ("127.0.0.1:8000", "10.1.2.3", "[::1]:8000", "[fe80::1]", "localhost:8000", f"{socket.gethostname()}:80", "LOCALHOST.",
                 "127.0.0.1.", "127.0.0.1.:8000"):
        assert host_is_own(host, own), host
    # Two hosts in one header (security probe 2026-12-07: read as the first), or a host with spaces, a slash or a user.
    for host in ("attacker.example:8000", "attacker.example", "127.0.0.1.evil.example", "", "[::1", "localhost:8000, evil.example",
                 "localhost evil.example", "localhost/evil", "a@localhost"):
        assert not host_is_own(host, own), host
    cfg = ServiceConfig((pool.models["plate"].path,), f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data")
    with TestClient(create_app(cfg, pool=pool), base_url="http://attacker.example:8000") as client:
        r = client.post("/inspections/1/review", json={"reviewer": "x", "verdict": "good"}, headers={"Origin": "http://attacker.example:8000"})
        assert r.status_code == 400 and "--allowed-host" in r.json()["detail"]
        assert client.get("/inspections").status_code == 400
    with TestClient(create_app(cfg, pool=pool), base_url="http://[::1]:8000") as client:
        assert client.get("/inspections").status_code == 200


def test_names_shown_in_the_page_and_report_are_plain_text(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # Security probe 2026-12-05: an upload named "x.png\n\n# Verdict: GOOD" wrote a second verdict into the report's
    # Markdown; "\u202egnp.exe" showed as "exe.png"; a reviewer's terminal escapes came back in a 409.
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data", token=TOKEN) as client:
        # Raw, as a hostile client sends it: a lone LF inside the quoted name passes the multipart parser.
        name = "line1.png\n\n# Verdict: GOOD\u202e\x1b[31m".encode()
        body = (b'--b0\r\nContent-Disposition: form-data; name="file"; filename="' + name + b'"\r\nContent-Type: image/png\r\n\r\n'
                + images["bad"].read_bytes() + b"\r\n--b0--\r\n")
        ins = client.post("/inspections", content=body, headers={"X-API-Token": TOKEN, "Content-Type": "multipart/form-data; boundary=b0"}).json()
        assert ins.get("filename") == "line1.png\ufffd\ufffd# Verdict: GOOD\ufffd\ufffd[31m", ins
        assert "\n# Verdict: GOOD" not in ins["report_text"]
        for reviewer in ("Ana\u202e", "\x1b]0;pwned\x07", "Ana\nBob", "Ana\u200b"):
            r = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": reviewer, "verdict": "good"}, headers={"X-API-Token": TOKEN})
            assert r.status_code == 422 and "reviewer must be plain text" in r.text, reviewer
        ok = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana", "comment": "seen\nat line 3, 50\u2060kg\u200b",
                                                                  "verdict": "good"}, headers={"X-API-Token": TOKEN})
        assert ok.status_code == 200  # line breaks, and pasted zero-width characters, in a comment are its own
        # A review without the token is no refused upload, and the 401 says how to authenticate.
        denied = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana"})
        assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Bearer")
        assert 'reason="unauthorized"} 0.0' in client.get("/metrics").text


def test_a_refusal_never_echoes_a_long_value(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # Probe 2026-12-05: a 5 MB type name came back whole in the 422 (5 000 083 bytes), a 1 MB model name too.
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        ins = upload(client, images["bad"]).json()
        for body in ({"reviewer": "a", "regions": [{"index": 1, "type": "z" * 100_000}]},
                     {"reviewer": "a", "missed": [{"type": "z" * 100_000}]},
                     {"reviewer": "a", "regions": [{"index": 1, "type": "z" * 100}]}):
            r = client.post(f"/inspections/{ins['id']}/review", json=body)
            assert r.status_code == 422 and len(r.content) < 2000, (body, len(r.content))
        with images["bad"].open("rb") as fh:
            r = client.post("/inspections", files={"file": ("b.png", fh, "image/png")}, data={"model": "m" * 100_000})
        assert r.status_code == 422 and len(r.content) < 2000, len(r.content)


def test_health_probes_the_store_at_most_every_few_seconds(
    pool: ModelPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Probe 2026-12-05: each /health took the database's write lock and wrote and synced 64 kB;
    # unauthenticated callers in a loop doubled the uploads' p95.
    from defectlens.service.blobs import BlobStore

    checks: list[int] = []
    real_check = BlobStore.check
    monkeypatch.setattr(BlobStore, "check", lambda self: (checks.append(1), real_check(self))[1])
    monkeypatch.setattr(service_app, "HEALTH_PROBE_SECONDS", 60.0)
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        before = len(checks)
        assert all(client.get("/health").json()["status"] == "ok" for _ in range(20))
        assert len(checks) - before == 1
        # Which defectlens serves, for an operator checking an upgrade (packaging probe 2026-12-06: nowhere to ask it).
        from defectlens import __version__

        assert client.get("/health").json()["version"] == __version__
        assert f"Served by defectlens {__version__}." in client.get("/openapi.json").json()["info"]["description"]



def test_low_disk_is_a_warning_and_the_store_gauge_follows_an_outage_without_traffic(
    pool: ModelPool, images: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Probe 2026-12-05: with 20 MiB free /health said 503 while every upload went in (a watchdog would
    # restart a working service), and the store_up gauge changed only when traffic came. A later
    # probe: a scrape that probed the store itself hung as long as a stalled database did.
    from defectlens.service.blobs import BlobStore

    monkeypatch.setattr(service_app, "HEALTH_PROBE_SECONDS", 0.0)
    monkeypatch.setattr(service_app, "STORE_WATCH_SECONDS", 0.05)
    monkeypatch.setattr(BlobStore, "free_bytes", lambda self: 20 * 2**20)
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        health = client.get("/health")
        assert health.status_code == 200 and "20 MiB free" in health.json()["warnings"][0]
        assert upload(client, images["good"]).status_code == 201
        assert "defectlens_store_up 1.0" in client.get("/metrics").text
        # What is stored and the room left, kept by the watch thread (scale probe: counters alone showed neither).
        deadline = time.monotonic() + 10
        while "defectlens_inspections_stored 1.0" not in client.get("/metrics").text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "defectlens_inspections_stored 1.0" in client.get("/metrics").text
        assert "defectlens_disk_free_bytes 2.097152e+07" in client.get("/metrics").text  # 20 MiB
        monkeypatch.setattr(BlobStore, "free_bytes", lambda self: 2**19)  # full: down, found with no request at all
        deadline = time.monotonic() + 10
        while "defectlens_store_up 0.0" not in client.get("/metrics").text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "defectlens_store_up 0.0" in client.get("/metrics").text
        # An upload is refused as /health says: they had gone in, flipping the store's state each time.
        assert client.get("/health").status_code == 503 and upload(client, images["good"]).status_code == 503
        # A database that stalls holds /health, never a scrape.
        from defectlens.service.store import Store

        monkeypatch.setattr(Store, "ping", lambda self, writable=False: time.sleep(3) or False)
        started = time.monotonic()
        assert client.get("/metrics").status_code == 200 and time.monotonic() - started < 1.5

def test_the_latency_histogram_times_the_whole_upload(
    pool: ModelPool, images: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Probe 2026-12-05: it timed the inspection alone (0.38 s mean against 0.58 s measured by clients):
    # decoding, the files and the commit were left out.
    from defectlens.service.store import Store

    real = Store.record
    monkeypatch.setattr(Store, "record", lambda self, *a, **k: (time.sleep(0.5), real(self, *a, **k))[1])
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        stored = upload(client, images["good"]).json()
        total = next(float(line.split()[-1]) for line in client.get("/metrics").text.splitlines()
                     if line.startswith("defectlens_inspection_seconds_sum"))
        assert total >= 0.5 > stored["seconds"]



def test_a_hot_spot_is_given_as_coordinates(pool: ModelPool, images: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The report said it in words and the overlay ringed it; the API had no coordinates (inspect's JSON has them).
    import dataclasses

    from defectlens.inspector import Inspector

    decide = Inspector.decide
    monkeypatch.setattr(Inspector, "decide", lambda self, result, source="<array>": (
        lambda ins: ins if ins.is_defective else dataclasses.replace(ins, hot_spot=(5, 7)))(decide(self, result, source)))
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        good = upload(client, images["good"]).json()
        assert good["verdict"] == "good" and good["hot_spot"] == [5, 7]
        assert client.get(f"/inspections/{good['id']}").json()["hot_spot"] == [5, 7]
        assert upload(client, images["bad"]).json()["hot_spot"] is None


def test_several_files_in_one_upload_are_refused_not_dropped(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # Probe 2026-12-05: two `file` parts gave 201 for the second; the first was dropped without a word.
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        files = [("file", ("a.png", images["bad"].read_bytes(), "image/png")), ("file", ("b.png", images["good"].read_bytes(), "image/png"))]
        r = client.post("/inspections", files=files)
        assert r.status_code == 422 and "2 files in one request" in r.json()["detail"], r.text
        assert client.get("/inspections").json()["total"] == 0


def test_a_strip_too_long_for_its_overlay_is_refused_from_its_header(pool: ModelPool, tmp_path: Path) -> None:
    # Within the pixel limit, a side the PNG writer refuses (probe 2026-12-05: an 8 x 4 500 000 PNG
    # of 9 kB was scored for 8.6 s at 4.7 GB, then failed writing its overlay with a 500).
    strip = io.BytesIO()
    Image.new("1", (8, 1_000_001)).save(strip, format="PNG")
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        r = client.post("/inspections", files={"file": ("strip.png", strip.getvalue(), "image/png")})
        assert r.status_code == 422 and "strip.png" in r.json()["detail"] and "1,000,000 pixels" in r.json()["detail"], r.text
        assert client.get("/inspections").json()["total"] == 0


def test_large_uploads_take_turns_within_the_pixel_budget() -> None:
    # Memory follows pixels, not requests: sixteen admitted uploads at the pixel limit would need
    # far more memory than the server has, so past the budget an upload waits for its turn.
    budget = PixelBudget(100)
    order: list[str] = []
    inside = threading.Event()
    release = threading.Event()

    def big(name: str) -> None:
        with budget.hold(80):
            order.append(f"{name} in")
            inside.set()
            release.wait(5)
            order.append(f"{name} out")

    first = threading.Thread(target=big, args=("a",))
    first.start()
    assert inside.wait(5)
    inside.clear()
    second = threading.Thread(target=big, args=("b",))
    second.start()
    with budget.hold(20):  # a small one still fits beside the first
        assert budget.held == 100
    assert not inside.wait(0.2) and order == ["a in"]  # the second large one waits
    release.set()
    first.join(5)
    second.join(5)
    assert order == ["a in", "a out", "b in", "b out"] and budget.held == 0
    with budget.hold(10_000):  # one image larger than the budget is charged the whole budget, and runs
        assert budget.held == 100


def test_the_heap_is_handed_back_after_a_large_upload_only(
    pool: ModelPool, images: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # glibc kept what a 36 M-pixel inspection freed: the process stayed 2.4 GB larger for good.

    service_app.return_freed_memory()  # the real call: harmless with or without glibc
    trims: list[int] = []
    monkeypatch.setattr(service_app, "return_freed_memory", lambda: trims.append(1))
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        assert upload(client, images["bad"]).status_code == 201 and trims == []  # a small image: nothing to give back
        monkeypatch.setattr(service_app, "TRIM_AFTER_PIXELS", 1)
        assert upload(client, images["good"]).status_code == 201 and trims == [1]


def test_a_write_without_the_token_is_refused_before_its_body_or_a_slot(
    pool: ModelPool, images: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data", token=TOKEN, max_upload=1000, max_in_flight=1) as client:
        # Oversize or malformed, a write without the token is a 401 first (its body is never read).
        big = client.post("/inspections", files={"file": ("big.png", b"\0" * 5000, "image/png")})
        assert big.status_code == 401
        assert client.post("/inspections/1/review", content=b"{not json", headers={"content-type": "application/json"}).status_code == 401
        assert 'reason="too_large"} 0.0' in client.get("/metrics").text  # refused for the token, not read for its size
    # With the only slot held by an authorised upload in progress, a request without the token is
    # still a 401, never a 'busy' 503: it takes no slot.
    release, entered = threading.Event(), threading.Event()
    inspect = pool.inspect

    def held(*args, **kwargs):
        entered.set()
        release.wait(30)
        return inspect(*args, **kwargs)

    monkeypatch.setattr(pool, "inspect", held)
    with make_app(pool, f"sqlite:///{tmp_path / 'db2.sqlite'}", tmp_path / "data2", token=TOKEN, max_in_flight=1) as client:
        first: list[int] = []
        t = threading.Thread(target=lambda: first.append(upload(client, images["bad"], token=TOKEN).status_code))
        t.start()
        assert entered.wait(30)
        assert upload(client, images["good"]).status_code == 401
        assert upload(client, images["good"], token=TOKEN).status_code == 503  # busy: the slot is taken
        release.set()
        t.join(30)
        assert first == [201]


def test_token_guards_every_write(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data", token=TOKEN) as client:
        assert upload(client, images["bad"]).status_code == 401
        assert upload(client, images["bad"], token="wrong").status_code == 401
        ins = upload(client, images["bad"], token=TOKEN).json()
        bearer = client.post("/inspections", files={"file": ("b.png", images["bad"].read_bytes(), "image/png")},
                             headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 201
        assert client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana"}).status_code == 401
        ok = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana"}, headers={"X-API-Token": TOKEN})
        assert ok.status_code == 200
        # Reads stay open for the line's screen.
        assert client.get("/inspections").status_code == 200 and client.get("/").status_code == 200


def test_models_health_metrics_openapi_page(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        models = client.get("/models").json()
        m = models["models"][0]
        assert models["default"] == "plate" and m["name"] == "plate" and m["detector"] == "memory-bank" and m["runtime"] == "torch"
        assert m["types"][:2] == ["spot", "scratch"] and "not-a-defect" in m["types"]
        assert "# Model card" in m["card"] and m["thresholds"]["image"] > 0
        assert client.get("/health").json()["status"] == "ok"
        # Which fit is served, as stored inspections name theirs; and every model with stored inspections (none yet).
        assert models["stored"] == [] and m["fitted_at"] == pool.models["plate"].inspector.provenance.fitted_at and m["fingerprint"]
        first = upload(client, images["bad"]).json()
        upload(client, images["good"])
        assert (first["model_fitted_at"], first["model_fingerprint"]) == (m["fitted_at"], m["fingerprint"])
        assert client.get("/models").json()["stored"] == ["plate"]
        text = client.get("/metrics").text
        # Every refusal's series from the start, at 0 (soak probe 2026-12-07: born at 1, an alert's increase() missed it), and
        # every reason the service counts among them.
        import re

        counted = set(re.findall(r'refused\("([a-z_]+)"', Path(service_app.__file__).read_text()))
        assert counted and counted <= set(service_app.REFUSAL_REASONS)
        assert all(f'defectlens_rejected_uploads_total{{reason="{r}"}} 0.0' in text for r in service_app.REFUSAL_REASONS), text
        assert 'defectlens_inspections_total{model="plate",verdict="defective"} 1.0' in text
        assert 'defectlens_inspections_total{model="plate",verdict="good"} 1.0' in text
        assert 'defectlens_inspection_seconds_count{model="plate"} 2.0' in text
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/inspections", "/inspections/{inspection_id}/review", "/models", "/health", "/metrics"} <= set(paths)
        page = client.get("/")
        assert "script-src 'sha256-" in page.headers["content-security-policy"]
        assert client.get("/inspections").headers["x-content-type-options"] == "nosniff"
        assert page.headers["content-type"].startswith("text/html") and ".innerHTML =" not in page.text and "insertAdjacentHTML" not in page.text


def test_api_docs_pages_need_nothing_outside_the_service(pool: ModelPool, tmp_path: Path) -> None:
    import re

    # A line's network is offline: /docs and /redoc load their scripts and styles from the service.
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        for page in ("/docs", "/redoc"):
            shown = client.get(page)
            # Never inside another site's frame, as the review page (security probe 2026-12-07: /docs' "Execute" buttons write
            # from this origin and had no frame-ancestors).
            assert shown.headers["x-frame-options"] == "DENY" and shown.headers["content-security-policy"] == "frame-ancestors 'none'"
            html = shown.text
            assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"""url:\s*['"]([^'"]+)['"]""", html)
            assert assets and not [a for a in assets if "//" in a], (page, assets)
            for asset in assets:
                response = client.get(asset)
                assert response.status_code == 200 and len(response.content) > 100, (page, asset)


def test_card_md_is_served(pool: ModelPool, service_model: Path, tmp_path: Path) -> None:
    from defectlens.service.models import load_model

    model = tmp_path / "carded"
    shutil.copytree(service_model, model)
    (model / "card.md").write_text("# Plate model\n\nFitted on line 7 <script>, data in /srv/line7/plates.\n")
    loaded = load_model(model)
    assert loaded.card.startswith("# Plate model") and loaded.summary()["card"] == loaded.card
    assert "data in /srv/line7/plates." in loaded.card  # the owner's words as written (regression probe 2026-12-07: rewritten)
    # Security probe 2026-12-07: a card.md linked to another file served that file to anyone asking GET /models (no token), and the
    # card fit writes told the training data's whole path. A link is not followed (said in the notes); the card fit writes is shown
    # with its folders by their last names.
    secret = tmp_path / "secret.txt"
    secret.write_text("db:5432:*:postgres:TOPSECRETpw\n")
    (model / "card.md").unlink()
    (model / "card.md").symlink_to(secret)
    linked = load_model(model)
    assert "TOPSECRET" not in linked.card and "# Model card" in linked.card, linked.card
    assert any("card.md is a symbolic link: not shown" in note for note in linked.notes), linked.notes
    from defectlens.descriptor import read_descriptor
    from defectlens.export import model_card

    record = json.loads((model / "inspector.json").read_text())
    record["provenance"]["trained_on"] = trained_on = str(tmp_path / "plant" / "line 7" / "plate" / "train" / "good")
    # A fit's notes name its images whole (regression probe 2026-12-07: shown whole in the card and in fit_summary).
    record["fit_summary"]["notes"] = [f"{trained_on}/broken.png: not a readable image — fix: re-export or re-copy the image"]
    (model / "inspector.json").write_text(json.dumps(record))  # fitted on a folder, as `fit` records it
    (model / "card.md").unlink()
    (model / "card.md").write_text(model_card(model))  # as fit writes it
    assert read_descriptor(model).provenance.trained_on == trained_on and trained_on in (model / "card.md").read_text()
    served = load_model(model)
    shown, summary = served.card, served.summary()
    assert "…/plate/train/good" in shown and "# Model card" in shown
    assert str(tmp_path) not in json.dumps(summary), json.dumps(summary)
    assert summary["fit_summary"]["notes"] == ["…/plate/train/good/broken.png: not a readable image — fix: re-export or re-copy the image"]
    # A card defectlens wrote before the folder changed (examples added): made again, not served as written with its whole paths
    # (regression probe 2026-12-07); a folder named card.md said, not a traceback.
    (model / "card.md").write_text(f"# Model card: memory-bank detector\n\nan old card of {trained_on}\n")
    assert "an old card" not in load_model(model).card
    # Saved again by an editor with a byte-order mark: still the card defectlens wrote (regression probe 2026-12-07).
    (model / "card.md").write_text("\ufeff" + model_card(model), encoding="utf-8")
    assert trained_on not in load_model(model).card
    (model / "card.md").unlink()
    (model / "card.md").mkdir()
    folder = load_model(model)
    assert "# Model card" in folder.card and any("card.md is no file: not shown" in n for n in folder.notes), folder.notes


def test_examples_without_masks_in_a_served_model_are_located_by_it(service_model: Path, tmp_path: Path) -> None:
    from defectlens.service.models import load_model

    model = tmp_path / "with-examples"
    shutil.copytree(service_model, model)
    spot = model / "examples" / "spot"
    spot.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for i in range(3):
        Image.fromarray(defective(rng)).save(spot / f"{i}.png")
    loaded = load_model(model)
    assert loaded.analysis.classifier is not None and loaded.analysis.classifier.class_names == ["spot"]
    # Which examples it types with, by type (review-loop probe 2026-12-06: after a restart, nothing said which were loaded).
    assert loaded.summary()["examples"] == {"spot": 3}
    # As `inspect --examples` does it: the defect is located, not the whole image taken as the example.
    assert any("located by the model" in n for n in loaded.notes) and not any("whole image" in n for n in loaded.notes)


def test_database_down_answers_503_and_the_service_lives(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from defectlens.service.app import ServiceConfig, create_app

    # Nothing listens on port 9 of loopback: connecting fails at once.
    cfg = ServiceConfig((pool.models["plate"].path,), "postgresql+psycopg://nobody@127.0.0.1:9/none", tmp_path / "data")
    with TestClient(create_app(cfg, pool=pool), base_url="http://127.0.0.1") as client:
        health = client.get("/health")
        assert health.status_code == 503 and "down" in health.json()["store"] and health.headers["retry-after"] == "5"
        r = upload(client, images["bad"])
        assert r.status_code == 503 and "database unavailable" in r.json()["detail"]
        # Anyone may read /health and the history: where the database lives is the log's, not theirs.
        for answer in (health.text, r.text, client.get("/inspections").text):
            assert "127.0.0.1" not in answer and "nobody" not in answer, answer
    # By name: the driver names the address the name resolved to, and the port.
    cfg = ServiceConfig((pool.models["plate"].path,), "postgresql+psycopg://nobody@localhost:9/none", tmp_path / "data")
    with TestClient(create_app(cfg, pool=pool), base_url="http://127.0.0.1") as client:
        answer = client.get("/health").text
        assert "127.0.0.1" not in answer and "::1" not in answer and "port 9" not in answer and "localhost" not in answer, answer
        assert client.get("/inspections").status_code == 503
        assert client.get("/models").status_code == 200
    # Down mid-run: the SQLite file's folder disappears under a running app.
    db_dir = tmp_path / "dbdir"
    db_dir.mkdir()
    with make_app(pool, f"sqlite:///{db_dir / 'db.sqlite'}", tmp_path / "data2") as client:
        assert upload(client, images["bad"]).status_code == 201
        client.app.state.store.engine.dispose()  # type: ignore[attr-defined]
        shutil.rmtree(db_dir)
        r = upload(client, images["bad"])
        assert r.status_code == 503, r.text
        assert client.get("/models").status_code == 200


def test_sqlite_file_replaced_or_data_folder_gone_mid_run_is_503_never_a_lost_record(
    pool: ModelPool, images: dict[str, Path], tmp_path: Path
) -> None:
    db = tmp_path / "db.sqlite"
    data = tmp_path / "data"
    with make_app(pool, f"sqlite:///{db}", data) as client:
        assert upload(client, images["bad"]).status_code == 201
        # The file moved away under the running service (a restore, an operator's mistake): a
        # pooled connection would go on writing to the moved file and answer 201 for a record
        # the database no longer has. Each session opens the file, finds it empty: 503.
        aside = tmp_path / "aside"
        aside.mkdir()
        for f in tmp_path.glob("db.sqlite*"):
            f.rename(aside / f.name)
        r = upload(client, images["good"])
        assert r.status_code == 503 and "database unavailable" in r.json()["detail"], r.text
        health = client.get("/health")
        # Said as missing, and not made again empty (operator probe 2026-12-08: an empty file came back, "no such table").
        assert health.status_code == 503 and "database file" in health.json()["store"] and "is missing" in health.json()["store"], health.text
        assert not db.exists()
        assert health.json()["store"].count("unavailable") == 0  # said once, not wrapped twice
        for f in tmp_path.glob("db.sqlite*"):
            f.unlink()
        for f in aside.iterdir():
            f.rename(tmp_path / f.name)
        # Restored: served again, with the record made before and nothing from the refused upload.
        assert upload(client, images["good"]).status_code == 201
        assert [i["filename"] for i in client.get("/inspections").json()["items"]] == ["good.png", "bad.png"]
        # The file store's folder removed: 503 with the reason (never a 500), health says so.
        shutil.rmtree(data)
        r = upload(client, images["bad"])
        assert r.status_code == 503 and "file store unavailable" in r.json()["detail"], r.text
        health = client.get("/health")
        assert health.status_code == 503 and "file store unavailable" in health.json()["store"]
        assert str(tmp_path) not in r.text + health.text, r.text + health.text
        assert client.get("/inspections").json()["total"] == 2


def test_a_database_url_that_cannot_be_used_is_one_line(pool: ModelPool, tmp_path: Path) -> None:
    from defectlens.errors import DefectlensError
    from defectlens.service.app import ServiceConfig, create_app

    for url, words in [("notaurl", "cannot be used"), ("nosuchdialect://u:secret@h/db", "cannot be used"),
                       # PostgreSQL probe 2026-12-07: a 503 "database unavailable" for good.
                       ("postgresql+psycopg://u:secret@127.0.0.1:70000/db", "port '70000' is no TCP port written in digits (1 to 65535) "
                                                                           "(in the URL)"),
                       # Regression probes 2026-12-07: given as libpq's parameter or PGPORT, it had passed; so had more ports than hosts
                       # ("could not match 2 port numbers to 1 hosts") and digits of other scripts.
                       ("postgresql+psycopg://u:secret@127.0.0.1/db?port=70000", "port '70000' is no TCP port written in digits"),
                       ("postgresql+psycopg://u:secret@/db?host=a,b&port=5432,0", "port '0' is no TCP port written in digits"),
                       ("postgresql+psycopg://u:secret@127.0.0.1/db?port=5432,5433", "port '5432,5433' names 2 ports for 1 host(s)"),
                       ("postgresql+psycopg://u:secret@127.0.0.1/db?port=\uff15\uff14\uff13\uff12", "is no TCP port written in digits"),
                       # SQLAlchemy's several hosts with their ports (regression probe 2026-12-07: not read, a 503 for good).
                       ("postgresql+psycopg://u:secret@/db?host=127.0.0.1:70000&host=127.0.0.2:5432",
                        "port '70000' is no TCP port written in digits (1 to 65535) (the URL's host parameter)"),
                       ("postgresql+psycopg://u:secret@127.0.0.1/db", "PGPORT ' 5432' is no TCP port written in digits (1 to 65535), and "
                                                                     "the database URL names no port — fix: set PGPORT")]:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("PGPORT", " 5432")  # as libpq reads it: with its space, which it refuses
            with pytest.raises(DefectlensError) as err:
                create_app(ServiceConfig((pool.models["plate"].path,), url, tmp_path / "data"), pool=pool)
        text = str(err.value)
        assert words in text and ("fix: pass --db" in text or "PGPORT" in words) and "\n" not in text and "secret" not in text, text
    # Hosts counted by their commas, an IPv6 address's colons aside; PGPORT not read where the hosts carry their ports (as libpq).
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PGHOST", "::1")
        env.setenv("PGPORT", "5432,5433")
        with pytest.raises(DefectlensError, match=r"PGPORT '5432,5433' names 2 ports for 1 host\(s\)"):
            make_engine("postgresql+psycopg://u@/db")
        env.setenv("PGPORT", "70000")
        make_engine("postgresql+psycopg://u@/db?host=127.0.0.1:5432&host=127.0.0.2").dispose()
        env.setenv("PGHOST", "a,b")
        env.setenv("PGPORT", "5432,5433")
        make_engine("postgresql+psycopg://u@/db").dispose()
        # Several hosts in the URL: SQLAlchemy names a blank port each, and libpq reads no PGPORT; one host= value is split only
        # as SQLAlchemy splits it (a socket folder with a colon is a folder) (regression probe 2026-12-07: refused).
        env.setenv("PGPORT", "abc")
        make_engine("postgresql+psycopg://u@/db?host=127.0.0.1,127.0.0.2").dispose()
        make_engine("postgresql+psycopg://u@/db?host=127.0.0.1&host=127.0.0.2").dispose()
        env.delenv("PGPORT")
        make_engine("postgresql+psycopg://u@/db?host=/tmp/a:b").dispose()


def test_postgres_stopped_mid_run_then_restarted(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    try:
        pg = PgCluster(durable=True)
        pg.start()
    except RuntimeError as exc:
        pytest.skip(f"PostgreSQL test skipped: {exc}")
    try:
        with make_app(pool, pg.url, tmp_path / "data") as client:
            assert upload(client, images["bad"]).status_code == 201
            pg.stop()  # immediate: a crash, not a clean shutdown
            r = upload(client, images["good"])
            assert r.status_code == 503 and r.json()["detail"].startswith("database unavailable")
            assert client.get("/health").status_code == 503
            assert client.get("/inspections").status_code == 503
            pg.start()
            # Back: the pool reconnects; the committed inspection survived the crash, and the
            # refused upload left nothing half-written.
            assert upload(client, images["good"]).status_code == 201
            names = [i["filename"] for i in client.get("/inspections").json()["items"]]
            assert names == ["good.png", "bad.png"]
            assert client.get("/health").json()["status"] == "ok"
    finally:
        pg.remove()


def test_concurrent_uploads_stored_exactly_once(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        ids: list[int] = []
        errors: list[str] = []
        lock = threading.Lock()

        def worker(k: int) -> None:
            for j in range(3):
                r = upload(client, images["bad" if j % 2 else "good"], name=f"c{k}-{j}.png")
                with lock:
                    (ids.append(r.json()["id"]) if r.status_code == 201 else errors.append(r.text))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(ids) == len(set(ids)) == 12
        items = client.get("/inspections", params={"limit": 100}).json()["items"]
        assert sorted(i["filename"] for i in items) == sorted(f"c{k}-{j}.png" for k in range(4) for j in range(3))


def test_uploads_over_the_in_flight_limit_are_refused_at_once(
    pool: ModelPool, images: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    inspect = pool.inspect

    def held(*args, **kwargs):  # the first inspection holds its slot until the test lets it go
        started.set()
        assert release.wait(30)
        return inspect(*args, **kwargs)

    monkeypatch.setattr(pool, "inspect", held)
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data", max_in_flight=1) as client:
        first: list = []
        t = threading.Thread(target=lambda: first.append(upload(client, images["good"], name="first.png")))
        t.start()
        assert started.wait(30)
        busy = upload(client, images["bad"], name="second.png")
        release.set()
        t.join(30)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
        assert busy.json()["detail"].startswith("busy: 1 inspection(s) in progress")
        assert first[0].status_code == 201
        # The refused upload left nothing behind, and its slot came back: the next one is taken.
        names = [i["filename"] for i in client.get("/inspections").json()["items"]]
        assert names == ["first.png"]
        monkeypatch.setattr(pool, "inspect", inspect)
        assert upload(client, images["bad"], name="third.png").status_code == 201
        assert 'defectlens_rejected_uploads_total{reason="busy"} 1.0' in client.get("/metrics").text


def test_migrations_match_the_tables(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from defectlens.service.db import Base

    engine = make_engine(db_url)
    migrate(engine)
    migrate(engine)  # idempotent: a restart runs it again
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_blob_names_are_checked(tmp_path: Path) -> None:
    from defectlens.service.blobs import BlobStore

    store = BlobStore(tmp_path)
    sha = store.put(b"abc", "png")
    assert store.path(sha, "png").read_bytes() == b"abc"
    for bad in ("../../etc/passwd", sha[:-1], sha.upper(), sha + "/x"):
        with pytest.raises(ValueError):
            store.path(bad, "png")
    with pytest.raises(ValueError):
        store.path(sha, "png/../x")


def test_an_upload_whose_body_stalls_is_answered_408_and_frees_its_slot(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # A station (or an attacker) that announces an upload and stops sending would otherwise hold
    # an inspection slot for ever: with the one slot taken, every other station would be refused.
    import socket

    import httpx
    from service_helpers import Server, free_port

    from defectlens.service.app import ServiceConfig, create_app

    cfg = ServiceConfig((pool.models[pool.default].path,), f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data", max_in_flight=1,
                        upload_timeout=1.0)
    with Server(create_app(cfg, pool=pool), free_port()) as server, socket.create_connection(("127.0.0.1", server.port), timeout=10) as stalled:
        boundary = "b0undary"
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.png"\r\nContent-Type: image/png\r\n\r\n'
        stalled.sendall((f"POST /inspections HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                         f"Content-Length: 100000\r\n\r\n{head}").encode())
        started = time.monotonic()
        answer = stalled.recv(65536).decode(errors="replace")
        waited = time.monotonic() - started
        while not answer.endswith("}"):  # the body may come in a packet of its own
            more = stalled.recv(65536).decode(errors="replace")
            if not more:
                break
            answer += more
        assert answer.startswith("HTTP/1.1 408"), answer
        assert "not received within 1 s" in answer and 0.8 < waited < 8
        # Its slot came back: the next station's upload is inspected, not refused as busy.
        with images["good"].open("rb") as fh:
            ok = httpx.post(f"{server.url}/inspections", files={"file": ("next.png", fh, "image/png")}, timeout=30)
        assert ok.status_code == 201, ok.text
        assert 'defectlens_rejected_uploads_total{reason="timeout"} 1.0' in httpx.get(f"{server.url}/metrics").text


def _dds_with_unknown_pixel_format() -> bytes:
    """A DDS file whose pixel-format flags Pillow's DDS reader does not implement (it raises
    NotImplementedError, which once came out of the service as a 500)."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (9, 9, 9)).save(buf, "DDS")
    data = bytearray(buf.getvalue())
    data[80:84] = (0x8D).to_bytes(4, "little")
    return bytes(data)


def test_hostile_bodies_are_answered_4xx_in_a_few_words(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "data"
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", data, max_upload=200_000) as client:
        ico = io.BytesIO()
        Image.new("RGB", (64, 64)).save(ico, "ICO")
        # Formats outside PNG / JPEG / BMP / TIFF / WebP are not decoded at all: an ICO's reader decodes
        # its embedded image to read the header (a 169 M-pixel one before any size check).
        for name, body in [("x.dds", _dds_with_unknown_pixel_format()), ("icon.png", ico.getvalue())]:
            r = client.post("/inspections", files={"file": (name, body, "image/png")})
            assert r.status_code == 422 and "not a readable image" in r.json()["detail"], (name, r.text)
        # The fix names the client's file, not the scratch copy: a .png that is not one is "not what its name says".
        assert "not what its name says" in client.post("/inspections", files={"file": ("icon.png", ico.getvalue(), "image/png")}).json()["detail"]

        # A body that announces no length (chunked) is cut off at the limit too, not spooled whole.
        def chunks():
            for _ in range(40):
                yield b"\0" * 100_000

        r = client.post("/inspections", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xyz"})
        # The limit quoted is the upload's, as with a Content-Length, not it plus the form's framing (security probe 2026-12-06).
        assert r.status_code == 413 and r.json()["detail"].startswith("upload is over the limit of 200000 bytes (0.191 MiB: serve with a")
        ins = upload(client, images["bad"]).json()
        r = client.post(f"/inspections/{ins['id']}/review", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413

        # A lone surrogate in JSON, and a long wrong value: 422 saying where, never the value echoed back.
        r = client.post(f"/inspections/{ins['id']}/review", content=b'{"reviewer": "\\ud800", "verdict": "' + b"x" * 50_000 + b'"}',
                        headers={"content-type": "application/json"})
        assert r.status_code == 422 and len(r.content) < 2000
        assert [e["loc"] for e in r.json()["detail"]] == [["body", "reviewer"], ["body", "verdict"]]
        # NUL, which PostgreSQL text cannot hold: refused in reviews and filters, replaced in a file's name.
        r = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana\0Bob"})
        assert r.status_code == 422 and "NUL" in r.text
        assert client.get("/inspections", params={"type": "a\0b"}).status_code == 422
        idx = ins["regions"][0]["index"]
        twice = client.post(f"/inspections/{ins['id']}/review", json={"reviewer": "Ana", "regions": [{"index": idx, "type": "scratch"}] * 2})
        assert twice.status_code == 422 and f"region {idx} is named twice" in twice.text
        # (Built by hand: the client would percent-encode the NUL.)
        body = (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a\0b.png"\r\nContent-Type: image/png\r\n\r\n'
                + images["good"].read_bytes() + b"\r\n--xyz--\r\n")
        r = client.post("/inspections", content=body, headers={"content-type": "multipart/form-data; boundary=xyz"})
        assert r.status_code == 201 and r.json()["filename"] == "a\ufffdb.png"

        # The scratch folder removed under the service is made again, not a 503 for ever.
        shutil.rmtree(data / "tmp")
        assert upload(client, images["bad"]).status_code == 201
        assert client.get("/health").status_code == 200


def _at_once(n: int, send: Callable[[int], int]) -> list[int]:
    """``send(k)`` for k < n from n threads released together; their results in finishing order."""
    start, results = threading.Barrier(n), []

    def one(k: int) -> None:
        start.wait()
        results.append(send(k))

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_reviews_of_one_inspection_take_turns(pool: ModelPool, images: dict[str, Path], db_url: str, tmp_path: Path) -> None:
    with make_app(pool, db_url, tmp_path / "data") as client:
        ins = upload(client, images["good"]).json()
        statuses = _at_once(6, lambda k: client.post(f"/inspections/{ins['id']}/review", json={
            "reviewer": f"r{k}", "missed": [{"type": "spot", "bbox": [k, k, k + 10, k + 10]}]}).status_code)
        assert statuses == [200] * 6
        # Each review replaces the missed defects of the one before: one is left, whichever came last.
        missed = [r for r in client.get(f"/inspections/{ins['id']}").json()["regions"] if r["missed"]]
        assert len(missed) == 1 and missed[0]["index"] == 1
        # Six sent at once from one view of the 6 reviews: one is taken, the others are told it changed
        # (the check had been made before the store's lock, where all six could pass it).
        statuses = _at_once(6, lambda k: client.post(f"/inspections/{ins['id']}/review", json={
            "reviewer": f"s{k}", "verdict": "good", "seen_reviews": 6}).status_code)
        assert sorted(statuses) == [200] + [409] * 5, statuses


def test_health_says_a_read_only_database_is_down(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    with make_app(pool, f"sqlite:///{db}", tmp_path / "data") as client:
        assert client.get("/health").status_code == 200 and upload(client, images["good"]).status_code == 201
    # The same file opened read-only answers every read, and refused every record while /health said ok.
    with make_app(pool, f"sqlite:///file:{db}?mode=ro&uri=true", tmp_path / "data") as client:
        assert client.get("/inspections").json()["total"] == 1
        health = client.get("/health")
        assert health.status_code == 503 and "readonly" in health.json()["store"] and str(tmp_path) not in health.text
        assert upload(client, images["good"]).status_code == 503


def test_reviews_keep_what_they_do_not_correct_and_refuse_what_they_cannot_know(
    pool: ModelPool, images: dict[str, Path], db_url: str, tmp_path: Path
) -> None:
    # Review-loop probe 2026-12-05: a script's "agree" (a verdict alone) deleted another person's missed
    # crack; a page open for minutes overturned a newer review; an inspection of a model no longer served
    # took any made-up type.
    from sqlalchemy import text

    with make_app(pool, db_url, tmp_path / "data") as client:
        ins = upload(client, images["bad"]).json()
        url = f"/inspections/{ins['id']}/review"
        missed = {"type": "spot", "bbox": [2, 2, 12, 12]}
        assert client.post(url, json={"reviewer": "Ana", "verdict": "defective", "missed": [missed]}).status_code == 200
        agreed = client.post(url, json={"reviewer": "Bob", "verdict": "defective"}).json()
        assert [(r["type"], r["bbox"]) for r in agreed["regions"] if r["missed"]] == [("spot", [2, 2, 12, 12])]
        cleared = client.post(url, json={"reviewer": "Bob", "verdict": "defective", "missed": []}).json()
        assert not [r for r in cleared["regions"] if r["missed"]]  # an explicit empty list replaces them
        idx = ins["regions"][0]["index"]
        # Sent from a view of 3 reviews when there are 3: taken; from a stale view of 1: refused, nothing changed.
        assert client.post(url, json={"reviewer": "Dee", "verdict": "good", "seen_reviews": 3}).status_code == 200
        stale = client.post(url, json={"reviewer": "Eve", "verdict": "defective", "seen_reviews": 1})
        assert stale.status_code == 409 and "reviewed or commented on meanwhile by Dee" in stale.json()["detail"]
        # A count above the reviews stored is a wrong count, not a review given meanwhile (integration probe 2026-12-06).
        over = client.post(url, json={"reviewer": "Eve", "verdict": "defective", "seen_reviews": 9})
        assert over.status_code == 422 and "seen_reviews is 9, but inspection" in over.json()["detail"] and "has 4 review(s)" in over.json()["detail"]
        assert client.get(f"/inspections/{ins['id']}").json()["final_verdict"] == "good"
        # A field sent in the URL, not the body (API contract probe 2026-12-07: ?verdict=good ignored, the machine's "defective"
        # stored as a person's label): refused, nothing stored; a cache-buster passes.
        in_url = client.post(f"{url}?verdict=defective", json={"reviewer": "Gus"})
        assert in_url.status_code == 422 and "no parameter 'verdict' on a review: its fields go in the JSON body" in in_url.json()["detail"]
        assert client.get(f"/inspections/{ins['id']}").json()["final_verdict"] == "good"
        assert client.post(f"{url}?_=1", json={"reviewer": "Gus", "verdict": "good", "seen_reviews": 4}).status_code == 200
        form = client.post(url, data={"reviewer": "Gus", "verdict": "good"})  # curl -d without a JSON type: said as 415
        assert form.status_code == 415 and "a review is a JSON body" in form.json()["detail"], form.text
        untyped = client.post(url, content=b'{"reviewer": "Gus", "verdict": "good"}')  # requests' data=json.dumps(...)
        assert untyped.status_code == 415 and "not a body without a Content-Type" in untyped.json()["detail"], untyped.text
        # A body that is no JSON object, or not UTF-8, said with what to send (OpenAPI probe 2026-12-07: "JSON decode error",
        # and "There was an error parsing the body" for a review in Latin-1).
        json_type = {"Content-Type": "application/json"}
        cut = client.post(url, content=b'{"reviewer": "Gus",', headers=json_type)
        assert cut.status_code == 422 and "the body is not JSON (it breaks off or goes wrong at character 19): send one JSON object, {" in cut.text
        deep = client.post(url, content=b"[" * 5000 + b"]" * 5000, headers=json_type)
        assert deep.status_code == 400 and "nests too deep to be read: send one JSON object" in deep.text, deep.text
        listed = client.post(url, content=b'["Gus"]', headers=json_type)
        assert listed.status_code == 422 and "the body is JSON but no object: send one JSON object" in listed.text
        empty = client.post(url, content=b"", headers=json_type)  # regression probe 2026-12-07: "Field required"
        assert empty.status_code == 422 and "the body is empty: send one JSON object, {" in empty.text, empty.text
        latin = client.post(url, content=b'{"reviewer": "Jos\xe9"}', headers={"Content-Type": "application/json; charset=latin-1"})
        assert latin.status_code == 400 and latin.json()["detail"] == "the body is not UTF-8 (byte 0xe9 at 17): send the JSON encoded as UTF-8"
        assert len(client.get(f"/inspections/{ins['id']}").json()["reviews"]) == 5  # none of them stored
        # A model no longer served: only the types this inspection already has.
        with make_engine(db_url).begin() as conn:
            conn.execute(text("UPDATE inspections SET model = 'retired' WHERE id = :i"), {"i": ins["id"]})
        made_up = client.post(url, json={"reviewer": "Fay", "verdict": "defective", "regions": [{"index": idx, "type": "zzz"}]})
        assert made_up.status_code == 422 and "unknown defect type 'zzz' for model 'retired'" in made_up.json()["detail"]
        kept = client.post(url, json={"reviewer": "Fay", "verdict": "defective", "regions": [{"index": idx, "type": "spot"}]})
        assert kept.status_code == 200, kept.text


def test_a_review_without_a_verdict_reads_the_one_that_stands_when_it_is_stored(
    pool: ModelPool, images: dict[str, Path], db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression probe 2026-12-06: an inspector's "unusable" and a script's re-type (no verdict) sent at once: the script's
    # verdict, worked out from the inspection as read before the other was stored, made a defective part with no defect.
    # Reviews at once take turns, each on what the one before stored.
    from defectlens.service.store import ReviewInput, Store

    real = Store.review
    slipped: list[int] = []

    def meanwhile(self: Store, inspection_id: int, review: ReviewInput):  # another review lands between the read and this write
        if review.reviewer == "script" and not slipped:
            slipped.append(inspection_id)
            real(self, inspection_id, ReviewInput("Ina", "unusable", {}, [], None, {"verdict": "unusable"}))
        return real(self, inspection_id, review)

    monkeypatch.setattr(Store, "review", meanwhile)
    with make_app(pool, db_url, tmp_path / "data") as client:
        ins = upload(client, images["bad"]).json()
        url = f"/inspections/{ins['id']}/review"
        raced = client.post(url, json={"reviewer": "script", "regions": [{"index": ins["regions"][0]["index"], "type": "not-a-defect"}]})
        assert raced.status_code == 422 and "an unusable image is not labelled" in raced.text
        stored = client.get(url.removesuffix("/review")).json()
        assert stored["final_verdict"] == "unusable" and [r["by"] for r in stored["reviews"]] == ["Ina"]
        # A confirm after it keeps "unusable", and says so in the history (the verdict applied, not the none sent).
        confirmed = client.post(url, json={"reviewer": "script"}).json()
        assert confirmed["final_verdict"] == "unusable" and confirmed["reviews"][-1]["verdict"] == "unusable"
        # A re-type to a defect type, or a missed defect, with no verdict: refused too, not taken for "defective" (regression
        # probe round 2: decided before the lock, it turned the inspector's "unusable" over).
        for body in ({"regions": [{"index": ins["regions"][0]["index"], "type": "scratch"}]}, {"missed": [{"type": "spot"}]}):
            assert client.post(url, json={"reviewer": "script", **body}).status_code == 422
        assert client.get(url.removesuffix("/review")).json()["final_verdict"] == "unusable"
        # Sent with its verdict, it is a review like any other.
        scratch = [{"index": ins["regions"][0]["index"], "type": "scratch"}]
        typed = client.post(url, json={"reviewer": "Ina", "verdict": "defective", "regions": scratch})
        assert typed.status_code == 200 and typed.json()["final_verdict"] == "defective"
        # A comment alone is never refused, a stale count or not (regression probe round 2: 409, and every inspector's
        # review after it told "reviewed meanwhile" by the commenter).
        assert client.post(url, json={"reviewer": "bot", "comment": "shift B", "seen_reviews": 0}).status_code == 200


def test_a_region_of_the_only_type_known_is_said_so_not_given_a_percentage():
    # Probe 2026-12-05: with examples of one type the page said "99%" on every region, false alarms
    # included; the report now says "only type known", and the API carries it for the page.
    from defectlens.service.db import InspectionRow, RegionRow
    from defectlens.service.schemas import inspection_out

    def region(index: int, missed: bool = False) -> RegionRow:
        return RegionRow(index=index, defect_type="pitting", confidence=0.99, method="reviewer" if missed else "few-shot", x0=0, y0=0,
                         x1=4, y1=4, area_px=16, area_fraction=0.01, peak_score=9.0, reviewed_type=None, missed=missed)

    row = InspectionRow(id=1, created_at=datetime.now(UTC), model="m", filename="a.png", image_sha="a", image_ext="png", overlay_sha="b",
                        mask_sha="c", width=8, height=8, score=9.0, verdict="defective", threshold=5.0, seconds=0.1, report_text="",
                        report={"findings": [{"region_index": 1, "only_type": True}, {"region_index": 2}]}, review_state="unreviewed",
                        regions=[region(1), region(2), region(3, missed=True)], reviews=[])
    assert [r.only_type for r in inspection_out(row).regions] == [True, False, False]
    page = (Path(__file__).parents[2] / "src" / "defectlens" / "service" / "static" / "index.html").read_text()
    assert 'r.only_type ? "only type known"' in page


def test_the_page_shows_a_tiff_upload_as_png(pool: ModelPool, images: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    # Security probe 2026-12-05: a TIFF upload's original showed broken on the page (browsers show no TIFF),
    # so a reviewer had no picture to draw a missed defect on.
    tiff = tmp_path / "part.tif"
    with Image.open(images["bad"]) as im:
        im.save(tiff)
        size = im.width * im.height
    charged: list[int] = []
    hold = service_app.PixelBudget.hold

    def recorded(self, pixels, timeout=None):
        charged.append(pixels)
        return hold(self, pixels, timeout)

    monkeypatch.setattr(service_app.PixelBudget, "hold", recorded)
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        ins = upload(client, tiff).json()
        original = client.get(ins["urls"]["image"])
        assert original.headers["content-type"] == "image/tiff" and original.content == tiff.read_bytes()
        charged.clear()
        view = client.get(ins["urls"]["view"])
        assert view.status_code == 200 and view.headers["content-type"] == "image/png"
        # Decoded for the view under the service's pixel budget, as an upload is (security probe 2026-12-06: twelve views of
        # a 16 M-pixel TIFF at once, with no token, had taken 3.7 GB).
        assert charged == [size]
        # Not waited for without end: past VIEW_WAIT_SECONDS a view is answered 503 (regression probe 2026-12-06: sixty waiting
        # views held the server's threads and kept /health waiting 13 s).
        budget = PixelBudget(size)
        with budget.hold(size), pytest.raises(service_app.BudgetTimeout), budget.hold(1, timeout=0.05):
            pass
        with budget.hold(size, timeout=0.05):  # free again
            pass

        def busy(self, pixels, timeout=None):
            raise service_app.BudgetTimeout

        monkeypatch.setattr(service_app.PixelBudget, "hold", busy)
        waited = client.get(ins["urls"]["view"])
        assert waited.status_code == 503 and waited.headers["retry-after"] == "5" and "retry shortly" in waited.json()["detail"]
        monkeypatch.setattr(service_app.PixelBudget, "hold", recorded)
        with Image.open(io.BytesIO(view.content)) as shown, Image.open(images["bad"]) as first:
            assert shown.format == "PNG" and shown.size == first.size
        assert client.get(ins["urls"]["view"], headers={"If-None-Match": view.headers["etag"]}).status_code == 304
        # A damaged file in the store: a refusal that says so, not a bare 500 (regression probe 2026-12-06).
        stored = client.app.state.blobs.path(client.get(ins["urls"]["image"]).headers["etag"].strip('"'), "tif")
        stored.write_bytes(stored.read_bytes()[:300])
        damaged = client.get(ins["urls"]["view"])
        assert damaged.status_code == 500 and "its file in the store is damaged" in damaged.json()["detail"]
        png = upload(client, images["good"]).json()
        assert client.get(png["urls"]["view"]).content == images["good"].read_bytes()  # shown as received
        # Its header parsed once, not at each view asked with no token (security probe 2026-12-07: a PNG of 1.2 million small
        # chunks before its pixels had taken 10 s a view).
        parsed: list[Path] = []
        with monkeypatch.context() as patched:
            patched.setattr(service_app, "eight_bit", lambda path: parsed.append(path) or True)
            for _ in range(3):
                assert client.get(png["urls"]["view"]).content == images["good"].read_bytes()
        assert parsed == []
        # A 12-bit image in a 16-bit PNG is shown as inspection read it (it showed black: regression probe).
        deep = tmp_path / "deep.png"
        Image.fromarray((np.asarray(Image.open(images["good"]).convert("L"), np.uint16) * 10).astype(np.uint16)).save(deep)
        shown16 = client.get(upload(client, deep).json()["urls"]["view"])
        from defectlens.io import load_image

        with Image.open(io.BytesIO(shown16.content)) as shown:
            assert shown.format == "PNG" and np.array_equal(np.asarray(shown.convert("RGB")), load_image(deep))
        # A stored file unreadable once (emptied, then put back) is judged again when it is back: the answer kept for it had sent
        # the 16-bit file raw until a restart (regression probe 2026-12-07).
        again = tmp_path / "deep2.png"
        Image.fromarray((np.asarray(Image.open(images["bad"]).convert("L"), np.uint16) * 12).astype(np.uint16)).save(again)
        made = upload(client, again).json()
        stored = client.app.state.blobs.path(client.get(made["urls"]["image"]).headers["etag"].strip('"'), "png")
        kept = stored.read_bytes()
        stored.write_bytes(b"")
        client.get(made["urls"]["view"])
        stored.write_bytes(kept)
        with Image.open(io.BytesIO(client.get(made["urls"]["view"]).content)) as shown:
            assert shown.mode != "I;16" and np.array_equal(np.asarray(shown.convert("RGB")), load_image(again))
        # A see-through part is shown filled, as inspection read it and the overlay was drawn over it.
        clear = tmp_path / "clear.png"
        rgba = np.asarray(Image.open(images["good"]).convert("RGBA")).copy()
        rgba[:10, :10, 3] = 0
        Image.fromarray(rgba).save(clear)
        with Image.open(io.BytesIO(client.get(upload(client, clear).json()["urls"]["view"]).content)) as shown:
            assert shown.mode == "RGB" and np.array_equal(np.asarray(shown), load_image(clear))
    page = (Path(__file__).parents[2] / "src" / "defectlens" / "service" / "static" / "index.html").read_text()
    assert "ins.urls.view" in page


def test_the_model_named_in_the_url_or_left_empty(pool, images, tmp_path):
    # Probe 2026-12-06: ?model= (as the history takes it) was ignored and the upload judged by the first model
    # served; an empty form field (a script's unset $PART) went there too.
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        name = pool.default
        with images["bad"].open("rb") as fh:
            r = client.post("/inspections", params={"model": "nope"}, files={"file": ("a.png", fh, "image/png")})
        assert r.status_code == 422 and "unknown model 'nope'" in r.json()["detail"]
        with images["bad"].open("rb") as fh:
            r = client.post("/inspections", params={"model": name}, files={"file": ("a.png", fh, "image/png")})
        assert r.status_code == 201 and r.json()["model"] == name
        with images["bad"].open("rb") as fh:
            r = client.post("/inspections", params={"model": "nope"}, data={"model": name}, files={"file": ("a.png", fh, "image/png")})
        assert r.status_code == 422 and "several models are named ('plate', 'nope')" in r.json()["detail"]
        # Repeated in one place (each keeps its last value): refused too (regression probe).
        for where in ({"params": [("model", name), ("model", "nope")]}, {"data": {"model": [name, "nope"]}}):
            with images["bad"].open("rb") as fh:
                r = client.post("/inspections", files={"file": ("a.png", fh, "image/png")}, **where)
            assert r.status_code == 422 and "several models are named" in r.json()["detail"], (where, r.text)
        with images["bad"].open("rb") as fh:  # the same name twice is one name
            same = client.post("/inspections", params={"model": name}, data={"model": name}, files={"file": ("a.png", fh, "image/png")})
        assert same.status_code == 201
        for where in ({"data": {"model": ""}}, {"params": {"model": " "}}):
            with images["bad"].open("rb") as fh:
                r = client.post("/inspections", files={"file": ("a.png", fh, "image/png")}, **where)
            assert r.status_code == 422 and "the model's name is empty" in r.json()["detail"], where
        assert client.get("/inspections").json()["total"] == 2
        # The history's filter, as the upload: two values for one filter are refused, not the last one taken.
        both = client.get("/inspections", params=[("model", name), ("model", "nope")])
        assert both.status_code == 422 and "model is given 2 times" in both.json()["detail"]
        assert client.get("/inspections", params=[("model", name), ("model", name)]).json()["total"] == 2


def test_metrics_keep_how_far_each_image_lies_from_the_normal_ones(tmp_path: Path) -> None:
    # Drift probe 2026-12-06: a camera losing focus raised false alarms with no image over the frame check's limit; the
    # service kept nothing a dashboard could watch for it.
    from PIL import ImageFilter
    from service_helpers import texture

    from defectlens import Inspector, InspectorSettings
    from defectlens.detect.frame_check import MIN_IMAGES

    rng = np.random.default_rng(5)
    with pytest.warns(defectlens.errors.DefectlensWarning):
        model = Inspector.fit([texture(rng, 96, 128) for _ in range(MIN_IMAGES + 2)], InspectorSettings(image_size=128, coreset_ratio=0.5))
    model.save(tmp_path / "line")
    sharp = Image.fromarray(texture(rng, 96, 128))
    sharp.save(tmp_path / "sharp.png")
    sharp.filter(ImageFilter.GaussianBlur(2)).save(tmp_path / "blurred.png")
    pool = ModelPool.load([tmp_path / "line"])
    try:
        with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
            for name in ("sharp", "blurred"):
                assert upload(client, tmp_path / f"{name}.png").status_code == 201
            metrics = client.get("/metrics").text
    finally:
        pool.close()
    assert 'defectlens_frame_distance_count{model="line"} 2.0' in metrics
    # The sharp one within the normal images' 98th percentile, the blurred one beyond it.
    assert 'defectlens_frame_distance_bucket{le="1.0",model="line"} 1.0' in metrics


def test_a_retried_upload_with_its_idempotency_key_is_answered_with_the_first(pool, images, tmp_path, monkeypatch):
    # Integration probe 2026-12-06: a gateway that timed out and sent the upload again stored the part twice (the first
    # request had been committed after the client gave up), and an Idempotency-Key header was silently ignored.
    def post(path: Path, key: str | None):
        headers = {"Idempotency-Key": key} if key else {}
        with path.open("rb") as fh:
            return client.post("/inspections", files={"file": (path.name, fh, "image/png")}, headers=headers)

    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        first = post(images["bad"], "line4-0001")
        assert first.status_code == 201 and first.json()["client_key"] == "line4-0001"
        inspected = []
        monkeypatch.setattr(pool, "inspect", lambda *a, **k: inspected.append(1) or pytest.fail("inspected again"))
        again = post(images["bad"], "line4-0001")
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"] and inspected == []
        assert client.get("/inspections").json()["total"] == 1
        other = post(images["good"], "line4-0001")  # the key given to another image: refused, nothing stored
        assert other.status_code == 409 and "was given to another upload (inspection 1" in other.json()["detail"]
        monkeypatch.undo()
        assert post(images["good"], None).status_code == post(images["good"], None).status_code == 201  # no key: each stored
        assert client.get("/inspections").json()["total"] == 3
        refused = post(images["good"], "bad key with spaces")
        assert refused.status_code == 422 and refused.json()["detail"].startswith("Idempotency-Key must be 1 to 200 printable ASCII")
        with images["good"].open("rb") as fh:  # two keys at once: not the first taken silently (regression probe)
            two = client.post("/inspections", files={"file": ("g.png", fh, "image/png")},
                              headers=[("Idempotency-Key", "a-1"), ("Idempotency-Key", "a-2")])
        assert two.status_code == 422 and "holds 2 different keys" in two.json()["detail"]
        with images["bad"].open("rb") as fh:  # one key repeated, as a proxy joins repeated headers: the same key
            joined = client.post("/inspections", files={"file": ("b.png", fh, "image/png")}, headers={"Idempotency-Key": "line4-0001, line4-0001"})
        assert joined.status_code == 200 and joined.json()["id"] == first.json()["id"]
        responses = client.get("/openapi.json").json()["paths"]["/inspections"]["post"]["responses"]
        assert {"200", "201", "409"} <= set(responses)
        # A retry racing its first try: both look before either is stored; the later write finds the key taken.
        store = client.app.state.store
        looked = store.by_client_key
        calls = []
        monkeypatch.setattr(store, "by_client_key", lambda key: looked(key) if calls.append(key) or len(calls) > 1 else None)
        raced = post(images["bad"], "line4-0001")
        assert raced.status_code == 200 and raced.json()["id"] == first.json()["id"] and client.get("/inspections").json()["total"] == 3


def test_the_history_finds_what_was_reviewed_since_a_time(pool, images, tmp_path):
    # Integration probe 2026-12-06: a line's system could not ask which parts were reviewed since it last looked: since
    # and until read the upload time only, so a late review of an old part was found by reading the whole history.
    from datetime import UTC, datetime, timedelta

    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        old, new = upload(client, images["bad"]).json(), upload(client, images["good"]).json()
        before = datetime.now(UTC) - timedelta(seconds=1)
        assert client.post(f"/inspections/{old['id']}/review", json={"reviewer": "Ana", "verdict": "good"}).status_code == 200
        found = client.get("/inspections", params={"reviewed_since": before.isoformat()}).json()
        assert [i["id"] for i in found["items"]] == [old["id"]] and new["id"] != old["id"]
        later = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
        assert client.get("/inspections", params={"reviewed_since": later}).json()["total"] == 0
        # A comment is found too (regression probe: the filter read the latest labelling review's time alone).
        time.sleep(0.01)
        since_note = datetime.now(UTC)
        assert client.post(f"/inspections/{new['id']}/review", json={"reviewer": "Bo", "comment": "check the rim"}).status_code == 200
        found = client.get("/inspections", params={"reviewed_since": since_note.isoformat()}).json()
        assert [i["id"] for i in found["items"]] == [new["id"]]


def test_head_is_answered_as_get_without_the_body(pool, images, tmp_path):
    # Integration probe 2026-12-06: HEAD was 405 everywhere, so a load balancer's `HEAD /health` check marked the service
    # down and `curl -I` failed on every picture.
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        ins = upload(client, images["bad"]).json()
        for url in ("/health", ins["urls"]["image"], ins["urls"]["overlay"], f"/inspections/{ins['id']}", "/metrics"):
            got, head = client.get(url), client.head(url)
            assert head.status_code == got.status_code == 200 and head.content == b"", url
            assert head.headers.get("content-type") == got.headers.get("content-type"), url
        assert client.head(ins["urls"]["image"]).headers["content-length"] == str(images["bad"].stat().st_size)
        assert client.head("/inspections/999").status_code == 404


def test_a_poller_pages_after_the_last_id_it_saw_and_misses_or_repeats_none(pool, images, tmp_path, db_url):
    # Integration probe 2026-12-06: paging by offset, newest first, repeated two items when two uploads arrived between
    # pages (ids 16 and 15 twice); there was no cursor.
    with make_app(pool, db_url, tmp_path / "data") as client:
        ids = [upload(client, images["good"]).json()["id"] for _ in range(5)]
        first = client.get("/inspections", params={"after_id": 0, "limit": 3}).json()
        assert [i["id"] for i in first["items"]] == ids[:3] and first["total"] == 5
        ids += [upload(client, images["bad"]).json()["id"] for _ in range(2)]  # arriving between two polls
        second = client.get("/inspections", params={"after_id": first["items"][-1]["id"], "limit": 3}).json()
        third = client.get("/inspections", params={"after_id": second["items"][-1]["id"], "limit": 3}).json()
        assert [i["id"] for i in first["items"] + second["items"] + third["items"]] == ids
        assert client.get("/inspections", params={"after_id": -1}).status_code == 422
        # Beyond a 32-bit id (PostgreSQL's column): 422 there, not "database unavailable" with the store's gauge down; on
        # SQLite, whose ids are 64-bit, a page or a 404 (regression probes 2026-12-06).
        big = [client.get("/inspections", params={"after_id": 2**31}), client.get(f"/inspections/{2**31}")]
        expected = [422, 422] if db_url.startswith("postgresql") else [200, 404]
        assert [r.status_code for r in big] == expected, [r.text for r in big]
        assert client.get("/health").status_code == 200 and client.get(f"/inspections/{2**63}").status_code == 422


def test_the_openapi_document_lists_every_refusal_and_its_body(pool, images, tmp_path):
    # Integration probe 2026-12-06: every route listed 422 alone, with a body (an array of fields) that half the real 422s
    # did not have (a one-line string); 401, 404, 409, 413 and 503 were not listed.
    from defectlens.service.schemas import ErrorOut

    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        doc = client.get("/openapi.json").json()
        post = doc["paths"]["/inspections"]["post"]["responses"]
        assert {"201", "401", "409", "413", "422", "503"} <= set(post)
        assert post["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
        # Each route lists what it may answer, not every refusal (regression probe: a GET listed 401 and 413).
        listing = doc["paths"]["/inspections"]["get"]["responses"]
        assert {"422", "503"} <= set(listing) and not {"401", "409", "413"} & set(listing)
        # /health's 503 has its own body (regression probe: listed as ErrorOut, which it is not).
        health = doc["paths"]["/health"]["get"]["responses"]["503"]["content"]["application/json"]["schema"]
        assert health == {"$ref": "#/components/schemas/HealthOut"}
        not_an_image = tmp_path / "a.png"
        not_an_image.write_bytes(b"not an image")
        refusals = [upload(client, not_an_image), client.get("/inspections", params={"limit": 0}), client.get("/inspections/999")]
        assert [r.status_code for r in refusals] == [422, 422, 404]
        for refused in refusals:
            ErrorOut.model_validate(refused.json())


def test_the_openapi_document_declares_headers_token_and_models(pool, images, tmp_path):
    # OpenAPI probe 2026-12-07: a generated client read none of the answers' headers (X-Request-ID, Retry-After, ETag,
    # WWW-Authenticate), sent no token (no security scheme), got GET /models as a bare object, and /metrics' 400 as text.
    from openapi_spec_validator import validate

    from defectlens.service.schemas import ModelsOut

    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data", token=TOKEN) as client:
        doc = client.get("/openapi.json").json()
        validate(doc)
        paths = doc["paths"]
        writes = [op for ops in paths.values() for op in ops.values() if op.get("security")]
        assert writes == [paths["/inspections"]["post"], paths["/inspections/{inspection_id}/review"]["post"]]
        assert writes[0]["security"] == [{"apiToken": []}, {"bearer": []}]
        assert doc["components"]["securitySchemes"]["apiToken"] == {"type": "apiKey", "in": "header", "name": "X-API-Token",
                                                                   "description": "The token given to serve --token"}
        post = paths["/inspections"]["post"]["responses"]
        assert set(post["503"]["headers"]) == {"X-Request-ID", "Retry-After"} and "WWW-Authenticate" in post["401"]["headers"]
        assert all("X-Request-ID" in r["headers"] for ops in paths.values() for op in ops.values() for r in op["responses"].values())
        assert "ETag" in paths["/inspections/{inspection_id}/overlay.png"]["get"]["responses"]["200"]["headers"]
        assert set(paths["/metrics"]["get"]["responses"]["400"]["content"]) == {"application/json"}
        assert paths["/models"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ModelsOut"}
        ModelsOut.model_validate(client.get("/models").json())
        # The declared headers are the ones sent.
        refused = client.post("/inspections", files={"file": ("a.png", b"x", "image/png")})
        assert refused.status_code == 401 and refused.headers["www-authenticate"] and refused.headers["x-request-id"]
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as open_client:
        doc = open_client.get("/openapi.json").json()
        validate(doc)
        # Writes open to all (no --token): no token declared.
        assert "securitySchemes" not in doc["components"] and not any(op.get("security") for ops in doc["paths"].values() for op in ops.values())


def test_json_is_sent_compressed_and_pictures_as_they_are(pool, images, tmp_path):
    # Tablet probe 2026-12-07: a page of the history was 80 kB where 7 kB gzipped carries it (1.4 to 3 s on a slow network).
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        for _ in range(5):
            ins = upload(client, images["bad"]).json()
        listed = client.get("/inspections", headers={"Accept-Encoding": "gzip"})
        assert listed.headers["content-encoding"] == "gzip" and listed.json()["total"] == 5
        assert client.get("/", headers={"Accept-Encoding": "gzip"}).headers["content-encoding"] == "gzip"
        assert "content-encoding" not in client.get("/inspections", headers={"Accept-Encoding": "identity"}).headers
        # Regression probe 2026-12-07: "gzip;q=0" (refused) was sent gzip, "*" was not; a HEAD lacked the GET's encoding.
        for refusing in ("gzip;q=0, identity", "deflate", "*;q=1, gzip;q=0", "gzip;q=0.000"):
            assert "content-encoding" not in client.get("/inspections", headers={"Accept-Encoding": refusing}).headers, refusing
        for taking in ("*", "GZIP", "x-gzip", "br;q=1.0, gzip;q=0.5", "identity;q=0, *;q=0.1"):
            assert client.get("/inspections", headers={"Accept-Encoding": taking}).headers.get("content-encoding") == "gzip", taking
        head = client.head("/inspections", headers={"Accept-Encoding": "gzip"})
        assert head.status_code == 200 and not head.content and head.headers["content-encoding"] == "gzip"
        page, page_head = (client.request(m, "/", headers={"Accept-Encoding": "gzip"}) for m in ("GET", "HEAD"))
        assert page_head.headers["content-encoding"] == "gzip" and page_head.headers.get("content-length") == page.headers.get("content-length")
        for picture in ("overlay", "image"):
            sent = client.get(ins["urls"][picture], headers={"Accept-Encoding": "gzip"})
            assert sent.status_code == 200 and "content-encoding" not in sent.headers and sent.headers["etag"]


def test_a_history_filter_sent_blank_is_no_filter(pool, images, tmp_path):
    # OpenAPI probe 2026-12-07: type= and model= were let go while verdict=, review=, since= and after_id= were refused.
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        upload(client, images["good"])
        upload(client, images["bad"])
        for name in ("verdict", "type", "model", "since", "until", "review", "reviewed_since", "after_id", "limit", "offset"):
            for blank in ("", " "):
                listed = client.get("/inspections", params={name: blank})
                assert listed.status_code == 200 and listed.json()["total"] == 2, (name, blank, listed.text)
        # Not blank, still checked.
        assert client.get("/inspections", params={"verdict": "x" * 21}).status_code == 422
        assert client.get("/inspections", params={"review": "both"}).status_code == 422
        assert client.get("/inspections", params={"after_id": "-1"}).status_code == 422
        assert [client.get("/inspections", params=p).status_code for p in ({"limit": "0"}, {"limit": "501"}, {"offset": "-1"})] == [422] * 3
        assert client.get("/inspections", params={"limit": ""}).json()["limit"] == 50
        assert client.get("/inspections", params={"verdict": "good"}).json()["total"] == 1
        # As the verdict is read, any case and spaces around let go (regression probe 2026-12-07: "Reviewed" refused, " plate"
        # refused, " spot" finding nothing).
        client.post("/inspections/2/review", json={"reviewer": "Ana", "verdict": "defective",
                                                   "regions": [{"index": 1, "type": "spot"}]})
        for name, value, total in (("review", "Reviewed", 1), ("review", " UNREVIEWED ", 1), ("model", " plate ", 2), ("type", " Spot ", 1)):
            listed = client.get("/inspections", params={name: value})
            assert listed.status_code == 200 and listed.json()["total"] == total, (name, value, listed.text)
        assert "review must be reviewed or unreviewed (any case), not 'both'" in client.get("/inspections", params={"review": "both"}).text


def test_a_history_filter_it_does_not_have_is_refused_not_ignored(pool, images, tmp_path):
    # Integration probe 2026-12-06: a typo (?sinse=) was ignored and the whole history listed, as if filtered.
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        upload(client, images["good"])
        typo = client.get("/inspections", params={"sinse": "2026-01-01"})
        assert typo.status_code == 422 and typo.json()["detail"].startswith("no filter 'sinse' in the history: known are after_id")
        assert client.get("/inspections", params={"_": "1712", "limit": 5}).json()["total"] == 1  # a cache-buster passes
        with images["good"].open("rb") as fh:  # nor on an upload (?modle= had gone to the first model served)
            typo_up = client.post("/inspections?modle=plate", files={"file": ("g.png", fh, "image/png")})
        assert typo_up.status_code == 422 and "no parameter 'modle' on an upload" in typo_up.json()["detail"]


def test_an_integrators_mistakes_are_refused_with_the_fix(pool: ModelPool, images: dict[str, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Integration probe 2026-12-06 (curl and urllib only): a misspelt review key was dropped and the review stored as a
    # person's label (200), a misspelt form field sent the part to the first model (201), raw image bytes were told
    # "body file: Field required", a token not sent and a wrong one read alike, and the pictures were documented as JSON.
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data", token=TOKEN) as client:
        auth = {"X-API-Token": TOKEN}
        ins = upload(client, images["bad"], token=TOKEN).json()
        review = f"/inspections/{ins['id']}/review"
        for body, field, takes in (({"reviewer": "MES", "verdikt": "good"}, "verdikt", "reviewer, verdict"),
                                   ({"reviewer": "MES", "verdict": "good", "coment": "rim"}, "coment", "reviewer, verdict"),
                                   ({"reviewer": "MES", "missed": [{"type": "scratch", "box": [1, 2, 30, 40]}]}, "box", "type, bbox"),
                                   ({"reviewer": "MES", "regions": [{"index": 1, "name": "scratch"}]}, "name", "index, type")):
            refused = client.post(review, json=body, headers=auth)
            assert refused.status_code == 422, (body, refused.text)
            said = " ".join(d["msg"] for d in refused.json()["detail"])
            assert f"no field {field!r} here: it takes {takes}" in said, said
        assert client.get(f"/inspections/{ins['id']}").json()["review"]["state"] == "unreviewed"
        # A region as GET gives it, its type changed, is taken: what the service set is no typo (regression probe 2026-12-06).
        read = client.get(f"/inspections/{ins['id']}").json()["regions"]
        echoed = client.post(review, json={"reviewer": "MES", "verdict": "defective",
                                           "regions": [{**r, "type": "scratch"} for r in read if not r["missed"]]}, headers=auth)
        assert echoed.status_code == 200, echoed.text
        assert {r["type"] for r in echoed.json()["regions"]} == {"scratch"}
        assert client.post(review, json={"reviewer": "MES", "regions": [{**read[0], "colour": "red"}]}, headers=auth).status_code == 422

        data = images["good"].read_bytes()
        for form, said in (({"modle": "plate"}, "no form field 'modle' on an upload: it takes 'file' (the image) and 'model'"),
                           ({"Model": "plate"}, "no form field 'Model'")):
            refused = client.post("/inspections", files={"file": ("g.png", data, "image/png")}, data=form, headers=auth)
            assert refused.status_code == 422 and said in refused.json()["detail"], refused.text
        raw = client.post("/inspections", content=data, headers={**auth, "Content-Type": "image/png"})
        assert raw.status_code == 415 and "multipart/form-data form with the image in a part named 'file'" in raw.json()["detail"]
        # A form cut off before its closing boundary (API contract probe 2026-12-07: "no part named 'file'", which it had sent).
        cut = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="g.png"\r\nContent-Type: image/png\r\n\r\n' + data
        cut_off = client.post("/inspections", content=cut, headers={**auth, "Content-Type": "multipart/form-data; boundary=xyz"})
        assert cut_off.status_code == 422 and "must end with its closing boundary" in cut_off.json()["detail"], cut_off.text
        assert raw.json()["detail"].endswith("not image/png")
        named = client.post("/inspections", files={"image": ("g.png", data, "image/png")}, headers=auth)
        assert named.status_code == 422 and "no form field 'image'" in named.json()["detail"]
        text = client.post("/inspections", data={"file": "<g.png"}, files={"_": ("x", b"x")}, headers=auth)
        assert text.status_code == 422 and "the part 'file' holds text, not a file" in text.json()["detail"], text.text
        assert client.get("/inspections").json()["total"] == 1  # nothing of the above was stored
        # Each counted once, as a request the client got wrong (regression probe 2026-12-07: counted nowhere).
        metrics = client.get("/metrics", headers=auth).text
        assert 'defectlens_rejected_uploads_total{reason="invalid_request"} 6.0' in metrics, metrics
        assert 'reason="not_an_image"} 0.0' in metrics and 'reason="server_error"} 0.0' in metrics
        # Cut off in a part after the file's: that part is dropped by the form's reader; a 'model' part lost had sent the part to
        # the first model served without a word (regression probe 2026-12-07).
        head = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="g.png"\r\nContent-Type: image/png\r\n\r\n' + data
        model_part = b'\r\n--xyz\r\nContent-Disposition: form-data; name="model"\r\n\r\nplate'
        multipart = {**auth, "Content-Type": "multipart/form-data; boundary=xyz"}
        before = client.get("/inspections").json()["total"]
        lost = client.post("/inspections", content=head + model_part + b"\r\n--xyz", headers=multipart)
        assert lost.status_code == 422 and "breaks off before its closing boundary" in lost.json()["detail"], lost.text
        assert client.get("/inspections").json()["total"] == before
        whole = client.post("/inspections", content=head + model_part + b"\r\n--xyz--\r\n", headers=multipart)
        assert whole.status_code == 201 and whole.json()["model"] == "plate", whole.text
        # An epilogue after the closing boundary is the form's own (RFC 2046), a long one too (regression probe 2026-12-07).
        assert client.post("/inspections", content=head + b"\r\n--xyz--\r\nan epilogue\r\n", headers=multipart).status_code == 201
        assert client.post("/inspections", content=head + b"\r\n--xyz--\r\n" + b"e" * 30_000, headers=multipart).status_code == 201
        # The boundary as the form's reader takes it: a non-ASCII one, and the last of two (second regression probe 2026-12-07).
        odd = {**auth, "Content-Type": "multipart/form-data; boundary=Xy\u00e9".encode("utf-8")}
        odd_head = head.replace(b"--xyz", "--Xy\u00e9".encode("utf-8"))
        odd_cut = client.post("/inspections", content=odd_head + model_part.replace(b"--xyz", "--Xy\u00e9".encode("utf-8")), headers=odd)
        assert odd_cut.status_code == 422 and "breaks off" in odd_cut.text, odd_cut.text
        assert client.post("/inspections", content=odd_head + "\r\n--Xy\u00e9--\r\n".encode("utf-8"), headers=odd).status_code == 201
        # A file's bytes holding an LF and the closing delimiter are its data, not the form's end (final probe 2026-12-07).
        lf_head = head + b"x\n--xyz--y"
        lf_cut = client.post("/inspections", content=lf_head + model_part, headers=multipart)
        assert lf_cut.status_code == 422 and "breaks off" in lf_cut.text, lf_cut.text
        twice = {**auth, "Content-Type": "multipart/form-data; boundary=first; boundary=xyz"}
        assert client.post("/inspections", content=head + b"\r\n--xyz--\r\n", headers=twice).status_code == 201

        # A name in another Unicode spelling (macOS sends "ä" decomposed) is the same model.
        import dataclasses

        monkeypatch.setitem(pool.models, "kommutator \u00e4", dataclasses.replace(pool.models["plate"], name="kommutator \u00e4"))
        assert upload(client, images["good"], token=TOKEN, model="kommutator a\u0308").status_code == 201
        listed = client.get("/inspections", params={"model": "kommutator a\u0308"})
        assert listed.status_code == 200 and listed.json()["total"] == 1
        # Named in both spellings at once: one name (regression probe 2026-12-06: "several models are named").
        both = client.post("/inspections", params={"model": "kommutator \u00e4"}, data={"model": "kommutator a\u0308"},
                           files={"file": ("g.png", data, "image/png")}, headers=auth)
        assert both.status_code == 201, both.text
        store = client.app.state.store
        assert store.stored_name("kommutator a\u0308") == "kommutator \u00e4" and store.stored_name("other") is None

        # Which token problem it is.
        assert upload(client, images["good"]).json()["detail"].startswith("no API token sent")
        assert upload(client, images["good"], token="wrong").json()["detail"].startswith("wrong API token")
        assert client.post(review, json={"reviewer": "a"}, headers={"Authorization": "Bearer x"}).json()["detail"].startswith("wrong API token")
        # Nothing of the header is echoed (regression probe 2026-12-06: a token sent with no scheme came back whole).
        # A registered scheme is named back, no secret being in it (regression probe 2026-12-06: "is Basic, not Bearer" had gone).
        for header, said in (("Basic eDp5", "the Authorization header is Basic, not Bearer"), (TOKEN, "the Authorization header is not"),
                             ("Bearer", "the Authorization header is Bearer with no token"), (f"X{TOKEN} y", "the Authorization header is not")):
            refused = client.post(review, json={"reviewer": "a"}, headers={"Authorization": header}).json()["detail"]
            assert refused.startswith(said) and TOKEN not in refused and "eDp5" not in refused, refused
        # The right token after two spaces is right.
        assert client.post(review, json={"reviewer": "a", "comment": "ok"}, headers={"Authorization": f"Bearer  {TOKEN}"}).status_code == 200
        assert client.post(review, json={"reviewer": "a", "comment": "ok"}, headers={"Authorization": f"Bearer\t{TOKEN}"}).status_code == 200

        # The pictures are documented as what they are, with the 304 their ETag gives; uploads may be answered 415.
        spec = client.get("/openapi.json").json()["paths"]
        assert set(spec["/inspections/{inspection_id}/overlay.png"]["get"]["responses"]["200"]["content"]) == {"image/png"}
        assert "304" in spec["/inspections/{inspection_id}/mask.png"]["get"]["responses"]
        assert {"image/png", "image/jpeg", "image/tiff"} <= set(spec["/inspections/{inspection_id}/image"]["get"]["responses"]["200"]["content"])
        assert "image/tiff" not in spec["/inspections/{inspection_id}/view"]["get"]["responses"]["200"]["content"]
        assert "415" in spec["/inspections"]["post"]["responses"]
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
        assert schemas["InspectionOut"]["properties"]["final_verdict"]["enum"] == ["good", "defective", "unusable"]
        assert set(schemas["InspectionUrls"]["required"]) == {"self", "image", "view", "overlay", "mask", "page"}
        assert set(ins["urls"]) == {"self", "image", "view", "overlay", "mask", "page"}


def test_a_model_name_with_a_slash_is_refused_as_a_name(tmp_path: Path) -> None:
    from defectlens.errors import ConfigError
    from defectlens.service.models import model_spec

    (tmp_path / "cookie").mkdir()
    with pytest.raises(ConfigError, match="holds a / or"):
        model_spec(f"line/3={tmp_path / 'cookie'}")
    assert model_spec(f"kommutator a\u0308={tmp_path / 'cookie'}") == ("kommutator \u00e4", tmp_path / "cookie")
    assert model_spec(f"{tmp_path}/x=y") == (None, Path(f"{tmp_path}/x=y"))  # a folder whose name holds '=': still a folder


def test_behind_a_proxy_under_a_path_the_urls_and_page_go_under_it(pool: ModelPool, images: dict[str, Path], db_url: str, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    # Proxy probe 2026-12-07: under /inspect/ the page's calls and the API's URLs went to the host's root (every call 404),
    # the service's own page was refused as "another site" where nginx passes the Host without its port, and a request
    # without a Host (a load balancer's HTTP/1.0 health check) was refused.
    from fastapi.testclient import TestClient

    from defectlens.service.app import ServiceConfig, create_app

    cfg = ServiceConfig((pool.models[pool.default].path,), db_url, tmp_path / "data", None, allowed_hosts=("*",))
    with TestClient(create_app(cfg, pool=pool), root_path="/inspect") as client:
        assert '<meta name="defectlens-root" content="/inspect">' in client.get("/").text
        made = upload(client, images["bad"])
        assert made.status_code == 201, made.text
        urls = made.json()["urls"]
        assert urls["overlay"] == f"/inspect/inspections/{made.json()['id']}/overlay.png" and urls["page"].startswith("/inspect/#/")
        assert client.get("/inspections").json()["items"][0]["urls"] == urls
        # A refused upload under the path is one (regression probe 2026-12-08: compared with its prefix, uploads under /inspect
        # had been neither logged when refused, counted, nor held to --max-in-flight).
        with caplog.at_level(logging.WARNING, logger="defectlens.service.app"):
            refused = client.post("/inspect/inspections", files={"file": ("junk.png", b"not an image", "image/png")},
                                  headers={"X-Request-ID": "rp-1"})
        assert refused.status_code == 422 and "upload refused with 422 (request rp-1)" in caplog.text, caplog.text
        # A trailing slash's redirect as a path under the prefix, the path as uvicorn passes it (left by the last session: named
        # http://HOST/… after the Host the proxy passed, it lost the proxy's port and https).
        moved = client.get("/inspect/inspections/?verdict=defective", headers={"Host": "plant.example"}, follow_redirects=False)
        assert moved.status_code == 307 and moved.headers["location"] == "/inspect/inspections?verdict=defective"
        # The page of this service, its Host passed on without the port and the port in X-Forwarded-Host: not another site.
        review = {"reviewer": "Ana", "comment": "seen"}
        sent = client.post(f"/inspections/{made.json()['id']}/review", json=review,
                           headers={"Origin": "http://plant.example:8443", "Host": "plant.example", "X-Forwarded-Host": "plant.example:8443"})
        assert sent.status_code == 200, sent.text
        other = client.post(f"/inspections/{made.json()['id']}/review", json=review,
                            headers={"Origin": "http://evil.example", "Host": "plant.example", "X-Forwarded-Host": "plant.example:8443"})
        assert other.status_code == 403
    # A rebound page naming itself in X-Forwarded-Host (a proxy that sends its upstream's Host): not this service's name, refused
    # (regression probe 2026-12-07: its write passed).
    named = ServiceConfig((pool.models[pool.default].path,), db_url, tmp_path / "data", None, allowed_hosts=("plant.example",))
    with TestClient(create_app(named, pool=pool), base_url="http://127.0.0.1:8000") as client:
        target = f"/inspections/{made.json()['id']}/review"
        rebound = client.post(target, json=review, headers={"Origin": "http://evil.example:8443", "X-Forwarded-Host": "evil.example:8443"})
        # Refused, and said as a name not told of, with its fix (regression probe 2026-12-07: "another site" for its own page).
        # The name bare, as --allowed-host takes it (regression probe 2026-12-07: with its port, which the option refuses).
        assert rebound.status_code == 403 and rebound.json()["detail"].endswith("start it with --allowed-host evil.example")
        ours = client.post(target, json=review, headers={"Origin": "https://plant.example", "X-Forwarded-Host": "plant.example"})
        assert ours.status_code == 200, ours.text
    with TestClient(create_app(cfg, pool=pool)) as client:
        assert '<meta name="defectlens-root" content="">' in client.get("/").text  # the page takes its own folder
    # No Host at all: let through (DNS rebinding needs a browser, which always sends one); a foreign Host stays refused.
    strict = ServiceConfig((pool.models[pool.default].path,), db_url, tmp_path / "data", None, allowed_hosts=None)
    with TestClient(create_app(strict, pool=pool)) as client:
        assert client.get("/health", headers={"Host": ""}).status_code in (200, 503)  # not refused for its Host (400)
        assert client.get("/health", headers={"Host": "rebound.example"}).status_code == 400
        # Its fix names the bare host, as --allowed-host takes it (regression probe 2026-12-07: "NAME" beside "name:port").
        refused = client.get("/health", headers={"Host": "Rebound.example.:8443"})
        assert "start it with --allowed-host rebound.example (or" in refused.json()["detail"], refused.text
        # Advice the option takes: an underscore (Docker Compose's names) is a name it takes; "user@evil.example" none it does.
        assert "start it with --allowed-host defect_lens (or" in client.get("/health", headers={"Host": "defect_lens:8000"}).json()["detail"]
        garbled = client.get("/health", headers={"Host": "user@evil.example"}).json()["detail"]
        assert "--allowed-host user@" not in garbled and "only --allowed-host '*' would let it through" in garbled, garbled
        # A name ending in a number, which the option refuses (regression probe 2026-12-07: advised all the same).
        numbered = client.get("/health", headers={"Host": "127.1"}).json()["detail"]
        assert "--allowed-host 127.1" not in numbered and "only --allowed-host '*' would let it through" in numbered, numbered
        # Nor for two hosts in one header (regression probe 2026-12-07: "--allowed-host localhost" advised, always taken already);
        # every refusal, the guard's too, kept out of another site's frame.
        two = client.get("/health", headers={"Host": "localhost:8000, evil.example"})
        assert "only --allowed-host '*' would let it through" in two.json()["detail"], two.text
        assert two.headers["x-frame-options"] == "DENY" and two.headers["content-security-policy"] == "frame-ancestors 'none'"


def test_the_view_of_a_deep_image_is_read_at_the_depth_its_model_read_it(tmp_path: Path) -> None:
    # Camera probe 2026-12-07: /view read a 16-bit upload at its own depth while a 12-bit model read it clipped to 12 bits: the
    # page showed a normal-looking tile beside an overlay drawn over a white one.
    import imagecodecs
    from tests.conftest import texture

    from defectlens import Inspector, InspectorSettings
    from defectlens.io import load_image

    rng = np.random.default_rng(5)
    frames = [texture(rng, 96, 128).astype(np.uint16) * 16 for _ in range(12)]  # 12-bit data
    model = tmp_path / "deep"
    with pytest.warns(Warning):
        Inspector.fit(frames, InspectorSettings(image_size=64, coreset_ratio=0.5, extra_neighbourhoods=())).save(model)
    over = tmp_path / "over.png"
    Image.fromarray((texture(rng, 96, 128).astype(np.uint32) * 250).astype(np.uint16)).save(over)  # 16-bit data
    pool = ModelPool.load([model])
    try:
        with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
            made = upload(client, over)
            assert made.status_code == 201, made.text
            shown = np.asarray(Image.open(io.BytesIO(client.get(made.json()["urls"]["view"]).content)).convert("RGB"))
            # 12-bit colour in a 16-bit PNG, whose mode Pillow says "RGB": shown as read, not as sent (regression probe 2026-12-07:
            # the upload itself had been served, near black in a browser).
            colour = tmp_path / "colour.png"
            colour.write_bytes(imagecodecs.png_encode(np.repeat(frames[0][..., None], 3, axis=2)))
            made = upload(client, colour)
            assert made.status_code == 201, made.text
            view = client.get(made.json()["urls"]["view"])
            assert view.content != colour.read_bytes()
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(view.content)).convert("RGB")), load_image(colour, 12))
    finally:
        pool.close()
    with pytest.warns(Warning, match="over the 12-bit range"):
        judged = load_image(over, 12)
    assert np.array_equal(shown, judged) and not np.array_equal(shown, load_image(over))


def test_what_reading_an_upload_said_is_in_its_report_under_the_clients_name(pool: ModelPool, tmp_path: Path, caplog) -> None:
    # Camera probe 2026-12-07: a multi-page TIFF's other pages were said in the server's log alone, under the name of a scratch
    # file already removed; the answer and the stored report said nothing.
    grey = (np.random.default_rng(8).random((96, 128)) * 255).astype(np.uint8)
    scan = tmp_path / "station 4.tif"
    Image.fromarray(grey).save(scan, save_all=True, append_images=[Image.fromarray(255 - grey)])
    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client, caplog.at_level("WARNING"):
        made = [upload(client, scan) for _ in range(2)]
        assert [m.status_code for m in made] == [201, 201], made[0].text
        said = "station 4.tif: 2 pages; only the first is inspected — save each page as its own image to inspect them all"
        assert said in made[0].json()["report"]["notes"] and said in made[0].json()["report_text"]
        assert "tmp" not in " ".join(made[0].json()["report"]["notes"])
        # Logged with the inspection, each time, as the service's log says everything (regression probe 2026-12-07: once a
        # process for each name, undated, as a Python warning); the view read again says nothing more.
        logged = [r.getMessage() for r in caplog.records if "2 pages" in r.getMessage()]
        assert logged == [f"inspection {m.json()['id']}: {said}" for m in made], logged
        assert client.get(made[0].json()["urls"]["view"]).status_code == 200
        assert len([r for r in caplog.records if "2 pages" in r.getMessage()]) == 2


def test_the_types_a_reviewer_may_assign_are_the_taxonomy_s_as_it_spells_them(service_model: Path, synthetic_category: Path,
                                                                                tmp_path: Path) -> None:
    # Regression probe 2026-12-07: examples/SPOT beside the taxonomy's "spot" offered both, and examples of a type the taxonomy
    # lacks (reported unknown) were offered too; an unreadable taxonomy was said to be missing.
    import json
    import shutil

    from defectlens.service.models import load_model

    model = tmp_path / "plate"
    shutil.copytree(service_model, model)
    for folder in ("SPOT", "Dent_Old"):
        (model / "examples" / folder).mkdir(parents=True)
        for image in sorted((synthetic_category / "test" / "spot").iterdir())[:2]:
            shutil.copy(image, model / "examples" / folder / image.name)
    loaded = load_model(model)
    assert loaded.types[:2] == ("spot", "scratch") and not {"SPOT", "Dent_Old"} & set(loaded.types), loaded.types
    (model / "taxonomy.json").write_text(json.dumps({"object": "plate", "defects": [{"name": "spot", "severty": "high"}]}))
    notes = load_model(model).notes
    assert any("taxonomy skipped" in n for n in notes) and not any("no defect types (no taxonomy.json" in n for n in notes), notes


def test_a_service_short_of_memory_answers_503_and_a_failure_json_with_its_request_id(pool, images, tmp_path, monkeypatch, caplog):
    # Resource probe 2026-12-07: under a memory limit a 36-megapixel upload got a plain-text "Internal Server Error" without
    # X-Request-ID or Retry-After, its traceback undated in the log; so did uploads under a low open-file limit.
    def short(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    with make_app(pool, f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data") as client:
        monkeypatch.setattr(pool, "inspect", short)
        with caplog.at_level(logging.WARNING, logger="defectlens"):
            refused = upload(client, images["bad"])
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5" and refused.headers["x-request-id"], refused.text
        assert refused.json()["detail"] == "bad.png: not inspected, this service ran out of memory; retry shortly, or send it downscaled"
        assert any("ran out of memory" in r.getMessage() and "--max-megapixels" in r.getMessage() for r in caplog.records)

        def bug(*args: object, **kwargs: object) -> None:
            raise ValueError("a bug")

        monkeypatch.setattr(pool, "inspect", bug)
        failed = upload(client, images["bad"], name="second.png")
        request_id = failed.headers["x-request-id"]
        assert failed.status_code == 500 and failed.json()["detail"] == f"the service failed on this request (id {request_id}): its log says why"
        assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)
        monkeypatch.undo()
        assert upload(client, images["bad"]).status_code == 201 and client.get("/inspections").json()["total"] == 1
        metrics = client.get("/metrics").text
        assert 'reason="out_of_resources"} 1.0' in metrics and 'reason="server_error"} 1.0' in metrics, metrics
