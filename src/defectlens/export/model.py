"""`defectlens export`: a model folder whose encoder network runs on ONNX Runtime or OpenVINO.

An exported folder is the model folder as it was (detector files, thresholds, ``inspector.json``,
``card.md``) plus ``encoder.onnx`` — the EfficientNet-Lite trunk and the multi-level fusion,
everything :class:`~defectlens.encode.PatchEncoder` does after an image is placed on its canvas
and normalised — and ``export.json``, which records the runtime, the format version and the
ONNX file's sha256. Placement, normalisation and every detector stay in Python, shared by both
paths, so an exported model can differ from its PyTorch self only by the network's float
rounding; export measures that difference and refuses a graph that exceeds :data:`MAX_RELATIVE_ERROR`.
"""

from __future__ import annotations

import io
import math
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from defectlens import __version__
from defectlens.descriptor import (
    CARD_FILE,
    holds_model,
    model_kind,
    part_card_section,
    read_descriptor,
    render_card,
    require_outside_models,
    shown_folder,
    utc_now,
)
from defectlens.detect.base import Detector
from defectlens.detect.fusion import FusedDetector
from defectlens.encode import EncoderConfig, PatchEncoder
from defectlens.errors import ConfigError, DefectlensError, ModelFileError
from defectlens.export.runtime import FEATURES_NAME, INPUT_NAME, PRECISION, RUNTIMES, open_network, require_module
from defectlens.io import atomic_directory, write_json_atomic
from defectlens.io.atomic import copy_folder_into, read_json_file, sha256_of, write_text_atomic
from defectlens.io.markdown import markdown_code, markdown_line
from defectlens.io.names import spelled_as_choice
from defectlens.io.outputs import require_output_path, require_writable_parent

EXPORT_FILE = "export.json"
ONNX_FILE = "encoder.onnx"
EXPORT_FORMAT = "defectlens.export"
EXPORT_FORMAT_VERSION = 1
"""Bumped whenever the graph's inputs/outputs or export.json's meaning change: a folder of
another version is refused rather than run with a mismatched contract."""
OPSET = 17
MAX_RELATIVE_ERROR = 1e-3
"""Largest |exported − PyTorch| / max|PyTorch| export accepts on the fused features."""
FORMATS = {"onnx": "onnxruntime", "openvino": "openvino"}
"""``--format`` -> the runtime the exported folder runs on."""


@dataclass(frozen=True)
class ExportInfo:
    """What ``export.json`` records about an exported encoder."""

    runtime: str
    onnx_file: str
    sha256: str
    encoder: EncoderConfig
    max_relative_error: float
    """Measured at export on a test batch (PyTorch vs the runtime)."""
    exported_at: str
    defectlens: str
    torch: str
    opset: int = OPSET
    format_version: int = EXPORT_FORMAT_VERSION
    source: dict | None = None
    """The model exported: its folder (resolved), fit time and thresholds then (:func:`source_changes` compares them with
    the folder's now). An export had recorded nothing of where it came from, and went stale unseen (export probe 2026-12-06)."""

    def to_json(self) -> dict:
        """Plain-JSON form, as written to ``export.json``."""
        return {
            "format": EXPORT_FORMAT,
            "format_version": self.format_version,
            "runtime": self.runtime,
            "encoder": {
                "file": self.onnx_file,
                "format": "onnx",
                "opset": self.opset,
                "sha256": self.sha256,
                "input": INPUT_NAME,
                "precision": PRECISION,
                "config": self.encoder.to_json(),
                "max_relative_error": self.max_relative_error,
            },
            "exported_at": self.exported_at,
            "defectlens": self.defectlens,
            "torch": self.torch,
            **({"source": self.source} if self.source else {}),
        }


def grounding_refused(where: Path, member: str | None = None) -> ConfigError:
    """The error for a model holding a grounding detector, which export cannot write (``member``:
    where it sits in a fused model, e.g. "its secondary member")."""
    whose = f"this fused model's {member} is a grounding detector, which" if member else "a grounding detector"
    return ConfigError(
        f"{whose} cannot be exported: its text encoder and grounding head run on PyTorch only "
        "(export covers the patch encoder of memory-bank and discriminator detectors)",
        where,
        "inspect with the PyTorch model folder, or export a model fitted without --grounding",
    )


