"""The F1-optimal score threshold: one implementation for calibration and for the metrics.

Detection calibration (:mod:`defectlens.detect.calibration`) sets thresholds with it and the
evaluation metrics (:mod:`defectlens.evaluate.metrics`) report F1-max with it; it lives here,
below both, because detect must not import evaluate.
"""

from __future__ import annotations

import math

import numpy as np


def best_f1(defective: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """``(f1, threshold)``: the best F1 over thresholds ``scores >= threshold`` and the lowest
    threshold reaching it.

    ``defective`` is a bool array, ``scores`` a float array of the same length. Returns
    ``(nan, nan)`` when no sample is defective: F1 is 0 at every threshold then, which says
    nothing about the scores.
    """
    if defective.size == 0 or not defective.any():
        return math.nan, math.nan
    # Imported here: scikit-learn takes over a second to import, and inspection (every CLI start,
    # every Ray worker) never calibrates.
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(defective, scores)
    # precision_recall_curve appends a final (precision=1, recall=0) point that has no threshold.
    p, r = precision[:-1], recall[:-1]
    denom = p + r
    f1 = np.divide(2.0 * p * r, denom, out=np.zeros_like(denom, dtype=np.float64), where=denom > 0)
    best = int(np.argmax(f1))
    # sklearn's thresholds are the scores themselves, used as ``score >= threshold``.
    return float(f1[best]), float(thresholds[best])
