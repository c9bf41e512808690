"""The ROC curve of a labelled image set as a PNG, with operating points marked on it.

Used by ``defectlens calibrate`` to show where the old and the new image threshold sit.
"""

from __future__ import annotations

import errno
import io
import logging
from collections.abc import Mapping, Sequence
from types import ModuleType

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from defectlens.evaluate.metrics import OperatingPoint
from defectlens.io.atomic import printable_text

POINT_STYLES = ("o", "s", "^", "D")


class PlotUnavailable(OSError):
    """Matplotlib cannot start here (no writable cache folder: a read-only home and temporary folder); ``fix`` says what to do."""

    fix = "set MPLCONFIGDIR to a folder you can write (Matplotlib's cache), or run where the home or temporary folder is writable"


def pyplot() -> ModuleType:
    """Matplotlib's pyplot on its file-only backend, for the plots (the one place defectlens imports Matplotlib). A
    :class:`PlotUnavailable` where Matplotlib cannot start: on a host with no writable cache folder it had ended calibrate's
    plot in a two-line message of Matplotlib's, and `evaluate --types` after the whole evaluation (locked-down host probe
    2026-12-07)."""
    said = logging.getLogger("matplotlib")
    level = said.level
    said.setLevel(logging.ERROR)  # its warning of the same folder, said again in the refusal
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except OSError:
        raise PlotUnavailable(errno.EACCES, "Matplotlib, which draws it, has no writable cache folder") from None
    finally:
        said.setLevel(level)
    return plt


def roc_figure_png(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, points: Mapping[str, OperatingPoint], title: str
) -> bytes:
    """ROC curve (false-alarm rate → recall) with each named operating point marked and labelled.

    ``labels`` must hold both classes (1 = defective); the curve's AUROC goes in the title."""
    plt = pyplot()
    y = np.asarray(labels).astype(int)
    s = np.asarray(scores, dtype=np.float64)
    fpr, tpr, _ = roc_curve(y, s)
    fig, ax = plt.subplots(figsize=(5.0, 4.6))
    ax.plot(fpr, tpr, color="#3465a4", lw=1.8, label=f"ROC (AUROC {roc_auc_score(y, s):.3f})")
    ax.plot([0, 1], [0, 1], color="#bbb", lw=0.8, ls="--")
    for (name, p), marker in zip(points.items(), POINT_STYLES, strict=False):
        ax.plot(
            [p.false_alarm_rate], [p.recall], marker=marker, ms=9, ls="none",
            label=f"{name}: t={p.threshold:.3f}, recall {p.recall:.0%}, false alarms {p.false_alarm_rate:.1%}",
        )
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("false-alarm rate (normal images flagged)")
    ax.set_ylabel("recall (defective images flagged)")
    # A name not in UTF-8 as a backslash escape (\xe9): Matplotlib's text refuses Python's stand-ins for its bytes (a TypeError after
    # calibrate had saved; regression probe 2026-12-07).
    ax.set_title(f"{printable_text(title)}\n{int((y == 0).sum())} normal, {int((y == 1).sum())} defective images", fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


__all__ = ["PlotUnavailable", "pyplot", "roc_figure_png"]
