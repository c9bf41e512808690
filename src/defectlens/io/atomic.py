"""Atomic file writes: a reader never sees a half-written file, and a crash never
destroys the previous version (write to a temporary file beside the target, then rename).

Temporaries are hidden and named after their target: ``.NAME.XXXXXXXX.tmp`` for a file,
``.NAME.tmp-XXXXXXXX`` for a folder (and ``.NAME.old-XXXXXXXX`` for the folder it replaces
where folders cannot be swapped in one step). A run killed midway (SIGKILL) cannot remove its
own; the next run removes those left in its output folder (:func:`clean_stale_temporaries`),
and puts back a replaced folder that a killed run left without its successor. A folder
(a model, an export) is flushed to the disk before it is swapped in, so a power cut leaves the
old one or the new one; single files (each image's results) are not flushed one by one — a
power cut may lose the last images' files, which ``--resume`` redoes. Every file and folder
gets the mode the umask gives, as ``open()`` would, not the 0600/0700 of :mod:`tempfile`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

from defectlens.errors import DefectlensWarning, ModelFileError, OutputError, warn_caller
from defectlens.io.names import is_utf8_path, was_cut, within_bytes
from defectlens.io.outputs import CHECK_PREFIX, own_descriptor, require_output_path, require_writable_parent, send_to_nowhere, stream

STALE_SECONDS = 60.0
"""A temporary untouched this long belongs to a dead run: a live one renames its own within
moments, so a concurrent run writing to the same folder never loses a file in flight. A temporary
folder is also held by its writer (:func:`_hold`) and never removed while held, whatever its age: a
folder's time is that of its last entry (``copytree`` even gives it its source's), and a live export
had lost its folder to a second export's cleaning (concurrency probe 2026-12-06)."""


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks (an exported encoder is megabytes; an inspected image's file, as
    `--resume` tells it)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def remove_folder(path: str | Path, ignore_errors: bool = False) -> None:
    """Remove the folder ``path`` and all below it, its read-only folders too: a model copied from a read-only one
    (folders 555) could not be removed by ``shutil.rmtree``, whose failure went unsaid; its temporary stayed beside the
    model and the next save ended in a traceback (locked-down host probe 2026-12-07). Folders this user owns are opened
    up (u+rwx) first where a removal is refused; ``ignore_errors``: what still cannot be removed is left without a word."""
    try:
        shutil.rmtree(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    _open_up(Path(path))
    shutil.rmtree(path, ignore_errors=ignore_errors)


def _open_up(folder: Path) -> None:
    """Give the owner full rights on ``folder`` and every folder below it (links not followed), where the system lets us."""
    try:
        state = os.lstat(folder)
        if not stat.S_ISDIR(state.st_mode):
            return
        os.chmod(folder, stat.S_IMODE(state.st_mode) | stat.S_IRWXU)
        with os.scandir(folder) as entries:
            below = [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for sub in below:
        _open_up(sub)


WRITE_SIDE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
"""Errors of a copy that are the written folder's (its disk full, over quota, read-only), never the copied file's."""


def copy_folder_into(source: Path, target: Path, ignore: Callable[[str, list[str]], Iterable[str]] | None = None) -> None:
    """Copy the folder ``source``'s files into ``target`` (made, or added to), each file and folder with the rights this
    process gives what it makes (its umask), not the source's: copied from a read-only model (files 444, folders 555), an
    export's folder could not be written, nor removed (locked-down host probe 2026-12-07). A file of ``source`` this user
    cannot read is a :class:`ModelFileError` naming it: said as the copy's failure, it had been blamed on the folder written
    (regression probe 2026-12-07: "the exported model could not be written — pass a folder you can write to")."""
    try:
        shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True, copy_function=shutil.copyfile)
    except shutil.Error as exc:
        # Each entry that failed: (source, target, why). Said by the first, as the source's: a named pipe had ended the export
        # in a traceback, and a link to nothing had been called "permission denied" (regression probe 2026-12-07).
        failed = [entry for entry in exc.args[0] if isinstance(entry, tuple) and len(entry) == 3] if exc.args else []
        if not failed:
            raise
        src, dst, why = failed[0]
        if (code := re.match(r"^\[Errno (\d+)\]", str(why))) and int(code[1]) in WRITE_SIDE_ERRNOS:
            # The copy's side: a full disk had been said of the model's own files, with "move it out of the model folder" as
            # the fix (resource probe 2026-12-07). Raised as the write's error, which the callers say of the folder written.
            raise OSError(int(code[1]), os.strerror(int(code[1])), str(dst)) from None
        reason = re.sub(r"^\[Errno \d+\] ([^:]+).*$", r"\1", str(why)).lower()
        if os.path.islink(src) and not os.path.exists(src):
            reason = f"a link to nothing ({os.readlink(src)})"
        elif os.path.exists(src) and not stat.S_ISREG(os.stat(src).st_mode) and not os.path.isdir(src):
            reason = "not a regular file (a named pipe or a device)"
        raise ModelFileError(f"cannot be copied ({reason})" + (f"; {len(failed) - 1} more" if len(failed) > 1 else ""), Path(src),
                             "make it a readable file, or move it out of the model folder") from None
    except PermissionError as exc:
        if exc.filename is not None and not os.access(exc.filename, os.R_OK) and Path(exc.filename).is_relative_to(source):
            raise ModelFileError("cannot be read (permission denied)", Path(exc.filename),
                                 "give this user read and enter permission on it, or move it out of the model folder") from None
        raise
    mode = 0o777 & ~_umask()
    for here, _, _ in os.walk(target):
        os.chmod(here, mode)  # copytree gives each folder its source's rights (copystat)


def _hold(folder: Path) -> Callable[[], None]:
    """A shared lock on ``folder`` (``flock``) until the returned function is called, or the process ends however
    it ends: the mark of a temporary folder in use (:func:`_in_use`). Nothing where the system has no ``flock``."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return lambda: None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return lambda: None
    return lambda: os.close(fd)


def _in_use(folder: Path) -> bool:
    """Whether a live writer holds ``folder`` (:func:`_hold`): an exclusive lock cannot be had."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False

# tempfile's random part: 8 characters of [a-z0-9_].
_STALE_PATTERN = re.compile(r"^\..+\.(?:[a-z0-9_]{8}\.tmp|tmp-[a-z0-9_]{8}|old-[a-z0-9_]{8})$")
_OLD_PATTERN = re.compile(r"^\.(.+)\.old-[a-z0-9_]{8}$")

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _libc_renameat2() -> Any:
    """glibc's ``renameat2`` (2.28 and later), or None where there is none (macOS, musl, old glibc)."""
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``): at no
    moment is either name missing. False, with nothing changed, where it did not happen — the
    system or the file system cannot (an old kernel, some overlay and network file systems) or
    refused: the caller then renames in two steps, whose own errors say what is wrong."""
    renameat2 = _libc_renameat2()
    if renameat2 is None:
        return False
    return bool(renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0)


def _flush_folder(folder: Path) -> None:
    """Write every file below ``folder``, then the folders' entries, to the disk (fsync)."""
    entries = list(folder.rglob("*"))
    for path in entries:
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for directory in [*(p for p in entries if p.is_dir() and not p.is_symlink()), folder]:
        _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except PermissionError:
        # A folder one may write in but not read (mode 0311): its entries cannot be synced from here, and what was renamed
        # into it is there. It had failed a save that had happened, said as "not written" (regression probe 2026-12-06).
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder's entries; its files were synced
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask (read by setting it and putting it back: POSIX offers no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _listed(folder: Path) -> list[Path]:
    """The entries of ``folder``; none where it is no folder or cannot be listed. A folder one may
    write in but not read (mode 0311, a drop box) still takes a save: its clean-up had been a
    traceback before the save began (regression probe 2026-12-06)."""
    try:
        return list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def restore_replaced_folders(folder: str | Path, target: str | None = None) -> list[Path]:
    """Put back, under its own name, each folder a killed run had moved aside to replace it
    (``.NAME.old-XXXXXXXX``) and left without the replacement (no ``NAME``): the only copy of a
    model must never be cleaned away as a temporary. Only ``target``'s when a name is given;
    returns the folders restored."""
    root = Path(folder)
    restored: list[Path] = []
    for entry in sorted(_listed(root)):
        match = _OLD_PATTERN.match(entry.name)
        if not match or (target is not None and match.group(1) != _short(target)) or not entry.is_dir() or entry.is_symlink():
            continue
        if target is None and was_cut(match.group(1), _TEMPORARY_NAME_BYTES):
            continue  # its whole name is not in it: left for the run that writes that name
        # A long name was cut for the temporary's (see _short): the caller's ``target`` is the whole one.
        name = root / (target if target is not None else match.group(1))
        if not name.exists():
            with contextlib.suppress(OSError):  # another run restored or replaced it first
                os.rename(entry, name)
                restored.append(name)
    return restored


def clean_stale_temporaries(folder: str | Path, target: str | None = None, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove the temporaries of our own naming pattern that an interrupted run left in ``folder``
    (not in its subfolders) — only those of ``target`` when a name is given; returns what was
    removed. Anything else, and anything younger than ``older_than`` seconds, is never touched;
    a replaced folder whose successor is missing is put back first (:func:`restore_replaced_folders`)."""
    root = Path(folder)
    restore_replaced_folders(root, target)
    removed: list[Path] = []
    now = time.time()
    for entry in _listed(root):
        if not _STALE_PATTERN.match(entry.name) or (target is not None and not entry.name.startswith((f".{_short(target)}.", CHECK_PREFIX))):
            continue
        if target is None and (moved := _OLD_PATTERN.match(entry.name)) and was_cut(moved.group(1), _TEMPORARY_NAME_BYTES):
            # Left by restore_replaced_folders for the save of its whole name: possibly the only copy of a model, which the
            # next `inspect -o` into that folder had removed (regression probe 2026-12-06).
            continue
        try:
            if now - entry.lstat().st_mtime < older_than:
                continue
            if entry.is_dir() and not entry.is_symlink():
                if _in_use(entry):
                    continue
                remove_folder(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            continue  # another run cleaned it first
        except OSError:
            continue  # another user's, or a disk that refuses: left as it is, never a reason for this run to fail
        removed.append(entry)
    return removed


_TEMPORARY_NAME_BYTES = 200
"""The bytes of a name a temporary keeps: with the dot and the random ``.XXXXXXXX.tmp`` added, a 239-character file name
no longer fitted the file system's 255 bytes, and its results could not be written at all."""


def _short(name: str) -> str:
    """``name`` as a temporary's name holds it (:func:`~defectlens.io.names.within_bytes`)."""
    return within_bytes(name, _TEMPORARY_NAME_BYTES)


_UNIT: ContextVar[list[tuple[Path, Path]] | None] = ContextVar("defectlens_write_unit", default=None)


@contextlib.contextmanager
def written_as_one(remove_first: Sequence[Path] = ()) -> Iterator[None]:
    """Within the block, the files :func:`atomic_write` writes (this thread's, not ``named`` ones) stay under their
    temporary names; when the block ends, ``remove_first`` is removed and every file renamed into place in the order
    written. On an exception none is: the temporaries go and the files there before stay, ``remove_first`` too.

    An image's results (overlay, mask, reports, then the JSON that marks them done) stand or fall together: a re-run
    on a full disk had removed the earlier run's finished JSON and written none (concurrency probe 2026-12-06). The
    files replaced are moved aside as each new one goes in, and put back if a rename fails (a folder or an immutable
    file where one goes: the earlier result had been left half replaced). A run killed while renaming leaves the files
    without their JSON (moved aside first), which ``--resume`` redoes."""
    pending: list[tuple[Path, Path]] = []
    token = _UNIT.set(pending)
    try:
        yield
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        _UNIT.reset(token)
    aside: list[tuple[Path, Path, tuple[int, int]]] = []  # (where the earlier file was moved, its place, its times)
    placed: list[Path] = []

    def move_aside(path: Path) -> None:
        if path.is_file() and not path.is_symlink() and path not in {place for _, place, _ in aside}:
            moved = path.with_name(f".{_short(path.name)}.{os.urandom(4).hex()}.tmp")
            times = (path.stat().st_atime_ns, path.stat().st_mtime_ns)
            # Recorded before the rename: a Ctrl-C arriving as the rename returned had left the earlier file moved aside
            # unrecorded, so never put back — an earlier result's mask gone under a JSON that says it is done (interruption
            # probe 2026-12-06). Put back, a file never moved is no harm (its rename fails, and is let go).
            aside.append((moved, path, times))
            os.replace(path, moved)
            # Young again: a rename keeps the earlier run's time, and another run's cleaning had taken the moved file for
            # a dead run's temporary and removed it, losing the result this unit would put back (regression probe). Its
            # own times are given back with it, should it be put back ("as they were", and resumes read its time).
            os.utime(moved)

    at: Path | None = None  # the file being put in place (what a failure names, not a hidden temporary's name)
    try:
        for at in remove_first:
            move_aside(at)
        for tmp, at in pending:
            move_aside(at)
            # Recorded before, as the move aside is: a Ctrl-C as the JSON's rename returned had left it saying "done" over
            # an overlay and mask taken back (regression probe 2026-12-06). Not yet renamed, there is nothing at its place
            # (moved aside, or never there) but a link, which is left.
            placed.append(at)
            os.replace(tmp, at)
    except BaseException as exc:
        for path in placed:
            if not path.is_symlink():
                path.unlink(missing_ok=True)
        for moved, path, times in reversed(aside):
            with contextlib.suppress(OSError):
                os.replace(moved, path)
                os.utime(path, ns=times)
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and at is not None:
            raise OSError(exc.errno, exc.strerror, str(at)) from exc
        raise
    for moved, _, _ in aside:
        moved.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: str | Path, named: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.

    ``named``: the path is one a user named (``evaluate --json``), not one this tool made up in an
    output folder. Then a symbolic link is written through (its target replaced, the link kept), and
    a path that is not a regular file (``/dev/stdout`` into a pipe, a named pipe) is written into,
    since renaming onto it replaces it: as root, ``--json /dev/stdout`` had put a plain file in place
    of the system's link. Never for the files of an output folder: a link planted there had sent a
    run's writes (as root) to any file, and a pipe named like a result had held the run for ever.
    """
    target = Path(path)
    if named:
        if stream(target):
            with _written_into(target) as tmp:
                yield tmp
            return
        if target.is_symlink():
            target = Path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{_short(target.name)}.", suffix=".tmp", dir=target.parent)
    # Writable by its owner while it is written: mkstemp's 0600 less the umask is 0400 under a umask of 0222, and every
    # result had been refused as its writer opened it (regression probe 2026-12-06).
    os.fchmod(fd, 0o600)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # Then the mode open() would have given (some writers recreate the file), just before the file becomes visible.
        os.chmod(tmp, 0o666 & ~_umask())
        if (unit := _UNIT.get()) is not None and not named:
            unit.append((tmp, target))  # renamed with the rest of its unit (written_as_one)
        else:
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _written_into(target: Path) -> Iterator[Path]:
    """A temporary file (in the system's temporary folder: ``/dev`` is no place for one) whose bytes
    are written into ``target``, a stream, once the caller has filled it: to this process's own
    descriptor when ``target`` names one (:func:`~defectlens.io.outputs.own_descriptor`), else
    through a new opening. A stream that refuses them (``/dev/full``) is an :class:`OutputError`.

    In memory where the system has such files (Linux's ``memfd_create``, opened again by its ``/proc`` name): on a host
    with no writable temporary folder, `evaluate --json /dev/stdout` had failed after the whole evaluation, its fix "free
    space on its disk" (locked-down host probe 2026-12-07)."""
    tmp, done = _in_memory_file()
    if tmp is None:
        fd, tmp_name = tempfile.mkstemp(suffix=".tmp")
        os.fchmod(fd, 0o600)  # writable while it is written, whatever the umask (see atomic_write)
        os.close(fd)
        tmp = Path(tmp_name)
        done = lambda: tmp.unlink(missing_ok=True)  # noqa: E731 - one line, as the memory file's
    try:
        yield tmp
        data = tmp.read_bytes()
        try:
            if (own := own_descriptor(target)) is not None:
                for buffered in (sys.stdout, sys.stderr):  # what Python holds for them goes first
                    if buffered is not None:
                        buffered.flush()
                view = memoryview(data)
                while view:
                    view = view[os.write(own, view):]
            else:
                with open(target, "wb") as sink:
                    sink.write(data)
        except BrokenPipeError:
            # Its reader left (`--json /dev/stdout | true`): as for `--json -`, what it did not read goes nowhere and the
            # command ends with its own status; it had been 2, "bad usage" (pipelines probe 2026-12-06).
            if own is not None:
                send_to_nowhere(own)
        except OSError as exc:
            raise OutputError(f"could not be written ({exc.strerror or exc})", target, "pass another path, or - for standard output") from None
    finally:
        done()


def _in_memory_file() -> tuple[Path | None, Callable[[], None]]:
    """``(path, close)`` of a new file in memory, opened by path like any other (``/proc/self/fd/N``), or ``(None, …)``
    where the system has none."""
    make = getattr(os, "memfd_create", None)
    if make is None:
        return None, lambda: None
    try:
        fd = make("defectlens-output")
    except OSError:
        return None, lambda: None
    path = Path(f"/proc/self/fd/{fd}")
    if not path.exists():  # no /proc mounted
        os.close(fd)
        return None, lambda: None
    return path, lambda: os.close(fd)


def with_article(noun: str) -> str:
    """``noun`` with its indefinite article ("an exported model", "a model", "an electrical commutator")."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def is_mount_point(path: str | Path) -> bool:
    """Whether ``path`` (through its links) is where a file system is mounted: a device boundary, or a mount point the system
    lists (a bind mount on the same file system crosses no device; regression probe 2026-12-07)."""
    real = os.path.realpath(path)
    if os.path.ismount(real):
        return True
    own, above = _mount_id(real), _mount_id(os.path.dirname(real))
    if own is not None and above is not None:
        # The system's own answer, a folder's mount and its parent's: the table below also lists mount points hidden by a
        # later mount over a folder above them, and a folder now standing there had been refused (regression probe 2026-12-07).
        return own != above
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
            # Field 5 is the mount point, its spaces, tabs, newlines and backslashes written as octal escapes.
            points = {re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4]) for fields in map(str.split, table) if len(fields) > 4}
    except OSError:  # not Linux
        return False
    return real in points


def _mount_id(path: str) -> int | None:
    """The id of the mount ``path`` lies on (Linux's ``mnt_id`` of an open file), or None where the system does not say."""
    try:
        fd = os.open(path, getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as info:
            return next((int(line.split()[1]) for line in info if line.startswith("mnt_id:")), None)
    except (OSError, ValueError, IndexError):
        return None
    finally:
        os.close(fd)


def require_not_mount_point(target: Path, what: str, fix: str) -> None:
    """Refuse, before any work, a ``target`` folder that is a mount point: a folder written whole is swapped in by renames, which
    a mount point refuses — a whole fit had ended in a traceback ("Device or resource busy"), an empty folder left beside it at
    each run (regression probes 2026-12-07)."""
    if target.is_dir() and is_mount_point(target):
        raise OutputError(f"is a mount point: {with_article(what)} is written whole beside its folder and swapped in, which a mount "
                          "point cannot be", target, fix)


def require_replaceable_folder(path: str | Path, is_ours: Callable[[Path], bool], what: str) -> None:
    """Refuse, before any work, a target that :func:`atomic_directory` would not replace:
    a file, or a folder that holds something and is not ``what`` (``is_ours`` says)."""
    target = Path(path)
    require_output_path(target, what)
    if target.exists() and not target.is_dir():
        raise OutputError(f"exists and is not a folder ({with_article(what)} is a folder)", target, "pass a new folder path, or move the file away")
    require_writable_parent(target, what, makes_folder=True)  # written whole in a new folder beside it
    require_not_mount_point(target, what, f"pass a folder inside it ({target / 'model'}, say)")
    if target.is_dir() and any(target.iterdir()) and not is_ours(target):
        raise OutputError(
            f"folder holds other files and is not {with_article(what)}; writing the {what} replaces the whole folder",
            target,
            "pass a new or empty folder",
        )


def folder_identity(path: str | Path) -> tuple[int, int] | None:
    """Which folder stands at ``path`` (device and inode), None when none: :func:`atomic_directory`
    swaps a new folder in, so a change says the swap happened. A Ctrl-C in the moment after it
    (while the old folder was being deleted) had the commands say "nothing written" over a new model."""
    try:
        info = Path(path).stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


@contextlib.contextmanager
def atomic_directory(path: str | Path, is_ours: Callable[[Path], bool], what: str = "model") -> Iterator[Path]:
    """Yield a fresh hidden sibling folder to fill; on success swap it in for ``path`` by rename.

    A reader sees the old folder or the new one, never a mix of their files. An existing
    ``path`` is replaced only when empty or when ``is_ours`` recognises it (see
    :func:`require_replaceable_folder`). Replacing swaps the two folders in one step
    where the system can (Linux), then deletes the old: ``path`` is never absent. Elsewhere it is
    rename old away, rename new in, delete old: between the two renames ``path`` is briefly
    absent, and a run killed there leaves the old folder as ``.NAME.old-*``, which the next run
    puts back (:func:`restore_replaced_folders`). The new folder is flushed to the disk before it
    is swapped in. On any exception the temporary folder is removed and ``path`` is left
    untouched; a disk that is full or cannot be written is an :class:`OutputError` in one line.

    A ``path`` that is a link to a folder (``current -> v3``) is written through: the folder it names
    is replaced and the link kept. The link itself had been replaced by a folder, and whatever read
    ``v3`` never saw the calibration saved through ``current`` (interruption probe 2026-12-05).
    """
    target = Path(path)
    require_output_path(target, what)  # before the link is followed: a loop had been a traceback (export, export-reviews)
    if target.name in ("", ".", ".."):
        # Named by the folder it stands for: "." has no name to make its sibling by (`fit -o .` had ended in a traceback after the
        # whole fit, "Device or resource busy: '.' -> '..old-…'"; regression probe 2026-12-07).
        target = Path(os.path.abspath(target))
    if target.is_symlink() and (target.is_dir() or not target.exists()):
        # Through a link to a folder, or to one not made yet (``current -> v4``: it had been a traceback).
        target = target.resolve()
    require_replaceable_folder(target, is_ours, what)
    standing_in = _working_folder_within(target)
    # Every writer of a folder cleans up after its own killed runs (and puts back a folder one
    # left moved aside), not only the commands that remember to.
    clean_stale_temporaries(target.parent, target.name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Cut as the files' temporaries are: a 242-byte name had no room for ".tmp-XXXXXXXX" (ENAMETOOLONG).
        tmp = Path(tempfile.mkdtemp(prefix=f".{_short(target.name)}.tmp-", dir=target.parent))
    except OSError as exc:
        raise _not_written(exc.errno or errno.EIO, target, what) from None
    release = _hold(tmp)
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 whatever the umask
        yield tmp
        _flush_folder(tmp)
        if target.exists():
            if exchange_paths(tmp, target):
                # tmp now holds the replaced folder: removing it (or a later run's cleaning) loses nothing.
                remove_folder(tmp, ignore_errors=True)
            else:
                old = Path(tempfile.mkdtemp(prefix=f".{_short(target.name)}.old-", dir=target.parent))
                os.replace(target, old)  # onto the empty placeholder folder: atomic on POSIX
                try:
                    os.rename(tmp, target)
                except BaseException:
                    os.replace(old, target)  # put the old model back rather than leave none
                    raise
                remove_folder(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
        _fsync_dir(target.parent)
    except BaseException as exc:
        remove_folder(tmp, ignore_errors=True)
        code = _disk_errno(exc)
        if code is not None:
            raise _not_written(code, target, what) from None
        raise
    finally:
        release()
    if standing_in is not None:
        # The process stood in the folder replaced, now removed: it goes on in the new one (at the folder itself where the one
        # below it is gone from the new), and the shell that started it, left in the removed one, is told (`fit -o .` had left
        # the next command there dying in a oneMKL error; regression probes 2026-12-07).
        try:
            os.chdir(target / standing_in)
            enter = 'cd "$PWD"'
        except OSError:
            with contextlib.suppress(OSError):
                os.chdir(target)
            enter = f"cd {shlex.quote(str(target))} ({standing_in} is not in the new one)"
        warn_caller(DefectlensWarning(f"{target} was replaced whole, with the current folder in it: this process goes on in the new "
                                      f"one; a shell standing there is left in the removed folder (its files look gone) — enter it "
                                      f"again: {enter}"))


def _working_folder_within(folder: Path) -> Path | None:
    """Where this process's current folder lies within ``folder`` (``.`` for the folder itself), or None when outside it."""
    try:
        cwd, root = Path(os.getcwd()), folder.resolve()
    except OSError:
        return None
    if cwd == root:
        return Path(".")
    return cwd.relative_to(root) if root in cwd.parents else None


DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG})
"""Failures of the disk, not of the program: said in one line naming the folder, not as a traceback."""


def _disk_errno(exc: BaseException) -> int | None:
    """The disk's error behind ``exc`` (one of :data:`DISK_ERRORS`), or None when it is not one.
    ``shutil.copytree`` gathers its copies' failures into one ``shutil.Error`` of messages."""
    if isinstance(exc, shutil.Error):
        found = re.search(r"\[Errno (\d+)\]", str(exc))
        code = int(found.group(1)) if found else None
    else:
        code = exc.errno if isinstance(exc, OSError) else None
    return code if code in DISK_ERRORS else None


def _not_written(code: int, target: Path, what: str) -> OutputError:
    full = code in (errno.ENOSPC, errno.EDQUOT)
    fix = ("free space there, or pass a folder on another disk" if full
           # A process file-size limit (ulimit -f) or a file system's largest file.
           else "raise the file-size limit (ulimit -f), or pass a folder on another disk" if code == errno.EFBIG
           else "pass a folder you can write to")
    return OutputError(f"the {what} could not be written ({os.strerror(code)}); what was there is as it was", target, fix)


def write_bytes_atomic(path: str | Path, data: bytes, named: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (``named``: see :func:`atomic_write`)."""
    with atomic_write(path, named) as tmp:
        tmp.write_bytes(data)


def printable_text(text: str) -> str:
    r"""``text`` with a file name's undecodable bytes (Python's surrogate escapes: a Latin-1 ``Aé.png``
    from a camera's share reads ``A\udce9.png``) written as ``\xe9``, Python's backslash escapes: UTF-8
    cannot encode the escapes, and every write naming such a file had crashed."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060\u2066-\u2069\ufeff]")
"""Control characters (C0, DEL, C1), line and paragraph separators, the zero-width space, word joiner
and byte-order mark (a name "Ana" with one looked like another's; the joiners some scripts need are
kept) and the bidirectional marks and overrides: in a label they start new Markdown lines, drive a
terminal, or show "exe.png" for "\u202egnp.exe"."""


def has_unshowable(text: str, allow: str = "") -> bool:
    """Whether ``text`` holds a character of :data:`_UNSHOWABLE` other than those in ``allow``."""
    return any(ch not in allow for ch in _UNSHOWABLE.findall(text))


def escaped_unshowable(text: str) -> str:
    """``text`` for one line of a terminal: each character of :data:`_UNSHOWABLE` written as its escape ("\\n", "\\ufeff"),
    as :func:`printable_text` writes a name's undecodable bytes; a name is then told apart from the one it looks like."""
    return _UNSHOWABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), printable_text(text))


def plain_label(text: str) -> str:
    """``text`` with each control, separator or direction character (:data:`_UNSHOWABLE`) replaced by
    U+FFFD: what a client names an upload is shown in the page and heads its report, and a name
    holding "\n# Verdict: GOOD" had written a second verdict into the report (security probe 2026-12-05)."""
    return _UNSHOWABLE.sub("\ufffd", text)


def utf8_bytes(text: str) -> bytes:
    """``text`` as UTF-8 (undecodable file-name bytes as :func:`printable_text` writes them)."""
    return printable_text(text).encode("utf-8")


def write_text_atomic(path: str | Path, text: str, named: bool = False) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`utf8_bytes`; ``named``: :func:`atomic_write`)."""
    write_bytes_atomic(path, utf8_bytes(text), named)


def json_text(obj: object, indent: int | None = 2) -> str:
    """``obj`` as the JSON every file and standard output of defectlens holds: letters beyond ASCII as themselves
    ("Ölfleck", not "\\u00d6lfleck": a person reads these too), a text holding a file name's undecodable bytes as escapes,
    which JSON keeps exactly. (`evaluate --json -` and the review export's manifest had escaped every such letter.)"""
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate-escaped bytes of a name that is not UTF-8
        text = json.dumps(obj, indent=indent)
    return text


def write_json_atomic(path: str | Path, obj: object, named: bool = False) -> None:
    """Serialise ``obj`` as indented JSON (:func:`json_text`) and write it atomically (``named``: see :func:`atomic_write`)."""
    write_text_atomic(path, json_text(obj) + "\n", named)


def save_safetensors(tensors: Mapping[str, Any], path: str | Path, metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` (all torch tensors, or all NumPy arrays) as a safetensors file with ``metadata``. A path that is not
    UTF-8 is written from the serialised bytes: safetensors' own file writer had failed on it with a TypeError (a model
    saved under a Latin-1 folder name; 2026-12-07)."""
    p = Path(path)
    meta = dict(metadata) if metadata is not None else None
    if all(hasattr(v, "__array_interface__") for v in tensors.values()):
        import safetensors.numpy as writer
    else:
        import safetensors.torch as writer  # type: ignore[no-redef]  # the torch writer, same calls, for tensors
    if is_utf8_path(p):
        writer.save_file(dict(tensors), os.fspath(p), metadata=meta)
    else:
        with open(p, "wb") as f:
            f.write(writer.save(dict(tensors), metadata=meta))


def load_safetensors(path: str | Path, *, arrays: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """A safetensors file's tensors (torch, or NumPy with ``arrays``) and its header's metadata. A path that is not UTF-8 is
    read as bytes and parsed here: safetensors' own reader had called the memory bank of a model under a Latin-1 folder
    name corrupt (2026-12-07). Raises safetensors' error, OSError or ValueError as the library does."""
    p = Path(path)
    if is_utf8_path(p):
        from safetensors import safe_open

        with safe_open(os.fspath(p), framework="np" if arrays else "pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118 - safe_open is not iterable
    if arrays:
        import safetensors.numpy as reader
    else:
        import safetensors.torch as reader  # type: ignore[no-redef]  # the torch reader, same call, giving tensors
    data = p.read_bytes()
    tensors = reader.load(data)
    (length,) = struct.unpack("<Q", data[:8])
    metadata = json.loads(data[8 : 8 + length]).get("__metadata__") or {}
    return tensors, dict(metadata)


def write_model_files(
    folder: str | Path, tensors_file: str, tensors: Mapping[str, Any], config_file: str, config: Mapping[str, Any], fmt: str, version: int
) -> Path:
    """One fitted stage's files in ``folder``: ``tensors`` (torch tensors or NumPy arrays) as
    safetensors tagged with ``fmt`` and ``version``, then ``config`` as JSON led by the same two
    fields — each file atomic, the JSON last, so a reader that finds it finds tensors as new.
    Returns the folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / tensors_file) as tmp:
        try:
            save_safetensors(tensors, tmp, metadata={"format": fmt, "version": str(version)})
        except Exception as exc:
            # safetensors reports a full disk as its own error ("I/O error: ... (os error 28)"):
            # made the OSError it is, so the folder's writer says it in one line.
            code = re.search(r"\(os error (\d+)\)", str(exc))
            if code is None:
                raise
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(tmp)) from None
        _sort_safetensors_metadata(tmp)
    write_json_atomic(out / config_file, {"format": fmt, "format_version": version, **config})
    return out


def _sort_safetensors_metadata(path: Path) -> None:
    """Put the metadata of a safetensors file's header in sorted order, in place. safetensors
    writes it from a hash map, in an order that changes from run to run: two identical fits had
    files whose bytes (and checksums) differed. Only the order changes, so the header keeps its
    length and every tensor its offset."""
    with open(path, "r+b") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        text = f.read(length)
        header = json.loads(text)
        if "__metadata__" not in header:
            return
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        ordered = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(ordered) > length or ordered == text.rstrip(b" "):
            return  # written another way than expected (or already in order): left as it is
        f.seek(8)
        f.write(ordered.ljust(length, b" "))


def read_model_tensors(path: str | Path, what: str, remedy: str, *, arrays: bool = False) -> dict[str, Any]:
    """The safetensors file of a fitted stage (``what``, e.g. "memory bank"), as torch tensors or
    with ``arrays`` NumPy arrays: a :class:`ModelFileError` naming the file and ``remedy`` when it
    is missing, unreadable, or holds NaN or inf (which would make every score meaningless)."""
    from safetensors import SafetensorError

    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{what} is missing", p, remedy)
    if not os.access(p, os.R_OK):
        # safetensors says "FileNotFoundError" of it, and the fix had been to re-fit a model that is whole (locked-down host probe).
        raise ModelFileError(f"{what} cannot be read (permission denied)", p, "give this user read permission on it (chmod a+r)")
    try:
        tensors, _ = load_safetensors(p, arrays=arrays)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{what} is corrupt ({exc.__class__.__name__})", p, remedy) from None
    require_finite(tensors, p, remedy)
    return tensors


def read_json_file(path: str | Path, error: type[Exception], missing: str, missing_fix: str, invalid_fix: str) -> object:
    """Parse a JSON file, raising ``error(message, path, fix)`` when it is absent or not JSON.

    Every configuration and model file is read through here so the messages stay uniform.
    """
    p = Path(path)
    try:
        if p.is_dir():
            # Said as what it is: "not found" had been said of a folder of that name (types probe 2026-12-07).
            raise error("is a folder, not a file", p, f"remove or rename the folder; {missing_fix}")
        if not p.is_file():
            raise error(missing, p, missing_fix)
        data = p.read_bytes()
    except PermissionError:
        # A file this user may not read, or one below a folder it cannot enter: a traceback (locked-down host probe 2026-12-07).
        raise error("cannot be read (permission denied)", p, "give this user read permission on it, and enter permission (x) on "
                    "the folders above it") from None
    try:
        # From bytes, JSON's own reading: UTF-8 with or without a byte-order mark, and UTF-16 or -32 as Notepad's and
        # PowerShell's "Unicode" saves it (a taxonomy so saved had been "not valid JSON … fix the JSON syntax"; Windows-inputs
        # probe 2026-12-06).
        return json.loads(data)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(f"not UTF-8 text: byte 0x{data[exc.start]:02X} at line {line}, column {column} (saved in a Windows code page?)", p,
                    "save it as UTF-8 (in Notepad: Save as, Encoding UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise error(f"not valid JSON ({exc})", p, invalid_fix) from None


def _finite(values: Any) -> bool:
    """Whether a torch tensor or NumPy array holds no NaN or infinity (integers always do not)."""
    if hasattr(values, "is_floating_point"):
        return not values.is_floating_point() or bool(values.isfinite().all())
    return not np.issubdtype(values.dtype, np.floating) or bool(np.isfinite(values).all())


def require_finite(tensors: Mapping[str, Any], path: str | Path, remedy: str) -> None:
    """Refuse model weights holding NaN or infinity (``tensors``: name -> torch tensor or NumPy
    array): they load without complaint and then turn every score into nonsense."""
    bad = [name for name, t in tensors.items() if not _finite(t)]
    if bad:
        raise ModelFileError(f"tensor(s) {', '.join(sorted(bad))} hold NaN or infinite values", path, remedy)


def read_model_json(root: str | Path, filename: str, fmt: str, version: int, kind: str, remedy: str, oldest: int | None = None) -> dict:
    """Read the JSON descriptor of a saved model folder and check its format and version.

    ``kind`` names the model in messages ("memory-bank model"); ``remedy`` is the command
    that writes such a folder ("`defectlens fit`"). Versions ``oldest`` (default: ``version``)
    to ``version`` are accepted; the caller reads ``meta["format_version"]`` to tell them
    apart. Every way the folder can be wrong — not
    there, no descriptor, broken JSON, another kind of model, another format version — is a
    :class:`~defectlens.errors.ModelFileError` naming the file and the fix.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise ModelFileError(f"{kind} directory not found", folder, f"run {remedy} first")
    meta = read_json_file(
        folder / filename, ModelFileError, f"no {filename} in the model directory",
        f"pass a folder written by {remedy}", f"re-create it with {remedy}",
    )
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ModelFileError(f"not a defectlens {kind}", folder / filename, f"pass a folder written by {remedy}")
    found = meta.get("format_version")
    if isinstance(found, bool) or not isinstance(found, int):
        # A hand-edited "1" would otherwise read "version 1 is not supported (this reads 1)".
        raise ModelFileError(
            f"format_version must be an integer, got {found!r}", folder / filename, f"write it as a number, or re-create it with {remedy}"
        )
    if found > version:
        raise ModelFileError(
            f"{kind} format version {found} is newer than this defectlens reads ({version})",
            folder / filename,
            "upgrade defectlens to read it, or re-create it with this version",
        )
    if found < (version if oldest is None else oldest):
        raise ModelFileError(
            f"{kind} format version {meta.get('format_version')} is not supported (this defectlens reads {version})",
            folder / filename,
            f"re-create it with {remedy} and this version of defectlens",
        )
    return meta
