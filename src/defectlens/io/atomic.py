"""Atomic file writes: a reader never sees a half-written file, and a crash never
destroys the previous version (write to a temporary file beside the target, then rename)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from defectlens.errors import ModelFileError


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj: object) -> None:
    """Serialise ``obj`` as indented JSON and write it atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json_file(path: str | Path, error: type[Exception], missing: str, missing_fix: str, invalid_fix: str) -> object:
    """Parse a JSON file, raising ``error(message, path, fix)`` when it is absent or not JSON.

    Every configuration and model file is read through here so the messages stay uniform.
    """
    p = Path(path)
    if not p.is_file():
        raise error(missing, p, missing_fix)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"not valid JSON ({exc})", p, invalid_fix) from None


def read_model_json(root: str | Path, filename: str, fmt: str, version: int, kind: str, remedy: str) -> dict:
    """Read the JSON descriptor of a saved model folder and check its format and version.

    ``kind`` names the model in messages ("memory-bank model"); ``remedy`` is the command
    that writes such a folder ("`defectlens fit`"). Every way the folder can be wrong — not
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
    if meta.get("format_version") != version:
        raise ModelFileError(
            f"{kind} format version {meta.get('format_version')} is not supported (this defectlens reads {version})",
            folder / filename,
            f"re-create it with {remedy} and this version of defectlens",
        )
    return meta
