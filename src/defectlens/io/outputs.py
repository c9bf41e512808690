"""Where results may go: checks that run before any work, so no input is overwritten and no
result is lost, and output names that never collide.

Every check raises :class:`~defectlens.errors.OutputError` naming the path and the fix.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from defectlens.errors import OutputError
from defectlens.io.images import home_expanded, path_is
from defectlens.io.names import folded_name, within_bytes


def _real(path: Path) -> Path:
    """``path`` with every symlink resolved; unlike ``Path.resolve`` in Python 3.11, a symlink
    loop does not raise (the loader reports it for that file)."""
    return Path(os.path.realpath(path))


def _inside(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or lies somewhere below it (both resolved)."""
    return path == folder or folder in path.parents


_OWN_STREAMS = {"/dev/stdout": 1, "/dev/stderr": 2}
_FD_PATH = re.compile(r"/(?:dev/fd|proc/self/fd)/(\d+)")


def own_descriptor(path: Path) -> int | None:
    """The descriptor of this process that ``path`` names (``/dev/stdout``, ``/dev/stderr``,
    ``/dev/fd/N``, ``/proc/self/fd/N``), or None. Written to as it is, never opened again: reopened,
    ``--json /dev/stdout >> log`` truncated the log, and renamed onto, replaced it."""
    text = os.path.abspath(path)
    if text in _OWN_STREAMS:
        return _OWN_STREAMS[text]
    found = _FD_PATH.fullmatch(text)
    return int(found.group(1)) if found else None


def send_to_nowhere(descriptor: int) -> None:
    """Point ``descriptor``, whose reader left (``| head -1``, ``| true``), at ``/dev/null``: what is still written to it, Python's
    own flush at exit included, then finds a reader, and the command ends with its own status, not 1 and "Broken pipe"."""
    with contextlib.suppress(OSError):
        nowhere = os.open(os.devnull, os.O_WRONLY)
        os.dup2(nowhere, descriptor)
        os.close(nowhere)


def stream(path: Path) -> bool:
    """Whether ``path`` (links followed) is something written into, not replaced: a pipe, a terminal,
    a device. ``/dev/stdout`` into a pipe links to ``/proc/PID/fd/pipe:[N]``, a name that is no file:
    the kind is read from the open descriptor behind it, not from the name."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return own_descriptor(path) is not None or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


CHECK_PREFIX = ".defectlens-check."
"""Name of the empty file a writability check makes and removes at once (``CHECK_PREFIX`` + 8 random + ``.tmp``):
cleaned with every folder's temporaries (:func:`~defectlens.io.atomic.clean_stale_temporaries`) when a kill
left it (a probe's SIGKILL had left one for good)."""


def umask_blocks_owner() -> int:
    """The process's umask when it takes read, write or search permission from a folder's owner (0 otherwise, and for
    root, whom permissions do not stop): 0400 had left folders their maker could not open (regression probe 2026-12-06)."""
    if os.geteuid() == 0:
        return 0
    mask = os.umask(0o022)
    os.umask(mask)
    return mask if mask & 0o700 else 0


def can_write(folder: Path) -> bool:
    """Whether files can be made in ``folder`` (False on a read-only disk, or without permission):
    one is made and removed, since the permission bits say yes where no file can be made (``/proc``,
    ``/sys``: `inspect -o /proc/x` and `evaluate --json /proc/x.json` failed with a traceback, the
    second after the whole evaluation)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        fd, name = tempfile.mkstemp(prefix=CHECK_PREFIX, suffix=".tmp", dir=folder)
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return True


def lock_folder(folder: Path, what: str) -> Callable[[], None]:
    """Hold ``folder`` for this process alone until the returned function is called (or the process
    ends, however it ends): a second run writing into it is refused. Two `inspect` runs started a
    moment apart into one folder both ran, and the second's verdicts replaced the first's without a
    word. A lock on the folder itself (``flock``), so nothing is left in it; none where the system has none."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return lambda: None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OutputError(f"another defectlens run is writing into this {what} now", folder,
                          "wait for it to finish, or write into another folder") from None
    return lambda: os.close(fd)


