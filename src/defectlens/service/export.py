"""`export-reviews`: the line's corrections as training material for the next model.

Written into one folder, swapped in whole (see :func:`defectlens.io.atomic_directory`):

* ``examples/<type>/<name>.<ext>`` with ``examples/<type>/masks/<name>_mask.png`` — one image
  per reviewed inspection and type, the mask covering that type's regions; the layout
  ``defectlens inspect --examples DIR/examples`` reads (:func:`~defectlens.classify.examples.examples_from_folders`);
* ``calibration/good/`` and ``calibration/defective/`` — every reviewed image by its final verdict,
  a labelled set to set thresholds on;
* ``manifest.json`` — what came from which inspection, and who reviewed it.

Types and calibration folders are kept apart on purpose: an examples folder read type by type
would otherwise take ``good`` and ``defective`` for defect types.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from defectlens.errors import ConfigError
from defectlens.io import atomic_directory, png_bytes, write_bytes_atomic
from defectlens.service.blobs import BlobStore
from defectlens.service.db import InspectionRow
from defectlens.service.models import REJECT_TYPE, UNKNOWN_TYPE
from defectlens.service.store import Store
from defectlens.taxonomy import normal_type_name, type_name_problem

MANIFEST = "manifest.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass
class ExportSummary:
    """What an export wrote."""

    n_inspections: int
    n_examples: int
    types: dict[str, int]
    good: int
    defective: int
    missing_files: list[int]
    """Inspections skipped because their image is no longer in the file store."""


def folder_name(defect_type: str) -> str:
    """A defect type as a folder name: as it is when it is a valid type name (any script: an
    ``Ölfleck`` folder is the taxonomy's ``Ölfleck`` for ``inspect --examples``); anything else
    (a name stored before the rule) made safe, the last guard before the file system."""
    if type_name_problem(defect_type) is None:
        return normal_type_name(defect_type)
    name = _UNSAFE.sub("_", defect_type).strip("._") or "type"
    return name[:100]


def _type_mask(row: InspectionRow, labels: np.ndarray | None, indices: list[int]) -> np.ndarray:
    mask = np.zeros((row.height, row.width), bool)
    for r in row.regions:
        if r.index not in indices:
            continue
        if not r.missed and labels is not None and labels.shape == mask.shape and r.index < 256:
            mask |= labels == r.index
        else:
            # A missed defect is known only by the reviewer's box.
            mask[r.y0 : r.y1, r.x0 : r.x1] = True
    return mask


def _png(mask: np.ndarray) -> bytes:
    return png_bytes(Image.fromarray(mask.astype(np.uint8) * 255, mode="L"))


def export_reviews(store: Store, blobs: BlobStore, output: str | Path, model: str | None = None) -> ExportSummary:
    """Write every reviewed inspection of ``store`` (of ``model`` when given) under ``output``
    (replaced as a whole when it is an earlier export or empty).

    Reviews of several models are refused without ``model``: one calibration set of two parts'
    images was taken by `calibrate` without a word, and set one part's thresholds on the other's."""
    rows = store.reviewed()
    models = sorted({r.model for r in rows})
    if model is not None:
        if model not in models:
            raise ConfigError(f"no reviewed inspection of model {model!r}", None, f"pass one of: {', '.join(models) or 'none reviewed yet'}")
        rows = [r for r in rows if r.model == model]
    elif len(models) > 1:
        raise ConfigError(f"the reviews are of {len(models)} models ({', '.join(models)})", None,
                          "export one model at a time with --model NAME: each part has its own thresholds and types")
    summary = ExportSummary(len(rows), 0, {}, 0, 0, [])
    manifest: list[dict] = []
    with atomic_directory(output, lambda p: (p / MANIFEST).is_file(), "review export") as out:
        for sub in ("examples", "calibration/good", "calibration/defective"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        for row in rows:
            src = blobs.path(row.image_sha, row.image_ext)
            if not src.is_file():
                summary.missing_files.append(row.id)
                continue
            data = src.read_bytes()
            name = f"{row.id:06d}_{row.image_sha[:12]}"
            verdict = row.reviewed_verdict or row.verdict
            write_bytes_atomic(out / "calibration" / verdict / f"{name}.{row.image_ext}", data)
            if verdict == "good":
                summary.good += 1
            else:
                summary.defective += 1
            by_type: dict[str, list[int]] = {}
            # A part whose final verdict is good shows no defect, whatever its regions say.
            for r in row.regions if verdict != "good" else ():
                final = r.reviewed_type or r.defect_type
                if final not in (REJECT_TYPE, UNKNOWN_TYPE):
                    by_type.setdefault(final, []).append(r.index)
            labels = None
            mask_path = blobs.path(row.mask_sha, "png")
            if by_type and mask_path.is_file():
                with Image.open(mask_path) as m:
                    labels = np.asarray(m.convert("L"))
            for dtype, indices in sorted(by_type.items()):
                folder = out / "examples" / folder_name(dtype)
                (folder / "masks").mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(folder / f"{name}.{row.image_ext}", data)
                write_bytes_atomic(folder / "masks" / f"{name}_mask.png", _png(_type_mask(row, labels, indices)))
                summary.n_examples += 1
                summary.types[dtype] = summary.types.get(dtype, 0) + 1
            manifest.append({
                "inspection": row.id, "file": name, "model": row.model, "filename": row.filename, "verdict": verdict,
                "machine_verdict": row.verdict, "types": sorted(by_type), "reviewed_by": row.reviewed_by,
                "reviewed_at": row.reviewed_at.isoformat() if row.reviewed_at else None,
            })
        (out / MANIFEST).write_text(json.dumps({"inspections": manifest}, indent=2), encoding="utf-8")
    return summary


__all__ = ["MANIFEST", "ExportSummary", "export_reviews", "folder_name"]
