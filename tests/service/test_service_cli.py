"""The service commands' own messages."""

from __future__ import annotations

import pytest

from defectlens.cli.service import _need_extra


def test_a_missing_extra_and_a_broken_module_are_told_apart(capsys: pytest.CaptureFixture[str]) -> None:
    # Environment probe 2026-12-06: Python's own _ssl failing to load (a copied interpreter) was said as "the service needs
    # its extra (_ssl missing)", whose fix (installing the extra) changes nothing.
    assert _need_extra(ModuleNotFoundError("No module named 'fastapi'", name="fastapi")).exit_code == 2
    missing = " ".join(capsys.readouterr().err.split())
    assert "needs its extra (fastapi missing)" in missing
    assert _need_extra(ImportError("undefined symbol: SSL_foo", name="_ssl")).exit_code == 2
    broken = " ".join(capsys.readouterr().err.split())
    assert "could not load _ssl: undefined symbol: SSL_foo" in broken and "needs its extra" not in broken


def test_a_missing_part_of_the_extra_is_one_line_before_anything_is_made(tmp_path, monkeypatch, service_model) -> None:
    """Packaging probe 2026-12-06: without alembic `serve`, `export-reviews` and the prunes ended in a 42-line traceback (the
    store imports it when it opens), and without python-multipart `serve` in a 128-line one, leaving an empty data folder."""
    import importlib.util
    import sys

    from typer.testing import CliRunner

    from defectlens.cli import app

    data = tmp_path / "data"
    monkeypatch.setitem(sys.modules, "alembic", None)
    for args in (["serve", str(service_model), "--data-dir", str(data)], ["export-reviews", "--data-dir", str(data), "-o", str(tmp_path / "x")],
                 ["prune-files", "--data-dir", str(data)], ["prune-inspections", "--data-dir", str(data), "--older-than-days", "30"]):
        result = CliRunner().invoke(app, args)
        said = " ".join(result.output.split())
        assert result.exit_code == 2 and "the service needs its extra (alembic missing)" in said and "Traceback" not in said, result.output
    assert not data.exists()
    monkeypatch.delitem(sys.modules, "alembic")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("python_multipart", "multipart") else real(name, *a))
    result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", str(data)])
    assert result.exit_code == 2 and "needs its extra (python_multipart missing)" in " ".join(result.output.split()), result.output
    assert not data.exists()


def test_a_database_driver_not_installed_is_installed_not_retyped(monkeypatch) -> None:
    # Packaging probe 2026-12-06: without psycopg the fix had read "pass --db … postgresql+psycopg://…", the URL just given.
    import sys

    from defectlens.errors import ConfigError
    from defectlens.service.store import Store

    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigError, match=r"fix: pip install 'defectlens\[service\]' \(it brings psycopg\)"):
        Store("postgresql+psycopg://u@127.0.0.1:1/db")


def test_inspection_ids_are_said_as_numbers_and_one_images_as_a_group() -> None:
    # Windows-inputs probe 2026-12-06: one image's inspections had read "(inspections [[1, 2, 3]])".
    from defectlens.cli.service import _first_ids

    assert _first_ids([[1, 2, 3], [7, 9]]) == "1 = 2 = 3; 7 = 9" and _first_ids(list(range(12))) == "0; 1; 2; 3; 4; 5; 6; 7; 8; 9 and 2 more"


def test_serve_stopped_while_it_makes_its_database_leaves_none_half_made(tmp_path, monkeypatch, service_model) -> None:
    """Regression probe 2026-12-07: stopped during its first migration, `serve` left an SQLite file with tables and no version,
    and every later start was refused; the stop ended with 130 where the help says 0. And a --root-path a browser reads
    otherwise (/inspect/..) is refused before anything is made."""
    import alembic.command
    from typer.testing import CliRunner

    from defectlens.cli import app

    data = tmp_path / "data"
    data.mkdir()  # made by the host (a service manager's state folder): kept, the half-made database not

    def stopped(cfg, revision):  # type: ignore[no-untyped-def]
        from sqlalchemy import text

        cfg.attributes["connection"].execute(text("CREATE TABLE inspections (id INTEGER)"))  # the file made, then the stop
        raise KeyboardInterrupt

    monkeypatch.setattr(alembic.command, "upgrade", stopped)
    result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", str(data), "--port", "18999"])
    assert result.exit_code == 0 and "stopped while making the database: nothing served" in result.output, result.output
    assert data.is_dir() and not (data / "inspections.db").exists()
    # A database named with --db outside a data folder this start made: removed too (regression probe 2026-12-07: left).
    elsewhere = tmp_path / "db"
    elsewhere.mkdir()
    # With the folders above it that the start made (regression probe 2026-12-07: `--data-dir a/b/c` had left a/b).
    result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", str(tmp_path / "new" / "line 3" / "data"), "--port",
                                      "18999", "--db", f"sqlite:///{elsewhere / 'a.db'}"])
    assert result.exit_code == 0 and not (tmp_path / "new").exists() and list(elsewhere.iterdir()) == [], result.output
    refused = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", str(tmp_path / "d2"), "--root-path", "/inspect/.."])
    assert refused.exit_code == 2 and "is no path a proxy serves under" in " ".join(refused.output.split())
    assert not (tmp_path / "d2").exists()