@contextlib.contextmanager
def saving_in(path: Path, wait: bool | float = True) -> Iterator[bool | None]:
    """Hold the folder ``path`` is saved in (its nearest existing one, past a link to it) while this process checks that
    ``path`` is as it found it and saves there: another run then waits, and its own check sees this save. Two fits into
    one folder had both passed the check and said "fitted → M", the later one's model replacing the other's (concurrency
    probe 2026-12-06). Yields True where it is held; None where it cannot be, the system having no ``flock`` or the file
    system refusing it (NFS without its lock daemon: it had stopped the service's prunes and its start with a traceback;
    regression probe 2026-12-08); False where another holds it and ``wait`` is False, or a number of seconds that went by."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield None
        return
    try:
        fd: int | None = os.open(_nearest_existing(Path(os.path.realpath(path)).parent), os.O_RDONLY)
    except OSError:  # a folder one may write in but not read (mode 0311): saved without the lock, as before it (probe)
        fd = None
    if fd is None:
        yield None
        return
    try:
        held: bool | None = None
        deadline = time.monotonic() + (0.0 if wait is False else float(wait))
        while held is None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait is True else fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    held = False
                else:
                    time.sleep(0.1)
            except OSError:
                break
        yield held
    finally:
        os.close(fd)  # the lock goes with the descriptor


def model_copy_room(model_dir: Path) -> int:
    """Bytes a model saved over ``model_dir`` needs free beside it, by the size of the one there: each save writes a whole copy
    and swaps it in, the old one's files already on that disk, and a MiB for the descriptor, card and a plot."""
    return sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file()) + 2**20


MIN_ROOM = 2**16
"""Bytes free under which an output is refused before the work starts: a disk with none left had been found out after a whole
fit, or after 100 images were inspected (resource probe 2026-12-07). Small: it stops a full disk, not one whose room may do (a
`--resume` that rewrites only its summary had been refused at 0.7 MiB free, with 1 MiB asked; regression probe 2026-12-07)."""


def require_room(folder: Path, needed: int, what: str) -> None:
    """Refuse, before any work, a ``folder`` whose disk has less than ``needed`` bytes free for the ``what`` written
    there: `calibrate` on a full disk had scored every image, then found no room to save the model."""
    try:
        free = shutil.disk_usage(_nearest_existing(folder)).free  # a folder not made yet: the disk it will be made on
    except OSError:
        return  # said by the write itself, if it fails
    if free < needed:
        # In KiB under a MiB: "0.1 MiB free … needs about 0.1 MiB" had been said near MIN_ROOM (regression probe 2026-12-07).
        def size(n: int) -> str:
            return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"

        raise OutputError(f"{size(free)} free on its disk, and the {what} needs {'at least' if needed == MIN_ROOM else 'about'} "
                          f"{size(needed)} there", folder, "free space on that disk first")


def require_writable_parent(path: Path, what: str, makes_folder: bool = False, fix: str = "pass a folder you can write to") -> None:
    """Refuse, before any work, a path below a file (its folders could never be made), or one
    whose folder cannot be written: a read-only disk was found out after the whole fit, or after
    every image was inspected. Nor where folders must be made (``path``'s, or ``path`` itself: ``makes_folder``, a folder
    not there yet or written whole beside the old one) under a umask that leaves their maker no write permission. ``fix``: what
    to do where the folder cannot be written."""
    parent = _nearest_existing(path.parent)
    if not parent.is_dir():
        raise OutputError(f"{parent} is a file, so the {what} cannot be written below it", path, "pass a path in a folder")
    if (parent != path.parent or makes_folder) and (blocked := umask_blocks_owner()):
        # Made under umask 0222 a folder is read-only to its maker: every image had been inspected before each write
        # failed, and `-o a/b/c` ended in a traceback leaving a/ behind (environment probes 2026-12-06).
        raise OutputError(f"the folders it needs would be made unusable to you (umask {blocked:04o} takes their owner's read, write or "
                          "search permission)", path,
                          "set a umask that leaves them to you, such as `umask 022`, and run again")
    # A folder there already and written into in place needs no right on the folder above it: a service user's own output
    # folder in a root-owned /srv/app had been refused (locked-down host probe 2026-12-07). One written whole beside the
    # old (``makes_folder``) does.
    for folder in ((parent, path) if makes_folder else (path,)) if path.is_dir() else (parent,):
        if not can_write(folder):
            # Of the path itself, said once: "ro2: ro2 cannot be written …, so the output folder cannot be either" (probe).
            whose = f"the {what} cannot be written" if folder == path else f"{folder} cannot be written"
            raise OutputError(
                f"{whose} (a read-only disk, no permission, or a system folder such as /proc)"
                + ("" if folder == path else f", so the {what} cannot be either"), path,
                fix,
            )


