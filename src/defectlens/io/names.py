"""The forms a name is compared in: one Unicode spelling, and any case; a folder's names by those forms.

One home for these (code review 2026-12-06: NFC folding had three homes): macOS writes names decomposed ("a" and a
combining mark), most keyboards composed ("ä"); Windows and SMB shares take ``X.PNG`` and ``x.png`` as one file.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path


def same_spelling(name: str) -> str:
    """``name`` in one Unicode spelling (NFC), the form names are compared and stored in: a client on macOS sends "ä" as
    "a" and a combining mark, and a model served as "kommutator ä" was "unknown", the message naming the two alike
    (integration probe 2026-12-06)."""
    return unicodedata.normalize("NFC", name)


def folded_name(name: str) -> str:
    """``name`` as a file system that ignores case and Unicode form compares it (NFC, case-folded): macOS and SMB
    shares take "café" composed and decomposed, or ``X.PNG`` and ``x.png``, as one name (a second result had
    overwritten the first; layout probe 2026-12-06)."""
    return same_spelling(name).casefold()


def word_folded(name: str) -> str:
    """``name`` as a person reads the word: any case, and full-width letters (``ＧＯＯＤ``, as Japanese input methods
    type them) as their ASCII ones (NFKC, case-folded). For names that carry a meaning (``good``, ``train``,
    ``unknown``), not for file identity (:func:`folded_name`): NFKC also merges signs such as ``²`` and ``2``."""
    return unicodedata.normalize("NFKC", name).casefold()


def spelled_as_choice(value: str, allowed: Iterable[str]) -> str:
    """``value`` as ``allowed`` spells it where it is one of them in any case or width (`--engine Ray`, `--overlay ＰＮＧ`,
    `--format OpenVINO`, ``runtime="ONNX"``); else as given, for the check that names the choices to refuse it."""
    return next((choice for choice in allowed if word_folded(choice) == word_folded(value)), value)


def is_utf8_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is UTF-8 text, as the libraries with a native core (safetensors, the ONNX exporter, ONNX Runtime,
    OpenVINO) take a path: a folder named in another encoding (Latin-1 bytes, which Python reads as surrogate escapes) is
    not, and those callers hand such a file's bytes instead."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def within_bytes(name: str, limit: int) -> str:
    """``name`` where a file name has ``limit`` bytes for it: itself when it fits, else its start (whole characters) and a
    digest of the whole, which keeps two long names that start alike apart (cut alone, a killed save's only copy of one
    model was taken for another's and replaced; regression probe 2026-12-06) and the same name the same from run to run
    (``--resume``). A name that is not UTF-8 (a Latin-1 "Aé.png" from a camera's share) is cut as the file system holds it."""
    raw = os.fsencode(name)
    if len(raw) <= limit:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:8]
    cut = raw[: max(limit - len(digest) - 1, 1)]
    for end in range(len(cut), max(len(cut) - 4, 0), -1):
        try:
            head = cut[:end].decode("utf-8")  # a character cut in two loses its first bytes
            break
        except UnicodeDecodeError:
            continue
    else:
        head = os.fsdecode(cut)  # a name that is no UTF-8: its bytes as they were
    return f"{head}-{digest}"


def was_cut(name: str, limit: int) -> bool:
    """Whether ``name`` may be :func:`within_bytes`' cut form of a longer one (the whole of which it cannot give back): of
    the lengths it gives (``limit``, or up to 3 bytes less where a character was not cut in two) and ending in its digest."""
    return limit - 3 <= len(os.fsencode(name)) <= limit and _CUT.search(name) is not None


_CUT = re.compile(r"-[0-9a-f]{8}$")


def names_by_fold(folder: Path) -> dict[str, list[str]]:
    """The names in ``folder`` keyed by their case-folded NFC form (sorted), read once per change of the
    folder: a mask is looked up for each image, and a listing per image of a large folder would cost its
    square. A change is any of the folder's identity, modification or change time: a folder extracted again
    from an archive, or copied with ``cp -a``, had the time of the one it replaced, and the index went stale
    (regression probe 2026-12-06); a change time no program can set back."""
    try:
        info = os.stat(folder)
        key = os.path.abspath(folder)  # a relative "." names another folder after a chdir
    except (OSError, ValueError):
        return {}
    stamp = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns)
    if (cached := _NAMES_BY_FOLD.get(key)) is not None and cached[0] == stamp:
        return cached[1]
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return {}
    index: dict[str, list[str]] = {}
    for name in names:
        index.setdefault(folded_name(name), []).append(name)
    if len(_NAMES_BY_FOLD) >= 64:
        _NAMES_BY_FOLD.pop(next(iter(_NAMES_BY_FOLD)))
    _NAMES_BY_FOLD[key] = (stamp, index)
    return index


_NAMES_BY_FOLD: dict[str, tuple[tuple[int, int, int, int], dict[str, list[str]]]] = {}
