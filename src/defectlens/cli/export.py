"""`defectlens export`: write a model folder whose encoder runs on ONNX Runtime or OpenVINO."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from defectlens.cli.progress import console, fail, interrupted
from defectlens.errors import DefectlensError
from defectlens.export import FORMATS, export_model, is_exported
from defectlens.io.atomic import folder_identity


def export(
    model_dir: Annotated[Path, typer.Argument(help="Model directory from `defectlens fit` (memory bank, discriminator or both).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write (replaced as a whole: new, empty or a model).")],
    fmt: Annotated[str, typer.Option("--format", help=f"Runtime of the exported encoder: {', '.join(FORMATS)}.")] = "onnx",
) -> None:
    """Export MODEL_DIR: its encoder network as ONNX (dynamic batch), the rest of the model as is.

    Every command taking a model accepts the exported folder and runs the encoder on ONNX Runtime
    (--format onnx) or OpenVINO (--format openvino). Exit status: 0 exported, 2 bad usage, 130 interrupted."""
    before = folder_identity(output)
    try:
        replaced = is_exported(output)
        info = export_model(model_dir, output, fmt)
    except DefectlensError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        if folder_identity(output) != before:  # swapped in the moment before the interrupt
            raise interrupted(f"the export was written to {output} just before the interrupt") from None
        raise interrupted(f"nothing exported; {output} is as it was") from None
    console.print(
        f"exported to {escape(str(output))}: encoder on {info.runtime} (sha256 {info.sha256[:16]}…, "
        f"{info.max_relative_error:.1e} relative from PyTorch)" + (" — it replaces the export that was there" if replaced else "")
    )
