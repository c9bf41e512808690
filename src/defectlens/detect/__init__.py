"""detect: normal-only anomaly detection (memory bank + coreset + faiss) and its calibration.

Public surface: :class:`MemoryBankDetector`, :class:`MemoryBankConfig`, :class:`FitSummary`,
and the threshold helpers in :mod:`defectlens.detect.calibration`. The vision-language
grounding detector lives in :mod:`defectlens.detect.grounding`.
"""

from defectlens.detect.calibration import (
    NormalStatistics,
    OperatingPoint,
    f1_optimal_threshold,
    f1_optimal_thresholds,
    normal_statistics,
    operating_point,
    threshold_for_false_alarms,
    thresholds_from_normal,
)
from defectlens.detect.coreset import greedy_coreset
from defectlens.detect.memory_bank import FitSummary, MemoryBankConfig, MemoryBankDetector

__all__ = [
    "FitSummary",
    "MemoryBankConfig",
    "MemoryBankDetector",
    "NormalStatistics",
    "OperatingPoint",
    "f1_optimal_threshold",
    "f1_optimal_thresholds",
    "greedy_coreset",
    "normal_statistics",
    "operating_point",
    "threshold_for_false_alarms",
    "thresholds_from_normal",
]
