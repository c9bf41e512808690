"""Evaluation: anomaly-detection and defect-type metrics (see :mod:`defectlens.evaluate.metrics`).

The evaluation runs live in their own modules, not re-exported here so that importing the
metrics stays light: :mod:`defectlens.evaluate.harness` (detection on a labelled category) and
:mod:`defectlens.evaluate.classification` (defect types, on true or detected regions).
"""

from defectlens.evaluate.metrics import (
    UNKNOWN,
    DetectionMetrics,
    OperatingPoint,
    PixelAccumulator,
    PixelMetrics,
    aupro,
    confusion,
    detection_metrics,
    detection_metrics_from_pixels,
    f1_max,
    f1_max_threshold,
    flagged_share,
    image_ap,
    image_auroc,
    operating_point,
    pixel_ap,
    pixel_auroc,
    pixel_f1_max,
    threshold_for_false_alarm_rate,
    type_accuracy,
    type_macro_f1,
)

__all__ = [
    "UNKNOWN",
    "DetectionMetrics",
    "OperatingPoint",
    "PixelAccumulator",
    "PixelMetrics",
    "aupro",
    "confusion",
    "detection_metrics",
    "detection_metrics_from_pixels",
    "f1_max",
    "f1_max_threshold",
    "flagged_share",
    "image_ap",
    "image_auroc",
    "operating_point",
    "pixel_ap",
    "pixel_auroc",
    "pixel_f1_max",
    "threshold_for_false_alarm_rate",
    "type_accuracy",
    "type_macro_f1",
]
