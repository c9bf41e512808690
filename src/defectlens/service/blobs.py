"""Content-addressed files: uploads, overlays and masks stored under their sha256.

A file's name is its digest, so a request can only ever name a file by a 64-hex-digit string
that this module checks: no path from a request reaches the file system.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from defectlens.io import write_bytes_atomic, write_json_atomic
from defectlens.io.outputs import saving_in

_SHA = re.compile(r"[0-9a-f]{64}")
_EXT = re.compile(r"[a-z0-9]{1,8}")


STALE_SCRATCH_SECONDS = 3600
"""Age past which a scratch file is a killed process's leftover (an upload is decoded in seconds)."""
MIN_FREE_BYTES = 32 * 2**20
"""Free space under which /health warns: about one upload, its overlay and mask."""
DOWN_FREE_BYTES = 2**20
"""Free space under which the file store is down: a write of 64 kB may still pass on a disk whose
last blocks are kept for root, while no upload would."""
SERVICE_FILE = "service.json"
"""Kept in the data folder: which database its pictures belong to (``database``, written by `serve`), and a copy of the folder's
mark, where 0.3.13 kept it and reads it (:meth:`BlobStore.note_newest`)."""
HISTORY_FILE = "history.json"
"""Kept in the data folder: its mark, the newest inspection the folder's service has held (:data:`NEWEST_INSPECTION`,
:data:`NEWEST_STAMP`). A file of its own, which no defectlens before 0.3.14 writes and a backup leaves out: 0.3.12 wrote
service.json whole at each start, the mark lost with it, and a backup's service.json put back with its older database lowered
it (upgrade and PostgreSQL probes 2026-12-07) — either way a prune then took the newer pictures for orphans."""
SERVING_LOCK = "serving.lock"
"""A file in the data folder each running `serve` holds a shared lock on (``flock``), for as long as it serves: a start on another
database is refused while one serves the folder, pictures or none yet (regression probe 2026-12-07: a second service on another
database, started before the first had stored a picture, took the folder over, and a prune then removed the first's pictures)."""
NEWEST_STAMP = "newest_stamp"
"""The key of :data:`HISTORY_FILE` that holds the stamp of the inspection at :data:`NEWEST_INSPECTION` (its time and picture):
another database's inspection of that id has another."""
NEWEST_INSPECTION = "newest_inspection"
"""The key of :data:`HISTORY_FILE` that holds the highest inspection id seen stored: ids are never given twice, so a database
whose newest is below it was lost, replaced or restored from an older backup, and holds no record of the newer pictures."""


