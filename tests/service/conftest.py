"""Fixtures of the service tests: a small typed model, apps on SQLite or PostgreSQL.

PostgreSQL is a real server on loopback: $DEFECTLENS_TEST_PG_URL when set (a database the
tests may create databases in), else a throw-away cluster started here with Debian's
``initdb``/``pg_ctl`` (as the postgres user when run as root). Tests that need it skip with
the reason when neither works.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the service extra is not installed (pip install -e '.[service]' in the clone)")

from service_helpers import TYPES, cluster, defective, texture

from defectlens.service.models import ModelPool


@pytest.fixture(autouse=True)
def fresh_health_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """/health probes on every call here: the tests break the database or the disk and ask at once
    (a running service probes at most every HEALTH_PROBE_SECONDS; its own test says so)."""
    import defectlens.service.app as service_app

    monkeypatch.setattr(service_app, "HEALTH_PROBE_SECONDS", 0.0)


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """`serve` configures logging for its process (dated lines on standard error); run in this one by
    a test, its handlers on a closed test stream and its unpropagated loggers are undone after."""
    import logging

    names = ("defectlens", "uvicorn", "uvicorn.access", "uvicorn.error")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate) for n in names}
    yield
    for n, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(n)
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


@pytest.fixture(scope="session")
def service_model(fitted_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic test model with a taxonomy of two types (what reviewers may assign)."""
    root = tmp_path_factory.mktemp("svc") / "plate"
    shutil.copytree(fitted_model, root)
    (root / "taxonomy.json").write_text(json.dumps({"object": "metal plate", "defects": TYPES}))
    return root


@pytest.fixture(scope="session")
def pool(service_model: Path) -> Iterator[ModelPool]:
    """The model loaded once for the whole session, on the pool's worker (as a service process does)."""
    p = ModelPool.load([service_model])
    yield p
    p.close()


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A defective image (bright square), a good one, and hostile files."""
    root = tmp_path_factory.mktemp("uploads")
    rng = np.random.default_rng(11)
    Image.fromarray(defective(rng)).save(root / "bad.png")
    Image.fromarray(texture(rng, 96, 128)).save(root / "good.png")
    data = (root / "bad.png").read_bytes()
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "text.png").write_text("not an image at all")
    # 20000 × 20000 (400 Mpx) of one colour: some 50 kB that would decode to 1.2 GB of RGB.
    Image.new("1", (20000, 20000)).save(root / "bomb.png", optimize=True)
    return {p.stem: p for p in root.iterdir()}


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a PostgreSQL database in which the tests may create databases."""
    given = os.environ.get("DEFECTLENS_TEST_PG_URL")
    if given:
        yield given
        return
    try:
        with cluster() as pg:
            yield pg.url
    except RuntimeError as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on the embedded SQLite file and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inspections.db'}"
    return str(request.getfixturevalue("pg_url"))


