"""The service's model pool: every PyTorch call on its one worker thread (loading included),
loading errors raised where the pool is made, and the worker stopped after them."""

from __future__ import annotations

import shutil
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import defectlens.service.models as models
from defectlens.errors import ConfigError
from defectlens.service.models import ModelPool


def test_models_load_score_and_type_on_the_worker_thread(service_model: Path, images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, set[str]] = {"load": set(), "score": set(), "type": set()}

    def record(stage: str, fn):
        def wrapped(*args, **kwargs):
            seen[stage].add(threading.current_thread().name)
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(models, "load_model", record("load", models.load_model))
    monkeypatch.setattr(models, "type_with_notes", record("type", models.type_with_notes))
    pool = ModelPool.load([service_model])
    try:
        inspector = pool.models["plate"].inspector
        monkeypatch.setattr(inspector.detector, "score", record("score", inspector.detector.score))
        outcome = pool.inspect(pool.get(None), np.asarray(Image.open(images["bad"]).convert("RGB")), "bad.png")
    finally:
        pool.close()
    assert outcome.inspection.is_defective and outcome.region_types
    # One OpenMP team for the whole process: a second thread calling PyTorch made scoring 40-60 % slower.
    assert seen == {"load": {"defectlens-scorer"}, "score": {"defectlens-scorer"}, "type": {"defectlens-scorer"}}
    assert not pool._worker.is_alive()


def test_a_loading_error_is_raised_by_the_pool_and_its_worker_ends(tmp_path: Path) -> None:
    before = {t.name for t in threading.enumerate() if t.name == "defectlens-scorer" and t.is_alive()}
    with pytest.raises(ConfigError, match="model folder not found"):
        ModelPool.load([tmp_path / "missing"])
    with pytest.raises(ConfigError, match="two models are named 'plate'"):
        ModelPool(lambda: [_named("plate"), _named("plate")])
    alive = [t for t in threading.enumerate() if t.name == "defectlens-scorer" and t.is_alive()]
    assert len(alive) == len(before)


def _named(name: str) -> models.LoadedModel:
    """A stand-in model with only a name and a path (what the pool checks before any scoring)."""
    return models.LoadedModel(name, Path(name), None, None, "", (), [])  # type: ignore[arg-type]


