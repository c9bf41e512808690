"""`defectlens serve`, `export-reviews`, `prune-files` and `prune-inspections` (the ``service`` extra's commands).

FastAPI, uvicorn and SQLAlchemy are imported inside the commands, so the rest of the CLI
works without the extra installed.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import ipaddress
import json
import logging
import logging.config
import os
import re
import shutil
import signal
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from defectlens._entry import stopping_signals
from defectlens.cli.progress import console, interrupted
from defectlens.io.atomic import folder_identity, printable_text
from defectlens.io.outputs import saving_in, umask_blocks_owner
from defectlens.service import DB_FILE, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_PIXELS, DEFAULT_UPLOAD_TIMEOUT, ends_in_number, is_host_name
from defectlens.service.blobs import HISTORY_FILE, SERVICE_FILE, SERVING_LOCK, BlobStore, read_service_record

DEFAULT_DATA = Path("defectlens_service")


def _outermost_missing(folder: Path) -> Path | None:
    """The outermost folder on ``folder``'s path that does not exist yet — what ``mkdir(parents=True)`` makes first — or None
    where ``folder`` exists. Its links followed, as mkdir follows them (``lnk/../new`` is made beside the link's target)."""
    missing = None
    for inner in (where := Path(os.path.realpath(folder)), *where.parents):
        if os.path.lexists(inner):
            break
        missing = inner
    return missing


def _holds_nothing_kept(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but folders and a database file of no table (with its journals): what a start makes
    before it serves. A service started into the same new folder meanwhile keeps its pictures and records there."""
    from defectlens.service.store import holds_no_tables

    journals = {DB_FILE + end for end in ("-journal", "-wal", "-shm")}
    for path in folder.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            continue
        if path.name in journals and path.parent == folder:
            continue  # read with the database file itself, WAL included
        if path.name in (SERVICE_FILE, SERVING_LOCK) and path.parent == folder:
            continue  # a start's record of its database and its lock (another start that serves here is seen by its lock)
        if path == folder / DB_FILE and holds_no_tables(str(path)):
            continue
        return False
    return True


def _is_address(name: str) -> bool:
    """Whether ``name`` is an IP address (an IPv6 one bracketed or not, or half-bracketed: ``[::1``; an IPv4 one with a final dot)."""
    try:
        # The final dot first: "[::1]." is a bracketed address with a name's dot (regression probe 2026-12-07: "no host name").
        ipaddress.ip_address(bare_host(name.strip().removesuffix(".")).strip("[]"))
    except ValueError:
        return False
    return True


def _without_port(name: str) -> str | None:
    """``name`` without the port it is written with (``plant.example:8000``, ``1.2.3.4:80``, ``[::1]:8000``), or None when it
    has none: a port is no part of the Host check, and such a name had been told to be given "in lower case"."""
    host, colon, port = name.strip().rpartition(":")
    if not colon or not port.isdigit() or not host or (host.count(":") and not host.endswith("]")):
        return None  # an IPv6 address without brackets has colons of its own
    return host


def _punycode(name: str) -> str:
    """A name of non-ASCII letters as a request's Host header carries it — as browsers and curl write it (UTS 46, "straße" as
    xn--strae-oqa; Python's own codec gives "strasse": regression probe 2026-12-07) where the idna package is installed —, ''
    where it has no such form."""
    # The wildcard kept as given: "*.straße.example" had had no such form (regression probe 2026-12-08).
    star, rest = ("*.", name[2:]) if name.startswith("*.") else ("", name)
    try:
        import idna

        return star + str(idna.encode(rest, uts46=True, transitional=False).decode("ascii"))
    except ImportError:
        pass
    except (idna.IDNAError, UnicodeError):
        return ""
    try:
        return star + rest.lower().encode("idna").decode("ascii")
    except UnicodeError:
        return ""


def _remove_made(data_dir: Path, made: Path | None) -> None:
    """Take back what a refused start made: its data folder while it holds nothing another may keep (:func:`_holds_nothing_kept`),
    and the folders above it up to ``made`` (:func:`_outermost_missing`) only while empty — another process may have written
    into them meanwhile (regression probes 2026-12-07: a second service's data folder beside this one's had been removed with
    them; one started into this very folder meanwhile lost its database and pictures under it)."""
    if made is None:
        return
    leaf = Path(os.path.realpath(data_dir))
    if not _holds_nothing_kept(leaf) or _served_by_another(leaf):
        return
    shutil.rmtree(leaf, ignore_errors=True)
    for above in leaf.parents:
        if not above.is_relative_to(made):
            break
        try:
            above.rmdir()
        except OSError:
            break  # not empty (another's files), or gone: left as it is


def _db_url(db: str | None, data_dir: Path) -> str:
    """The database URL: --db, else the SQLite file in the data folder."""
    from defectlens.service.db import sqlite_url  # the service extra's; imported when a command runs

    return db or sqlite_url(data_dir / DB_FILE)


def log_config(access_log: bool) -> dict[str, Any]:
    """Logging for `serve`: every line on standard error with its UTC time and level, the service's
    own warnings included, and one line per request unless ``access_log`` is off. The log had held
    the "serving" line alone after dozens of requests, and outages it said could not be dated."""
    import uvicorn.logging  # the service extra's, as every part of `serve`

    # Times in UTC, written with a "Z" (RFC 3339): "+0000" is not ISO 8601's "+00:00".
    utc = {"converter": staticmethod(time.gmtime)}
    default = type("UTCDefaultFormatter", (uvicorn.logging.DefaultFormatter,), utc)
    access = type("UTCAccessFormatter", (uvicorn.logging.AccessFormatter,), utc)
    when = {"datefmt": "%Y-%m-%dT%H:%M:%SZ", "use_colors": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"()": default, "fmt": "%(asctime)s %(levelprefix)s %(message)s", **when},
            "access": {"()": access,
                       "fmt": '%(asctime)s %(levelprefix)s %(client_addr)s "%(request_line)s" %(status_code)s', **when},
        },
        "handlers": {
            "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
            "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO" if access_log else "WARNING", "propagate": False},
            "defectlens": {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
    }


def port_problem(host: str, port: int) -> str | None:
    """Why ``host``:``port`` cannot be listened on now (taken, not this machine's), as "what — fix: how", or None. Asked
    before anything is made: uvicorn binds after the app's start-up, which had already made a new
    database in the data folder by the time "address already in use" came."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        # Its own fix: "pass another --port" had been said of a host that is no address (regression probe 2026-12-06).
        return (f"{host} is not an address of this machine ({exc.strerror or exc}) — fix: pass --host with one of its addresses or "
                "names (127.0.0.1, ::1, localhost; 0.0.0.0 or :: for every network)")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return f"cannot listen on {host}:{port} ({exc.strerror or exc}) — fix: pass another --port, or stop what listens there"
    return None


def bare_host(host: str) -> str:
    """``host`` as a socket takes it: an IPv6 address written in brackets, as in a URL (``[::1]``), without them (refused
    as "not an address of this machine": regression probe 2026-12-06)."""
    host = host.strip()
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


PRUNE_LOCK_SECONDS = 30.0
"""How long prune-inspections waits for another process holding the service's data folder (a prune, a backup) before it refuses."""
PRUNE_GRACE_SECONDS = 3600.0
"""prune-inspections leaves pictures touched this recently (an upload on its way to the database)."""


def _files_store(db: str | None, data_dir: Path) -> Any:
    """The store of the service whose file folder is ``data_dir``, opened without upgrading it; exits 2
    when the folder or its database is missing, or when --db names another database than the SQLite file
    the folder holds (its pictures would be taken for another database's orphans)."""
    from defectlens.errors import DefectlensError
    from defectlens.service.store import Store

    own = data_dir / DB_FILE
    if not data_dir.is_dir() or (db is None and not own.is_file()):
        console.print(f"[red]error:[/] {escape(str(data_dir))}: no service data folder with its database there "
                      "— fix: pass the --data-dir the service was started with (and its --db)")
        raise typer.Exit(2)
    if db is not None and own.is_file() and _same_sqlite_file(db, own) is False:
        console.print(f"[red]error:[/] {escape(str(data_dir))} holds its own database ({DB_FILE}), not the --db given: its pictures "
                      "are that database's — fix: pass the --data-dir and --db of one service (or leave --db out for this folder's)")
        raise typer.Exit(2)
    try:
        return Store(_db_url(db, data_dir), upgrade=False)
    except DefectlensError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None


def _same_sqlite_file(url: str, path: Path) -> bool | None:
    """Whether ``url`` is the SQLite file at ``path``, read as the driver opens it (a ``file:`` URI serve takes had been taken
    for another database by the prune commands: regression probe 2026-12-07); None where ``url`` is no URL (the store says
    so: a bare path had been told it was another database)."""
    from sqlalchemy.exc import ArgumentError

    from defectlens.service.db import sqlite_file

    try:
        file = sqlite_file(url)
    except (ArgumentError, ValueError):
        return None  # a URL that does not parse is the store's to refuse, in one line (it had ended in a traceback: probe)
    return file is not None and Path(file).resolve() == path.resolve()


def in_memory_sqlite(url: str) -> bool:
    """Whether ``url`` names a SQLite database in memory (``sqlite://``, ``sqlite:///:memory:``, a ``mode=memory`` URI)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from defectlens.service.db import sqlite_file

    try:
        return make_url(url).get_backend_name() == "sqlite" and sqlite_file(url) is None
    except (ArgumentError, ValueError):
        return False  # a URL that does not parse is the store's to refuse, with its own words


def database_identity(url: str, spelt: bool = False) -> dict[str, str]:
    """What names a database, whatever the URL's spelling of it: the backend, and the SQLite file's real
    path, or the server's host, port and database (never the user or the password): the host (a socket's folder for one) and
    port as libpq reads them, from the URL, its ``?host=``/``?port=``, then PGHOST/PGPORT (PostgreSQL probe 2026-12-07: one
    database reached with ?port= and with PGPORT had been refused as another, and two clusters by socket on two ports had been
    one). ``spelt``: as 0.3.13 and earlier spell it, the URL's own host and port alone, which `serve` records beside it
    (``database``) for them: they had refused the database 0.3.14 served (regression probe 2026-12-07)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        from defectlens.service.db import sqlite_file

        return {"backend": backend, "file": os.path.realpath(sqlite_file(url) or "")}
    def given(key: str) -> str:
        value = parsed.query.get(key)
        return str((value[-1] if value else "") if isinstance(value, tuple) else value or "")

    host = (parsed.host or ("" if spelt else given("host") or os.environ.get("PGHOST", "")) or "localhost").lower()
    host = "localhost" if host in ("127.0.0.1", "::1", "[::1]") else host  # one machine, spelt three ways
    port = str(parsed.port or ("" if spelt else given("port") or os.environ.get("PGPORT") or 5432))
    return {"backend": backend, "host": host, "port": port, "database": str(parsed.database)}


def database_record(url: str) -> dict[str, dict[str, str]]:
    """What `serve` records in the data folder's :data:`SERVICE_FILE` of the database ``url`` names: its identity as this
    defectlens reads it (``database_at``) and as 0.3.13 and earlier spell it (``database``, which they compare)."""
    return {"database": database_identity(url, spelt=True), "database_at": database_identity(url)}


def same_database(recorded: dict, url: str, data_dir: Path) -> bool:
    """Whether the database `serve` recorded in ``data_dir`` (:func:`database_record`'s keys) is the one ``url`` names: the same,
    or, for a folder copied or moved with its own SQLite file, that file where the folder now is (the probe's copied folder had
    been refused as "another database"). A record of 0.3.13 or earlier, as they spell it."""
    now = database_identity(url)
    identity = recorded.get("database_at") or recorded.get("database") or {}
    if identity == now or ("database_at" not in recorded and identity == database_identity(url, spelt=True)):
        return True
    own = os.path.realpath(data_dir / DB_FILE)
    return (identity.get("backend") == now.get("backend") == "sqlite" and Path(str(identity.get("file"))).name == DB_FILE
            and now.get("file") == own)


_SERVED: list[int] = []
"""The lock file this process serves under (:func:`_serve_on`), held until it ends."""


def _serving(data_dir: Path) -> tuple[int | None, bool]:
    """The data folder's :data:`~defectlens.service.blobs.SERVING_LOCK` opened, and whether another running `serve` holds it
    (none takes it exclusively but for this test, which starts make with the folder held). (None, False) where it cannot be
    opened or locked (no ``flock``, a file system without locks): checked by the folder's pictures alone, as before. A process
    serves once: the lock of a `serve` it ran before, which has ended (tests run it in turn), is let go first."""
    while _SERVED:
        with contextlib.suppress(OSError):
            os.close(_SERVED.pop())
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None, False
    # Never through a link: a serving.lock linked to another file had that file written over with the database's name, and a
    # dangling one made its target (regression probe 2026-12-07). A link is refused below (ELOOP), as a folder in its place is.
    try:
        fd = os.open(data_dir / SERVING_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except PermissionError:
        # One it may only read (made by another user's start): a lock is taken on it all the same (regression probe 2026-12-07:
        # no lock was held, and nothing said).
        try:
            fd = os.open(data_dir / SERVING_LOCK, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None, False
    except FileNotFoundError:  # the folder gone meanwhile: said by the start's later checks
        return None, False
    # Other failures (a folder in its place) raise: the guard had been turned off without a word (regression probe 2026-12-07).
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return fd, True
    except OSError:  # no locks on this file system (NFS without its lock daemon)
        os.close(fd)
        return None, False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return fd, False


def _served_by_another(folder: Path) -> bool:
    """Whether another running `serve` holds ``folder`` (this process's own hold let go first: it is refused)."""
    try:
        serving, others = _serving(folder) if (folder / SERVING_LOCK).is_file() else (None, False)
    except OSError:
        return False
    if serving is not None:
        os.close(serving)
    return others


def _serve_on(serving: int | None) -> None:
    """Hold ``serving`` (:func:`_serving`'s lock file) shared until this process ends: a start on another database sees it."""
    if serving is None:
        return
    import fcntl

    with contextlib.suppress(OSError):
        fcntl.flock(serving, fcntl.LOCK_SH)
    _SERVED.append(serving)


MIN_OPEN_FILES = 256
"""Open files under which a service is told it will fail: each upload holds its socket, a scratch file and its pictures, the
database and the models' libraries hold their own."""


def _open_files_allowed() -> int | None:
    """Raise this process's soft limit on open files to its hard one (at most 65536), as a server does, and return the limit where
    it stays under :data:`MIN_OPEN_FILES`, else None. Under ``ulimit -n 32`` a third of 36 uploads had failed, told as a
    database outage, and the log had grown 57 MB in 30 s (resource probe 2026-12-07)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return soft if soft != resource.RLIM_INFINITY and soft < MIN_OPEN_FILES else None


def _claim_folder(data_dir: Path, db: str | None, made: Path | None) -> dict | None:
    """Check that the data folder is not another database's — a running service's (:data:`SERVING_LOCK`, whose file names the
    database they serve), or, none running, its pictures' — with the folder held: a start beside this one waits, and then sees
    this one (exits 2 when refused). The folder is then held as served until this process ends. The folder's record
    (:data:`SERVICE_FILE`) is written once the database is ready, as before: a start refused later had left it naming a
    database that never served (regression probe 2026-12-07). Returns the database's record (:func:`database_record`), or None
    for a URL that does not parse."""
    from sqlalchemy.exc import ArgumentError

    url = _db_url(db, data_dir)
    try:
        ours = database_record(url)
    except (ArgumentError, ValueError):
        return None  # a URL that does not parse is the store's to refuse, in its own words (it had ended in a traceback here)
    with contextlib.ExitStack() as held:
        if held.enter_context(saving_in(data_dir / SERVICE_FILE, wait=False)) is False:
            held.close()  # said before the wait: a start had waited 30 s without a word (regression probe 2026-12-07)
            console.print(f"waiting up to {PRUNE_LOCK_SECONDS:g} s for another process holding {escape(str(data_dir))} (a prune, a "
                          "backup, another start)…")
            if held.enter_context(saving_in(data_dir / SERVICE_FILE, wait=PRUNE_LOCK_SECONDS)) is False:
                # Not gone ahead without it: the checks below would race that process (regression probe 2026-12-07).
                _remove_made(data_dir, made)
                console.print(f"[red]error:[/] another process has held {escape(str(data_dir))} for {PRUNE_LOCK_SECONDS:g} s (a prune, "
                              "a backup) — fix: start the service again when that one is done")
                raise typer.Exit(2)
        try:
            serving, others = _serving(data_dir)
        except OSError as exc:
            _remove_made(data_dir, made)
            lock = escape(str(data_dir / SERVING_LOCK))
            if exc.errno == errno.EROFS:
                # No lock to remove: the folder cannot be written (regression probe 2026-12-07: "remove it" of a file not there).
                console.print(f"[red]error:[/] {escape(str(data_dir))} is on a read-only file system: the service stores its pictures "
                              "there — fix: pass a writable --data-dir")
            elif exc.errno == errno.ELOOP:
                console.print(f"[red]error:[/] {lock} is a symbolic link: the folder's lock is a file of its own, written by the service "
                              "— fix: remove the link (nothing may serve the folder meanwhile) and start again")
            else:
                console.print(f"[red]error:[/] {lock} cannot be used as the folder's lock ({escape(exc.strerror or str(exc))}) — fix: "
                              "remove it (nothing may serve the folder meanwhile) and start again")
            raise typer.Exit(2) from None
        named = _running_database(serving)  # what the lock file says, read once
        running = named if others else None
        recorded = _recorded_database(data_dir)
        # A running service's database by its own word, compared as it is (a folder's own inspections.db is not another's
        # copied with it while that one serves here: regression probe 2026-12-07); else by the folder's record and pictures.
        refused = (running["database_at"] != ours["database_at"] if running is not None else
                   recorded is not None and not same_database(recorded, url, data_dir) and (others or BlobStore(data_dir).holds_files()))
        if refused:
            # Served on another database, the folder's pictures would be this one's orphans (regression probe: its record
            # was overwritten, and a prune then removed the first database's pictures) — and so would those of a service
            # running on it that has stored none yet (regression probe 2026-12-07).
            _remove_made(data_dir, made)
            if serving is not None:
                os.close(serving)
            other = running or recorded or {}
            where = escape(json.dumps(other.get("database_at", other.get("database"))))
            console.print(f"[red]error:[/] {escape(str(data_dir))} is served on another database ({where}) by a running defectlens "
                          "serve — fix: pass that database with --db, or another --data-dir for this one"
                          if others else
                          f"[red]error:[/] {escape(str(data_dir))} holds the pictures of another database ({where}, recorded in "
                          f"{SERVICE_FILE}) — fix: pass that database with --db, or another --data-dir for this one")
            raise typer.Exit(2)
        if not others and serving is not None and (named is None or named["database_at"] != ours["database_at"]):
            try:
                _name_database(serving, ours)
            except OSError as exc:
                # Left naming an earlier run's database, it would let another database in beside this one, and keep this one's
                # out (regression probe 2026-12-07: a lock file another user made, which this one may only read; opened so,
                # its write fails with EINVAL or EBADF, which named nothing of the cause). One naming this database is kept.
                os.close(serving)
                _remove_made(data_dir, made)
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    # Not "another user's": a full disk had been said so (resource probe 2026-12-07).
                    console.print(f"[red]error:[/] {escape(str(data_dir))} is on a full disk ({escape(exc.strerror or str(exc))}): the "
                                  "service stores its pictures there — fix: free space there, or pass --data-dir on another disk")
                    raise typer.Exit(2) from None
                console.print(f"[red]error:[/] {escape(str(data_dir / SERVING_LOCK))} cannot be written by this user (another made "
                              "it?), and it names another database than this one — fix: remove it (nothing serves the folder now) "
                              "or start the service as its owner")
                raise typer.Exit(2) from None
        _serve_on(serving)
    return ours


def _claim_keeper(data_dir: Path, ours: dict, url: str) -> Callable[[], None]:
    """The check, run with the service's watch, that the data folder's :data:`SERVING_LOCK` is still the file this process holds:
    removed or replaced while it served (a cleaner of ``*.lock`` files, a restore from a backup), it had let a start on another
    database in beside it, both storing pictures in the folder (regression probe 2026-12-07). Removed, it is put back naming this
    service's database; replaced by one naming it, that one is held instead; by one naming another database, that is said."""
    path, log = data_dir / SERVING_LOCK, logging.getLogger("defectlens.service")
    said: set[str] = set()

    def hold(fd: int) -> None:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_SH)
        if _SERVED:
            os.close(_SERVED.pop())
        _SERVED.append(fd)

    def say_once(key: str, message: str, *args: object) -> None:
        if key not in said:
            said.add(key)
            log.error(message, *args)

    def say_other_record() -> None:
        # A start on another database let in meanwhile recorded its own in service.json and its history: this service's restart
        # and the prunes are then refused as "another database's" folder (regression probe 2026-12-07). Not rewritten here: the
        # folder's history mark is that one's too, and its pictures may be among this one's — said, with the way out.
        recorded = _recorded_database(data_dir)
        if recorded is not None and not same_database(recorded, url, data_dir):
            say_once(f"record {json.dumps(recorded)}", "%s names another database (%s), which started on this folder while its lock was "
                     "gone — fix: if that database stored no picture here, stop this service, delete the folder's %s and %s, and start it "
                     "again (it records itself); if it did, their pictures are mixed: keep this folder for one of them", data_dir / SERVICE_FILE,
                     json.dumps(recorded.get("database_at", recorded.get("database"))), SERVICE_FILE, HISTORY_FILE)

    def keep_folder_claim() -> None:
        import fcntl

        if not _SERVED:
            return
        held = os.fstat(_SERVED[-1])
        try:
            there: os.stat_result | None = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            there = None
        if there is not None and (there.st_dev, there.st_ino) == (held.st_dev, held.st_ino):
            named = _running_database(_SERVED[-1])
            if named is None or named.get("database_at") == ours["database_at"]:
                said.clear()
                return
            # Written over where it lies (an editor, a restore into the file): the database it names is this service's again.
            try:
                _name_database(_SERVED[-1], ours)
                log.warning("%s was written over while this service ran, naming another database: it names this one again", path)
            except OSError as exc:
                say_once(f"rewritten {json.dumps(named)}", "%s was written over while this service ran, naming another database (%s), "
                         "and cannot be put right (%s): remove it, and this service puts it back", path,
                         json.dumps(named.get("database_at")), exc.strerror or exc)
            return
        if there is None:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except FileExistsError:
                return  # put back by another service on this database meanwhile: compared at the next check
            _name_database(fd, ours)
            hold(fd)
            log.warning("%s was removed while this service ran: put back (a start on another database is refused by it)", path)
            say_other_record()
            return
        if not stat.S_ISREG(there.st_mode):
            say_once(f"no file {there.st_ino}", "%s was replaced while this service ran by something that is no file: remove it, and this "
                     "service puts its lock back (meanwhile a start on another database is not refused)", path)
            return
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        named = _running_database(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held by a running service
            if named is not None and named.get("database_at") == ours["database_at"]:
                hold(fd)  # another service on this database put it back first: held beside it
                return
            os.close(fd)
            # A running service holds a lock naming another database (or none): it was let in beside this one.
            say_once(f"{there.st_ino} {json.dumps(named)}", "%s was replaced while this service ran, and a service on another database "
                     "(%s) holds it: both store pictures in %s — stop both, and start the one this folder is for", path,
                     json.dumps((named or {}).get("database_at")), data_dir)
            return
        # Held by nobody (an empty file a refused start left, a restored copy): this service's, naming its database.
        _name_database(fd, ours)
        hold(fd)
        log.warning("%s was replaced while this service ran (naming %s): it is this service's again, naming its database", path,
                    json.dumps((named or {}).get("database_at")))
        say_other_record()

    return keep_folder_claim


def _name_database(lock: int, ours: dict) -> None:
    """Write into the lock file ``lock`` (open for writing) the database this service serves (:func:`database_record`'s keys),
    in place of what it said: what :func:`_running_database` reads."""
    os.ftruncate(lock, 0)
    os.pwrite(lock, json.dumps(ours).encode(), 0)


def _running_database(serving: int | None) -> dict | None:
    """The database the services running on the folder serve, as the first of them wrote it into the lock file
    (:func:`database_record`'s keys), or None where it says none."""
    if serving is None:
        return None
    try:
        running = json.loads(os.pread(serving, 1 << 16, 0) or b"null")
    except (OSError, ValueError):
        return None
    return running if isinstance(running, dict) and isinstance(running.get("database_at"), dict) else None


def _recorded_database(data_dir: Path) -> dict | None:
    """The database `serve` recorded in ``data_dir`` (:func:`database_record`'s keys; None: none recorded, or unreadable)."""
    record = read_service_record(data_dir) or {}
    kept = {key: record[key] for key in ("database", "database_at") if isinstance(record.get(key), dict)}
    return kept if "database" in kept else None


def _missing(blobs: Any, sample: list[str]) -> int:
    """How many of a ``sample`` of the pictures a database names are not in the folder of ``blobs``."""
    return sum(not blobs.holds(sha) for sha in sample)


def _mostly_elsewhere(blobs: Any, sample: list[str]) -> bool:
    """Whether most of a ``sample`` of the pictures a database names are not in the folder of ``blobs``: another folder's
    database. Most of them, not any: an empty region mask is one picture shared by every good part of every service."""
    return 2 * _missing(blobs, sample) > len(sample)


def _require_one_service(blobs: Any, store: Any, referenced: set[str], db_url: str, data_dir: Path, verb: str, dry_run: bool,
                         locked: bool = False) -> None:
    """Exit 2 unless the database and the file folder are one service's: the database `serve` recorded in
    the folder (:data:`SERVICE_FILE`) is this one, it holds the folder's history (the inspection the folder recorded as its
    newest: :meth:`BlobStore.lost_history`), and the folder holds the pictures the database names (a
    sample of them). A wrong --db had had this folder's pictures taken for orphans (regression probe), and so had a database
    lost and made again (operator probe 2026-12-08: every picture of the history removed). The newest id seen is recorded, but
    by a dry run, which writes nothing (``locked``: the caller holds the data folder)."""
    fix = "— fix: pass the --data-dir and --db of one service"
    recorded = _recorded_database(data_dir)
    if recorded is not None and not same_database(recorded, db_url, data_dir):
        console.print(f"[red]error:[/] nothing {verb}: {escape(str(data_dir))} holds the pictures of another database "
                      f"({escape(json.dumps(recorded.get('database_at', recorded['database'])))}, as `serve` recorded in {SERVICE_FILE}) "
                      f"{fix} (if they are this one's — the "
                      f"server renamed, say — delete {SERVICE_FILE})")
        raise typer.Exit(2)
    # Not for the pair `serve` recorded: a folder that lost pictures is still this database's (it had been refused).
    if recorded is None and _mostly_elsewhere(blobs, sorted(referenced)[:50]):
        console.print(f"[red]error:[/] nothing {verb}: most pictures the database names are not in {escape(str(data_dir))} {fix} "
                      f"(a folder that lost them: start `defectlens serve` on the pair once, which records it in {SERVICE_FILE})")
        raise typer.Exit(2)
    newest = store.newest_id()
    if (lost := blobs.lost_history(newest, store.inspection_stamp)) is not None:
        console.print(f"[red]error:[/] nothing {verb} (the pictures the database does not name would be taken for orphans): {escape(lost)}")
        raise typer.Exit(2)
    if not dry_run:
        blobs.note_newest(newest, store.inspection_stamp, locked)


def _unavailable(exc: Exception) -> str:
    """A store refusal as one line with its remedy: a lasting one (an older or newer schema, another
    application's database) says its own; a database that does not answer gets "check --db"."""
    if getattr(exc, "lasting", False):
        return str(exc)
    return f"{exc} — fix: check --db and that the database is running"


def _first_ids(ids: list) -> str:
    """The first ten of ``ids``, and how many more there are (the list had been cut at ten without a word); groups of one
    image's inspections as "1 = 2 = 3; 4 = 5" (they had read "[[1, 2, 3]]"; Windows-inputs probe 2026-12-06)."""
    shown = "; ".join(" = ".join(map(str, i)) if isinstance(i, list | tuple) else str(i) for i in ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def _require_service_extra(forms: bool = False) -> None:
    """Import what the service's store (and, with ``forms``, its upload form) loads only when used, so that a missing
    part of the extra is one line here: without alembic the store's first migration, without python-multipart the app's
    upload route, had ended in a traceback of 42 and 128 lines (packaging probe 2026-12-06)."""
    import alembic  # noqa: F401 - the store migrates with it when it opens

    if forms and importlib.util.find_spec("python_multipart") is None and importlib.util.find_spec("multipart") is None:
        raise ModuleNotFoundError("No module named 'python_multipart'", name="python_multipart")


def _need_extra(exc: ImportError) -> typer.Exit:
    if not isinstance(exc, ModuleNotFoundError):
        # Installed but broken (a module that fails to load, as Python's own _ssl in a copied interpreter): said as it is,
        # not as an extra to install (environment probe 2026-12-06).
        console.print(f"[red]error:[/] the service could not load {escape(str(exc.name or 'a module'))}: {escape(str(exc))} — "
                      "fix: repair that installation (pip install --force-reinstall 'defectlens\\[service]' for the service's own)")
        return typer.Exit(2)
    console.print(f"[red]error:[/] the service needs its extra ({escape(str(exc.name))} missing) — "
                  "fix: pip install 'defectlens\\[service]' (in a clone: `make setup`, or pip install -e '.\\[service]')")
    return typer.Exit(2)


def serve(
    model_dirs: Annotated[
        list[Path], typer.Argument(help="Model folders (`defectlens fit` or `train-grounding`, or an export), each named after its folder, "
                                        "or NAME=DIR to name it (versioned folders: cookie=models/cookie/v3); the first is the default model.")
    ],
    db: Annotated[str | None, typer.Option(envvar="DEFECTLENS_DB", help="Database URL (default: SQLite in --data-dir); e.g. "
                                               "postgresql+psycopg://user@host/db (a password: in DEFECTLENS_DB, PGPASSWORD or ~/.pgpass, "
                                               "not on the command line, where `ps` shows it).")] = None,
    data_dir: Annotated[Path, typer.Option(help="Folder for uploads, overlays, masks (and the default SQLite file).")] = DEFAULT_DATA,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    token: Annotated[
        str | None, typer.Option(envvar="DEFECTLENS_TOKEN", help="API token required for every write (X-API-Token header, or Authorization: Bearer).")
    ] = None,
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Largest accepted upload, in MiB (1,048,576 bytes).")] = 20.0,
    max_megapixels: Annotated[float, typer.Option(min=0.001, help="Largest accepted image, in millions of pixels (read from its header, "
                                                               "before decoding).")] = DEFAULT_MAX_PIXELS / 1e6,
    max_in_flight: Annotated[int, typer.Option(min=0, help="Inspections worked on at once; more are refused with 503 + Retry-After "
                                                            "(0 = no limit: they queue).")] = DEFAULT_MAX_IN_FLIGHT,
    upload_timeout: Annotated[float, typer.Option(min=0, help="Seconds an upload may take to arrive; past it 408 and its slot is freed "
                                                             "(0 = no limit).")] = DEFAULT_UPLOAD_TIMEOUT,
    allowed_host: Annotated[list[str] | None, typer.Option(help="A host name clients address this service by (repeatable; '*.example' for "
                                                                  "every name below it; '*' for any), besides IP addresses and this machine's "
                                                                  "own names (localhost, its hostname), which are always taken; others get 400 "
                                                                  "(DNS rebinding).")] = None,
    access_log: Annotated[bool, typer.Option(help="Log one line per request (with the others: time, level, on standard error).")] = True,
    root_path: Annotated[str, typer.Option(help="The path a reverse proxy serves this service under (e.g. /inspect, the proxy passing "
                                                "requests on without it): the API's URLs, the page's calls and /docs go under it, so the page works "
                                                "through the proxy only.")] = "",
) -> None:
    """Serve the inspection API, the web page and the review loop (models loaded once).

    Exit status: 0 stopped (Ctrl-C or SIGTERM, after the requests in hand, or before serving while the models load), 2 bad
    usage (a model, token, host or port refused before it starts)."""
    try:
        import uvicorn

        from defectlens.service.app import ServiceConfig, create_app

        _require_service_extra(forms=True)
    except ImportError as exc:
        raise _need_extra(exc) from None
    except KeyboardInterrupt:
        # A stop like any other, as the help says (regression probe 2026-12-07: 130 in this window).
        console.print("stopped while loading: nothing served")
        raise typer.Exit(0) from None
    from defectlens.errors import DefectlensError

    if token is not None and not token.strip():
        # An empty DEFECTLENS_TOKEN turned the check off without a word.
        console.print("[red]error:[/] the API token is empty — fix: set --token (or DEFECTLENS_TOKEN) to a secret, or leave it unset for open writes")
        raise typer.Exit(2)
    if token is not None and not (token.isascii() and token.isprintable() and token == token.strip()):
        # HTTP headers carry ASCII safely (Latin-1 at best): a token with "ä" or "€" could not be sent by a UTF-8
        # client or the page, and every write was 401 (security probe 2026-12-05).
        # Spaces at either end too: a header's value is trimmed, so "abc " could never be sent (regression probe).
        console.print("[red]error:[/] the API token holds characters an HTTP header cannot carry (non-ASCII, control, or spaces at "
                      "either end) — fix: use "
                      "letters, digits and punctuation only, e.g. the output of `python -c 'import secrets; print(secrets.token_urlsafe())'`")
        raise typer.Exit(2)
    # A final dot is a name's own, as the Host check reads a request's (regression probe 2026-12-07: refused); only a name's: "*."
    # had become "*", any host (regression probe 2026-12-07).
    given = list(allowed_host or ())
    allowed_host = [n[:-1] if n.endswith(".") and n[:-1] != "*" and is_host_name(n[:-1]) else n for n in given]
    # An address is always taken: said and left out, as "[::1]" is ("127.0.0.1" and "127.0.0.1." had been taken as names;
    # regression probe 2026-12-08). Not refused: a service unit passing one, which 0.3.12 took, had not started again after the
    # upgrade (upgrade probe 2026-12-07).
    if addresses := [g for g, n in zip(given, allowed_host, strict=True) if _is_address(n)]:
        console.print(f"[yellow]warning:[/] --allowed-host {escape(', '.join(map(repr, addresses)))}: an address is always taken, "
                      "so it need not be given (left out)")
        kept = [(g, n) for g, n in zip(given, allowed_host, strict=True) if not _is_address(n)]
        given, allowed_host = [g for g, _ in kept], [n for _, n in kept]
    if bad_names := [g for g, n in zip(given, allowed_host, strict=True)
                     if n != "*" and not is_host_name(n)]:  # is_host_name refuses a name ending in a number too
        # A name as a request's Host header carries it, without scheme, port or capitals: "http://plant.example" or
        # "Plant.example:8000" had been taken at start and never matched (regression probe).
        bad = bad_names[0]
        named = _without_port(bad)
        why = ((" (an address with a port) — fix: leave it out: an address is always taken, on any port" if _is_address(named) else
                f" (a port is no part of the check) — fix: give it without the port, "
                f"{(_punycode(named) if not named.isascii() and _punycode(named) else named.lower())!r}") if named else
               " (its last part is a number, which browsers read as an IP address) — fix: give the machine's name (an address need "
               "not be given)" if ends_in_number(bad) else
               f" — fix: give it as a request names it, {_punycode(bad)!r}" if not bad.isascii() and _punycode(bad) else
               " — fix: give the bare name in lower case (plant.example, or *.plant.example for the names below it, or '*' for any)")
        console.print(f"[red]error:[/] --allowed-host {escape(repr(bad))} is no host name{escape(why)}")
        raise typer.Exit(2)
    root_path = "" if root_path == "/" else root_path
    # Plain segments, "." and ".." not among them: a browser reads /inspect/.. as the host's root (regression probe 2026-12-07).
    if root_path and (not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+/?", root_path) or {".", ".."} & set(root_path.split("/"))):
        # Written into the page and every URL the API gives: a path of plain segments only.
        console.print(f"[red]error:[/] --root-path {escape(repr(root_path))} is no path a proxy serves under — fix: give it as /NAME "
                      "(letters, digits, '.', '_', '~', '-', but no segment '.' or '..' alone; /plant/inspect for two levels)")
        raise typer.Exit(2)
    root_path = root_path.rstrip("/")
    if db is not None and in_memory_sqlite(db):
        # Each thread of the service opens its own, empty: it had logged "serving" and answered 503 to every request, for good
        # (regression probe 2026-12-07).
        console.print(f"[red]error:[/] --db {escape(repr(db))} is a database in memory, which each of the service's threads would see "
                      "empty and which is gone when it stops — fix: give a file (sqlite:///PATH), or leave --db out for the data "
                      "folder's own")
        raise typer.Exit(2)
    host = bare_host(host)
    if problem := port_problem(host, port):
        console.print(f"[red]error:[/] {escape(problem)}")
        raise typer.Exit(2)
    if blocked := umask_blocks_owner():
        # Every folder and file the service makes (the database, the pictures' folders) would be read-only to it: the
        # database had been left unusable, and a picture folder made once refused that prefix's uploads for good while
        # /health said ok (regression probe 2026-12-06).
        console.print(f"[red]error:[/] the service's folders and files would be made unusable to it (umask {blocked:04o} takes their "
                      "owner's read, write or search permission) — fix: set a umask that leaves them to you, such as `umask 022`, and start "
                      "it again")
        raise typer.Exit(2)
    # From here on every line is dated: the app's start-up (scratch files removed, say) logs too.
    logging.config.dictConfig(log_config(access_log))
    # What this start makes, the folders above it included, goes if it is refused (`--data-dir a/b/c` had left a/b).
    made = _outermost_missing(data_dir)
    try:
        # Through a link to a folder still to be made (a mount point's name, say), its target is made, as a link given as --db
        # is (regression probe 2026-12-07: "cannot create the data folder (File exists)").
        Path(os.path.realpath(data_dir)).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        console.print(f"[red]error:[/] {escape(str(data_dir))}: cannot create the data folder ({escape(str(exc.strerror or exc))})"
                      " — fix: pass a writable --data-dir")
        raise typer.Exit(2) from None
    # Which database the folder serves, checked with the folder held (a start beside this one waits for it), and the folder
    # then held as served until this process ends (SERVING_LOCK, which names the database).
    url = _db_url(db, data_dir)
    try:
        claimed = _claim_folder(data_dir, db, made)
    except KeyboardInterrupt:
        _remove_made(data_dir, made)
        console.print("stopped before serving: nothing served")
        raise typer.Exit(0) from None
    if (few := _open_files_allowed()) is not None:
        console.print(f"[yellow]warning:[/] this process may open only {few} files at once (ulimit -n): uploads beyond a few at a "
                      "time will fail and the log will fill — fix: raise the limit (ulimit -n 4096; systemd: LimitNOFILE=4096)")
    config = ServiceConfig(tuple(model_dirs), url, data_dir, token, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                           max_pixels=int(max_megapixels * 1e6), max_in_flight=max_in_flight or None, upload_timeout=upload_timeout or None,
                           # None: addresses and this machine's own names (service.app.host_is_own), on loopback as on 0.0.0.0.
                           allowed_hosts=tuple(allowed_host) if allowed_host else None,
                           folder_watch=_claim_keeper(data_dir, claimed, url) if claimed is not None else None)
    try:
        app = create_app(config)
    except KeyboardInterrupt:
        # Stopped while the models loaded: a stop like any other (status 0, as the help says), nothing served.
        _remove_made(data_dir, made)
        console.print("stopped while loading the models: nothing served")
        raise typer.Exit(0) from None
    except DefectlensError as exc:
        # Refused before serving (a damaged model, say): no data folder left behind.
        _remove_made(data_dir, made)
        console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    from defectlens.service.db import sqlite_file
    from defectlens.service.store import StoreUnavailable, holds_no_tables, missing_sqlite_file

    sqlite = config.db_url.startswith("sqlite")
    fresh_file = missing_sqlite_file(config.db_url)  # the SQLite file this start will make, if any
    try:
        app.state.store.check(True)
    except KeyboardInterrupt:
        # Stopped while the database was first made: a half-made SQLite file (tables, no version) had refused every later
        # start (regression probe 2026-12-07). One this start made is removed; a stop ends with 0, as any stop of serve.
        app.state.pool.close()
        _remove_made(data_dir, made)
        # Also one given with --db outside the data folder (regression probe), if it holds no table: one another start made
        # meanwhile and serves on is that start's (regression probe 2026-12-07: removed under it).
        if fresh_file is not None and holds_no_tables(fresh_file):
            for end in ("", "-journal", "-wal", "-shm"):
                Path(fresh_file + end).unlink(missing_ok=True)
        console.print("stopped while making the database: nothing served")
        raise typer.Exit(0) from None
    except StoreUnavailable as exc:
        # A file is no server that comes back: a damaged or foreign file, or a read-only folder, had kept
        # a process up answering 503 for good, "running" to systemd. Locked by another writer: it may pass.
        # A server that is down may come back (503 until then); one holding another application's tables will not.
        if exc.lasting or (sqlite and "locked" not in str(exc)):
            app.state.pool.close()  # its scoring thread, and the models, go with the refusal
            _remove_made(data_dir, made)
            # A lasting refusal says its own remedy (upgrade defectlens, a database of its own); "repair or move
            # the file" had followed "upgrade defectlens" for a schema a newer version wrote.
            fix = "" if exc.lasting else (" — fix: the SQLite file (or its folder) must be a defectlens database this process can write: "
                                          "repair or move it, or pass another --data-dir or --db")
            # Named: "unable to open database file" had said which file nowhere (locked-down host probe 2026-12-07).
            named = f"{file}: " if (file := sqlite_file(config.db_url)) is not None else ""
            console.print(f"[red]error:[/] {escape(named)}{escape(str(exc))}{fix}")
            raise typer.Exit(2) from None
    # A database whose pictures are in another folder, paired with this one unrecorded (a new or empty folder): its whole history
    # had answered 404 with /health "ok", and the log had said "a new history starts there" (concurrency probe 2026-12-07).
    # Checked at every start, recorded pair or not: the first start records the pair, and the next had been silent (regression
    # probe 2026-12-07). A folder whose pictures were lost stops being said once most of the newest inspections are its own.
    newest: list[str] = []
    with contextlib.suppress(StoreUnavailable):
        newest = app.state.store.newest_images()
    # Half or more, not most (the prunes' rule): half a history answering 404 had gone unsaid (regression probe 2026-12-07).
    elsewhere = missing if 2 * (missing := _missing(app.state.blobs, newest)) >= len(newest) else 0
    try:
        # Which database this folder's pictures belong to: the prune commands refuse another (see _require_one_service).
        app.state.blobs.record_database(database_record(config.db_url))
        said = logging.getLogger("defectlens.service")
        if elsewhere:
            said.warning("%d of the database's %d newest inspection(s) have their pictures elsewhere than the data folder %s: those "
                         "answer 404 — if they are in another folder (the one `serve` ran with), stop and pass that --data-dir; if they "
                         "are lost, new inspections are stored here", elsewhere, len(newest), data_dir)
        elif made is not None:
            # Said: a path mistyped after a move, or a drive not mounted, had started a new, empty history on the local disk
            # without a word (operator probe 2026-12-08).
            above = f", with the folders above it from {made}" if made != Path(os.path.realpath(data_dir)) else ""
            (said.warning if above else said.info)("made the data folder %s%s: a new history starts there (if the service's data is "
                                                   "elsewhere — a drive not mounted, a path mistyped — stop it and pass that --data-dir)",
                                                   data_dir, above)
        shown = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL is bracketed ("http://::1:8000/" opens nothing)
        # Each under the name requests and the history use (a folder through a link had been named after the link's target, unsaid).
        served = ", ".join(f"{name} ({printable_text(str(loaded.path))})" if name != str(loaded.path) else name
                           for name, loaded in app.state.pool.models.items())
        said.info("serving %s on http://%s:%s/ (API schema at /openapi.json, browsable at /docs)%s", served, shown, port,
                  # Said: the page asks for its calls under the root path, which only the proxy takes (regression probe 2026-12-07).
                  f"; for a proxy that serves it under {root_path}/: the page and /docs work through the proxy, not at this address"
                  if root_path else "")
        local = is_loopback(host)
        if token is None:
            said.warning("writes are open to anyone reaching this port (no API token): set --token or DEFECTLENS_TOKEN to require one")
        if not local:
            # Reads take no token (the page and a line's dashboards read without one): with a token set, nothing had said that
            # the parts' pictures, names and reviews are there for anyone on the network (security probe 2026-12-06).
            said.warning("reads are open to anyone on the network reaching port %s (bound to %s): pictures, file names and reviews%s; "
                         "keep the port on the plant's network, or behind a proxy that checks who reads", port, shown,
                         "" if token is None else " (the token guards writes only)")
        hang_up = getattr(signal, "SIGHUP", None)
        if hang_up in stopping_signals():
            # The terminal or ssh session closed: stopped as SIGTERM stops it (uvicorn's own handler: the requests in hand answered,
            # status 0). The command's SIGHUP-as-Ctrl-C broke into uvicorn's loop with a 40-line traceback (regression probe).
            signal.signal(hang_up, lambda signum, frame: os.kill(os.getpid(), signal.SIGTERM))
    except KeyboardInterrupt:
        # Stopped after the database was ready, before uvicorn took the stop signals over: a stop like any other (status 0,
        # as the help says; it had been 130 and "run the command again to finish": regression probe 2026-12-07).
        app.state.pool.close()
        console.print("stopped before serving: nothing served")
        raise typer.Exit(0) from None
    from uvicorn.config import STARTUP_FAILURE

    try:
        uvicorn.run(app, host=host, port=port, log_config=log_config(access_log), root_path=root_path)
    except SystemExit as exc:
        if exc.code != STARTUP_FAILURE:
            raise
        if port_problem(host, port) is None:
            # A stop just as it began to serve (uvicorn exits 3 for a Ctrl-C before its server starts): a stop, status 0, not a
            # taken port (regression probe 2026-12-07: said as one, status 2).
            app.state.pool.close()
            console.print("stopped as it began serving: nothing served")
            raise typer.Exit(0) from None
        # The port taken while the models loaded (checked free at the start): uvicorn's own exit 3 under its error line, where
        # the help promises 2 for a refusal (regression probe 2026-12-07).
        app.state.pool.close()
        console.print(f"[red]error:[/] the service could not start on {escape(host)}:{port} (see the line above: the port was taken "
                      "while the models loaded?) — fix: pass a free --port, or stop what holds it")
        raise typer.Exit(2) from None


def is_loopback(host: str) -> bool:
    """Whether a server bound to ``host`` answers this machine alone: a loopback address (``127.0.0.1``, ``::1``,
    ``::ffff:127.0.0.1``) or a name every address of which is one (``localhost``, a host name the system maps to
    127.0.1.1: regression probe 2026-12-06). A name that does not resolve is not."""
    name = bare_host(host).rstrip(".").lower()
    try:
        addresses = {ipaddress.ip_address(name)}
    except ValueError:
        try:
            addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in socket.getaddrinfo(name, None)}
        except (OSError, UnicodeError, ValueError):
            return False

    def loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return address.is_loopback or (mapped is not None and mapped.is_loopback)

    return bool(addresses) and all(loopback(a) for a in addresses)


def export_reviews(
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write (new, empty, or an earlier export: replaced whole).")],
    db: Annotated[str | None, typer.Option(envvar="DEFECTLENS_DB", help="Database URL (default: SQLite in --data-dir).")] = None,
    data_dir: Annotated[Path, typer.Option(help="The service's file folder (uploads are read from it).")] = DEFAULT_DATA,
    model: Annotated[
        list[str] | None,
        typer.Option(help="Export this model's reviews (needed when the service served several); repeat it for the folders of one part."),
    ] = None,
    part: Annotated[str | None, typer.Option(help="Export only the reviews whose reports name this part (its taxonomy's object): "
                                                  "for a name served for two parts in turn.")] = None,
) -> None:
    """Write reviewed inspections out as type examples and a labelled calibration set.

    examples/<type>/ is for `inspect --examples`; calibration/good|defective/ for `calibrate`.
    Exit status: 0 every reviewed inspection written, 3 some skipped (image missing), 2 bad usage."""
    try:
        from defectlens.service.export import export_reviews as run_export
        from defectlens.service.store import Store, StoreUnavailable

        _require_service_extra()
    except ImportError as exc:
        raise _need_extra(exc) from None
    from defectlens.errors import DefectlensError

    if not data_dir.is_dir():
        # Read, never made here: a mistyped or default folder must not leave an empty one behind.
        console.print(f"[red]error:[/] {escape(str(data_dir))}: no service data folder there (uploads and the default database) "
                      "— fix: pass the --data-dir the service was started with")
        raise typer.Exit(2)
    if db is None and not (data_dir / DB_FILE).is_file():
        # Opened, a missing SQLite file was made and migrated empty, and the export then replaced an
        # earlier one with nothing (probe 2026-12-05: a mistyped --data-dir emptied a 27-file export).
        console.print(f"[red]error:[/] {escape(str(data_dir / DB_FILE))}: no inspections database there "
                      "— fix: pass the --data-dir the service was started with, or its --db")
        raise typer.Exit(2)
    try:
        store = Store(_db_url(db, data_dir), upgrade=False)
    except DefectlensError as exc:  # a URL that does not parse, a driver not installed
        console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    before = folder_identity(output)
    try:
        summary = run_export(store, BlobStore(data_dir), output, model, part)
    except KeyboardInterrupt:
        # The folder is swapped in whole: an earlier export stands unless the interrupt came just after the swap.
        # It had ended with status 130 and not a word (interruption probe).
        if folder_identity(output) != before:
            raise interrupted(f"the export was written to {output} just before the interrupt") from None
        raise interrupted(f"nothing written; {output} is as it was" if before else f"nothing written ({output} not made)") from None
    except StoreUnavailable as exc:
        console.print(f"[red]error:[/] {escape(_unavailable(exc))}")
        raise typer.Exit(2) from None
    except DefectlensError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    finally:
        store.dispose()
    types = ", ".join(f"{t} {n}" for t, n in sorted(summary.types.items())) or "none"
    # What calibration/ holds, said as such: "5 reviewed: 0 good, 0 defective" had read as a contradiction when all five were of
    # another view, left out of it (scale probe 2026-12-06).
    left_out = f" ({len(summary.other_view)} of another view left out of it)" if summary.other_view else ""
    console.print(f"{summary.n_inspections} reviewed inspection(s): {summary.good} good, {summary.defective} defective in calibration/{left_out};"
                  f" examples by type: {escape(str(types))}")
    if summary.unreviewed_models:
        console.print(f"[yellow]note:[/] no inspection of {escape(', '.join(summary.unreviewed_models))} has been reviewed good or defective yet: "
                      "none of them is in the export")
    if summary.same_image:
        console.print(f"[yellow]note:[/] {len(summary.same_image)} image(s) were inspected more than once "
                      f"(inspections {escape(_first_ids(summary.same_image))}): each written once, as its latest review says")
    if summary.disagreeing:
        console.print(f"[yellow]note:[/] the reviews of {len(summary.disagreeing)} of them disagree on the verdict "
                      f"(inspections {escape(_first_ids(summary.disagreeing))}): check them, the latest was taken")
    if summary.contested:
        console.print(f"[yellow]note:[/] the reviewers of {len(summary.contested)} inspection(s) disagree on the verdict "
                      f"(inspections {escape(_first_ids(summary.contested))}): the latest review was taken — check them "
                      "(manifest.json lists every review)")
    if summary.no_example:
        console.print(f"[yellow]note:[/] {len(summary.no_example)} inspection(s) reviewed defective give no type example: no region kept "
                      "with a known type (weaker ones left as the machine typed them count only when a review names them or nothing else "
                      f"is kept) and no missed defect typed (inspections {escape(_first_ids(summary.no_example))}); in calibration/defective only — "
                      "name a region with its type in a review (a weaker one too), or add the missed defect with its type, to make one an example")
    if summary.other_view:
        console.print(f"[yellow]note:[/] {len(summary.other_view)} image(s) show the part in another view than the training images "
                      f"(cropped, turned or of another size; inspections {escape(_first_ids(summary.other_view))}): left out of "
                      "calibration/ (a threshold set on them would not hold for whole parts); their examples are kept")
    if summary.unusable:
        console.print(f"[yellow]note:[/] {len(summary.unusable)} image(s) reviewed unusable left out "
                      f"(inspections {escape(_first_ids(summary.unusable))})")
    if summary.missing_files:
        missing = summary.missing_files
        console.print(f"[yellow]note:[/] {len(missing)} inspection(s) skipped,"
                      f" image missing from {escape(str(data_dir))}: {escape(_first_ids(missing))}")
    console.print(f"written to {escape(str(output))}")
    if summary.missing_files:
        raise typer.Exit(3)


def prune_files(
    db: Annotated[str | None, typer.Option(envvar="DEFECTLENS_DB", help="Database URL (default: SQLite in --data-dir).")] = None,
    data_dir: Annotated[Path, typer.Option(help="The service's file folder.")] = DEFAULT_DATA,
    older_than_hours: Annotated[float, typer.Option(min=0.0, help="Only files untouched this long (a younger one may be an upload "
                                                                  "on its way to the database).")] = 1.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go; remove nothing.")] = False,
) -> None:
    """Remove stored pictures no inspection names (left by a crash or a database down mid-upload).

    Safe beside a running service: only files untouched for --older-than-hours go. The database
    must answer: without its list of what is named, nothing is removed.
    Exit status: 0 done, 2 bad usage (no data folder, database unavailable)."""
    try:
        from defectlens.service.store import StoreUnavailable

        _require_service_extra()
    except ImportError as exc:
        raise _need_extra(exc) from None
    store = _files_store(db, data_dir)
    blobs = BlobStore(data_dir)
    try:
        referenced = store.referenced_files()
        _require_one_service(blobs, store, referenced, _db_url(db, data_dir), data_dir, "removed", dry_run)
    except StoreUnavailable as exc:
        console.print(f"[red]error:[/] nothing removed: {escape(_unavailable(exc))}")
        raise typer.Exit(2) from None
    finally:
        store.dispose()
    n_files, n_bytes = blobs.prune(referenced, older_than_hours * 3600, dry_run)
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {n_files} file(s), {n_bytes / 2**20:.1f} MiB, that no inspection names; "
                  f"{len(referenced)} named file(s) kept")


def prune_inspections(
    older_than_days: Annotated[float, typer.Option(min=0.0, max=36500.0, help="Delete inspections recorded more than this many days ago.")],
    db: Annotated[str | None, typer.Option(envvar="DEFECTLENS_DB", help="Database URL (default: SQLite in --data-dir).")] = None,
    data_dir: Annotated[Path, typer.Option(help="The service's file folder.")] = DEFAULT_DATA,
    reviewed: Annotated[bool, typer.Option("--reviewed", help="Delete reviewed and commented inspections too (kept by default: "
                                                              "reviews are the line's labels, which export-reviews writes out).")] = False,
    model: Annotated[str | None, typer.Option(help="Only this model's inspections.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go; remove nothing.")] = False,
    compact: Annotated[bool, typer.Option("--compact", help="SQLite: then give the freed space back to the disk (VACUUM; uploads wait "
                                                            "while it runs — a quiet hour). PostgreSQL reuses it by itself.")] = False,
) -> None:
    """Delete old inspections, with their regions, reviews and the pictures no other inspection names.

    For a service that runs for months: each inspection keeps its upload, overlay and mask on disk.
    Inspections a person reviewed or commented on are kept unless --reviewed; the newest is always kept. Safe beside a
    running service (deleted in batches; a page of one that went answers 404).
    Exit status: 0 done, 2 bad usage (no data folder, database unavailable)."""
    try:
        from datetime import timedelta

        from defectlens.service.db import utcnow
        from defectlens.service.store import UNAVAILABLE_ERRORS, StoreUnavailable, driver_error_line

        _require_service_extra()
    except ImportError as exc:
        raise _need_extra(exc) from None
    cutoff = utcnow() - timedelta(days=older_than_days)
    store = _files_store(db, data_dir)
    blobs = BlobStore(data_dir)
    try:
        # The data folder held from the check to the record of what is left: the inspection it records is kept, and no other
        # writer records one this prune may delete (regression probe 2026-12-08: a missing one had read as another database).
        with contextlib.ExitStack() as held:
            if held.enter_context(saving_in(data_dir / HISTORY_FILE, wait=False)) is False:
                # Said before the wait: it had looked hung for 30 s (final probe 2026-12-08).
                held.close()
                console.print(f"waiting up to {PRUNE_LOCK_SECONDS:g} s for another process holding {escape(str(data_dir))} (a prune, a backup)…")
                locked = held.enter_context(saving_in(data_dir / HISTORY_FILE, wait=PRUNE_LOCK_SECONDS))
            else:
                locked = True
            if locked is False:
                console.print(f"[red]error:[/] nothing deleted: another process has held {escape(str(data_dir))} for "
                              f"{PRUNE_LOCK_SECONDS:g} s (another prune, a backup) — fix: run it again when that one is done")
                raise typer.Exit(2)
            # Checked before anything is deleted: a --db that is not this folder's service's would have its rows
            # deleted and this folder's pictures taken for orphans.
            _require_one_service(blobs, store, store.referenced_files(), _db_url(db, data_dir), data_dir, "deleted", dry_run, True)
            if model is not None and (model := store.stored_name(asked := model)) is None:
                console.print(f"[red]error:[/] nothing deleted: no inspection of model {escape(repr(asked))} is stored — fix: pass one of "
                              f"{escape(', '.join(store.models()) or '(none)')}")
                raise typer.Exit(2)
            # A dry run keeps what the real run would: the mark it raises to the newest first, which is kept anyway. The mark as it
            # was, up to 15 s behind a running service, had been kept instead: "would delete 3", then "deleted 4" (upgrade probe
            # 2026-12-07).
            recorded = [] if dry_run else blobs.recorded_inspections()
            gone = store.forget_before(cutoff, reviewed_too=reviewed, model=model, dry_run=dry_run, keep=recorded)
            if not dry_run:
                blobs.note_newest(store.newest_id(), store.inspection_stamp, True)
        referenced = store.referenced_files(excluding=gone.ids)
        left = store.count() - (gone.inspections if dry_run else 0)
        compacted = compact and not dry_run and store.compact()
    except KeyboardInterrupt:
        if dry_run:
            raise interrupted("the dry run stopped; nothing was deleted") from None
        # Each batch is its own transaction: what was deleted is gone whole, the rest is as it was; no picture was removed yet.
        raise interrupted("stopped: the batches deleted before it are gone with their regions and reviews, the one under way was rolled "
                          "back, and no picture was removed yet; run it again to finish") from None
    except StoreUnavailable as exc:
        console.print(f"[red]error:[/] nothing deleted: {escape(_unavailable(exc))}")
        raise typer.Exit(2) from None
    except UNAVAILABLE_ERRORS as exc:
        # A database it may not write (read-only, held by another writer): one line, not a 40-line traceback (regression probe
        # 2026-12-07). Each batch is its own transaction, as on a stop.
        console.print(f"[red]error:[/] stopped: the database refused the deletion ({escape(driver_error_line(exc))}); the batches deleted "
                      "before it are gone with their regions and reviews, the one under way was rolled back, and no picture was removed — "
                      "fix: run it when the database can be written ("
                      + ("a writable file and folder, no other process holding it for writing)" if _db_url(db, data_dir).startswith("sqlite")
                         # A PostgreSQL outage had been told the SQLite file's fix (PostgreSQL probe 2026-12-07).
                         else "the server running and answering, and its user allowed to delete)"))
        raise typer.Exit(2) from None
    finally:
        store.dispose()
    verb = "would delete" if dry_run else "deleted"
    which = f" of model {escape(model)}" if model else ""
    kept = [f"{gone.reviewed_kept} reviewed or commented one(s) (--reviewed deletes them too)"] if gone.reviewed_kept else []
    kept += ["the newest, always kept (an id is never given twice)"] if gone.newest_kept else []
    console.print(f"{verb} {gone.inspections} inspection(s){which} recorded before {cutoff:%Y-%m-%dT%H:%M:%SZ}"
                  + (f"; kept: {'; '.join(kept)}" if kept else ""))
    # Their pictures, unless another inspection names the same picture (stored once by digest), with any that a
    # crash left unnamed; the hour's grace of prune-files holds: a picture just uploaded again may not be named yet.
    n_files, n_bytes = blobs.prune(referenced, PRUNE_GRACE_SECONDS, dry_run)
    console.print(f"{'would remove' if dry_run else 'removed'} {n_files} picture file(s), {n_bytes / 2**20:.1f} MiB, that no remaining "
                  f"inspection names (any touched in the last hour wait for the next prune); {left} inspection(s) remain")
    if compact and not dry_run:
        console.print("database compacted (VACUUM)" if compacted else "--compact: nothing to do on this database (it reuses the space itself)")


__all__ = ["export_reviews", "prune_files", "prune_inspections", "serve"]
