"""detect: normal-only anomaly detection (memory bank + coreset + faiss) and its calibration.

Public surface: :class:`MemoryBankDetector`, :class:`MemoryBankConfig`, :class:`FitSummary`,
:class:`FusedDetector` (any two detectors, look twice; :mod:`defectlens.detect.fusion`),
:class:`FrameCheck` (is the image the part at all; :mod:`defectlens.detect.frame_check`), the
threshold helpers in :mod:`defectlens.detect.calibration`, and the map smoothing and image
score every detector shares (:mod:`defectlens.detect.maps`, with :func:`working_view`: the pixels of a
large image's map that scores, thresholds and pixel metrics read). The vision-language grounding
detector lives in :mod:`defectlens.detect.grounding`; the kind-name -> detector registry
that model folders are loaded through in :mod:`defectlens.detect.registry`.
"""

from defectlens.detect.calibration import (
    DEFAULT_FALSE_ALARM_TARGET,
    NormalStatistics,
    f1_optimal_threshold,
    image_threshold_from_labels,
    normal_statistics,
    threshold_for_false_alarms,
    thresholds_from_normal,
    too_few_for_target,
)
from defectlens.detect.coreset import greedy_coreset
from defectlens.detect.frame_check import FrameCheck
from defectlens.detect.fusion import FusedDetector, FusionConfig
from defectlens.detect.maps import WORKING_PIXELS, image_score, smooth_map, smooth_maps, working_stride, working_view
from defectlens.detect.memory_bank import FitSummary, MemoryBankConfig, MemoryBankDetector

__all__ = [
    "DEFAULT_FALSE_ALARM_TARGET",
    "WORKING_PIXELS",
    "FitSummary",
    "FrameCheck",
    "FusedDetector",
    "FusionConfig",
    "MemoryBankConfig",
    "MemoryBankDetector",
    "NormalStatistics",
    "f1_optimal_threshold",
    "greedy_coreset",
    "image_score",
    "image_threshold_from_labels",
    "normal_statistics",
    "smooth_map",
    "smooth_maps",
    "threshold_for_false_alarms",
    "thresholds_from_normal",
    "too_few_for_target",
    "working_stride",
    "working_view",
]