def require_apart_from(path: Path, kept: Sequence[Path], what: str) -> None:
    """Refuse an output path that is one of ``kept`` (a model folder, input folders or files) or
    lies inside one: writing there would overwrite an image or a model file, or be swapped away
    when the model is saved."""
    out = _real(path)
    for item in kept:
        if _inside(out, _real(item)):
            raise OutputError(
                f"the {what} would be written {'over' if out == _real(item) else 'inside'} {item}, an input, the model or the examples of this run",
                path,
                f"write the {what} outside the model and the input folders",
            )


def require_output_path(path: Path, what: str) -> None:
    """Refuse, before any work, a ``path`` no file or folder can be made at: a name in it longer than the file system
    holds, a ``~`` the shell left as it is, a link looping back on itself at it or above it (a fit had run to its end and
    then crashed with "Symlink loop"; regression probes), or a link above it to a folder not made yet."""
    if long := [part for part in path.parts if len(os.fsencode(part)) > NAME_MAX]:
        # Before anything looks at the path: asked whether it is a link, such a name had been a traceback (regression probe).
        raise OutputError(f"a name in it is {len(os.fsencode(long[0]))} bytes long, over the {NAME_MAX} bytes a file system holds",
                          path, f"pass a shorter name for the {what}")
    if path.parts and path.parts[0].startswith("~") and not path.exists() and (expanded := home_expanded(path)) != path:
        # Quoted, or after "=", the shell leaves "~" as it is: a folder named "~" had been made in the current one. A name the
        # shell would leave too ("~tmp", no such user) is a folder's name (regression probe 2026-12-06).
        raise OutputError("starts with a ~ the shell did not expand (a quoted ~ is not the home folder)", path,
                          f"write the home folder out ({expanded}), or pass {os.path.abspath(path)} for a folder of that name")
    try:
        path.resolve()
    except (RuntimeError, OSError):
        raise OutputError(f"is, or lies below, a link that loops back on itself, so the {what} cannot be written there", path,
                          "remove the link, or pass another path") from None
    for above in path.parents:
        if above.is_symlink() and not above.exists():
            # mkdir below such a link had said "File exists" in a traceback (regression probe 2026-12-06).
            raise OutputError(f"lies below {above}, a link to a folder not made yet ({above.resolve()})", path,
                              "make that folder first, or pass another path")


NAME_MAX = 255
"""The longest file name, in bytes, of the file systems defectlens writes on (ext4, XFS, NTFS in UTF-16 units, APFS)."""


def require_room_for_names(folder: Path, what: str) -> None:
    """Refuse a folder whose path leaves no room for a file name of :data:`NAME_MAX` bytes within the system's longest path:
    near it, a run had ended in a traceback ("File name too long: …/summary.csv") or been told of a umask (Windows-inputs
    probe 2026-12-06)."""
    try:
        limit = os.pathconf(_nearest_existing(folder), "PC_PATH_MAX")
    except (OSError, ValueError):
        limit = 4096
    length = len(os.fsencode(os.path.abspath(folder)))
    if length + 1 + NAME_MAX >= limit:
        raise OutputError(f"its path is {length} bytes long, and a file's name in it (up to {NAME_MAX} bytes) would pass the system's "
                          f"limit of {limit} bytes a path", folder, f"pass a shorter path for the {what}")


def _nearest_existing(path: Path) -> Path:
    """``path``, or the nearest path above it that exists (a relative one ends at "."): where a folder would be made, and
    what the file system's limits are read from."""
    here = path
    while not here.exists() and here != here.parent:
        here = here.parent
    return here


def require_output_folder(output: Path, inputs: Sequence[Path], files: Sequence[Path] = (), model_dir: Path | None = None) -> None:
    """Refuse an output folder that would overwrite or mix with the inputs or the model, before
    anything is written.

    ``inputs`` are the paths as given (files or folders), ``files`` the images they expand to.
    The output must not be a file or lie below one, must not be an input folder or lie inside one
    (the overlays would replace the images, and the next run would inspect them), must not be
    ``model_dir`` or inside it (an image named ``detector.png`` would write ``detector.json``), and
    no input image may sit directly in it (its overlay ``<stem>.png`` could replace it).
    """
    require_output_path(output, "output folder")
    require_room_for_names(output, "output folder")
    if output.is_symlink() and not output.exists():
        # Made below with mkdir, which a dangling link refuses ("File exists", a traceback).
        raise OutputError(f"is a link to a folder not made yet ({output.resolve()})", output, "make that folder first, or pass another")
    if output.exists() and not output.is_dir():
        raise OutputError("exists and is not a folder", output, "pass a folder path for -o, or move the file away")
    require_writable_parent(output, "output folder", makes_folder=not output.exists())
    require_room(output, MIN_ROOM, "output folder")
    if model_dir is not None:
        require_apart_from(output, [model_dir], "output folder")
    out = _real(output)
    for item in inputs:
        if path_is(item, "dir") and _inside(out, _real(item)):
            raise OutputError(
                f"output folder is the input folder {item} or inside it: the results would overwrite or mix with the images",
                output,
                "pass an output folder outside every input folder",
            )
    for f in files:
        if _real(f).parent == out:
            raise OutputError(
                f"input image {f} lies in the output folder, where its results could overwrite it",
                output,
                "pass an output folder that holds none of the input images",
            )