def test_an_interrupted_load_stops_the_worker_once_it_has_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    loading = threading.Event()

    class Interrupted(models.Future):  # type: ignore[name-defined]
        def result(self, timeout=None):  # Ctrl-C while the constructor waits for the models
            assert loading.wait(10)
            raise KeyboardInterrupt

    worker: list[threading.Thread] = []

    def slow_loader() -> list[models.LoadedModel]:
        worker.append(threading.current_thread())
        loading.set()
        time.sleep(0.3)  # still loading when the wait is interrupted
        return [_named("plate")]

    monkeypatch.setattr(models, "Future", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        ModelPool(slow_loader)
    # It finished loading, found the stop marker and ended (before the fix the constructor waited
    # for it forever: a loaded worker goes on to wait for uploads).
    assert worker[0].name == "defectlens-scorer" and not worker[0].is_alive()


def test_an_upload_is_checked_once(service_model: Path) -> None:
    # The request thread decodes an upload through load_image, the pixel gate, which warns of an
    # extreme aspect; the scorer took it through Inspector.score's gate again: two warnings a strip.
    strip = np.full((16, 400, 3), 128, np.uint8)
    pool = ModelPool.load([service_model])
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pool.inspect(pool.get(None), strip, "strip.png")
    finally:
        pool.close()
    assert not [w for w in caught if "aspect" in str(w.message)]


def test_a_model_without_defect_types_is_said_at_start(fitted_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Scale probe 2026-12-05: a model folder with no taxonomy was served; the first typed review got 422
    # ("known: unknown, not-a-defect") and export-reviews wrote no type example, with nothing said before.
    import shutil

    from defectlens.service.app import ServiceConfig, create_app

    root = tmp_path / "untyped"
    shutil.copytree(fitted_model, root)
    (root / "taxonomy.json").unlink(missing_ok=True)
    pool = ModelPool.load([root])
    try:
        assert pool.models["untyped"].types == ("unknown", "not-a-defect")
        with caplog.at_level("WARNING", logger="defectlens.service"):
            create_app(ServiceConfig((root,), f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data"), pool)
        assert "model untyped: no defect types (no taxonomy.json or examples/ in the model folder)" in caplog.text
        assert any("no defect types" in n for n in pool.models["untyped"].summary()["notes"])
    finally:
        pool.close()


def test_a_model_is_served_under_a_name_given_as_name_equals_folder(service_model: Path, tmp_path: Path, monkeypatch) -> None:
    # Ops probe 2026-12-06: versioned folders (models/cookie/v1, models/commutator/v1) were all named 'v1' and refused.
    v1 = tmp_path / "cookie" / "v1"
    v1.parent.mkdir()
    shutil.copytree(service_model, v1)
    odd = tmp_path / "a=b"
    shutil.copytree(service_model, odd)
    assert models.model_spec(f"cookie={v1}") == ("cookie", v1) and models.model_spec(str(v1)) == (None, v1)
    assert models.model_spec(str(odd)) == (None, odd)  # a folder whose name holds '=' is a folder
    assert models.model_spec("models/x=y") == (None, Path("models/x=y"))
    with pytest.raises(ConfigError, match="is empty"):
        models.model_spec(f"={v1}")
    pool = ModelPool.load([f"cookie={v1}", str(odd)])
    try:
        assert list(pool.models) == ["cookie", "a=b"] and pool.default == "cookie" and pool.models["cookie"].path == v1
    finally:
        pool.close()
    # Through a link, by the name given (plant probe 2026-12-06: `current -> v1` was served as "v1", and its history took the
    # next version's name at each rollout); a folder that goes away is said gone, not "written again" (a restart would fail).
    current = tmp_path / "cookie" / "current"
    current.symlink_to("v1")
    pool = ModelPool.load([str(current)])
    try:
        served = pool.models["current"]
        assert list(pool.models) == ["current"] and served.disk_change() is None
        v1.rename(v1.with_name("v1.bak"))
        assert served.changed_on_disk() and "is gone since this service loaded it" in str(served.disk_change())
        assert any("is gone since" in note for note in served.summary()["notes"])
    finally:
        pool.close()
    # `serve .` inside the link, as the shell knows the folder ($PWD): the system's working folder is the link's target
    # (second regression probe: "." was named "v1").
    # `..` is the system's (third regression probe: joined to $PWD it named a folder that never was); and the folder served as
    # "." removed under the service is said gone, by its whole path (it was a 500 from /health, the working folder gone).
    v1.with_name("v1.bak").rename(v1)
    for where, given, named in ((current, ".", "current"), (current / "neighbourhood-1", "..", "v1")):
        monkeypatch.chdir(where)
        monkeypatch.setenv("PWD", str(where))
        pool = ModelPool.load([given])
        try:
            assert list(pool.models) == [named], given
        finally:
            pool.close()
    # Through a link and "..": the folder loaded is the one watched (fourth regression probe: "L/../v1" cleaned as text named,
    # and watched, another folder).
    deep = tmp_path / "cookie" / "deep"
    deep.mkdir()
    (tmp_path / "L").symlink_to(deep)
    (tmp_path / "v1").mkdir()  # where "L/../v1" cleaned as text would lead: no model
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PWD")
    pool = ModelPool.load(["L/../v1"])
    try:
        served = pool.models["v1"]
        assert served.path == v1.resolve() and served.stamp is not None and served.disk_change() is None
    finally:
        pool.close()
    pool = ModelPool.load(["cookie/deep/../current"])  # a link after the "..": its own name (upgrade probe: served as "v1")
    try:
        assert list(pool.models) == ["current"] and pool.models["current"].path == (tmp_path / "cookie").resolve() / "current"
    finally:
        pool.close()
    (tmp_path / "LL").symlink_to(tmp_path / "cookie")  # a link further on, kept too: repointed, it is seen (a fifth probe)
    pool = ModelPool.load(["cookie/deep/../../LL/v1"])
    try:
        assert pool.models["v1"].path == tmp_path.resolve() / "LL" / "v1"
    finally:
        pool.close()
    v2 = tmp_path / "cookie" / "v2"
    shutil.copytree(v1, v2)
    current.unlink()
    current.symlink_to("v2")
    monkeypatch.chdir(current)
    monkeypatch.setenv("PWD", str(current))
    pool = ModelPool.load(["."])
    try:
        shutil.rmtree(v2)
        assert pool.models["current"].disk_change() == (f"{current} is gone since this service loaded it (moved or removed); the service "
                                                        "still uses the model it loaded — put the folder back, or serve it from where "
                                                        "it is now, before a restart")
    finally:
        pool.close()
        monkeypatch.chdir(tmp_path)
