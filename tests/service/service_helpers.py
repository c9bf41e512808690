"""Helpers of the service tests (imported by their conftest and test modules)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from defectlens.service import DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_PIXELS
from defectlens.service.app import ServiceConfig, create_app
from defectlens.service.models import ModelPool

TOKEN = "line-7-secret"
TYPES = [{"name": "spot", "description": "a bright square spot"}, {"name": "scratch", "description": "a thin bright line"}]
ARTIFACTS = Path(os.environ.get("DEFECTLENS_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
"""Screenshots and load reports of the tests (git-ignored)."""


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """The brushed-metal texture of the synthetic category (tests/conftest.py), drawn anew."""
    streaks = rng.normal(0, 12, size=(1, w)).repeat(h, axis=0)
    return np.clip(120 + streaks + rng.normal(0, 6, size=(h, w)), 0, 255).astype(np.uint8)


def defective(rng: np.random.Generator, y: int = 30, x: int = 40, size: int = 16) -> np.ndarray:
    """A texture with a bright square defect."""
    img = texture(rng, 96, 128)
    img[y : y + size, x : x + size] = 250
    return img


def make_app(
    pool: ModelPool,
    db_url: str,
    data_dir: Path,
    token: str | None = None,
    max_upload: int = 20 * 1024 * 1024,
    max_in_flight: int | None = DEFAULT_MAX_IN_FLIGHT,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allowed_hosts: tuple[str, ...] | None = None,
    base_url: str = "http://testserver",
) -> TestClient:
    """A test client of an app on ``db_url`` sharing the session's loaded model."""
    # Any host unless a test names them: the test client's "testserver" is no address and no name of this machine.
    cfg = ServiceConfig((pool.models[pool.default].path,), db_url, data_dir, token, max_upload_bytes=max_upload,
                        max_pixels=max_pixels, max_in_flight=max_in_flight, allowed_hosts=allowed_hosts or ("*",))
    return TestClient(create_app(cfg, pool=pool), base_url=base_url)


def upload(client: TestClient, path: Path, token: str | None = None, model: str | None = None, name: str | None = None):
    """POST one image file."""
    headers = {"X-API-Token": token} if token else {}
    data = {"model": model} if model else {}
    with path.open("rb") as fh:
        return client.post("/inspections", files={"file": (name or path.name, fh, "image/png")}, data=data, headers=headers)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class PgCluster:
    """A throw-away PostgreSQL cluster on loopback (Debian's initdb/pg_ctl), stoppable and restartable."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        """Keep synchronous commit on: a committed transaction survives a server crash (stop -m immediate)."""
        bindir = _pg_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="defectlens-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses to run as root: the cluster belongs to the postgres user.
            shutil.chown(self.root, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.data = self.root / "data"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        """Admin URL (trust authentication, loopback only)."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def _run(self, tool: str, *args: str) -> None:
        try:
            subprocess.run([*self.as_user, str(self.bindir / tool), *args], check=True, capture_output=True, timeout=120)
        except (subprocess.SubprocessError, OSError) as exc:
            detail = exc.stderr.decode(errors="replace").strip() if isinstance(exc, subprocess.CalledProcessError) and exc.stderr else ""
            raise RuntimeError(f"could not run PostgreSQL's {tool}: {exc} {detail}".strip()) from None

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        # fsync off: the tests never survive an OS crash; asynchronous commit only where durability is not under test.
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        if not self.durable:
            opts += " -c synchronous_commit=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop the server at once (as a crash or an operator would)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        """Stop (if running) and delete the cluster."""
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def cluster() -> Iterator[PgCluster]:
    """A started throw-away cluster, removed afterwards; RuntimeError when it cannot start."""
    pg = PgCluster()
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


class Server:
    """A real uvicorn server on loopback in a thread (for the browser and load tests)."""

    def __init__(self, app: object, port: int):
        import uvicorn

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