def patch_encoders(detector: Detector, where: Path, member: str | None = None) -> list[PatchEncoder]:
    """Every patch encoder the detector runs, or a :class:`ConfigError` naming the part that
    cannot be exported (a grounding model's text encoder and grounding head are PyTorch only)."""
    if isinstance(detector, FusedDetector):
        return (patch_encoders(detector.primary, where, f"primary member ({detector.primary.name})")
                + patch_encoders(detector.secondary, where, f"secondary member ({detector.secondary.name})"))
    if detector.name == "grounding":
        raise grounding_refused(where, member)
    if int(getattr(detector, "min_batch", 1)) > 1:
        # Batch scoring sizes its canvas from each batch's images; an exported graph has one fixed
        # input size, and the first non-square lot failed inside ONNX Runtime.
        raise ConfigError(
            f"the {detector.name!r} detector sets its canvas from each batch's images, and an exported encoder takes one fixed size",
            where, "inspect with the model folder as fitted (PyTorch), or export a memory-bank or discriminator model",
        )
    encoder = getattr(detector, "encoder", None)
    if not isinstance(encoder, PatchEncoder):
        raise ConfigError(f"the {detector.name!r} detector has no patch encoder to export", where, "export a memory-bank or discriminator model")
    return [encoder]


def _shared_config(encoders: list[PatchEncoder], where: Path) -> EncoderConfig:
    """The one encoder configuration all members share (one ONNX graph serves them all)."""
    configs = {e.config for e in encoders}
    if len(configs) != 1:
        raise ConfigError("the model's detectors use different encoders; export writes one", where, "re-fit the members on one encoder")
    config = configs.pop()
    if config.fixed_scale is not None:
        # The graph's spatial size is fixed (only the batch is dynamic): a fixed-scale model
        # gives every image size its own canvas.
        raise ConfigError(
            "a fixed-scale encoder places each image on its own canvas size; export needs one canvas", where, "re-fit with a fixed canvas"
        )
    return config


def _write_onnx(encoder: PatchEncoder, path: Path) -> None:
    """Trace the encoder's PyTorch network into ``path`` with a dynamic batch dimension, and every other dimension of its
    outputs the fixed size the model's canvas gives."""
    require_module("onnx", "`defectlens export`")
    import onnx

    spec = encoder.config.canvas
    example = torch.zeros(2, 3, spec.height, spec.width)
    with torch.inference_mode():
        features, stages = encoder.torch_network(example)
    sizes = [tuple(t.shape[1:]) for t in (features, *stages)]
    levels = [f"level{i}" for i in range(len(encoder.config.stages))]
    outputs = [FEATURES_NAME, *levels]
    with warnings.catch_warnings():
        # The tracer warns about Python ints taken from shapes: the spatial size is fixed on purpose.
        warnings.simplefilter("ignore")
        # Written to memory, then to the file by Python: the exporter's native writer takes only UTF-8 paths (TypeError
        # under a Latin-1 folder name; 2026-12-07).
        written = io.BytesIO()
        torch.onnx.export(
            encoder.torch_network,
            (example,),
            written,  # type: ignore[arg-type]  # a file object is taken too (torch.onnx.export: "f: a file-like object or a path")
            input_names=[INPUT_NAME],
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in [INPUT_NAME, *outputs]},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: the network is plain convolutions, and it needs no onnxscript
        )
    # The tracer's own output shapes tied each stage's height to the batch and gave the widths one shared symbol
    # (['batch', 48, 'batch', 'Castlevel0_dim_3']; deployment probe 2026-12-06), which misleads tools that read them.
    graph = onnx.load_from_string(written.getvalue())
    for output, size in zip(graph.graph.output, sizes, strict=True):
        dims = output.type.tensor_type.shape.dim
        dims[0].dim_param = "batch"
        for dim, length in zip(dims[1:], size, strict=True):
            dim.dim_value = length
    path.write_bytes(graph.SerializeToString())


@torch.inference_mode()
def measure_error(encoder: PatchEncoder, network_path: Path, runtime: str, batch: int = 3) -> float:
    """Largest relative difference of the fused features, runtime vs PyTorch, on a seeded batch
    of normalised noise canvases (placement is shared, so the network is all that can differ)."""
    spec = encoder.config.canvas
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 0.5, (batch, 3, spec.height, spec.width)).astype(np.float32))
    expected, _ = encoder.torch_network(x.contiguous(memory_format=torch.channels_last))
    got, _ = open_network(runtime, network_path)(x)
    return float((got - expected).abs().max() / expected.abs().max().clamp_min(1e-12))


