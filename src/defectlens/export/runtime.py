"""Runtimes an exported encoder network runs on: ONNX Runtime (CPU) or OpenVINO.

Each is a :class:`~defectlens.encode.features.FeatureNetwork`: normalised canvases in, fused
patch features and per-stage maps out, exactly what the PyTorch network gives — so the
detectors behind :class:`~defectlens.encode.PatchEncoder` never know which one ran.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from defectlens._entry import usable_cores
from defectlens.errors import ConfigError, ModelFileError, out_of_resources
from defectlens.io.names import is_utf8_path

RUNTIMES = ("onnxruntime", "openvino")
"""Runtimes an exported model can name (``export.json``'s ``runtime``)."""
INPUT_NAME = "image"
"""The ONNX graph's one input: (N, 3, Hc, Wc) float32 canvases, already normalised."""
FEATURES_NAME = "features"
"""The ONNX graph's first output: (N, C, h, w) fused patch features; the per-stage maps follow."""
PRECISION = "f32"
"""The precision an exported encoder runs at, on either runtime, as ``export.json`` records it: OpenVINO computes in bf16 by
default on CPUs that have it (AMX, AVX-512 BF16), which moved scores by up to 0.09 and masks by 47-92 pixels on cookie
(deployment probe 2026-12-06): anything that runs ``encoder.onnx`` must ask for f32."""


def _extra(module: str) -> str:
    """The package extra that installs ``module``."""
    return "openvino" if module == "openvino" else "onnx"


def require_module(module: str, what: str) -> None:
    """Raise a one-line :class:`ConfigError` with the pip command when ``module`` is not installed, or installed but
    broken (imported here: a build that fails to load, such as one made for another NumPy, had ended `export` and
    `inspect` of an export in a 100-line traceback; documentation probe 2026-12-07)."""
    pip = f"pip install 'defectlens[{_extra(module)}]'  (in a clone: pip install -e '.[{_extra(module)}]')"
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{what} needs the Python package {module!r}, which is not installed", None, pip)
    try:
        importlib.import_module(module)
    except Exception as exc:  # a broken build raises ImportError, OSError or its own errors while loading
        if out_of_resources(exc) is not None:
            raise  # its shared objects not mapped for want of memory: the machine's shortage, not a broken install
        reason = (str(exc).splitlines() or [exc.__class__.__name__])[0][:160]
        raise ConfigError(f"{what} needs the Python package {module!r}, which is installed but cannot be imported ({reason})",
                          None, f"reinstall it: {pip}") from None


def available_threads() -> int:
    """Intra-op threads for this process: the cores it may use (a Ray actor is given its share by
    ``OMP_NUM_THREADS``, never more than those cores: 100 000 had made 32 000 threads), so two runtimes in two processes
    do not fight over every core."""
    cores = usable_cores()
    env = os.environ.get("OMP_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return min(int(env), cores)
    return cores


def _outputs(arrays: list[np.ndarray]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(features, per-stage maps) as float32 tensors, from the runtime's output arrays in graph order."""
    tensors = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in arrays]
    return tensors[0], tensors[1:]


def _model_source(path: Path) -> str | bytes:
    """The exported graph as the runtimes take it: its path, or its bytes where the path is not UTF-8 (io.names.is_utf8_path)."""
    return os.fspath(path) if is_utf8_path(path) else path.read_bytes()


@dataclass
class OnnxRuntimeNetwork:
    """The exported network on an ONNX Runtime CPU session."""

    path: Path
    name: str = "onnxruntime"

    def __post_init__(self) -> None:
        require_module("onnxruntime", "an exported model")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = available_threads()
        options.log_severity_level = 3  # warnings about unused initialisers are noise to a user
        # ONNX Runtime's threads otherwise spin for a while after each run, on the cores the
        # memory bank's search needs next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(_model_source(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors for bad graphs
            reason = str(exc).splitlines()[0][:120]
            raise ModelFileError(f"ONNX Runtime cannot load the encoder ({reason})", self.path, "re-export the model") from None

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(features, per-stage maps) of a normalised batch."""
        return _outputs(self.session.run(None, {INPUT_NAME: np.ascontiguousarray(x.numpy(), dtype=np.float32)}))

    def input_size(self) -> tuple[int | None, int | None]:
        """(height, width) the graph's input takes (None where it is not fixed)."""
        shape = self.session.get_inputs()[0].shape
        height, width = (d if isinstance(d, int) else None for d in shape[-2:])
        return height, width


@dataclass
class OpenVinoNetwork:
    """The exported network compiled by OpenVINO for the CPU (it reads the ONNX file directly)."""

    path: Path
    name: str = "openvino"

    def __post_init__(self) -> None:
        require_module("openvino", "running an exported model on OpenVINO")
        import openvino as ov

        core = ov.Core()
        try:
            # Latency hint: one inference at a time per process, all its threads on that one.
            # f32 precision: on CPUs with bf16 units OpenVINO otherwise computes in bf16 (measured:
            # 3e-2 relative from PyTorch), and exported scores must equal the PyTorch ones.
            settings = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": available_threads(), "INFERENCE_PRECISION_HINT": PRECISION}
            source = _model_source(self.path)
            self.compiled = core.compile_model(source if isinstance(source, str) else core.read_model(source), "CPU", settings)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses without a common type
            reason = str(exc).splitlines()[0][:120]
            raise ModelFileError(f"OpenVINO cannot compile the encoder ({reason})", self.path, "re-export the model") from None
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(features, per-stage maps) of a normalised batch."""
        result = self.request.infer({INPUT_NAME: np.ascontiguousarray(x.numpy(), dtype=np.float32)})
        return _outputs([result[out] for out in self.compiled.outputs])

    def input_size(self) -> tuple[int | None, int | None]:
        """(height, width) the graph's input takes (None where it is not fixed)."""
        dims = list(self.compiled.inputs[0].get_partial_shape())[-2:]
        height, width = (d.get_length() if d.is_static else None for d in dims)
        return height, width


def open_network(runtime: str, path: Path) -> OnnxRuntimeNetwork | OpenVinoNetwork:
    """The exported network at ``path`` on ``runtime`` (one of :data:`RUNTIMES`)."""
    if runtime == "onnxruntime":
        return OnnxRuntimeNetwork(path)
    if runtime == "openvino":
        return OpenVinoNetwork(path)
    raise ConfigError(f"unknown runtime {runtime!r}", path, f"use one of {', '.join(RUNTIMES)}")
