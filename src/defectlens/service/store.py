"""The inspection store: one database (SQLite file or PostgreSQL) plus the content-addressed files.

An inspection is recorded entirely or not at all: its files are written first (atomically,
by digest: a crash leaves at worst an unreferenced file), then the inspection and its regions
go in with one transaction. A database that is down is reported as :class:`StoreUnavailable`
(HTTP 503) and retried on the next request; the process keeps running.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

from sqlalchemy import and_, delete, exists, false, func, select, true, update
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

import defectlens
from defectlens.errors import ConfigError
from defectlens.io.names import same_spelling
from defectlens.service.db import (
    UNUSABLE,
    ForeignDatabase,
    InspectionRow,
    RegionRow,
    ReviewRow,
    SchemaBehind,
    make_engine,
    make_sessions,
    migrate,
    sqlite_file,
    sqlite_parameters_problem,
    utcnow,
)
from defectlens.service.models import REJECT_TYPE, Outcome

PROBE_BUSY_SECONDS = 3.0
"""How long the write probe (/health, /metrics, start-up) waits for a SQLite file another writer holds."""


class ClientKeyTaken(Exception):
    """An upload's ``Idempotency-Key`` was stored by another request meanwhile: :attr:`first` is that request's row."""

    def __init__(self, first: InspectionRow):
        super().__init__(f"client key taken by inspection {first.id}")
        self.first = first


class StoreUnavailable(Exception):
    """The database cannot be reached (or migrated) right now: answer 503, try again later."""

    def __init__(self, message: str, lasting: bool = False):
        super().__init__(message)
        self.lasting = lasting
        """Trying again will not help: the database is one this defectlens cannot use (another
        application's, or a newer schema), not one that is down."""


@dataclass(frozen=True)
class Filters:
    """What `GET /inspections` narrows the history to (None: no filter)."""

    verdict: str | None = None
    """The final verdict: the reviewer's when reviewed, else the machine's."""
    defect_type: str | None = None
    """A region of this (final) type."""
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    review_state: str | None = None
    reviewed_since: datetime | None = None
    """Reviewed or commented on at or after this time: what a line's system polls to learn of reviews given since it
    last looked, on inspections of any age."""
    after_id: int | None = None
    """Only inspections of a higher id, oldest first: a cursor that neither skips nor repeats an item while uploads
    arrive (paging by offset, newest first, repeats the items that new ones push down)."""


FORGET_BATCH = 500
"""Inspections deleted per transaction by :meth:`Store.forget_before`."""


@dataclass(frozen=True)
class Forgotten:
    """What :meth:`Store.forget_before` deleted (would delete, in a dry run)."""

    inspections: int
    reviewed_kept: int
    """Inspections before the cut-off kept for a review or a note (0 when they went too)."""
    newest_kept: bool = False
    """The newest inspection was old enough to go, and was kept (see :meth:`Store.forget_before`)."""
    ids: tuple[int, ...] = ()
    """In a dry run, the inspections that would go (to count the pictures they would free)."""


class UnusableLabelled(Exception):
    """A review that types regions or marks missed defects on an image whose verdict, as it stands, is
    :data:`~defectlens.service.db.UNUSABLE` (which labels nothing)."""


class StaleReview(Exception):
    """A review sent from a view of the inspection that another review has since changed."""

    def __init__(self, latest_reviewer: str | None, stored: int = 0):
        super().__init__(latest_reviewer)
        self.latest_reviewer = latest_reviewer
        """Who reviewed it meanwhile (None: the sender's count was wrong, with no review to name)."""
        self.stored = stored
        """How many reviews the inspection has: fewer than the sender saw is no review given meanwhile."""


@dataclass(frozen=True)
class ReviewInput:
    """A validated review: the final verdict, each region's type, missed defects."""

    reviewer: str
    verdict: str | None
    """None: 'defective' when it names a defect (:attr:`names_a_defect`), else the verdict that stands (a person's, else the
    machine's) — read under the row's lock: read before it, two reviews at once had stored a verdict neither order gives
    (regression probe 2026-12-06)."""
    region_types: dict[int, str]
    missed: list[tuple[str, tuple[int, int, int, int]]]
    comment: str | None
    payload: dict[str, Any]
    keep_missed: bool = False
    """Keep the missed defects an earlier review added (a review that names none), unless its verdict is good or unusable."""
    seen_reviews: int | None = None
    """How many reviews the sender saw; another count, read under the row's lock, refuses the review
    (:class:`StaleReview`). None: not checked."""
    labels: bool = False
    """It names region types or missed defects: refused (:class:`UnusableLabelled`) on an image whose verdict is unusable."""
    names_a_defect: bool = False
    """A region typed as a defect, or a missed defect: with no verdict sent, the verdict is defective."""
    note_only: bool = False
    """A comment and nothing else: kept in the inspection's history, no label — the verdict, the
    types, the review state and who reviewed it stay as they were (a comment by a script had made an
    unreviewed inspection "reviewed", and `export-reviews` took the machine's verdict for a person's)."""


class Store:
    """Database access for the service; safe to share between request threads."""

    def __init__(self, url: str, upgrade: bool = True):
        """``upgrade``: bring an older schema to this defectlens's (the service); off, an older one is
        refused (:class:`StoreUnavailable`, lasting) — the commands that read or tidy leave it as it is."""
        self.url = url
        self.upgrade = upgrade
        if problem := sqlite_parameters_problem(url):
            # SQLite had made and served on a file of that name, or served read-write, where mode=memory or mode=ro was meant.
            raise ConfigError(f"database URL {_shown(url)} {problem}", fix="write sqlite:///file:PATH?PARAMETERS&uri=true, or leave "
                              "the parameters out")
        try:
            self.engine = make_engine(url)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            # A URL that does not parse or names a driver not installed: the user's to fix, in one line.
            # A driver not installed is installed, not re-typed (packaging probe 2026-12-06: the fix had named the URL just given).
            fix = (f"pip install 'defectlens[service]' (it brings psycopg), or the driver {exc.name} the URL names"
                   if isinstance(exc, ModuleNotFoundError) and exc.name else "pass --db sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
            raise ConfigError(f"database URL {_shown(url)} cannot be used ({driver_error_line(exc)})", fix=fix) from None
        self.sessions = make_sessions(self.engine)
        self._ready = False
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.damage: str | None = None
        """What :meth:`check_integrity` found wrong with the database file, by which the store is refused (None: nothing)."""

    def ensure(self) -> None:
        """Run the migrations once the database answers; raises :class:`StoreUnavailable` until then."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            from alembic.util.exc import CommandError

            if not self.upgrade and (missing := missing_sqlite_file(self.url)):
                # Opened, SQLite makes the file: a mistyped --db had left a new empty database behind.
                self.last_error = f"no database file at {missing} — fix: check --db and --data-dir"
                raise StoreUnavailable(f"database not found: {self.last_error}", lasting=True)
            try:
                migrate(self.engine, self.upgrade)
            except (SQLAlchemyError, OSError) as exc:
                self.last_error = driver_error_line(exc)
                raise StoreUnavailable(f"database unavailable: {self.last_error}") from None
            except ForeignDatabase as exc:
                self.last_error = f"{exc} — fix: give defectlens a database of its own"
                raise StoreUnavailable(f"database unusable: {self.last_error}", lasting=True) from None
            except SchemaBehind as exc:
                self.last_error = str(exc)
                raise StoreUnavailable(f"database unusable as it is: {exc}", lasting=True) from None
            except CommandError as exc:
                # A schema revision the shipped migrations do not know: written by a newer defectlens.
                self.last_error = f"its schema is at a revision this defectlens does not know ({driver_error_line(exc)}) — fix: upgrade defectlens"
                raise StoreUnavailable(f"database unusable: {self.last_error}", lasting=True) from None
            self._ready, self.last_error = True, None

    def check(self, writable: bool = False) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers a read of the inspections
        table now. The table, not ``SELECT 1``: a SQLite file replaced or emptied under the running
        service still answers a trivial query. ``writable``: also unless it would take a write now
        (a read-only SQLite file or PostgreSQL server answers reads and refuses every record)."""
        self.ensure()
        self._refuse_damaged()
        try:
            with self.engine.connect() as conn:
                conn.execute(select(InspectionRow.id).limit(1))
                if writable:
                    if self.engine.dialect.name == "sqlite":
                        # This connection only (each is new): a writer holding the lock made /health wait the
                        # 30 s an upload may wait, and a watchdog took the service for hung.
                        conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(PROBE_BUSY_SECONDS * 1000)}")
                    # An update of no row, rolled back: nothing is written, but a read-only SQLite file
                    # or PostgreSQL refuses it as it refuses a record (SQLite's BEGIN IMMEDIATE does not).
                    conn.execute(update(InspectionRow).where(false()).values(id=InspectionRow.id))
                    conn.rollback()
        except SQLAlchemyError as exc:
            self.last_error = driver_error_line(exc)
            raise StoreUnavailable(f"database unavailable: {self.last_error}") from None

    def check_integrity(self) -> str | None:
        """Run SQLite's integrity check of the database file, and from then on refuse the store (:meth:`check`, every request:
        503) where it finds damage, which is returned (its first lines); None where it finds none, or the database is no SQLite
        file. A file with broken indexes had answered the store's probe, /health "ok" and uploads 201, while the history failed
        ("database disk image is malformed"; operator probe 2026-12-08). It reads the whole file: run it once, off the requests'
        path. The quick check does not compare indexes with their tables, and had found nothing there."""
        if self.engine.dialect.name != "sqlite":
            return None
        try:
            with self.engine.connect() as conn:
                found = [str(row[0]) for row in conn.exec_driver_sql("PRAGMA integrity_check(3)")]
        except SQLAlchemyError as exc:
            if "malformed" not in str(exc) and "corrupt" not in str(exc):
                return None  # not answering now is an outage, which the probe says; not damage
            found = [driver_error_line(exc)]
        if found == ["ok"]:
            return None
        self.damage = " ".join("; ".join(found).split())
        return self.damage

    def ping(self, writable: bool = False) -> bool:
        """True when :meth:`check` passes (the reason is kept in :attr:`last_error` otherwise)."""
        try:
            self.check(writable)
            return True
        except StoreUnavailable:
            return False

    def session(self) -> Session:
        """A new session (the caller closes it: ``with store.session() as s``); refused once the file was found damaged: a read
        through a broken index may miss rows without a word (regression probe 2026-12-08: the history had still answered 200)."""
        self.ensure()
        self._refuse_damaged()
        return self.sessions()

    def _refuse_damaged(self) -> None:
        """Raise :class:`StoreUnavailable` where :meth:`check_integrity` found the database damaged."""
        if self.damage is not None:
            # One line (check_integrity joins its report's lines): they had split one event in a line-based log.
            self.last_error = (f"database damaged ({self.damage}): restore it from a backup, or repair it (`sqlite3 "
                               "FILE REINDEX` for broken indexes, `sqlite3 FILE .recover | sqlite3 NEW_FILE` otherwise) and restart the "
                               "service on it")
            raise StoreUnavailable(self.last_error)

    def inspection_stamp(self, inspection_id: int) -> str | None:
        """What tells the inspection ``inspection_id`` from another given the same id by another database: its time and picture;
        None where there is none of that id."""
        with self.session() as s:
            row = s.execute(select(InspectionRow.created_at, InspectionRow.image_sha).where(InspectionRow.id == inspection_id)).first()
        if row is None:
            return None
        # In UTC, whatever the session's time zone (PostgreSQL gives timestamptz in it: PGTZ or a changed setting had read as
        # another database; regression probe 2026-12-08); SQLite's are kept naive in UTC.
        made = row[0].astimezone(UTC) if row[0].tzinfo is not None else row[0]
        return f"{made.replace(tzinfo=None).isoformat()} {row[1]}"

    def record(self, model: str, filename: str, image_sha: str, image_ext: str, overlay_sha: str, mask_sha: str, out: Outcome,
               client_key: str | None = None) -> InspectionRow:
        """Insert one inspection and its regions in one transaction; returns the stored row. With a ``client_key``
        another upload stored first (a retry racing its first try), :class:`ClientKeyTaken` carries that upload's row."""
        ins = out.inspection
        types = {t.region_index: t for t in out.region_types}
        machine = "defective" if ins.is_defective else "good"
        row = InspectionRow(
            created_at=utcnow(),
            model=model,
            filename=filename,
            image_sha=image_sha,
            image_ext=image_ext,
            overlay_sha=overlay_sha,
            mask_sha=mask_sha,
            width=int(ins.image_size[0]),
            height=int(ins.image_size[1]),
            score=float(ins.score),
            verdict=machine,
            final_verdict=machine,  # until a review says otherwise
            threshold=float(ins.thresholds.image) if ins.thresholds else float("nan"),
            seconds=float(out.seconds),
            report=out.report.to_json(),
            report_text=out.report_text,
            review_state="unreviewed",
            hot_spot=[int(v) for v in ins.hot_spot] if ins.hot_spot is not None else None,
            defectlens_version=defectlens.__version__,
            model_fitted_at=out.model_fitted_at,
            model_fingerprint=out.model_fingerprint,
            client_key=client_key,
        )
        for r in ins.regions:
            t = types.get(r.index)
            row.regions.append(
                RegionRow(
                    index=r.index,
                    defect_type=t.defect_type if t else "unknown",
                    confidence=float(t.confidence) if t else 0.0,
                    method=t.method if t else "none",
                    x0=r.bbox[0], y0=r.bbox[1], x1=r.bbox[2], y1=r.bbox[3],
                    area_px=int(r.area_px),
                    area_fraction=float(r.area_fraction),
                    peak_score=float(r.peak_score),
                    missed=False,
                )
            )
        # Both collections set, even when empty: the row is returned detached, and an unset one
        # would be lazily loaded from a session it no longer has.
        row.regions = list(row.regions)
        row.reviews = []
        try:
            with self.session() as s, s.begin():
                s.add(row)
        except IntegrityError:
            # Only the client key is unique: the same key's other request committed between this one's look and its write.
            if client_key is None or (first := self.by_client_key(client_key)) is None:
                raise
            raise ClientKeyTaken(first) from None
        # The response is built from the row as committed (its id filled in, objects kept readable
        # after commit), not read back: a failed read after the commit would answer 503 for an
        # inspection that was stored, and the station's retry would store it twice.
        return row

    def by_client_key(self, client_key: str) -> InspectionRow | None:
        """The inspection an upload with this ``Idempotency-Key`` stored, with its regions and reviews, or None."""
        return self._one(InspectionRow.client_key == client_key)

    def get(self, inspection_id: int) -> InspectionRow | None:
        """One inspection with its regions and reviews, or None."""
        return self._one(InspectionRow.id == inspection_id)

    def _one(self, where: Any) -> InspectionRow | None:
        """The inspection ``where`` picks, with its regions and reviews loaded (the row is read after its session), or None."""
        with self.session() as s:
            stmt = select(InspectionRow).where(where).options(selectinload(InspectionRow.regions), selectinload(InspectionRow.reviews))
            return s.scalars(stmt).first()

    def page(self, filters: Filters, limit: int, offset: int) -> tuple[list[InspectionRow], int]:
        """A page of the history, newest first (oldest first after an id: :attr:`Filters.after_id`), and how many match in all."""
        conds = []
        if filters.verdict:
            conds.append(InspectionRow.final_verdict == filters.verdict)
        if filters.model:
            conds.append(InspectionRow.model.in_(self.spellings(filters.model)))
        if filters.since:
            conds.append(InspectionRow.created_at >= filters.since)
        if filters.until:
            conds.append(InspectionRow.created_at < filters.until)
        if filters.review_state:
            conds.append(InspectionRow.review_state == filters.review_state)
        if filters.reviewed_since:
            # Any review row, notes too: the inspection's reviewed_at is its latest labelling review's, and a comment given
            # since had not been found (regression probe 2026-12-06).
            conds.append(exists().where(and_(ReviewRow.inspection_id == InspectionRow.id, ReviewRow.created_at >= filters.reviewed_since)))
        if filters.after_id is not None:
            conds.append(InspectionRow.id > filters.after_id)
        if filters.defect_type:
            final_type = func.coalesce(RegionRow.reviewed_type, RegionRow.defect_type)
            conds.append(exists().where(and_(RegionRow.inspection_id == InspectionRow.id, final_type == filters.defect_type)))
            # An image reviewed unusable labels nothing: its regions keep the machine's types, which are no one's word
            # on the part (regression probe: it was counted among the cracks).
            conds.append(func.coalesce(InspectionRow.final_verdict, "") != UNUSABLE)
        where = and_(*conds) if conds else true()
        with self.session() as s:
            total = s.scalar(select(func.count()).select_from(InspectionRow).where(where)) or 0
            order = (InspectionRow.id.asc(),) if filters.after_id is not None else (InspectionRow.created_at.desc(), InspectionRow.id.desc())
            stmt = (
                select(InspectionRow).where(where).order_by(*order).limit(limit).offset(offset)
                .options(selectinload(InspectionRow.regions), selectinload(InspectionRow.reviews))
            )
            return list(s.scalars(stmt)), int(total)

    def review(self, inspection_id: int, review: ReviewInput) -> InspectionRow | None:
        """Apply a review in one transaction (None: no such inspection). Regions it does not name
        keep the type they have (an earlier reviewer's, else the machine's); missed defects of an
        earlier review are replaced by this one's, unless it names none and ``keep_missed``."""
        with self.session() as s, s.begin():
            # Write to the row first: its lock (a row lock on PostgreSQL, the database's write lock on
            # SQLite) makes concurrent reviews of one inspection take turns, each reading what the one
            # before it wrote. Read first, two reviews each kept the regions they had read and both
            # added their missed defects (two reviews at once left two, six left six).
            touch = update(InspectionRow).where(InspectionRow.id == inspection_id).values(review_state=InspectionRow.review_state)
            if not cast(CursorResult[Any], s.execute(touch)).rowcount:
                return None
            if review.seen_reviews is not None and not review.note_only:
                # A comment alone is never refused: it changes nothing another review decided (regression probe: a note with a
                # stale count was 409, and one that landed first had every inspector told "reviewed meanwhile").
                # Checked under the lock: two reviews sent from one view in the same instant both passed a check made
                # before it. Counted, not loaded: an inspection's earlier reviews are read only when one is stale.
                n = s.scalar(select(func.count()).select_from(ReviewRow).where(ReviewRow.inspection_id == inspection_id))
                if n != review.seen_reviews:
                    latest = s.scalar(select(ReviewRow.reviewer).where(ReviewRow.inspection_id == inspection_id)
                                      .order_by(ReviewRow.id.desc()).limit(1))
                    raise StaleReview(latest, n or 0)
            row = s.scalars(select(InspectionRow).where(InspectionRow.id == inspection_id).options(selectinload(InspectionRow.regions))).one()
            now = utcnow()
            if not review.note_only and (review.verdict or row.reviewed_verdict or row.verdict) == UNUSABLE and review.labels:
                # Also when no verdict is sent and the review names a defect: read before the lock, it had been taken for
                # "defective" and turned an inspector's "unusable" over without a word (regression probe round 2).
                raise UnusableLabelled()
            if review.note_only:
                s.add(ReviewRow(inspection_id=row.id, reviewer=review.reviewer, created_at=now,
                                verdict=row.reviewed_verdict or row.verdict, payload=review.payload))
            else:
                _apply_label(s, row, review, now)
        return self.get(inspection_id)

    def reviewed(self) -> list[InspectionRow]:
        """Every reviewed inspection with its regions and its reviews (for export), oldest first."""
        with self.session() as s:
            stmt = select(InspectionRow).where(InspectionRow.review_state == "reviewed").order_by(InspectionRow.id).options(
                selectinload(InspectionRow.regions), selectinload(InspectionRow.reviews)
            )
            return list(s.scalars(stmt))

    def referenced_files(self, excluding: Collection[int] = ()) -> set[str]:
        """The digests of every file an inspection names (its image, overlay and mask), but those of
        the inspections ``excluding`` names (ids: a dry run's, to count what their deletion frees)."""
        self.ensure()
        left_out = set(excluding)
        with self.session() as s:
            rows = s.execute(select(InspectionRow.id, InspectionRow.image_sha, InspectionRow.overlay_sha, InspectionRow.mask_sha))
            return {sha for row in rows if row[0] not in left_out for sha in row[1:]}

    def newest_images(self, limit: int = 50) -> list[str]:
        """The image digests of the ``limit`` newest inspections (a sample of the files the database names)."""
        self.ensure()
        with self.session() as s:
            return list(s.scalars(select(InspectionRow.image_sha).order_by(InspectionRow.id.desc()).limit(limit)))

    def compact(self) -> bool:
        """Give the space of deleted rows back to the disk: SQLite's ``VACUUM`` (the file had kept its size
        after a retention deleted most rows). It rewrites the file and holds its lock meanwhile, so uploads
        wait (a quiet hour). PostgreSQL reuses the space itself (autovacuum): False, nothing done."""
        self.ensure()
        if self.engine.dialect.name != "sqlite":
            return False
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM")
        return True

    def models(self) -> list[str]:
        """The names of the models whose inspections are stored, each once in one Unicode spelling (:func:`same_spelling`):
        rows an older defectlens stored under a decomposed "kä" are the composed "kä"'s (two alike names had been listed;
        regression probe 2026-12-07). :meth:`spellings` gives the names as stored."""
        return sorted({same_spelling(m) for m in self._stored_names()})

    def _stored_names(self) -> list[str]:
        """The names inspections are stored under, as stored."""
        with self.session() as s:
            return sorted(s.scalars(select(InspectionRow.model).distinct()))

    def models_of_fit(self, fitted_at: str, fingerprint: str | None) -> list[str]:
        """The names the inspections of one fit (its fit time and training fingerprint) are stored under."""
        with self.session() as s:
            stmt = select(InspectionRow.model).where(InspectionRow.model_fitted_at == fitted_at)
            # A fit without a fingerprint is not one with (as Inspector compares them; regression probe 2026-12-06).
            stmt = stmt.where(InspectionRow.model_fingerprint.is_(None) if fingerprint is None else InspectionRow.model_fingerprint == fingerprint)
            return sorted(s.scalars(stmt.distinct()))

    def spellings(self, name: str) -> list[str]:
        """Every name inspections are stored under that is ``name`` in one Unicode spelling (:func:`same_spelling`), or
        ``[name]`` when none is: the history's filter and `prune-inspections` take them all. With the first alone, an older
        defectlens's rows under a decomposed "kä" had hidden the newer ones under the composed (regression probe 2026-12-07)."""
        wanted = same_spelling(name)
        return [m for m in self._stored_names() if same_spelling(m) == wanted] or [name]

    def stored_name(self, name: str) -> str | None:
        """The stored name (as :meth:`models` spells it) that is ``name`` in one Unicode spelling (:func:`same_spelling`; rows an
        older defectlens stored under a decomposed "ä" included), or None when none is: the service's filter, `export-reviews`
        and `prune-inspections` read a name as the service does (regression probe 2026-12-06)."""
        wanted = same_spelling(name)
        return next((m for m in self.models() if same_spelling(m) == wanted), None)

    def forget_before(self, cutoff: datetime, *, reviewed_too: bool = False, model: str | None = None, dry_run: bool = False,
                      batch: int = FORGET_BATCH, keep: Collection[int] = ()) -> Forgotten:
        """Delete the inspections recorded before ``cutoff`` (of ``model`` only, when given), with their
        regions and reviews; those a person reviewed or commented on are kept unless ``reviewed_too``
        (reviews are the line's labels, read by `export-reviews`). Deleted ``batch`` at a time, each batch its own transaction:
        a service beside it waits for one batch, never for the whole purge. The newest inspection is
        always kept, since SQLite gives the highest stored id plus one to the next row: with every
        row gone, an id already seen (in an export, a log, a bookmark) would name a new inspection. So is every one stored after
        it was read (an upload's time is taken before it waits for the write lock: the newest had been deleted, its id given
        again; regression probe 2026-12-08), and those of ``keep`` (the inspection the data folder recorded)."""
        self.ensure()
        conds = [InspectionRow.created_at < cutoff]
        if model is not None:
            conds.append(InspectionRow.model.in_(self.spellings(model)))
        with self.session() as s:
            newest = s.scalar(select(func.max(InspectionRow.id)))
            newest_kept = False
            if newest is not None:
                newest_kept = bool(s.scalar(select(func.count()).select_from(InspectionRow).where(and_(*conds), InspectionRow.id == newest)))
                conds.append(InspectionRow.id < newest)
            if keep:
                conds.append(InspectionRow.id.not_in(list(keep)))
            old = and_(*conds)
            # A person's word on it — a review, or a note (a comment alone) — keeps it: the README audit found notes
            # deleted with their inspections while reviews were kept.
            looked_at = exists().where(ReviewRow.inspection_id == InspectionRow.id)
            n_reviewed = int(s.scalar(select(func.count()).select_from(InspectionRow).where(old, looked_at)) or 0)
            if not reviewed_too:
                old = and_(old, ~looked_at)
            if dry_run:
                would_go = tuple(s.scalars(select(InspectionRow.id).where(old)))
                return Forgotten(len(would_go), 0 if reviewed_too else n_reviewed, newest_kept, would_go)
        removed = 0
        while True:
            with self.session() as s, s.begin():
                ids = list(s.scalars(select(InspectionRow.id).where(old).order_by(InspectionRow.id).limit(batch)))
                if not ids:
                    break
                # Children first, by statement: the foreign keys' ON DELETE CASCADE holds in SQLite only
                # on connections that turned it on.
                s.execute(delete(RegionRow).where(RegionRow.inspection_id.in_(ids)))
                s.execute(delete(ReviewRow).where(ReviewRow.inspection_id.in_(ids)))
                s.execute(delete(InspectionRow).where(InspectionRow.id.in_(ids)))
            removed += len(ids)
        return Forgotten(removed, 0 if reviewed_too else n_reviewed, newest_kept)

    def count(self) -> int:
        """How many inspections are stored."""
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(InspectionRow)) or 0)

    def newest_id(self) -> int | None:
        """The highest inspection id stored; None when none is."""
        self.ensure()
        with self.session() as s:
            newest = s.scalar(select(func.max(InspectionRow.id)))
        return None if newest is None else int(newest)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _apply_label(s: Session, row: InspectionRow, review: ReviewInput, now: datetime) -> None:
    """A review's verdict, types and missed defects written over ``row`` (in ``s``'s transaction)."""
    verdict = review.verdict or ("defective" if review.names_a_defect else row.reviewed_verdict or row.verdict)
    # Good, then defective naming nothing: the regions the good review rejected wholesale are the machine's again. Naming
    # some (or a missed defect), the others stay rejected: a second reviewer's one crack had made the six specks the first
    # had rejected confirmed cracks, exported as examples (loop probe 2026-12-06). Unusable labels nothing: the machine's
    # regions as they were, so a later review starts from them.
    after_good = verdict == "defective" and row.reviewed_verdict == "good"
    restore = (after_good and not (review.region_types or review.missed)) or verdict == UNUSABLE
    still_rejected = after_good and not restore
    keep_missed = review.keep_missed and verdict not in ("good", UNUSABLE)
    kept = [r for r in row.regions if not r.missed]
    for r in kept:
        # Not named: as it stands. A comment-only review wiped an earlier reviewer's re-types. Unusable: no person's type
        # at all (the machine's, set as reviewed, read as a person's confirmed crack: regression probe round 3).
        standing = r.defect_type if restore else REJECT_TYPE if still_rejected else r.reviewed_type or r.defect_type
        r.reviewed_type = None if verdict == UNUSABLE else review.region_types.get(r.index, standing)
    if keep_missed and not review.missed:
        kept += [r for r in row.regions if r.missed]
    row.regions = kept
    next_index = max((r.index for r in kept), default=0) + 1
    for i, (dtype, (x0, y0, x1, y1)) in enumerate(review.missed):
        area = max(0, x1 - x0) * max(0, y1 - y0)
        row.regions.append(
            RegionRow(
                index=next_index + i, defect_type=dtype, reviewed_type=dtype, confidence=1.0, method="reviewer",
                x0=x0, y0=y0, x1=x1, y1=y1, area_px=area, area_fraction=area / max(1, row.width * row.height),
                peak_score=0.0, missed=True,
            )
        )
    row.review_state = "reviewed"
    row.reviewed_verdict = verdict
    row.final_verdict = verdict
    row.reviewed_by = review.reviewer
    row.reviewed_at = now
    row.review_comment = review.comment
    # The history says what was applied: the verdict that stood when none was sent, and the missed defects as stored
    # ("Crack" with no box is crack over the whole image); None when it named none and kept the earlier ones, which
    # "[]" (removed them all) had looked the same as.
    payload = {**review.payload, "verdict": verdict,
               "missed": None if keep_missed else [{"type": t, "bbox": list(box)} for t, box in review.missed]}
    s.add(ReviewRow(inspection_id=row.id, reviewer=review.reviewer, created_at=now, verdict=verdict, payload=payload))


def missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite URL's file, links followed, when it does not exist (None: there, in memory, or not SQLite). A
    ``file:`` name is a URI only with ``uri=true``, as the driver reads it (regression probe 2026-12-07: ``file:a.db`` without
    it is a file of that very name, and had been taken for ``a.db``)."""
    if (database := sqlite_file(url)) is None:
        return None
    # The file a link leads to: the link is the user's, and what a start makes is its target (regression probe 2026-12-07).
    real = os.path.realpath(database)
    return None if os.path.exists(real) else real


def holds_no_tables(path: str) -> bool:
    """Whether the SQLite file at ``path`` holds no table (empty, or made and its first migration rolled back): the only kind
    a stopped start removes. One another start made meanwhile and serves on holds its tables (regression probe 2026-12-07: it
    had been removed for having been missing when this start began). Unreadable, it is kept."""
    import sqlite3

    try:
        if os.path.getsize(path) == 0:
            return True
        with contextlib.closing(sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)) as db:
            return db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    except (OSError, sqlite3.Error):
        return False


def driver_error_line(exc: BaseException) -> str:
    """The first line of a driver error (they run to many lines with SQL and hints)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}"


def _shown(url: str) -> str:
    """The URL with its password hidden (as far as it parses)."""
    try:
        return repr(make_url(url).render_as_string(hide_password=True))
    except (SQLAlchemyError, ValueError):
        return repr(url) if "@" not in url else "(as given)"


UNAVAILABLE_ERRORS = (OperationalError, DBAPIError)
"""Driver errors that mean the database is down or unreachable (answered with 503)."""

__all__ = [
    "UNAVAILABLE_ERRORS",
    "ClientKeyTaken",
    "Filters",
    "Forgotten",
    "ReviewInput",
    "Store",
    "StoreUnavailable",
    "driver_error_line",
    "holds_no_tables",
    "missing_sqlite_file",
]