def export_model(model_dir: str | Path, output: str | Path, fmt: str = "onnx") -> ExportInfo:
    """Write ``output``: the model folder ``model_dir`` as is, plus its encoder as ONNX and
    ``export.json``. The folder is written beside ``output`` and swapped in whole."""
    from defectlens.inspector import Inspector  # the Inspector loads exported folders through this module

    named = spelled_as_choice(fmt, FORMATS)  # "ONNX", "OpenVINO": the names as their projects write them (full-width letters too)
    if named not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}", None, f"use one of {', '.join(FORMATS)}")  # as typed
    runtime = FORMATS[named]
    source, target = Path(model_dir), Path(output)
    require_output_path(target, "export")  # before it is followed below: a loop had been a traceback
    require_writable_parent(target, "exported model", makes_folder=True)  # before the work: written whole in a new folder
    if target.resolve() == source.resolve():
        raise ConfigError("the export would overwrite the model it is made from", target, "give another output folder with -o")
    if source.resolve() in target.resolve().parents:
        # Inside it, the export would be copied into itself and lost at the model's next re-save.
        raise ConfigError("the export would be written inside the model it is made from", target, "give an output folder outside the model")
    # Inside another model, it went with that model's next calibrate or fit without a word (export probe 2026-12-06).
    require_outside_models(target, "export")
    if holds_model(target) and not is_exported(target):
        # An export is made again from its model in seconds; a fitted (or calibrated) model is not,
        # and `export -o` over one replaced it without a word.
        raise ConfigError("holds a fitted model, not an export: exporting over it would lose it", target,
                          "pass another folder with -o (an earlier export there is replaced)")
    require_module("onnx", "`defectlens export`")
    require_module(runtime, f"an export for {runtime}")
    if model_kind(source) == "grounding":
        # Said before loading: a bare zero-shot model would first ask for its taxonomy.
        raise grounding_refused(source)
    inspector = Inspector.load(source, runtime="torch")
    exported_from = source_record(source)
    encoders = patch_encoders(inspector.detector, source)
    config = _shared_config(encoders, source)
    with atomic_directory(target, holds_model, "exported model") as out:
        copy_folder_into(source, out, ignore=shutil.ignore_patterns(EXPORT_FILE, ONNX_FILE, ".*"))
        onnx_path = out / ONNX_FILE
        _write_onnx(encoders[0], onnx_path)
        error = measure_error(encoders[0], onnx_path, runtime)
        if not error <= MAX_RELATIVE_ERROR:
            raise ModelFileError(
                f"the exported encoder differs from PyTorch by {error:.2e} relative (limit {MAX_RELATIVE_ERROR:g}) on {runtime}",
                source,
                "report it; inspect with the PyTorch model meanwhile",
            )
        info = ExportInfo(runtime, ONNX_FILE, sha256_of(onnx_path), config, error, utc_now(), __version__, torch.__version__,
                          source=exported_from)
        write_json_atomic(out / EXPORT_FILE, info.to_json())
        # The card made again from the model's own record, then this export's section: an export of
        # an export had carried the first export's section and added a second.
        write_text_atomic(out / CARD_FILE, model_card(out))
    return info


def model_card(directory: str | Path, full_paths: bool = True) -> str:
    """The model card of a model folder, as ``card.md`` holds it, made from the folder's own records (its descriptor, the part's
    taxonomy and examples, an export's record): `export` writes it, `info` prints it and the service shows it (``full_paths``
    False: folders by their last names). Made, not read from ``card.md``: a card.md linked to another file had served that
    file to anyone asking ``GET /models`` (security probe 2026-12-07)."""
    root = Path(directory)
    card = render_card(read_descriptor(root), full_paths) + part_card_section(root)
    return card + export_card_section(read_export(root), full_paths) if is_exported(root) else card


