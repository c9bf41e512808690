"""Evaluation: anomaly-detection and defect-type metrics (see :mod:`defectlens.evaluate.metrics`).

The evaluation runs live in their own modules, not re-exported here so that importing the
metrics stays light: :mod:`defectlens.evaluate.harness` (detection on a labelled category) and
:mod:`defectlens.evaluate.classification` (defect types, on true or detected regions).
"""

from defectlens.evaluate import metrics as _metrics
from defectlens.evaluate.metrics import *  # noqa: F403 - the package's surface is the metrics module's, listed once there

__all__ = list(_metrics.__all__)
