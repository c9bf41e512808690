"""defectlens: offline, CPU-first inspection of industrial parts.

The flow is encode -> detect -> locate -> classify -> explain, one sub-package per stage.
Most users need only :class:`Inspector` and the :class:`Inspection` it returns.
"""

import os

# OpenMP threads spin for a while after each parallel region by default, and up to three teams
# share these cores: PyTorch's, faiss's, and OpenVINO's or ONNX Runtime's. A team spinning idle
# holds the core the next stage needs: an exported model's single image took 45-63 ms with them
# spinning and 36-38 ms without, batch 8 26-32 ms against 23-27 (README, "The search, cell by
# cell; threads that wait asleep"); `inspect` and `fit` on the PyTorch network kept their times.
# Set before PyTorch and faiss load their OpenMP runtimes, which read it once; a value the user
# set stands.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from defectlens.errors import ConfigError, DatasetLayoutError, DefectlensError, ImageReadError, ModelFileError
from defectlens.inspector import Inspector, InspectorSettings
from defectlens.types import Inspection, Region, RegionType, Thresholds

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DatasetLayoutError",
    "DefectlensError",
    "ImageReadError",
    "Inspection",
    "Inspector",
    "InspectorSettings",
    "ModelFileError",
    "Region",
    "RegionType",
    "Thresholds",
    "__version__",
]