def export_card_section(meta: dict, full_paths: bool = True) -> str:
    """The model card's section on an exported encoder, from its ``export.json`` record (`export`
    appends it to ``card.md``; `info` to the card it renders): what runs it, and when, by which defectlens and from which
    model folder it was exported (by its last names unless ``full_paths``)."""
    encoder = meta.get("encoder") or {}
    error = encoder.get("max_relative_error")
    measured = f"{error:.1e} relative" if isinstance(error, int | float) else "not recorded"
    recorded = meta.get("source")
    source: dict = recorded if isinstance(recorded, dict) else {}
    origin = f" from {markdown_code(shown_folder(str(source['path']), full_paths))}" if source.get("path") else ""
    when = f"Exported {markdown_line(str(meta.get('exported_at')))} by defectlens {markdown_line(str(meta.get('defectlens')))}{origin}. "
    return (
        f"\n## Exported encoder\n\n{when if meta.get('exported_at') else ''}The encoder network runs on {meta.get('runtime')} from "
        f"`{encoder.get('file')}` (ONNX opset {encoder.get('opset')}, sha256 `{str(encoder.get('sha256'))[:16]}…`) at "
        f"{encoder.get('precision') or PRECISION} precision; measured difference from PyTorch at export: {measured}. It runs the network "
        "only: placing and normalising an image, the neighbour search, maps and verdicts are defectlens's, which runs it.\n"
    )


def source_record(source: Path) -> dict:
    """What :attr:`ExportInfo.source` records of the model folder ``source``: its folder (resolved), fit time and thresholds."""
    descriptor = read_descriptor(source)
    return {"path": str(source.resolve()), "fitted_at": descriptor.provenance.fitted_at if descriptor.provenance else None,
            "thresholds": descriptor.thresholds}


def source_changes(meta: dict, thresholds: dict | None = None) -> str | None:
    """How the model an export was made from (its ``export.json`` record) has changed since, when its folder is still there:
    another fit, or other thresholds than the export holds now (``thresholds``, its descriptor's; the record's when not
    given), with what to do; None when it has not, or cannot be told."""
    source = meta.get("source")
    if not isinstance(source, dict) or not source.get("path") or not holds_model(Path(source["path"])):
        return None
    try:
        now = source_record(Path(source["path"]))
    except DefectlensError:
        return None
    again = "export it again to carry that, or keep this one as it is"
    if now["fitted_at"] != source.get("fitted_at"):
        return f"{source['path']} holds another fit now (fitted {now['fitted_at']}, exported from the fit of {source.get('fitted_at')}) — {again}"
    before, after, held = source.get("thresholds") or {}, now["thresholds"] or {}, thresholds or source.get("thresholds") or {}
    if not all(isinstance(t.get(k), float | int) for t in (before, after, held) for k in ("image", "pixel")):
        return None  # a record without thresholds: nothing to compare

    def alike(a: dict, b: dict) -> bool:
        # Within the last digits an exported encoder's scores differ in from PyTorch's: the same set calibrated on each.
        return all(math.isclose(a[k], b[k], rel_tol=1e-5) for k in ("image", "pixel"))

    if alike(held, after):
        return None  # the export holds the model's thresholds (both calibrated alike, say: regression probe 2026-12-06)
    if not alike(before, after):
        if not alike(held, before):
            # Calibrated on its own since: "export it again" would have replaced that calibration.
            return (f"{source['path']} has other thresholds now (image {after.get('image')}, {after.get('source')}); this export has been "
                    f"calibrated itself since (image {held.get('image')}, {held.get('source')}): exporting again would replace that — "
                    "calibrate this one if the model's are wanted")
        return (f"{source['path']} has other thresholds now (image {after.get('image')}, {after.get('source')}; exported with image "
                f"{before.get('image')}, {before.get('source')}) — {again}")
    return None


