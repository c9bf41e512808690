"""`defectlens export`: write a model folder whose encoder runs on ONNX Runtime or OpenVINO."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from defectlens.cli.progress import console, fail, interrupted
from defectlens.descriptor import describe_model_in, read_descriptor
from defectlens.errors import DefectlensError
from defectlens.export import FORMATS, export_model, is_exported, read_export, source_record
from defectlens.io.atomic import folder_identity
from defectlens.io.outputs import require_output_path


def _same_fit(earlier: dict, model_dir: Path) -> bool:
    """Whether the source an export recorded (:func:`~defectlens.export.source_record`) is ``model_dir``'s fit: by its time
    where both have one, wherever the folder is (a `cp -a` copy of the fit exported over its export had been said another
    model's; regression probe 2026-12-06), else by the folder."""
    try:
        now = source_record(model_dir)
    except DefectlensError:
        return False
    if earlier.get("fitted_at") is not None and now["fitted_at"] is not None:
        return bool(earlier["fitted_at"] == now["fitted_at"])
    return bool(earlier.get("path") == now["path"])


def _earlier_export(folder: Path) -> tuple[dict, str] | None:
    """The source recorded (:func:`~defectlens.export.source_record`) and the runtime of the export in ``folder``; None where
    it records none or is unreadable."""
    try:
        meta = read_export(folder)
    except DefectlensError:
        return None
    source = meta.get("source")
    return (source, str(meta.get("runtime"))) if isinstance(source, dict) else None


def export(
    model_dir: Annotated[Path, typer.Argument(help="Model directory from `defectlens fit` (memory bank, discriminator or both).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write (replaced as a whole: new, empty or an earlier export).")],
    fmt: Annotated[str, typer.Option("--format", help=f"Runtime of the exported encoder: {', '.join(FORMATS)}.")] = "onnx",
) -> None:
    """Export MODEL_DIR: its encoder network as ONNX (dynamic batch), the rest of the model as is.

    Every command taking a model accepts the exported folder and runs the encoder on ONNX Runtime
    (--format onnx) or OpenVINO (--format openvino). Exit status: 0 exported, 2 bad usage, 130 interrupted."""
    try:
        # Before anything looks at the path: a name in it too long for the file system had been a traceback (regression probe).
        require_output_path(output, "export")
    except DefectlensError as exc:
        raise fail(exc) from None
    before = folder_identity(output)
    try:
        # Said as `fit` says what it replaces: "the export that was there" had been said of another part's export, and of one
        # calibrated on the line whose thresholds the new one does not carry (export probe 2026-12-06).
        replaced = describe_model_in(output) if is_exported(output) else None
        earlier = _earlier_export(output) if replaced else None
        calibrated = read_descriptor(output).thresholds if replaced and "with thresholds set by" in replaced else None
        exported_with = earlier[0].get("thresholds") if earlier is not None else None
        exported_with = exported_with if isinstance(exported_with, dict) else {}
        if calibrated and all(exported_with.get(k) == calibrated.get(k) for k in ("image", "pixel", "source")):
            # Its thresholds are those it was exported with, its source's calibration: none set on the line is lost (an export
            # of a calibrated model, exported again, had been told to calibrate again; regression probe 2026-12-07).
            calibrated = None
        if replaced and not calibrated and earlier is not None and _same_fit(earlier[0], model_dir):
            # "it replaces the memory-bank model of a cookie that was there" read as another model's (deployment probe 2026-12-06).
            replaced = f"earlier export of this fit (on {earlier[1]})"
        info = export_model(model_dir, output, fmt)
    except DefectlensError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        if folder_identity(output) != before:  # swapped in the moment before the interrupt
            raise interrupted(f"the export was written to {output} just before the interrupt") from None
        raise interrupted(f"nothing exported; {output} is as it was") from None
    size = sum(p.stat().st_size for p in output.rglob("*") if p.is_file())
    console.print(
        f"exported to {escape(str(output))} ({size / 1e6:.1f} MB): encoder on {info.runtime} (sha256 {info.sha256[:16]}…, "
        f"{info.max_relative_error:.1e} relative from PyTorch)" + (f" — it replaces the {escape(replaced)} that was there" if replaced else "")
    )
    if calibrated:
        now = read_descriptor(output).thresholds or {}
        console.print(f"[yellow]note:[/] the export replaced had thresholds set on the line (image {calibrated.get('image'):.4g}); this one has "
                      f"{escape(str(model_dir))}'s (image {now.get('image', float('nan')):.4g}, {escape(str(now.get('source')))}): calibrate it "
                      "again, or calibrate the source model and export that")