def test_a_stopped_start_removes_only_an_empty_database_file_it_would_have_made(tmp_path, monkeypatch, service_model) -> None:
    """Regression probe 2026-12-07: a start stopped while it made its database removed the file another start had made
    meanwhile and served on (it had been missing when this one began); `file:a.db` without uri=true (a file of that very name)
    was taken for `a.db`, its half-made file left to refuse every later start; a dangling link given as --db lost the link and
    kept a half-made target. Made in one transaction, an interrupted migration leaves no table."""
    import os
    import sqlite3

    from typer.testing import CliRunner

    from defectlens.cli import app
    from defectlens.service.store import Store, holds_no_tables, missing_sqlite_file

    monkeypatch.chdir(tmp_path)
    assert missing_sqlite_file("sqlite:///file:a.db") == str(tmp_path / "file:a.db")
    assert missing_sqlite_file("sqlite:///file:a.db?uri=true") == str(tmp_path / "a.db")
    assert missing_sqlite_file("sqlite:///file:m?mode=memory&uri=true") is None
    (tmp_path / "vol").mkdir()
    os.symlink(tmp_path / "vol" / "real.db", tmp_path / "link.db")
    assert missing_sqlite_file("sqlite:///link.db") == str(tmp_path / "vol" / "real.db")

    import alembic.command

    real_upgrade, real_check = alembic.command.upgrade, Store.check
    other = {"made": False}

    def interrupted(cfg, revision):  # type: ignore[no-untyped-def]
        from sqlalchemy import text

        cfg.attributes["connection"].execute(text("CREATE TABLE inspections (id INTEGER)"))
        raise KeyboardInterrupt

    def stopped(self: Store, writable: bool = False) -> None:
        if other["made"]:
            real_check(Store(self.url), writable)  # another start makes it meanwhile, whole; then this one is stopped
            raise KeyboardInterrupt
        real_check(self, writable)

    monkeypatch.setattr(alembic.command, "upgrade", interrupted)
    monkeypatch.setattr(Store, "check", stopped)
    for db, left in (("sqlite:///file:a.db", tmp_path / "file:a.db"), ("sqlite:///link.db", tmp_path / "vol" / "real.db")):
        result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", "data", "--db", db, "--port", "18999"])
        assert result.exit_code == 0 and "stopped while making the database" in result.output, result.output
        assert not left.exists() and (tmp_path / "link.db").is_symlink()
    # Stopped in the middle of its migration, a file made beforehand (touch) holds no table: the next start makes it whole.
    (tmp_path / "empty.db").touch()
    result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", "data", "--db", "sqlite:///empty.db", "--port", "18999"])
    assert result.exit_code == 0 and holds_no_tables(str(tmp_path / "empty.db")), result.output
    # Made whole by another start meanwhile: kept, and so are its rows.
    other["made"] = True
    monkeypatch.setattr(alembic.command, "upgrade", real_upgrade)
    result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", "data", "--db", "sqlite:///shared.db", "--port", "18999"])
    assert result.exit_code == 0 and (tmp_path / "shared.db").is_file() and not holds_no_tables(str(tmp_path / "shared.db")), result.output
    tables = {row[0] for row in sqlite3.connect(tmp_path / "shared.db").execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"alembic_version", "inspections"} <= tables