def read_export(root: Path) -> dict:
    """``export.json`` of an exported folder, checked: format, version and the ONNX file's sha256."""
    path = root / EXPORT_FILE
    again = "re-export the model with `defectlens export`"
    try:
        # Read as every model file is (a byte-order mark an editor wrote reads the same; code review 2026-12-06: refused here).
        meta = read_json_file(path, ModelFileError, "no export record", again, again)
    except OSError as exc:
        raise ModelFileError(f"unreadable export record ({exc.__class__.__name__})", path, again) from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise ModelFileError("not a defectlens export record", path, again)
    version = meta.get("format_version")
    whole = isinstance(version, int) and not isinstance(version, bool)  # true == 1 had passed as version 1
    if version != EXPORT_FORMAT_VERSION or not whole:
        newer = isinstance(version, int) and whole and version > EXPORT_FORMAT_VERSION
        raise ModelFileError(
            # A version written as text ("1") is said so: "version '1'; this defectlens reads version 1" read as a contradiction.
            ("it records no export format version" if version is None else
             f"its export format version is {type(version).__name__} {version!r}, not a whole number" if not whole
             else f"exported with export format version {version}; this defectlens reads version {EXPORT_FORMAT_VERSION}"),
            path,
            "upgrade defectlens (a newer version exported it), or re-export the original model with this one" if newer
            else "re-export the original model with this defectlens (`defectlens export MODEL -o EXPORT`)",
        )
    encoder = meta.get("encoder")
    if not isinstance(encoder, dict) or not isinstance(encoder.get("file"), str) or not isinstance(encoder.get("sha256"), str):
        raise ModelFileError("export record names no encoder file", path, "re-export the model with `defectlens export`")
    if meta.get("runtime") not in RUNTIMES:
        raise ModelFileError(f"unknown runtime {meta.get('runtime')!r}", path, f"use one of {', '.join(RUNTIMES)}, or re-export")
    onnx_path = root / Path(encoder["file"]).name
    if not onnx_path.is_file():
        raise ModelFileError("the exported encoder is missing", onnx_path, "re-export the model with `defectlens export`")
    if sha256_of(onnx_path) != encoder["sha256"]:
        raise ModelFileError("the exported encoder does not match the sha256 in export.json (changed or damaged)", onnx_path, "re-export the model")
    return meta


def is_exported(root: str | Path) -> bool:
    """True when the folder holds an export record (its encoder runs on ONNX)."""
    return (Path(root) / EXPORT_FILE).exists()


def carry_export(old: Path, new: Path, detector: Detector, fitted_at: str | None = None) -> bool:
    """Copy the exported encoder of ``old`` into ``new`` — a re-save of the same model, such as
    `calibrate`'s new thresholds, or a new fit (``fitted_at``) with the same encoder settings — when it is still
    ``detector``'s encoder; returns whether it did. Without it, calibrating an export quietly turned it back into a
    PyTorch model (its workers then ran at PyTorch's pace, and nothing said so). Carried into another fit than the one
    exported, the record of the model it was exported from is dropped: it would name a model this one is not."""
    if not is_exported(old):
        return False
    try:
        meta = read_export(old)
        recorded = EncoderConfig.from_json(meta["encoder"]["config"])
        if any(e.config != recorded for e in patch_encoders(detector, old)):
            return False  # another encoder now (a refit with other settings): the export no longer fits
    except (DefectlensError, KeyError, TypeError, ValueError):
        return False
    shutil.copyfile(old / Path(meta["encoder"]["file"]).name, new / Path(meta["encoder"]["file"]).name)
    source = meta.get("source")
    if fitted_at is not None and isinstance(source, dict) and source.get("fitted_at") != fitted_at:
        # Regression probe 2026-12-06: a fit saved over an export kept "exported from F", and `info` then advised re-exporting
        # F over the newer fit.
        meta = {k: v for k, v in meta.items() if k != "source"}
        write_json_atomic(new / EXPORT_FILE, meta)
    else:
        shutil.copyfile(old / EXPORT_FILE, new / EXPORT_FILE)
    card = new / CARD_FILE
    if card.is_file():
        write_text_atomic(card, card.read_text(encoding="utf-8") + export_card_section(meta))
    return True


def attach_exported_encoder(detector: Detector, root: Path, runtime: str | None = None) -> str:
    """Swap the network of every patch encoder of ``detector`` for the exported one of ``root``,
    on ``runtime`` (default: the one export.json records); returns the runtime used."""
    meta = read_export(root)
    runtime = runtime or meta["runtime"]
    encoders = patch_encoders(detector, root)
    try:
        recorded = EncoderConfig.from_json(meta["encoder"]["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"invalid encoder settings in the export record ({exc})", root / EXPORT_FILE, "re-export the model") from None
    if any(e.config != recorded for e in encoders):
        raise ModelFileError("the exported encoder was made for another model's encoder", root / EXPORT_FILE, "re-export this model")
    network = open_network(runtime, root / Path(meta["encoder"]["file"]).name)
    size = network.input_size()
    if size != (recorded.canvas_height, recorded.canvas_width):
        # Another model's graph whose sha256 was copied into export.json: refused here, not by the
        # runtime at the first image, mid-batch.
        raise ModelFileError(
            f"the exported encoder takes {size[0]}x{size[1]} images, this model's canvas is {recorded.canvas_height}x{recorded.canvas_width}",
            root / Path(meta["encoder"]["file"]).name, "re-export this model",
        )
    for encoder in encoders:
        encoder.use_network(network)
    return runtime
