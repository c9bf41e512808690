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

from typing import TYPE_CHECKING, Any

from defectlens.errors import ConfigError, DatasetLayoutError, DefectlensError, ImageReadError, ModelFileError

if TYPE_CHECKING:
    from defectlens.inspector import Inspector, InspectorSettings
    from defectlens.types import Inspection, Region, RegionType, Thresholds
else:
    # Hidden from type checkers: a module __getattr__ returning Any made any misspelt name
    # (`from defectlens import Inspectorr`) pass a user's mypy --strict.
    def __getattr__(name: str) -> Any:
        # Imported on first use, not with the package: the Inspector brings PyTorch (2.5 s) and the
        # result types NumPy (0.1 s), and the command line's entry point must be able to take a Ctrl-C
        # pressed while they load (a Ctrl-C in NumPy's import had read "numpy ... bad install").
        if name in ("Inspector", "InspectorSettings"):
            from defectlens import inspector

            return getattr(inspector, name)
        if name in ("Inspection", "Region", "RegionType", "Thresholds"):
            from defectlens import types

            return getattr(types, name)
        raise AttributeError(f"module 'defectlens' has no attribute {name!r}")

    def __dir__() -> list[str]:
        # The public names, those loaded on first use too: tab completion had lost them (regression probe), then
        # offered the module's own imports.
        return sorted(__all__)


__version__ = "0.3.17"
"""Raised with each change a user can see; the package's version (pyproject reads it here), and what
models, inspection JSON and the service record as having made them."""

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
