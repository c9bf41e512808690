"""defectlens: offline, CPU-first inspection of industrial parts.

The flow is encode -> detect -> locate -> classify -> explain, one sub-package per stage.
Most users need only :class:`Inspector` and the :class:`Inspection` it returns.
"""

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
