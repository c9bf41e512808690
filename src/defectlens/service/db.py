"""The inspection store's tables (SQLAlchemy 2) and the engine that reaches them.

The schema itself is created by the Alembic migrations shipped in
:mod:`defectlens.service.migrations` (run at start-up by :func:`migrate`): these classes only
describe it for queries, and a test checks the two agree.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker
from sqlalchemy.pool import NullPool

from defectlens.errors import ConfigError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""Alembic script folder shipped inside the package (no alembic.ini needed)."""

OUR_REVISION = re.compile(r"\d{4}")
"""How the shipped migrations name their revisions ("0001", …): one a newer defectlens wrote looks alike."""

HEAD_REVISION = "0005"
"""The newest shipped migration (a test holds it to Alembic's head): a database at it has every column the
rows below map, and one without them is another application's, or damaged."""

OUR_INSPECTION_COLUMNS = frozenset({
    "id", "created_at", "model", "filename", "image_sha", "image_ext", "overlay_sha", "mask_sha", "width", "height", "score", "verdict",
    "threshold", "seconds", "report", "report_text", "review_state", "reviewed_verdict", "reviewed_by", "reviewed_at", "review_comment"})
"""Columns the inspections table has had since the first revision (its migration's whole table): a table of that name
without them is another application's, or damaged (revision "0001" and our table names alone had let one through to
a raw SQL error; a 0003 database without ``reviewed_verdict`` had been upgraded for good, then refused every upload)."""


UNUSABLE = "unusable"
"""A reviewer's verdict on an image the model cannot judge: another part posted to this model, or an empty, cut or
blurred frame. Kept in the history; labels nothing, so `export-reviews` leaves it out (reviewed good, another part's
image had gone into this part's calibration set)."""

ADDED_COLUMNS = {"0002": {"final_verdict"}, "0003": {"hot_spot"}, "0004": {"defectlens_version", "model_fitted_at", "model_fingerprint"},
                 "0005": {"client_key"}}
"""The inspections columns each revision after the first adds (its migration's ``add_column``)."""


def missing_columns(columns: set[str], revisions: list[str]) -> list[str]:
    """The inspections table's columns a database at ``revisions`` should have and lacks: every mapped one at
    :data:`HEAD_REVISION` (a table at "0004" with the first revision's columns alone had crashed export-reviews
    and been put in WAL), else the first revision's and those the revisions up to its own added (a damaged
    "0003" without ``hot_spot`` had been upgraded for good, then answered 503 on every upload)."""
    if HEAD_REVISION in revisions:
        required = {c.name for c in InspectionRow.__table__.columns}
    else:
        at = max(revisions, default="0001")
        required = set(OUR_INSPECTION_COLUMNS).union(*(added for rev, added in ADDED_COLUMNS.items() if rev <= at))
    return sorted(required - columns)


class ForeignDatabase(Exception):
    """The database holds another application's tables or schema: defectlens will not write among them."""


class SchemaBehind(Exception):
    """The database's schema is not this defectlens's (older, newer, or none yet), and the caller may not upgrade it."""


log = logging.getLogger("defectlens.service")


def utcnow() -> datetime:
    """Now, timezone-aware in UTC (stored as such in both SQLite and PostgreSQL)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""


HISTORY_FILTER_COLUMNS = ("final_verdict", "model", "review_state")
"""Columns the history filters on by equality; each has an index with ``created_at`` after it."""


class InspectionRow(Base):
    """One inspected upload: verdict, files (by sha256) and the latest review."""

    __tablename__ = "inspections"
    # The history is read newest first within a filter: each equality filter with the time after it
    # serves the filter, a time range and the order from one index (migration 0002).
    __table_args__ = tuple(Index(f"ix_inspections_{col}_created_at", col, "created_at") for col in HISTORY_FILTER_COLUMNS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True, default=utcnow)
    model: Mapped[str] = mapped_column(String(200), index=True)
    filename: Mapped[str] = mapped_column(String(500))
    """Name the client gave the upload (shown, never used as a path)."""
    image_sha: Mapped[str] = mapped_column(String(64))
    image_ext: Mapped[str] = mapped_column(String(8))
    overlay_sha: Mapped[str] = mapped_column(String(64))
    mask_sha: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(16), index=True)
    """The machine's verdict: 'good' or 'defective'."""
    threshold: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    report_text: Mapped[str] = mapped_column(Text)
    review_state: Mapped[str] = mapped_column(String(16), index=True, default="unreviewed")
    """'unreviewed' or 'reviewed'."""
    reviewed_verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    final_verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """The verdict that stands: the reviewer's, else the machine's (what the history filters on).
    Set on every write (migration 0002 filled it for earlier rows)."""
    reviewed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    review_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    hot_spot: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    """[x, y] where the map of a part judged good still peaks above the image threshold
    (:attr:`~defectlens.types.Inspection.hot_spot`), or None (migration 0003)."""
    defectlens_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The defectlens that inspected it; None for rows written before migration 0004."""
    model_fitted_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    """When the model was fitted (its card's UTC time): a model refitted under the same name is another."""
    model_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """sha256 of the model's training images (its card's fingerprint), or None."""
    client_key: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True, index=True)
    """The upload's ``Idempotency-Key`` (a retry with it is answered with this row), or None (migration 0005)."""

    regions: Mapped[list[RegionRow]] = relationship(back_populates="inspection", order_by="RegionRow.index", cascade="all, delete-orphan")
    reviews: Mapped[list[ReviewRow]] = relationship(back_populates="inspection", order_by="ReviewRow.id", cascade="all, delete-orphan")


