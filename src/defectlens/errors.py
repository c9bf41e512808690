"""Error types raised by defectlens.

Every error carries a one-line message that names the offending file (or setting) and
what to do about it, so the CLI can print it as-is and a batch can report it at the end.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import FrameType

_PACKAGE_DIR = str(Path(__file__).resolve().parent) + os.sep  # with the separator: not a sibling "defectlens_x/"


class DefectlensError(Exception):
    """Base class: a problem the user can fix, described in one line."""

    def __init__(self, message: str, path: str | Path | None = None, fix: str | None = None):
        self.message = message
        """What is wrong, without the path and the fix (to quote inside another error's message)."""
        self.path = str(path) if path is not None else None
        self.fix = fix
        parts = [f"{self.path}: {message}" if self.path else message]
        if fix:
            parts.append(f"fix: {fix}")
        super().__init__(" — ".join(parts))


class ImageReadError(DefectlensError):
    """An input image is missing, empty, truncated, corrupt or not an image at all."""


class DatasetLayoutError(DefectlensError):
    """A folder does not have the expected MVTec-AD layout (or is empty)."""


class ModelFileError(DefectlensError):
    """A saved model directory is missing, corrupt, from another version or another encoder."""


class ConfigError(DefectlensError):
    """A setting or a configuration file (taxonomy, options) is invalid."""


class OutputError(DefectlensError):
    """An output path cannot be used as asked: it is an input folder or lies inside one, a file
    stands where a folder is needed (or the reverse), or a folder to be replaced is not ours."""


def out_of_resources(exc: BaseException) -> str | None:
    """What this machine ran out of, where ``exc`` says it could not give the work what it needed: "memory" (Python's
    MemoryError, PyTorch's and C++'s failed allocations, raised as RuntimeError) or "open files" (EMFILE, ENFILE); else None.
    A 64-megapixel image under a memory limit had ended a whole batch in a 144-line traceback, and a service under a low
    open-file limit had answered a plain-text 500 (resource probe 2026-12-07)."""
    if isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM):
        return "memory"
    if isinstance(exc, RuntimeError | ImportError | OSError) and _SHORT_OF_MEMORY.search(str(exc)):
        return "memory"
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        return "open files"
    return None


_SHORT_OF_MEMORY = re.compile(r"can't allocate memory|cannot allocate memory|std::bad_alloc|could not create a primitive|"
                              r"failed to map segment from shared object(?!: (?:operation not permitted|permission denied))", re.IGNORECASE)
"""How the libraries say they lacked memory, where they raise no MemoryError: PyTorch and C++ ("can't allocate memory",
``std::bad_alloc``), oneDNN ("could not create a primitive": its allocation failed, under a memory limit the only cause in our
fixed networks) and the loader of a library's shared object ("failed to map segment": ONNX Runtime imported under a memory
limit; not where it says another reason, a library on a mount that runs no code). Each had ended a command in a traceback of 130 to
275 lines (regression probes 2026-12-07)."""


class Shortage:
    """What :func:`shortage_caught` caught: :attr:`of`, what this machine ran out of ("memory", "open files"), or None."""

    of: str | None = None


@contextmanager
def shortage_caught() -> Iterator[Shortage]:
    """Within the block, an error by which this machine ran out of memory or open files (:func:`out_of_resources`) is caught and
    named in the :class:`Shortage` yielded; anything else is raised as it is. The caller acts on it after the block, the error's
    traceback let go: it held the failed work's arrays, and work tried again inside an ``except`` had run short too (regression
    probe 2026-12-07)."""
    caught = Shortage()
    try:
        yield caught
    except (MemoryError, RuntimeError, OSError) as exc:
        caught.of = out_of_resources(exc)
        if caught.of is None:
            raise


def said_in_a_line(exc: BaseException, limit: int = 160) -> str:
    """What ``exc`` says, on one line and cut at a word past ``limit`` characters ("Cannot allocate m" had been said: regression
    probe 2026-12-07); its type's name where it says nothing (a MemoryError)."""
    said = " ".join(str(exc).split()) or type(exc).__name__
    return said if len(said) <= limit else said[:limit].rsplit(" ", 1)[0] + " …"


SHORT_OF_FIX = {
    "memory": "give it less at once (fit: --max-images or a smaller --image-size; inspect and evaluate: fewer or smaller images), "
              "or run it where more memory is free",
    "open files": "raise the limit of open files (ulimit -n; the service: its unit's LimitNOFILE) and run it again",
}
"""The fix of each shortage :func:`out_of_resources` names."""


class NoteWarning(UserWarning):
    """Something a function also returns in its notes (a list of one-line messages). Raised as a
    warning too, for a Python caller who does not read the notes; a command that prints the notes
    ignores it, so nothing is said twice."""


class DefectlensWarning(UserWarning):
    """Something was done that may change the result (an image squeezed to an extreme aspect,
    transparency filled in): the work goes on, and the user is told."""


class ClippedPixelsWarning(DefectlensWarning):
    """An image's pixels went over the sensor depth of the model's training images and were read clipped to it
    (:attr:`~defectlens.descriptor.Provenance.bit_depth`); a batch's are said together."""


class ExtremeAspectWarning(DefectlensWarning):
    """An image longer than :data:`~defectlens.io.images.MAX_ASPECT` times its width (a line-scan strip), squeezed onto the
    canvas; a batch's are said together (a line-scan run had printed one line per image)."""


class HotPixelsWarning(DefectlensWarning):
    """An image's few pixels far over the sensor depth the rest of it fits (hot pixels, a camera's frame information), read
    as the brightest (:data:`~defectlens.io.images.HOT_PIXEL_SHARE`); a batch's are said together."""


class ShallowColourWarning(DefectlensWarning):
    """An image of 16 bits a channel in colour or with transparency, read at its upper 8 bits (Pillow decodes no deeper
    colour); a batch's are said together."""


_COLLECTED: ContextVar[list[Warning] | None] = ContextVar("defectlens_collected_warnings", default=None)


@contextmanager
def collected_warnings() -> Iterator[list[Warning]]:
    """Within the block, the warnings :func:`warn_caller` gives in this thread are kept in the list yielded
    instead of issued: a batch says a hundred alike as one, and a fit keeps its warnings as the model's notes.
    ``warnings.catch_warnings`` had done this, but it swaps the process's one filter list: an Inspector used
    from several threads left every later warning of the process, the user's own too, in a hidden list that
    grew for ever (API probe 2026-12-06). Blocks nest; the caller issues what it keeps (:func:`warn_caller`)."""
    bucket: list[Warning] = []
    token = _COLLECTED.set(bucket)
    try:
        yield bucket
    finally:
        _COLLECTED.reset(token)


def warn_caller(message: str | Warning, category: type[Warning] = UserWarning) -> None:
    """Warn with the location of the first caller outside defectlens: the line of the user's script
    or notebook cell, not a library line that means nothing to them (a fixed ``stacklevel`` is right
    from one call path only). Python 3.12's ``skip_file_prefixes`` does this; 3.10 and 3.11 do not have it."""
    if (bucket := _COLLECTED.get()) is not None:
        bucket.append(message if isinstance(message, Warning) else category(message))
        return
    level = 2  # stacklevel 1 is this function, 2 its caller
    frame: FrameType | None = sys._getframe(1)
    # contextlib's frames too: a warning given as a `with` block of ours ends had been placed in contextlib.py (regression probe
    # 2026-12-07).
    while frame is not None and (str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE_DIR)
                                 or Path(frame.f_code.co_filename).name == "contextlib.py"):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)