def test_serve_refuses_a_database_in_memory_and_quotes_its_data_folder(tmp_path, monkeypatch, service_model) -> None:
    """Regression probe 2026-12-07: `--db sqlite://` logged "serving" and answered 503 for good (each thread its own empty
    database); a data folder named `odd?dir` put its database in a file `odd` beside it; a stop after the database was ready,
    before uvicorn took over, ended with 130 and "run the command again to finish"."""
    from typer.testing import CliRunner

    from defectlens.cli import app
    from defectlens.service.db import sqlite_file, sqlite_url

    for db in ("sqlite://", "sqlite:///:memory:", "sqlite:///file:m?mode=memory&uri=true", "sqlite://?uri=true", "sqlite://?uri=true&mode=memory"):
        result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", str(tmp_path / "d"), "--db", db])
        said = " ".join(result.output.split())
        assert result.exit_code == 2 and "is a database in memory" in said and "fix: give a file (sqlite:///PATH)" in said, said
    assert not (tmp_path / "d").exists()
    # A path that is no file: URI keeps uri=true's parameters in its name: SQLite had made and served on "x.db?mode=memory".
    for params in ("mode=memory", "mode=ro"):
        result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", str(tmp_path / "d"), "--db",
                                          f"sqlite:///{tmp_path}/x.db?{params}&uri=true", "--port", "18999"])
        said = " ".join(result.output.split())
        assert result.exit_code == 2 and f"names a SQLite file called '{tmp_path}/x.db?{params}'" in said, said
        assert "fix: write sqlite:///file:PATH?PARAMETERS&uri=true" in said
    # A %3F in the name did not hide them; without uri=true SQLite never reads them (mode=ro had served read-write).
    for db, said in ((f"sqlite:///{tmp_path}/x%3Fy.db?uri=true&mode=ro", f"names a SQLite file called '{tmp_path}/x?y.db?mode=ro'"),
                     (f"sqlite:///{tmp_path}/w.db?mode=ro", "gives mode, which SQLite reads only from a path written as a file: URI")):
        result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", str(tmp_path / "d"), "--db", db, "--port", "18999"])
        assert result.exit_code == 2 and said in " ".join(result.output.split()), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    odd = tmp_path / "odd?dir" / "pc%20" / "inspections.db"
    assert sqlite_file(sqlite_url(odd)) == str(odd)

    def stop(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    from defectlens.service.blobs import BlobStore

    monkeypatch.setattr(BlobStore, "record_database", stop)
    result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", str(tmp_path / "odd?dir"), "--port", "18999"])
    assert result.exit_code == 0 and "stopped before serving: nothing served" in result.output, result.output
    assert (tmp_path / "odd?dir" / "inspections.db").is_file() and not (tmp_path / "odd").exists()


def test_a_refused_start_takes_back_only_the_folders_it_made_that_stay_empty(tmp_path, monkeypatch, service_model) -> None:
    """Regression probe 2026-12-07: a refused start removed the folders it had made above --data-dir whole, with a second
    service's data folder that had been made in one of them meanwhile; and `lnk/../new` was made beside the link's target."""
    from typer.testing import CliRunner

    import defectlens.service.app as service_app
    from defectlens.cli import app
    from defectlens.errors import ConfigError

    def refused(config, *args, **kwargs):  # type: ignore[no-untyped-def]
        (tmp_path / "x" / "line2").mkdir()  # another service, started meanwhile, beside this one's
        (tmp_path / "x" / "line2" / "inspections.db").write_text("theirs")
        raise ConfigError("damaged model", None, "fit it again")

    monkeypatch.setattr(service_app, "create_app", refused)
    result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", str(tmp_path / "x" / "line1"), "--port", "18999"])
    assert result.exit_code == 2 and "damaged model" in result.output, result.output
    assert not (tmp_path / "x" / "line1").exists() and (tmp_path / "x" / "line2" / "inspections.db").read_text() == "theirs"
    # Another service started into this very folder meanwhile and stored there: its database and pictures stay (the folder had
    # been removed whole). An empty database file of no table, what a start makes first, does not keep a folder.
    from defectlens.service.store import Store

    def joined(config, *args, **kwargs):  # type: ignore[no-untyped-def]
        Store(f"sqlite:///{config.data_dir / 'inspections.db'}").check(True)
        (config.data_dir / "blobs" / "ab").mkdir(parents=True)
        (config.data_dir / "blobs" / "ab" / "picture.png").write_bytes(b"theirs")
        raise ConfigError("damaged model", None, "fit it again")

    monkeypatch.setattr(service_app, "create_app", joined)
    result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", str(tmp_path / "y" / "shared"), "--port", "18999"])
    assert result.exit_code == 2 and (tmp_path / "y" / "shared" / "blobs" / "ab" / "picture.png").read_bytes() == b"theirs"
    assert (tmp_path / "y" / "shared" / "inspections.db").stat().st_size > 0

    def half(config, *args, **kwargs):  # type: ignore[no-untyped-def]
        (config.data_dir / "blobs").mkdir()
        (config.data_dir / "inspections.db").touch()
        raise ConfigError("damaged model", None, "fit it again")

    monkeypatch.setattr(service_app, "create_app", half)
    result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", str(tmp_path / "z" / "new"), "--port", "18999"])
    assert result.exit_code == 2 and not (tmp_path / "z").exists(), result.output
    # Through a link: what mkdir made beside the link's target is what is taken back.
    (tmp_path / "far" / "deep").mkdir(parents=True)
    (tmp_path / "lnk").symlink_to(tmp_path / "far" / "deep")
    monkeypatch.setattr(service_app, "create_app", lambda *a, **k: (_ for _ in ()).throw(ConfigError("damaged model", None, "fit it again")))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", "lnk/../new/c", "--port", "18999"])
    assert result.exit_code == 2 and not (tmp_path / "far" / "new").exists() and not (tmp_path / "new").exists(), result.output
    # A link to a folder still to be made: its target is made (it had been "cannot create the data folder (File exists)"), and
    # taken back with the refusal, the link kept.
    (tmp_path / "dangling").symlink_to(tmp_path / "mnt" / "data")
    result = CliRunner().invoke(app, ["serve", str(service_model), "--data-dir", "dangling", "--port", "18999"])
    assert result.exit_code == 2 and "damaged model" in result.output and "cannot create" not in result.output, result.output
    assert (tmp_path / "dangling").is_symlink() and not (tmp_path / "mnt").exists()


def test_a_start_on_a_made_database_takes_no_write_lock_for_its_migration(tmp_path) -> None:
    """Regression probe 2026-12-07: the migration's write lock (BEGIN IMMEDIATE) was taken on every start, so a database another
    process held for writing kept a start waiting a minute with nothing said; it is taken only when there is a schema to make."""
    from sqlalchemy import event

    from defectlens.service.store import Store

    url = f"sqlite:///{tmp_path / 'made.db'}"
    made = Store(url)
    made.check(True)
    made.engine.dispose()
    again = Store(url)
    said: list[str] = []
    event.listen(again.engine, "before_cursor_execute", lambda conn, cursor, statement, *rest: said.append(statement))
    again.check(True)
    assert said and not any("BEGIN IMMEDIATE" in s for s in said), said
    fresh = Store(f"sqlite:///{tmp_path / 'new.db'}")
    said.clear()
    event.listen(fresh.engine, "before_cursor_execute", lambda conn, cursor, statement, *rest: said.append(statement))
    fresh.check(True)
    assert any("BEGIN IMMEDIATE" in s for s in said)


def test_prune_inspections_on_a_database_it_may_not_write_is_one_line(tmp_path, monkeypatch) -> None:
    """Regression probe 2026-12-07: on a read-only or locked database `prune-inspections` ended in a 40-line traceback."""
    from sqlalchemy.exc import OperationalError
    from typer.testing import CliRunner

    from defectlens.cli import app
    from defectlens.service.store import Store

    data = tmp_path / "svc"
    data.mkdir()
    Store(f"sqlite:///{data / 'inspections.db'}").check(True)

    def refused(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("DELETE FROM regions", {}, Exception("attempt to write a readonly database"))

    monkeypatch.setattr(Store, "forget_before", refused)
    result = CliRunner().invoke(app, ["prune-inspections", "--older-than-days", "0", "--data-dir", str(data)])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in said, result.output
    assert "error: stopped: the database refused the deletion (Exception: attempt to write a readonly database)" in said, said


def test_serve_raises_its_open_file_limit_and_warns_where_it_stays_low(monkeypatch):
    # Resource probe 2026-12-07: under `ulimit -n 32` a third of 36 uploads failed, told as a database outage.
    import resource

    from defectlens.cli import service as service_cli

    limits = {"now": (1024, 4096)}
    monkeypatch.setattr(resource, "getrlimit", lambda which: limits["now"])
    monkeypatch.setattr(resource, "setrlimit", lambda which, wanted: limits.update(now=wanted))
    assert service_cli._open_files_allowed() is None and limits["now"] == (4096, 4096)
    limits["now"] = (32, 32)
    assert service_cli._open_files_allowed() == 32