class RegionRow(Base):
    """A defect region: found by the machine, or added by a reviewer as a missed defect."""

    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    """1-based region index (the mask PNG's pixel value); missed defects continue the numbering."""
    defect_type: Mapped[str] = mapped_column(String(100), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(32))
    x0: Mapped[int] = mapped_column(Integer)
    y0: Mapped[int] = mapped_column(Integer)
    x1: Mapped[int] = mapped_column(Integer)
    y1: Mapped[int] = mapped_column(Integer)
    area_px: Mapped[int] = mapped_column(Integer)
    area_fraction: Mapped[float] = mapped_column(Float)
    peak_score: Mapped[float] = mapped_column(Float)
    reviewed_type: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    """The reviewer's type ('not-a-defect' rejects the region)."""
    missed: Mapped[bool] = mapped_column(Boolean, default=False)
    """True for a defect the machine missed, added by a reviewer."""

    inspection: Mapped[InspectionRow] = relationship(back_populates="regions")


class ReviewRow(Base):
    """Every review ever given (the inspection row keeps the latest): who, when, what."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    verdict: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)

    inspection: Mapped[InspectionRow] = relationship(back_populates="reviews")


def sqlite_url(path: str | Path) -> str:
    """SQLAlchemy URL of a SQLite file, its path quoted: a data folder named ``odd?dir`` had put its database in a file
    ``odd`` beside it (the rest read as the URL's query), and ``pc%20dir`` opened ``pc dir`` (regression probe 2026-12-07)."""
    return URL.create("sqlite", database=str(Path(path).resolve())).render_as_string(hide_password=False)


_URI_ON = ("true", "1", "yes", "on", "y", "t")
"""How SQLAlchemy reads ``uri=`` as true (regression probe 2026-12-07: "yes" and "on" too)."""


def _as_uri(parsed: URL) -> bool:
    return str(parsed.query.get("uri", "")).lower() in _URI_ON


def sqlite_file(url: str) -> str | None:
    """The file a SQLite URL names, as the driver opens it: a ``file:`` name is a URI only with ``uri=true`` (without it, a file
    of that very name); None for a database in memory and for another backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None  # (`sqlite://?uri=true` too: in memory, which SQLAlchemy's own reading failed on with a TypeError)
    if not _as_uri(parsed):
        return str(parsed.database)
    try:
        # The name the driver is handed, as SQLAlchemy builds it: with uri=true the URL's other parameters are appended to it,
        # and a name that does not start with "file:" is then a file of that very name, "?mode=memory" and all (a file the
        # store made and served on, which this had taken for one in memory or for the name without them: regression probe).
        (database, *_), _ = parsed.get_dialect()().create_connect_args(parsed)
    except (ArgumentError, TypeError, ValueError):
        return str(parsed.database)  # the store refuses it in its own words
    database = str(database)
    if database.startswith("file:"):
        uri = urlsplit(database)
        if (parse_qs(uri.query).get("mode") or [""])[0] == "memory" or uri.path in ("", ":memory:"):
            return None
        database = unquote(uri.path)
    return database


_DRIVER_PARAMETERS = frozenset({"uri", "timeout", "isolation_level", "detect_types", "check_same_thread", "cached_statements"})
"""A SQLite URL's parameters the Python driver takes itself; SQLite reads the others (mode, cache, immutable, …) only from a
``file:`` path with ``uri=true``."""


def sqlite_parameters_problem(url: str) -> str | None:
    """What is wrong with a SQLite URL's parameters, or None: with ``uri=true`` on a path that is no ``file:`` URI they end up in
    the file's name (``sqlite:///x.db?mode=memory&uri=true`` made and served a file called ``x.db?mode=memory``); without it SQLite
    never reads them (``?mode=ro`` served read-write, SQLAlchemy's warning said up to three times). Regression probes 2026-12-07."""
    try:
        parsed = make_url(url)
        file = sqlite_file(url)
    except (ArgumentError, ValueError):
        return None  # a URL that does not parse: the store refuses it in its own words
    if file is None or (str(parsed.database).startswith("file:") and _as_uri(parsed)):
        return None
    if _as_uri(parsed):
        # Parameters appended to a name of its own ("x?y.db", a %3F in the URL, too).
        if os.path.basename(file) != os.path.basename(str(parsed.database)):
            return f"names a SQLite file called {file!r}: with uri=true, SQLite reads parameters only from a path written as a file: URI"
        return None
    if ignored := sorted(set(parsed.query) - _DRIVER_PARAMETERS):
        return f"gives {', '.join(ignored)}, which SQLite reads only from a path written as a file: URI with uri=true"
    return None


def _entry_ports(values: list[str]) -> list[str | None]:
    """The port each ``host=`` value names, as SQLAlchemy passes them to libpq (None: none named): one value is split into HOST
    and PORT only when it reads as a name or IPv4 address with a port (a socket folder with a colon is a folder, and
    "pg_main:5432" reaches libpq whole); several values each at their colon."""
    if len(values) == 1:
        return [m[1] if (m := re.fullmatch(r"[A-Za-z0-9.-]*:(\d*)", values[0])) else None]
    return [v.partition(":")[2] if ":" in v else None for v in values]


def _ports(url: str) -> tuple[list[str], str, int]:
    """The TCP ports a database URL connects to as its client reads them, where they were given, and how many hosts they are
    for: the URL's own; else those of SQLAlchemy's ``host=HOST:PORT`` parameters (a blank one the default); else its ``port``
    parameter (libpq's, one a host, comma-separated); else PostgreSQL's ``PGPORT`` (the two had passed, port 70000 then a 503
    for good; regression probes 2026-12-07), which libpq reads for one host only: for several, SQLAlchemy names a blank port
    each. Hosts are counted by their commas: an IPv6 address has colons of its own."""
    parsed = make_url(url)
    if parsed.port is not None:
        return [str(parsed.port)], "in the URL", 1
    postgres = parsed.get_backend_name() == "postgresql"
    param = parsed.query.get("host")
    values = [param] if isinstance(param, str) else list(param or ())
    paired = _entry_ports(values) if values else []
    if any(port is not None for port in paired):
        return [port or "" for port in paired], "the URL's host parameter", len(values)
    hosts = ",".join(values) or parsed.host or (os.environ.get("PGHOST", "") if postgres else "")
    n_hosts = len(hosts.split(",")) if hosts else 1
    query = parsed.query.get("port")
    if query is not None:
        return ",".join([query] if isinstance(query, str) else query).split(","), "the URL's port parameter", n_hosts
    if postgres and len(",".join(values).split(",")) <= 1 and (env := os.environ.get("PGPORT", "")):
        return env.split(","), "PGPORT", n_hosts
    return [], "", n_hosts


def _require_ports(url: str) -> None:
    """Refuse, at start, ports no server can be reached at: a port outside 1–65535 or not written in digits alone, more ports
    than hosts (libpq: "could not match 2 port numbers to 1 hosts"). Each had been a 503 for good (regression probes 2026-12-07)."""
    ports, given, n_hosts = _ports(url)
    problem = next((f"{p!r} is no TCP port written in digits (1 to 65535)" for p in ports
                    if p and not (re.fullmatch(r"[0-9]+", p) and 1 <= int(p) <= 65535)), None)
    if problem is None and len(ports) > 1 and len(ports) != n_hosts:
        problem = f"{','.join(ports)!r} names {len(ports)} ports for {n_hosts} host(s)"
    if problem is None:
        return
    if given == "PGPORT":  # the URL is right: the environment's fix, not the URL's (regression probe 2026-12-07)
        raise ConfigError(f"PGPORT {problem}, and the database URL names no port",
                          fix="set PGPORT to the server's port, or unset it (PostgreSQL's default, 5432), or name the port in --db")
    raise ValueError(f"port {problem} ({given})")


def make_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite gets WAL, full sync and a busy timeout (several writer threads),
    every pool checks connections before use (a restarted PostgreSQL is reconnected to)."""
    if url.startswith("sqlite"):
        # A file is opened afresh for each session (no pool): a pooled connection keeps writing to
        # a file that was deleted or replaced under the service — acknowledged and lost — where a
        # new one finds the file gone and the request gets a 503. An in-memory database has only
        # its one connection and keeps the default pool.
        in_memory = make_url(url).database in (None, "", ":memory:")
        pooling: dict[str, Any] = {} if in_memory else {"poolclass": NullPool}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=True, **pooling)
        file = None if in_memory else sqlite_file(url)
        opened = [False]  # whether a connection to the file has been made

        @event.listens_for(engine, "do_connect")
        def _not_made_again(*_args: Any) -> None:
            # Once opened, a file gone from under the service is said as missing, not made again empty: it had come back as an
            # empty database, which a restart then served from id 1 beside the old history's pictures (operator probe 2026-12-08).
            if file is not None and opened[0] and not os.path.exists(file):
                raise sqlite3.OperationalError(f"the database file {file} is missing (moved or deleted while served): put it back; an "
                                               "empty one is not made in its place")

        @event.listens_for(engine, "connect")
        def _opened(*_args: Any) -> None:
            opened[0] = True

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL is written into the file and stays: only for a new file or one of ours, never another
            # application's (a refused foreign file had been left in WAL mode, its checksum changed).
            # Ours: both our tables and Alembic's (another QA tool's table may be called "inspections" too).
            cur.execute("SELECT count(*), coalesce(sum(name IN ('inspections', 'alembic_version')), 0) FROM sqlite_master WHERE type = 'table'")
            n_tables, ours = cur.fetchone()
            if ours == 2:  # and at a revision numbered as ours (another application may use Alembic too), with our columns
                cur.execute("SELECT version_num FROM alembic_version")
                revisions = [str(r) for (r,) in cur.fetchall()]
                ours = 2 if all(OUR_REVISION.fullmatch(r) for r in revisions) else 0
                cur.execute("SELECT name FROM pragma_table_info('inspections')")
                ours = 0 if missing_columns({str(c) for (c,) in cur.fetchall()}, revisions) else ours
            if not n_tables or ours == 2:
                cur.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed inspection is on disk before the client is answered (WAL's NORMAL could lose it on power loss).
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    # A port no server can listen on is the URL's mistake, said at once: it had been a 503 "database unavailable" for good
    # (PostgreSQL probe 2026-12-07: port 70000).
    _require_ports(url)
    # A short connect timeout: a database that is down must turn into a 503 quickly, not a hung request.
    args = {"connect_timeout": 5} if url.startswith("postgresql") else {}
    engine = create_engine(url, pool_pre_ping=True, connect_args=args)
    if url.startswith("postgresql"):

        @event.listens_for(engine, "connect")
        def _iso_dates(dbapi_conn: Any, _record: Any) -> None:
            # psycopg reads times in ISO only: a server, database or PGDATESTYLE set to another DateStyle had stopped `serve` and
            # the prunes with a traceback (PostgreSQL probe 2026-12-07). Committed: the pool's rollback would undo it otherwise.
            with dbapi_conn.cursor() as cur:
                cur.execute("SET DateStyle TO 'ISO'")
            dbapi_conn.commit()

    return engine


_MIGRATE_LOCK = threading.Lock()


MIGRATION_LOCK_KEY = 0x64656C6E  # "deln": PostgreSQL's advisory lock for defectlens's migrations


def migrate(engine: Engine, upgrade: bool = True) -> None:
    """Bring the database to the newest schema with the shipped Alembic migrations, and say so in
    the log when it was older. With ``upgrade`` off, raise :class:`SchemaBehind` instead: the
    commands that only read or tidy (export-reviews, prune-files) had upgraded an older service's
    database without a word, even in a dry run, and that service then could not start again."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    with _MIGRATE_LOCK, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two services starting on one empty database migrated at once: one failed ("relation
            # alembic_version already exists") and answered 503 until the next request. The lock is
            # held to the end of this transaction; the second runs after, and finds nothing to do.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        _refuse_foreign(conn)
        current = MigrationContext.configure(conn).get_current_revision()
        if current == head:
            if upgrade:
                _fill_standing_verdicts(conn)
            return
        if not upgrade:
            if current is None:
                raise SchemaBehind("it holds no defectlens inspections (no schema) — fix: check --db and --data-dir")
            try:
                script.get_revision(current)
            except CommandError:
                raise SchemaBehind(f"its schema is at revision {current}, newer than this defectlens knows ({head}) — fix: upgrade "
                                   "defectlens") from None
            raise SchemaBehind(f"its schema is at revision {current}, this defectlens's at {head} — fix: start `defectlens serve` of this "
                               "version on it once to upgrade it (stop the services of the older version first), or use the defectlens "
                               "that made it")
        if conn.dialect.name == "sqlite":
            # The migration one transaction: the driver opens none before DDL, so a start stopped or killed while it made the
            # tables had left a half-made file (tables, no version) that refused every later start (regression probe 2026-12-07).
            # Only when there is one to make: taken on every start, a database another process holds for writing had kept the
            # start waiting a minute (regression probe 2026-12-07). Immediate: a second start on the same new file waits for this
            # one, then finds the schema made.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            if (current := MigrationContext.configure(conn).get_current_revision()) == head:
                _fill_standing_verdicts(conn)
                return
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        if current is not None:
            log.warning("database schema upgraded from revision %s to %s: a defectlens older than this one cannot use it any more "
                        "(stop its services; the rows they would write are mended at this service's next start)", current, head)


def _fill_standing_verdicts(conn: Connection) -> None:
    """Give rows an older service wrote into an upgraded schema the standing verdict the history's filters
    read (a probe's older service, still running, wrote rows that no verdict filter found)."""
    unmended = "final_verdict IS NULL OR final_verdict <> COALESCE(reviewed_verdict, verdict)"
    # Read first: an UPDATE of no row is still a write, which a read-only database refuses (and a busy one queues).
    if conn.execute(text(f"SELECT 1 FROM inspections WHERE {unmended} LIMIT 1")).first() is None:
        return
    mended = conn.execute(text(f"UPDATE inspections SET final_verdict = COALESCE(reviewed_verdict, verdict) WHERE {unmended}"))
    log.warning("%d inspection(s) written by an older defectlens had their standing verdict filled in", mended.rowcount)


def _refuse_foreign(conn: Connection) -> None:
    """Raise :class:`ForeignDatabase` unless the database is empty or one defectlens made.

    An SQLite file or PostgreSQL database of another application had our tables added among its own,
    and one whose Alembic revision is not ours was said to be "written by a newer defectlens"."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables:
        revisions = [str(r) for (r,) in conn.execute(text("SELECT version_num FROM alembic_version"))]
        if strangers := [r for r in revisions if not OUR_REVISION.fullmatch(r)]:
            raise ForeignDatabase(f"it holds another application's schema (Alembic revision {strangers[0]!r}, not one of defectlens's)")
        if revisions and "inspections" not in tables:
            # Numbered as ours ("0003") but without our tables: another application's hand-numbered revisions.
            names = ", ".join(sorted(tables - {"alembic_version"})[:5]) or "none"
            raise ForeignDatabase(f"it holds another application's schema (Alembic revision {revisions[0]!r}, but no inspections table; "
                                  f"its tables: {names})")
        if "inspections" in tables:
            columns = {str(c["name"]) for c in inspect(conn).get_columns("inspections")}
            if missing := missing_columns(columns, revisions):
                raise ForeignDatabase(f"its inspections table is another application's, or damaged (no {', '.join(missing[:4])}"
                                      f"{', …' if len(missing) > 4 else ''} column at revision {revisions[0] if revisions else 'none'})")
    elif tables:
        names = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        raise ForeignDatabase(f"it holds {len(tables)} table(s) defectlens did not make ({names})")


def make_sessions(engine: Engine) -> sessionmaker:
    """Session factory; objects stay readable after commit (responses are built from them)."""
    return sessionmaker(engine, expire_on_commit=False)


__all__ = [
    "MIGRATIONS",
    "Base",
    "ForeignDatabase",
    "InspectionRow",
    "RegionRow",
    "ReviewRow",
    "SQLAlchemyError",
    "SchemaBehind",
    "make_engine",
    "make_sessions",
    "migrate",
    "sqlite_url",
    "utcnow",
]
