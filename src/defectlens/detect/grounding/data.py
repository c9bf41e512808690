"""Training data for the grounding model: which images, their masks and descriptions, and the
cached connector inputs.

Everything that can be wrong with a dataset (no taxonomy, a type without a description, a
category without masks) is checked by :func:`collect_training_data` from file names alone,
before a single image is encoded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError

from defectlens.detect.grounding.features import GridInputs, iter_grid_inputs
from defectlens.encode import CanvasSpec, PatchEncoder, Placement, mask_to_grid
from defectlens.errors import ConfigError, DatasetLayoutError
from defectlens.io import GOOD, load_category, load_image, load_mask
from defectlens.io.atomic import atomic_write, load_safetensors, save_safetensors
from defectlens.taxonomy import Taxonomy, load_taxonomy

NORMAL = GOOD
"""The defect type of a normal training sample: the folder name of normal parts."""
_CACHE_VERSION = "grounding-inputs-2"

Progress = Callable[[int], None]


@dataclass(frozen=True)
class TrainingSample:
    """One training image: a defective image with its mask, or a normal one (all-normal mask)."""

    path: Path
    defect_type: str
    """A defect folder name, or 'good'."""
    mask_path: Path | None


@dataclass
class TrainingCategory:
    """One category's vocabulary and the images to train on."""

    root: Path
    taxonomy: Taxonomy
    samples: list[TrainingSample]

    @property
    def name(self) -> str:
        """Folder name of the category."""
        return self.root.name


def collect_training_data(
    dirs: Sequence[str | Path], n_normal: int = 40, max_defective: int | None = None, seed: int = 0
) -> list[TrainingCategory]:
    """Index MVTec-layout categories for grounding training and check them, without decoding images.

    Defective images come from ``test/<type>/`` with masks from ``ground_truth/``; up to
    ``n_normal`` normal images (``train/good``, else ``test/good``) are added as all-normal
    negatives so the model also learns that normal surface is normal.
    """
    if not dirs:
        raise ConfigError("no dataset folders given", None, "pass one or more MVTec-layout category folders")
    rng = np.random.default_rng(seed)
    out = []
    for d in dirs:
        category = load_category(d)
        # Every split is read (normal images from train/good, else test/good): a folder of any that cannot be read is refused,
        # not passed over (an unreadable train/good had been replaced by test/good's images; regression probe 2026-12-07).
        category.require_all_readable()
        root = category.root
        if category.taxonomy_path is None:
            raise ConfigError(
                "no taxonomy.json (the grounding model learns defect types from their descriptions)",
                root,
                'write <category>/taxonomy.json with {"object": ..., "defects": [{"name", "description"}]}',
            )
        taxonomy = load_taxonomy(category.taxonomy_path, require_descriptions=True)
        taxonomy.require_types(category.defect_types, category.taxonomy_path)
        defective = [t for t in category.test if t.is_defective]
        if not defective:
            raise DatasetLayoutError(
                "no defective images in test/<type>/", root / "test", "grounding needs defective images with masks"
            )
        with_mask = [t for t in defective if t.mask_path is not None]
        if not with_mask:
            raise DatasetLayoutError(
                "no ground-truth masks for any defective image",
                root / "ground_truth",
                "add ground_truth/<type>/<image stem>_mask.png for the defective images",
            )
        if max_defective is not None and len(with_mask) > max_defective:
            pick = sorted(rng.choice(len(with_mask), max_defective, replace=False))
            with_mask = [with_mask[i] for i in pick]
        samples = [TrainingSample(t.path, t.defect_type, t.mask_path) for t in with_mask]
        normals = category.train_good or [t.path for t in category.test if not t.is_defective]
        if n_normal > 0 and normals:
            pick = sorted(rng.choice(len(normals), min(n_normal, len(normals)), replace=False))
            samples += [TrainingSample(normals[i], NORMAL, None) for i in pick]
        out.append(TrainingCategory(root, taxonomy, samples))
    return out


class FeatureCache:
    """Connector inputs of images, in memory and optionally on disk (safetensors, one file per image).

    The key covers the file's path, size and modification time and every setting that shapes
    the inputs, so a changed image or encoder never reuses stale features.
    """

    def __init__(self, encoder: PatchEncoder, side: int, grey: bool, directory: str | Path | None = None):
        self.encoder = encoder
        self.side = side
        self.grey = grey
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[str, GridInputs] = {}
        self._settings = json.dumps(
            {"encoder": encoder.config.to_json(), "side": side, "grey": grey, "v": _CACHE_VERSION}, sort_keys=True
        )

    def key(self, path: Path) -> str:
        """Cache key of an image file."""
        st = path.stat()
        raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self._settings}"
        return hashlib.sha1(raw.encode("utf-8", "surrogateescape")).hexdigest()  # a file name's own bytes where not UTF-8

    def _read(self, key: str) -> GridInputs | None:
        if self.directory is None:
            return None
        f = self.directory / f"{key}.safetensors"
        if not f.is_file():
            return None
        try:
            t, meta = load_safetensors(f)
            placement = Placement(**json.loads(meta["placement"]))
            canvas = CanvasSpec(**json.loads(meta["canvas"]))
            return GridInputs(t["inputs"], t["footprint"], placement, canvas, t["moments"])
        except (SafetensorError, OSError, KeyError, ValueError, TypeError):
            return None  # a damaged cache entry is recomputed, never trusted

    def _write(self, key: str, g: GridInputs) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = {"placement": json.dumps(g.placement.__dict__), "canvas": json.dumps(g.canvas.__dict__)}
        with atomic_write(self.directory / f"{key}.safetensors") as tmp:
            tensors = {"inputs": g.inputs.contiguous(), "footprint": g.footprint.contiguous()}
            if g.moments is not None:
                tensors["moments"] = g.moments.contiguous()
            save_safetensors(tensors, tmp, metadata=meta)

    def get_many(self, paths: Sequence[Path], progress: Progress | None = None) -> list[GridInputs]:
        """Connector inputs for image files, encoding only those not cached yet (each image once)."""
        keys = [self.key(Path(p)) for p in paths]
        out: list[GridInputs | None] = [None] * len(paths)
        todo = []
        for i, k in enumerate(keys):
            hit = self._memory.get(k) or self._read(k)
            if hit is not None:
                self._memory[k] = hit
                out[i] = hit
            else:
                todo.append(i)
        if progress and len(paths) > len(todo):
            progress(len(paths) - len(todo))
        # Decode and encode in chunks so memory holds a few dozen images, not the whole set.
        for start in range(0, len(todo), 64):
            chunk = todo[start : start + 64]
            images = [load_image(paths[i]) for i in chunk]
            for j, g in iter_grid_inputs(self.encoder, images, self.side, self.grey, progress=progress):
                # float16 halves the cache; the connector sees float32 anyway.
                g = GridInputs(g.inputs.half(), g.footprint, g.placement, g.canvas, g.moments)
                i = chunk[j]
                self._memory[keys[i]] = g
                self._write(keys[i], g)
                out[i] = g
        return [g for g in out if g is not None]


def target_grid(sample: TrainingSample, g: GridInputs) -> torch.Tensor:
    """(h, w) share of each feature cell covered by the sample's defect mask (zeros for normal)."""
    h, w = g.footprint.shape
    if sample.mask_path is None:
        return torch.zeros(h, w)
    mask = load_mask(sample.mask_path, (g.placement.original_width, g.placement.original_height))
    return torch.from_numpy(mask_to_grid(mask, g.placement, g.canvas, (h, w))).float()