def require_output_file(path: Path, what: str, kept: Sequence[Path] = ()) -> None:
    """Refuse, before any work, a file path that cannot or must not be written: a folder, a path
    under a file, or one of ``kept`` or inside one (see :func:`require_apart_from`). A stream
    (``/dev/stdout``, a pipe) is written into and passes; a link is judged by where it leads, as it
    is written (a link into /proc passed here and failed after a whole evaluation)."""
    # A link looping back on itself, at the path or above it: refused before the work, as output folders are (calibrate's
    # ROC plot below one had failed after the whole run, and one at it had been replaced by the plot).
    require_output_path(path, what)
    if path.is_dir():
        raise OutputError(f"is a folder; the {what} goes to a file", path, f"pass a file path for the {what}")
    if stream(path):
        return
    written = Path(os.path.realpath(path)) if path.is_symlink() else path
    require_writable_parent(written, what)
    require_apart_from(path, kept, what)
    # A full disk found out before the work (`evaluate --json` had scored every image first; a leftover of 2026-12-07).
    require_room(written.parent, MIN_ROOM, what)


def unique_output_names(
    paths: Sequence[Path], suffixes: Sequence[str], earlier: Mapping[Path, str] | None = None, standing: Iterable[str] = (),
) -> tuple[dict[Path, str], list[tuple[Path, str]]]:
    """A name per input such that no two inputs share any output file ``name + suffix``.

    De-duplicating stems alone is not enough: ``x.png`` writes ``x.report.json`` and so does
    ``x.report.png`` (as its ``.json``). Names are given in input order (stable across runs,
    which ``--resume`` relies on); a clash adds ``-2``, ``-3``…; comparison ignores case and Unicode
    form (NFC), for file systems that do. ``earlier`` holds names an earlier run gave some of the inputs
    (``--resume``): they are kept first, so an input added since (a new folder that sorts first)
    takes a new name instead of renaming every finished image and having it redone. ``standing``: the names of results
    already in the output folder; a new name may be one of them (its result is replaced, as said), but none of its
    files another's (``a.report.png``'s ``a.report.json`` had replaced ``a.png``'s report, said to stay). Returns the
    names and the ``(input, name)`` pairs whose name is not their stem, to be reported.
    """
    used: set[str] = set()
    names: dict[Path, str] = {}
    owner = {folded_name(name + s): name for name in standing for s in suffixes}

    def take(path: Path, name: str) -> None:
        used.update(folded_name(name + s) for s in suffixes)
        names[path] = name

    def free(name: str) -> bool:
        keys = [folded_name(name + s) for s in suffixes]
        return not any(k in used or owner.get(k, name) != name for k in keys)

    # Earlier names are kept unless another input kept the very same name: two that differ in case or Unicode form were
    # distinct files on the folder's file system, which made them (a resume had renamed one of an NFC and an NFD
    # "café" and inspected it again, its finished result then called another input's; regression probe 2026-12-06).
    kept_exact: set[str] = set()
    for path in paths:
        kept = (earlier or {}).get(path)
        if kept is not None and path not in names and kept not in kept_exact:
            kept_exact.add(kept)
            take(path, kept)
    # Room for the longest suffix and a "-NN" within the 255 bytes a file name may take: a 250-byte name was inspected,
    # then none of its results could be written ("File name too long"), and --resume failed the same way (probe).
    room = NAME_MAX - max((len(_name_bytes(s)) for s in suffixes), default=0) - 4
    for path in paths:
        if path in names:
            continue
        stem = within_bytes(path.stem, room)
        name, n = stem, 1
        while not free(name):
            n += 1
            name = f"{stem}-{n}"
        take(path, name)
    renamed = [(path, names[path]) for path in dict.fromkeys(paths) if names[path] != path.stem]
    return names, renamed


def _name_bytes(name: str) -> bytes:
    """A file name's bytes as the file system has them (a name that is no UTF-8 comes back as it was)."""
    return os.fsencode(name)