class BlobStore:
    """Files under ``root/ab/<sha256>.<ext>``, written atomically and never modified."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.removed_scratch = self._clean_scratch()
        self._turns = threading.Lock()  # this process's threads raise the mark in turn (note_newest)

    def _clean_scratch(self) -> int:
        """Remove scratch files older than :data:`STALE_SCRATCH_SECONDS` (left by a process that was
        killed mid-upload; younger ones may be another live process's) and say how many went."""
        removed = 0
        cutoff = time.time() - STALE_SCRATCH_SECONDS
        scratch = self.root / "tmp"
        if not scratch.is_dir():  # made when first needed: a prune's dry run had left an empty tmp/ behind
            return 0
        for leftover in scratch.iterdir():
            try:
                if leftover.is_file() and leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
            except OSError:  # gone meanwhile, or not ours to remove: left as it is
                continue
        return removed

    def path(self, sha: str, ext: str) -> Path:
        """Where the blob ``sha`` lives; refuses anything but a sha256 digest and a short extension."""
        if not _SHA.fullmatch(sha) or not _EXT.fullmatch(ext):
            raise ValueError(f"not a blob name: {sha!r}.{ext!r}")
        return self.root / sha[:2] / f"{sha}.{ext}"

    def put(self, data: bytes, ext: str) -> str:
        """Store ``data`` (once: an existing blob with the same digest is kept); returns its sha256."""
        sha = hashlib.sha256(data).hexdigest()
        target = self.path(sha, ext)
        if not target.is_file():
            # The digest's folder only, never the store itself: a data folder deleted under traffic
            # was made again, empty, and /health said ok while stored rows named missing files.
            target.parent.mkdir(exist_ok=True)
            # Atomic: a crash leaves the old state or the whole file, never part of one.
            write_bytes_atomic(target, data)
        else:
            # Young again: an old unnamed copy (a crash's) taken by a new upload must not be pruned
            # (prune removes only files untouched for an hour) before the upload's record names it.
            os.utime(target)
        return sha

    def prune(self, referenced: set[str], older_than: float = STALE_SCRATCH_SECONDS, dry_run: bool = False) -> tuple[int, int]:
        """Remove the stored files no inspection names (``referenced``: the digests the database
        holds), untouched for ``older_than`` seconds (a younger one may be an upload still on its way
        to the database); returns how many files and bytes went (would go, with ``dry_run``). A crash,
        or a database down between an upload's files and its record, left them for good."""
        cutoff = time.time() - older_than
        n_files = n_bytes = 0
        for folder in self.root.glob("[0-9a-f][0-9a-f]"):
            for path in folder.iterdir():
                sha = path.name.split(".", 1)[0]
                try:
                    info = path.stat()
                    if not _SHA.fullmatch(sha) or sha in referenced or info.st_mtime >= cutoff or not path.is_file():
                        continue
                    if not dry_run:
                        path.unlink()
                except OSError:  # gone meanwhile, or not ours to remove: left
                    continue
                n_files, n_bytes = n_files + 1, n_bytes + info.st_size
        return n_files, n_bytes

    def holds(self, sha: str) -> bool:
        """Whether a file of digest ``sha`` is stored (in any format)."""
        return _SHA.fullmatch(sha) is not None and any((self.root / sha[:2]).glob(f"{sha}.*"))

    def service_record(self) -> dict[str, Any] | None:
        """What the folder's :data:`SERVICE_FILE` holds (:func:`read_service_record`): one that cannot be read is never written
        over, and the prune commands refuse the folder."""
        return read_service_record(self.root)

    def record_database(self, database: dict[str, Any]) -> None:
        """Record which database the folder's pictures belong to (``database``: the keys to keep; best effort: a folder that takes
        no file is said by /health, and the prune commands then check by the pictures)."""
        record = self.service_record()
        if record is not None and {**record, **database} != record:
            self._write_record({**record, **database})

    def note_newest(self, newest: int | None, stamp_of: Callable[[int], str | None], locked: bool = False) -> None:
        """Record the database's newest inspection (id ``newest``, None: it holds none; ``stamp_of`` gives an inspection's stamp
        by its id) as the folder's mark, where the database holds the folder's history (:meth:`lost_history`) — a database that
        does not is never recorded over it, however many inspections it takes (regression probe 2026-12-08: the new database's
        ids overtaking the mark had lifted the prunes' refusal). A folder holding no picture starts a new history (moving the
        pictures out is the way to start again on purpose). Read and written with the folder locked (:func:`saving_in`): the
        service's watch and a prune write it alike, and a lower mark written last would point at an inspection a prune may
        delete; ``locked``: the caller holds the folder already (`prune-inspections`, which keeps the inspection recorded). The
        service's threads take turns (an upload's raise had been skipped while another held the folder: a burst of 8 left the
        mark 5 behind until the watch; third regression probe 2026-12-07); another process holding it is not waited for. An
        inspection gone by the time it is stamped (a prune between the two) is not recorded.

        Written to :data:`HISTORY_FILE`, and a copy into :data:`SERVICE_FILE` where 0.3.13 reads it: rolled back to 0.3.13 on a
        database made again, it had no mark there and took the new database's, which then passed this one's (regression probe
        2026-12-07)."""
        # The data folder locked while its record is read and written again, or, held by another, not written this time (the
        # record is best effort; a backup script holding the folder had kept a prune and the service's start waiting unsaid).
        with self._turns, contextlib.nullcontext(True) if locked else saving_in(self.root / HISTORY_FILE, wait=False) as held_here:
            # Each record read once, and the store looked into once: this runs with every upload.
            history, record = read_record(self.root / HISTORY_FILE), self.service_record()
            marks, holds = self._marks(history, record), self.holds_files()
            if record is None or isinstance(marks, Path) or held_here is False:
                return
            if holds and self._lost(newest, stamp_of, marks) is not None:
                return
            held, stamp = max(marks.values(), key=lambda mark: mark[0])
            now: dict[str, Any] = {NEWEST_INSPECTION: held, NEWEST_STAMP: stamp} if held else {}
            if not holds or (newest or 0) > held or ((newest or 0) == held and not isinstance(stamp, str)):  # never lowered
                if newest and (newest_stamp := stamp_of(newest)) is None:
                    return
                now = {NEWEST_INSPECTION: newest, NEWEST_STAMP: newest_stamp} if newest else {}
            with contextlib.suppress(OSError):
                if now != history:
                    write_json_atomic(self.root / HISTORY_FILE, now)
                kept = {key: value for key, value in record.items() if key not in (NEWEST_INSPECTION, NEWEST_STAMP)}
                if {**kept, **now} != record:
                    self._write_record({**kept, **now})

    def _write_record(self, record: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            write_json_atomic(self.root / SERVICE_FILE, record)

    def _marks(self, history: dict[str, Any] | None, service: dict[str, Any] | None) -> dict[str, tuple[int, object]] | Path:
        """The folder's marks — the newest inspection's id (0: none recorded) and stamp — by the file that keeps them, from what
        :data:`HISTORY_FILE` and :data:`SERVICE_FILE` (0.3.13's copy, which it kept and raised alone) hold (:func:`read_record`),
        or the file that cannot be read for one."""
        marks = {}
        for name, record in ((HISTORY_FILE, history), (SERVICE_FILE, service)):
            if record is None or (mark := _mark_in(record)) is None:
                return self.root / name
            marks[name] = mark
        return marks

    def _read_marks(self) -> dict[str, tuple[int, object]] | Path:
        """:meth:`_marks` of the folder's records as they are now."""
        return self._marks(read_record(self.root / HISTORY_FILE), self.service_record())

    def lost_history(self, newest: int | None, stamp_of: Callable[[int], str | None]) -> str | None:
        """Why the database (its newest inspection id ``newest``, None: it holds none; ``stamp_of`` gives an inspection's stamp by
        its id) does not hold this folder's history, with the fix, or None where it does or the folder holds no picture. The
        folder's mark is the newest inspection its service has held, by id and stamp: a database without that inspection —
        lost and made again, replaced, restored from an older backup — names none of the pictures of the inspections it lacks,
        which a prune had removed as orphans (every one of 162 after a lost database; operator probe 2026-12-08); the right
        database put back holds it again (regression probe: a refusal recorded once had stood for good). A record that cannot
        be read, or whose mark is no whole number, is refused too (a mark of "3" had been read as none). Of the two files' marks
        (:meth:`_marks`) the higher must hold, and a lower one where its id is still stored (:meth:`_lost`)."""
        if not self.holds_files():
            return None
        marks = self._read_marks()
        if isinstance(marks, Path):
            return (f"{marks} cannot be read (no JSON object, or its {NEWEST_INSPECTION} no whole number), so whether "
                    f"the database holds this folder's history cannot be told — fix: repair it, or delete it (it is written again)")
        return self._lost(newest, stamp_of, marks)

    def _lost(self, newest: int | None, stamp_of: Callable[[int], str | None], marks: dict[str, tuple[int, object]]) -> str | None:
        """:meth:`lost_history` of the folder's ``marks`` (:meth:`_marks`), for a folder that holds pictures."""
        for rank, (held, stamp) in enumerate(sorted(marks.values(), key=lambda mark: -mark[0])):
            # This defectlens never deletes the inspection recorded (`prune-inspections` keeps it, with the folder locked), so
            # one missing is as telling as one of another stamp: a database made again may have skipped its id (PostgreSQL's
            # sequences skip ids a rolled-back insert took: regression probe 2026-12-08), and one failed over to a standby or
            # restored to a point in time holds the older ids, lacks the newer and jumps past them (regression probe 2026-12-07).
            found = stamp_of(held) if held and isinstance(stamp, str) else stamp
            if (newest or 0) >= held and found == stamp:
                continue
            # Below a mark that holds, a lower one's inspection missing was pruned since (a backup's service.json put back, 0.3.13's
            # own prune after a rollback: second regression probe 2026-12-07); one of another stamp is another database's still.
            if rank and found is None:
                continue
            # What differs, said as it is: a line that uploads alike pictures gives a database made again the same picture at that
            # id (final probe 2026-12-08: "time and picture differ" had been said of the time alone).
            differ = [what for what, a, b in zip(("time", "picture"), str(found).split(" ", 1), str(stamp).split(" ", 1), strict=False)
                      if a != b]
            verb = "differ" if len(differ) > 1 else "differs"
            said = (f"the database lacks inspection {held}," if found is None else
                    f"the database's inspection {held} is another (its {' and '.join(differ) or 'stamp'} {verb}) than")
            # Another hand may have deleted it (a prune of 0.3.12 or earlier, which kept none): said, the way on left to the person
            # who knows (it had been taken on trust, and a standby promoted with a gap in its ids passed; regression probe).
            deleted = (f" (if inspection {held} was deleted on purpose — by a prune of defectlens 0.3.12 or earlier, or by hand —, "
                       f"delete the folder's {HISTORY_FILE} and {SERVICE_FILE}: the next start records the database's newest)"
                       if found is None and (newest or 0) > held else "")
            return (f"{said} the one this folder ({self.root}) recorded as the newest its service had held (the database's newest is "
                    f"{f'id {newest}' if newest else 'none'}): it was lost and made again, replaced, failed over, or restored from an "
                    "older backup, and names none of the pictures of the inspections it lacks — fix: restore the database that goes with "
                    f"this folder{deleted} (to start the history again on purpose, move the pictures out of the folder, or delete its "
                    f"{HISTORY_FILE} and {SERVICE_FILE})")
        return None

    def recorded_inspections(self) -> list[int]:
        """The ids of the inspections the folder recorded as the newest (:meth:`_marks`; none where a record cannot be read): a
        prune keeps them."""
        marks = self._read_marks()
        return [] if isinstance(marks, Path) else sorted({held for held, _ in marks.values() if held})

    def holds_files(self) -> bool:
        """Whether any file is stored (stops at the first found: a store may hold millions)."""
        return any(True for folder in self.root.glob("[0-9a-f][0-9a-f]") for _ in folder.iterdir())

    def _tmp(self) -> Path:
        """The scratch folder, made again if someone removed it (the store itself must still be there)."""
        tmp = self.root / "tmp"
        tmp.mkdir(exist_ok=True)
        return tmp

    def check(self) -> None:
        """Raise OSError unless a file can be written in the store now (the folder may be gone or full).

        64 kB are written, and the disk must have :data:`DOWN_FREE_BYTES` free: an empty file could
        still be made on a full disk, so /health said ok while every upload was refused. Less than
        :data:`MIN_FREE_BYTES` is only a warning (:meth:`low_space`): uploads still went in while
        /health said the store was down."""
        with tempfile.NamedTemporaryFile(dir=self._tmp(), suffix=".check") as fh:
            fh.write(b"\0" * 65536)
            fh.flush()
            os.fsync(fh.fileno())
        self.check_space()

    def check_space(self) -> None:
        """Raise OSError (no space) when the store's disk has under :data:`DOWN_FREE_BYTES` free:
        an upload is refused then as /health says (they had gone in while /health said down, and the
        store's state flipped with every one)."""
        if self.free_bytes() < DOWN_FREE_BYTES:
            raise OSError(errno.ENOSPC, f"under {DOWN_FREE_BYTES // 2**20} MiB free", str(self.root))

    def free_bytes(self) -> int:
        """Bytes free on the store's disk for this process (raises ``OSError`` when it cannot be read)."""
        stats = os.statvfs(self.root)
        return int(stats.f_bavail * stats.f_frsize)

    def low_space(self) -> int | None:
        """The bytes free on the store's disk when under :data:`MIN_FREE_BYTES`, else None."""
        try:
            free = self.free_bytes()
        except OSError:
            return None
        return free if free < MIN_FREE_BYTES else None

    def scratch(self, data: bytes, suffix: str = ".upload") -> Path:
        """A private temporary file holding ``data`` (for decoders that read paths), named with
        ``suffix``; the caller removes it."""
        fd, name = tempfile.mkstemp(dir=self._tmp(), suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except BaseException:
            # A full disk: what was written of it goes (it stayed until a restart an hour later, up to 20 MB an upload).
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)


def read_service_record(data_dir: Path) -> dict[str, Any] | None:
    """What the data folder's :data:`SERVICE_FILE` holds (:func:`read_record`). The one reader of the file, for the service's
    store and the commands."""
    return read_record(data_dir / SERVICE_FILE)


def read_record(path: Path) -> dict[str, Any] | None:
    """What the JSON object in ``path`` holds (empty where there is none); None where it is there but cannot be read as a JSON
    object (a hand edit's stray comma): the data folder's records."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


MAX_MARK = 2**63 - 1
"""The highest inspection id a database can give (a signed 64-bit integer): a mark above it is no database's."""


def _mark_in(record: dict[str, Any]) -> tuple[int, object] | None:
    """The folder's mark a record holds — the newest inspection's id (0: none recorded) and stamp —, or None
    where its id is there but no whole number of 0 or more."""
    mark = record.get(NEWEST_INSPECTION, 0)
    # Above any database's ids (a 64-bit integer): a damaged file, said as one, not a database that lacks inspection 10**30
    # (regression probe 2026-12-07).
    if not isinstance(mark, int) or isinstance(mark, bool) or not 0 <= mark <= MAX_MARK:
        return None
    return mark, record.get(NEWEST_STAMP)


__all__ = ["BlobStore"]

