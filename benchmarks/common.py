"""What every benchmark script shares: where the data is, a run refused before anything is written when the data it
names is not there, and the record of when, on what load and by which code a result was measured.

One home for these (benchmarks probe 2026-12-06): each script had its own default data path, a missing or mistyped
category gave a traceback in six of them and empty tables written over the committed results in three, and most results
files recorded neither the date nor the commit the README's figures rest on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA_ENV = "DEFECTLENS_DATA"
"""The environment variable that points every benchmark at the datasets (default: ``../shared/datasets`` beside the clone)."""


def default_data() -> Path:
    """The data root: ``$DEFECTLENS_DATA``, else ``../shared/datasets`` beside the repository."""
    return Path(os.environ.get(DATA_ENV, REPO.parent / "shared" / "datasets"))


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data``, as every script takes it."""
    parser.add_argument("--data", type=Path, default=default_data(),
                        help=f"folder of categories in the MVTec-AD layout (default: ${DATA_ENV}, else ../shared/datasets)")


def require_categories(data: Path, names: Sequence[str] | None, usable: Callable[[Path], bool] = lambda p: True) -> list[str]:
    """The categories to run: ``names`` (each must be a folder under ``data``), else every folder there that is ``usable``.
    Exits with one line, before anything is computed or written, when the data root is missing, a named category is not
    there, or none is found: a typo had given empty tables written over the committed results, with exit status 0."""
    if not data.is_dir():
        sys.exit(f"{data}: data folder not found — pass --data or set {DATA_ENV}")
    if names:
        # "cookie/" as tab completion gives it is "cookie", and a name given twice is run once (regression probe 2026-12-06).
        names = list(dict.fromkeys(Path(n).name for n in names))
        missing = [n for n in names if not (data / n).is_dir()]
        if missing:
            have = ", ".join(sorted(p.name for p in data.iterdir() if p.is_dir())) or "none"
            sys.exit(f"{data}: no category {', '.join(missing)} there (there: {have}) — check the names")
        # Named, and there, but not of the kind this benchmark runs (steel_strip has no normal images): one line, where a
        # spawned run had died and its parent waited for ever (regression probe 2026-12-06).
        if unfit := [n for n in names if not usable(data / n)]:
            runnable = ", ".join(sorted(p.name for p in data.iterdir() if p.is_dir() and usable(p))) or "none"
            sys.exit(f"{data}: {', '.join(unfit)} lacks what this benchmark needs (it runs: {runnable})")
        return list(names)
    found = sorted(p.name for p in data.iterdir() if p.is_dir() and usable(p))
    if not found:
        sys.exit(f"{data}: no category this benchmark can run — pass --data with folders in the MVTec-AD layout")
    return found


def require_output_folder(path: Path) -> Path:
    """``path`` made (with its parents) before the work, so that a results file can be written at its end: two studies had
    failed there after minutes of work."""
    path.mkdir(parents=True, exist_ok=True)
    return path


def saved_results(path: Path, needs: Sequence[str] = ()) -> dict:
    """The results JSON a study wrote, to rewrite its tables from; the script ends in one line where there is none, it is cut
    short or broken, or it holds no results (none of ``needs``' keys, or nothing but the run record): a missing file had been
    a traceback, and an empty one a table of no rows with exit status 0 (regression probe 2026-12-06)."""
    fix = "run the study first, or pass its --out"
    if not path.is_file():
        sys.exit(f"{path}: no results file to make the tables from — {fix}")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        sys.exit(f"{path}: the results cannot be read ({exc}) — {fix}")
    if not isinstance(saved, dict) or any(not saved.get(key) for key in needs) or not any(key != "run" for key in saved):
        sys.exit(f"{path}: holds no results — {fix}")
    return saved


def tables_written(path: Path, write: Callable[[], None]) -> None:
    """Run ``write``, which makes the tables from the results in ``path``; one line where those results are not of the shape
    it reads (a row without its category, a category of no rows: tracebacks; second regression probe 2026-12-06)."""
    try:
        write()
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        sys.exit(f"{path}: the results are not of the shape this study writes ({type(exc).__name__}: {exc}) — run the study again")


def _commit() -> str | None:
    """The repository's commit, with "+changes" when the working tree differs from it; None outside a git clone."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def run_record() -> dict:
    """When, where and by which code a run was made, to be kept in its results file: the start in UTC, the commit, the
    machine, the load average at the start, and the versions of Python, PyTorch and defectlens. :func:`finish_record`
    adds the end and the load then."""
    import torch

    import defectlens

    return {
        "started_utc": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "commit": _commit(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "defectlens": defectlens.__version__,
    }


def finish_record(record: dict) -> dict:
    """``record`` with the end of the run and the load average then."""
    return {**record, "finished_utc": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()]}


def measured_stamp(record: dict) -> dict:
    """When (now, in UTC) and by which code one row of the run ``record`` describes was measured: a results file that keeps
    the rows of earlier runs beside a run's own had its one ``run`` record read as theirs too (regression probe 2026-12-06)."""
    return {"utc": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(), "commit": record["commit"]}


def earlier_note(names: Iterable[str]) -> list[str]:
    """Markdown lines naming the categories whose rows a run kept from an earlier run (no lines when there are none): a run
    on some categories keeps the others' rows, and the tables must not pass them off as its own."""
    kept = sorted(set(names))
    return ["", f"From an earlier run (kept, not measured by the latest): {', '.join(kept)}."] if kept else []


def saved_models(entries: Sequence[str], data: Path, names: Sequence[str]) -> dict[str, str]:
    """``--model CATEGORY=DIR`` entries by category, each naming one of ``names`` (the categories the run covers): a
    mistyped one had been passed over, and a model fitted in its place (benchmarks probe 2026-12-06)."""
    if bad := [e for e in entries if "=" not in e]:
        sys.exit(f"--model {bad[0]}: give CATEGORY=DIR")
    saved = dict(e.split("=", 1) for e in entries)
    if unknown := sorted(set(saved) - set(names)):
        sys.exit(f"--model names no category of {data} that this benchmark runs: {', '.join(unknown)} (it runs: {', '.join(names)})")
    from defectlens import Inspector

    # A folder that holds no model: said before the categories ahead of it are fitted (regression probe 2026-12-06: a
    # traceback after a minute and a half of fitting).
    if missing := [f"{name}={folder}" for name, folder in saved.items() if not Inspector.is_model_dir(folder)]:
        sys.exit(f"--model {missing[0]}: no model there — pass a folder `defectlens fit` wrote")
    return saved


def has_normal_images(category: Path) -> bool:
    """Whether ``category`` has a ``train/good`` folder (in any case) holding an image, as the library reads it (subfolders
    too, hidden files not): an empty one, and one holding only ``.DS_Store`` or ``Thumbs.db``, had been listed as runnable,
    and its run died (regression probes 2026-12-06)."""
    from defectlens.io.dataset import folder_any_case, images_below

    folder = folder_any_case(category, "train", "good")
    return folder.is_dir() and bool(images_below(folder).images)
