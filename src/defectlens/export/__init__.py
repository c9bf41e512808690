"""export: model folders whose encoder network runs on ONNX Runtime or OpenVINO (``defectlens export``).

Public surface: :func:`export_model`, :func:`attach_exported_encoder` (used by
:meth:`defectlens.Inspector.load`), :func:`is_exported` and the runtimes of :mod:`.runtime`.
"""

from defectlens.export.model import (
    EXPORT_FILE,
    EXPORT_FORMAT_VERSION,
    FORMATS,
    MAX_RELATIVE_ERROR,
    ONNX_FILE,
    ExportInfo,
    attach_exported_encoder,
    carry_export,
    export_card_section,
    export_model,
    is_exported,
    model_card,
    read_export,
    source_changes,
    source_record,
)
from defectlens.export.runtime import RUNTIMES, OnnxRuntimeNetwork, OpenVinoNetwork, open_network

__all__ = [
    "EXPORT_FILE",
    "EXPORT_FORMAT_VERSION",
    "FORMATS",
    "MAX_RELATIVE_ERROR",
    "ONNX_FILE",
    "RUNTIMES",
    "ExportInfo",
    "OnnxRuntimeNetwork",
    "OpenVinoNetwork",
    "attach_exported_encoder",
    "carry_export",
    "export_card_section",
    "export_model",
    "is_exported",
    "model_card",
    "open_network",
    "read_export",
    "source_changes",
    "source_record",
]
