"""Few-shot defect-type classification from a handful of labelled examples per type.

Each region is described by one vector: the region (with some surrounding context) is cropped
from the original image as a square, encoded at a fixed resolution, and the feature maps of
several backbone stages are averaged inside the region mask (and, separately, over the whole
crop for context). Each pooled piece is L2-normalised before concatenation so that no stage
or piece dominates by sheer channel count or activation scale.

Cropping matters: a 0.1% blowhole on a 600 px tile covers less than one feature cell when the
whole image is squeezed onto a 256 px canvas, but fills a good part of a crop around it.

A region gets the type of its nearest examples (cosine similarity; k-nearest-neighbour or
class prototypes), a softmax confidence, and ``unknown`` when even its nearest example is
farther than the examples themselves are from each other (a leave-one-out distance quantile).
"""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from scipy.optimize import minimize_scalar

from defectlens.encode import CanvasSpec, EncoderConfig, PatchEncoder, mask_to_grid
from defectlens.errors import DatasetLayoutError, ModelFileError
from defectlens.io import IMAGE_SUFFIXES, LabelledImage, list_images, load_category, load_image, load_mask, write_json_atomic
from defectlens.taxonomy import UNKNOWN
from defectlens.types import Inspection, RegionType

FORMAT_VERSION = 1
CONFIG_FILE = "fewshot.json"
TENSORS_FILE = "fewshot.safetensors"
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Example:
    """One labelled example: an image, its defect type, and (ideally) the defect's mask."""

    path: Path
    defect_type: str
    mask_path: Path | None = None
    """Binary mask of the defect; None means the whole image is the region."""


@dataclass
class ExampleSet:
    """Examples gathered from disk plus what was skipped or approximated (one line each)."""

    examples: list[Example] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def types(self) -> list[str]:
        """Sorted defect types with at least one example."""
        return sorted({e.defect_type for e in self.examples})


def _warn(notes: list[str], message: str) -> None:
    # Both: a warning for interactive users, a note that ends up in the report/benchmark output.
    warnings.warn(message, stacklevel=3)
    notes.append(message)


def _check_masks(by_type: Mapping[str, list[Example]], notes: list[str]) -> None:
    for t, exs in sorted(by_type.items()):
        missing = sum(e.mask_path is None for e in exs)
        if missing:
            _warn(
                notes,
                f"type {t!r}: {missing} of {len(exs)} example(s) have no mask; the whole image is used as the region "
                f"(add masks for sharper types)",
            )


def examples_from_category(
    root: str | Path, k: int, seed: int = 0, types: Sequence[str] | None = None
) -> tuple[ExampleSet, list[LabelledImage]]:
    """Sample ``k`` examples per defect type from an MVTec-style category's ``test/<type>`` folders.

    Returns the examples and the remaining defective test images (the examples excluded), so an
    evaluation never scores an image the classifier was fitted on. Sampling uses ``seed``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    category = load_category(root)
    wanted = list(types) if types is not None else category.defect_types
    rng = random.Random(seed)
    result = ExampleSet()
    held_out: list[LabelledImage] = []
    by_type: dict[str, list[Example]] = {}
    for t in wanted:
        items = sorted((x for x in category.test if x.defect_type == t), key=lambda x: x.path.name)
        if not items:
            result.notes.append(f"type {t!r}: no images in {category.root / 'test' / t}; type skipped")
            continue
        chosen = set(rng.sample(range(len(items)), min(k, len(items))))
        if len(chosen) < k:
            result.notes.append(f"type {t!r}: only {len(items)} image(s), fewer than k={k}")
        by_type[t] = [Example(items[i].path, t, items[i].mask_path) for i in sorted(chosen)]
        result.examples.extend(by_type[t])
        held_out.extend(x for i, x in enumerate(items) if i not in chosen)
    _check_masks(by_type, result.notes)
    if not result.examples:
        raise DatasetLayoutError("no defect examples found", Path(root) / "test", "put example images in test/<type>/")
    return result, held_out


def _mask_beside(image: Path) -> Path | None:
    for folder in (image.parent / "masks", image.parent):
        for name in (f"{image.stem}_mask.png", f"{image.stem}.png"):
            cand = folder / name
            if cand.is_file() and cand != image:
                return cand
    return None


def examples_from_folders(root: str | Path) -> ExampleSet:
    """Examples from ``root/<type>/*`` (any folder per type), masks optional.

    A mask is ``<stem>_mask.png`` beside the image or ``<stem>[_mask].png`` in ``<type>/masks/``.
    A type folder with no images is skipped with a note; one without masks is used with the
    whole image as the region, with a warning.
    """
    base = Path(root)
    if not base.is_dir():
        raise DatasetLayoutError("example folder not found", base, "pass a folder with one sub-folder per defect type")
    result = ExampleSet()
    by_type: dict[str, list[Example]] = {}
    for type_dir in sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")):
        images = [p for p in list_images(type_dir) if not p.stem.endswith("_mask")]
        if not images:
            _warn(result.notes, f"{type_dir}: no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))}); type skipped")
            continue
        by_type[type_dir.name] = [Example(p, type_dir.name, _mask_beside(p)) for p in images]
        result.examples.extend(by_type[type_dir.name])
    if not result.examples:
        raise DatasetLayoutError("no example images in any type folder", base, "put images in <folder>/<type>/")
    _check_masks(by_type, result.notes)
    return result


@dataclass(frozen=True)
class FewShotConfig:
    """Everything that determines the region vectors and the decision rule (saved with the model)."""

    backbone: str = "efficientnet-lite0"
    stages: tuple[int, ...] = (1, 2, 3, 4)
    """Backbone stages pooled separately (strides 4, 8, 16, 16 for Lite0)."""
    crop_side: int = 224
    """Side of the square network canvas a region crop is encoded on."""
    context: float = 0.5
    """Crop margin on each side, as a share of the region's larger bbox side."""
    min_crop_px: int = 48
    """Smallest crop side in original pixels (a 3-pixel pit still needs some surroundings)."""
    with_context: bool = True
    """Also pool over the whole crop (the defect's surroundings help tell e.g. edge defects apart)."""
    scoring: str = "knn"
    """'knn': mean similarity of a type's ``neighbours`` nearest examples; 'prototype': class mean."""
    neighbours: int = 1
    unknown_quantile: float = 0.95
    """Quantile of leave-one-out distances that still counts as 'known'."""
    unknown_margin: float = 1.5
    """The unknown threshold is the quantile above times this margin."""

    def __post_init__(self) -> None:
        if self.scoring not in ("knn", "prototype"):
            raise ValueError(f"scoring must be 'knn' or 'prototype', got {self.scoring!r}")
        if self.crop_side % 32 or self.crop_side < 64:
            raise ValueError(f"crop_side must be a multiple of 32 and >= 64, got {self.crop_side}")

    @property
    def encoder_config(self) -> EncoderConfig:
        """The patch encoder used for crops (no local aggregation: we pool anyway)."""
        return EncoderConfig(self.backbone, self.stages, 1, self.crop_side, self.crop_side)

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {**asdict(self), "stages": list(self.stages)}

    @classmethod
    def from_json(cls, d: dict) -> FewShotConfig:
        """Inverse of :meth:`to_json`."""
        return cls(**{**d, "stages": tuple(d["stages"])})


@dataclass
class Classification:
    """Types of an image's regions plus notes on anything skipped."""

    region_types: list[RegionType] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def region_masks(inspection: Inspection) -> dict[int, np.ndarray]:
    """Boolean mask of every region of an inspection, keyed by :attr:`Region.index`.

    Uses ``inspection.region_labels`` when present. Otherwise the mask is labelled with
    8-connectivity (as the locate stage does) and each component is matched to the region
    whose centroid it is nearest to among those with the same bbox (bbox first: exact).
    """
    if inspection.region_labels is not None and inspection.region_labels.shape == inspection.mask.shape:
        return {r.index: inspection.region_labels == r.index for r in inspection.regions}
    labels, n = ndimage.label(inspection.mask, structure=_EIGHT_CONNECTED)
    if n == 0 or not inspection.regions:
        return {}
    boxes = ndimage.find_objects(labels)
    cents = ndimage.center_of_mass(np.ones_like(labels), labels, np.arange(1, n + 1))
    comp_boxes = [(int(s[1].start), int(s[0].start), int(s[1].stop), int(s[0].stop)) for s in boxes]
    out: dict[int, np.ndarray] = {}
    used: set[int] = set()
    for r in inspection.regions:
        same_box = [i for i, b in enumerate(comp_boxes) if b == tuple(r.bbox) and i not in used]
        pool = same_box or [i for i in range(n) if i not in used]
        if not pool:
            break
        best = min(pool, key=lambda i: (cents[i][1] - r.centroid[0]) ** 2 + (cents[i][0] - r.centroid[1]) ** 2)
        used.add(best)
        out[r.index] = labels == best + 1
    return out


def square_crop_box(mask: np.ndarray, context: float, min_side: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a square around the mask's bbox plus margin, shifted to lie in the image.

    When the image is smaller than the square on one axis the box spans that whole axis
    (the encoder's canvas placement keeps the aspect ratio and mirror-pads the rest).
    """
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return 0, 0, w, h
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = max(max(y1 - y0, x1 - x0) * (1 + 2 * context), min_side)
    side = math.ceil(side)
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2

    def span(c: float, n: int) -> tuple[int, int]:
        if side >= n:
            return 0, n
        lo = round(c - side / 2)
        lo = min(max(lo, 0), n - side)
        return lo, lo + side

    ya, yb = span(cy, h)
    xa, xb = span(cx, w)
    return xa, ya, xb, yb


def _l2(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class FewShotClassifier:
    """Nearest-example defect-type classifier over pooled region features.

    ``fit`` on :class:`Example` records, then ``classify`` an image's region masks, or
    ``classify_inspection`` an :class:`Inspection`. ``save``/``load`` use safetensors + JSON.
    """

    def __init__(self, config: FewShotConfig | None = None, encoder: PatchEncoder | None = None):
        self.config = config or FewShotConfig()
        if encoder is not None and encoder.config != self.config.encoder_config:
            raise ValueError("the shared encoder was built for another configuration")
        # ``encoder`` lets several classifiers share one set of loaded weights.
        self._encoder: PatchEncoder | None = encoder
        self.class_names: list[str] = []
        self.vectors = np.zeros((0, 0), np.float32)
        """(N, D) L2-normalised example vectors."""
        self.labels = np.zeros((0,), np.int64)
        """(N,) index into :attr:`class_names` per example vector."""
        self.unknown_distance = 2.0
        """Cosine distance (1 - similarity) above which a region is 'unknown'."""
        self.temperature = 0.05
        """Softmax temperature on similarities, fitted by leave-one-out likelihood when possible."""
        self.notes: list[str] = []

    # ----------------------------------------------------------------- features
    @property
    def encoder(self) -> PatchEncoder:
        """The crop encoder, built on first use (loading weights takes a moment)."""
        if self._encoder is None:
            self._encoder = PatchEncoder(self.config.encoder_config)
        return self._encoder

    def _crop(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = square_crop_box(mask, self.config.context, self.config.min_crop_px)
        return np.ascontiguousarray(image[y0:y1, x0:x1]), mask[y0:y1, x0:x1]

    def embed(self, image: np.ndarray, masks: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
        """(R, D) float32 region vectors of ``image`` (H, W, 3 uint8) for bool (H, W) ``masks``."""
        crops = [self._crop(image, m) for m in masks]
        return self.embed_crops(crops, batch_size)

    def embed_crops(self, crops: Sequence[tuple[np.ndarray, np.ndarray]], batch_size: int = 16) -> np.ndarray:
        """Region vectors for already-cropped (rgb, mask) pairs."""
        spec = CanvasSpec(self.config.crop_side, self.config.crop_side)
        out: list[torch.Tensor] = []
        for start in range(0, len(crops), batch_size):
            chunk = crops[start : start + batch_size]
            batch = self.encoder.encode([c[0] for c in chunk], spec)
            for i, (_, m) in enumerate(chunk):
                parts = []
                for lvl in batch.levels:
                    fmap = lvl[i]  # (C, h, w)
                    grid = (fmap.shape[1], fmap.shape[2])
                    w_region = torch.from_numpy(mask_to_grid(m, batch.placements[i], spec, grid))
                    if float(w_region.sum()) <= 0:
                        # A mask emptied by resizing cannot happen for a non-empty mask, but an
                        # empty input mask can: fall back to the whole crop rather than NaNs.
                        w_region = torch.from_numpy(mask_to_grid(np.ones_like(m), batch.placements[i], spec, grid))
                    parts.append(_l2((fmap * w_region).sum((1, 2)) / w_region.sum()))
                    if self.config.with_context:
                        w_all = torch.from_numpy(mask_to_grid(np.ones_like(m), batch.placements[i], spec, grid))
                        parts.append(_l2((fmap * w_all).sum((1, 2)) / w_all.sum()))
                out.append(_l2(torch.cat(parts)))
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return torch.stack(out).numpy().astype(np.float32)

    @property
    def dim(self) -> int:
        """Length of a region vector."""
        if self.vectors.size:
            return int(self.vectors.shape[1])
        return sum(self.encoder.channels) * (2 if self.config.with_context else 1)

    # ---------------------------------------------------------------------- fit
    def fit(self, examples: Sequence[Example], progress: Progress | None = None) -> FewShotClassifier:
        """Encode the examples and calibrate the unknown threshold and the confidence temperature.

        Unreadable example images are skipped with a note (in :attr:`notes`), never fatal,
        unless nothing is left.
        """
        self.notes = []
        vectors, labels = [], []
        names = sorted({e.defect_type for e in examples})
        for e in examples:
            try:
                image = load_image(e.path)
                h, w = image.shape[:2]
                mask = load_mask(e.mask_path, expected_size=(w, h)) if e.mask_path is not None else np.ones((h, w), bool)
            except Exception as exc:  # noqa: BLE001 - any unreadable example is skipped and reported
                self.notes.append(f"example {e.path} skipped: {exc}")
                continue
            if not mask.any():
                self.notes.append(f"example {e.path} skipped: its mask {e.mask_path} is empty")
                continue
            vectors.append(self.embed(image, [mask])[0])
            labels.append(names.index(e.defect_type))
            if progress:
                progress(1)
        if not vectors:
            raise DatasetLayoutError("none of the examples could be read", None, "check the example images and masks")
        return self.fit_vectors(np.stack(vectors), np.asarray(labels), names)

    def fit_vectors(self, vectors: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> FewShotClassifier:
        """Fit on precomputed region vectors (what :meth:`fit` does after encoding)."""
        self.class_names = list(class_names)
        self.vectors = vectors.astype(np.float32)
        self.labels = labels.astype(np.int64)
        present = set(self.labels.tolist())
        dropped = [n for i, n in enumerate(self.class_names) if i not in present]
        if dropped:
            self.notes.append(f"type(s) {', '.join(dropped)} have no usable example and can never be predicted")
        self._calibrate()
        return self

    def _calibrate(self) -> None:
        sims = self.vectors @ self.vectors.T
        np.fill_diagonal(sims, -np.inf)
        n = len(self.vectors)
        if n < 2:
            self.unknown_distance = 2.0
            self.notes.append("one example only: 'unknown' is never predicted")
            return
        # Leave-one-out: how far is each example from the nearest *other* example of its own type?
        # That spread is what "still this type" looks like; beyond it (with a margin) is unknown.
        own = []
        for i in range(n):
            same = self.labels == self.labels[i]
            same[i] = False
            if same.any():
                own.append(1.0 - float(sims[i, same].max()))
        if not own:
            # k=1: no within-type distances; the nearest other example (any type) bounds them.
            own = [1.0 - float(sims[i].max()) for i in range(n)]
        q = float(np.quantile(own, self.config.unknown_quantile))
        self.unknown_distance = min(2.0, q * self.config.unknown_margin)
        # Temperature: maximise the leave-one-out likelihood of the true type (needs >= 2 per type).
        loo_scores = np.stack([self._type_scores(sims[i], exclude=i) for i in range(n)])
        valid = np.isfinite(loo_scores[np.arange(n), self.labels])
        if valid.sum() >= 2 and len(self.class_names) > 1:
            s, y = loo_scores[valid], self.labels[valid]
            s = np.where(np.isfinite(s), s, -1.0)

            def nll(log_t: float) -> float:
                p = _softmax(s / math.exp(log_t))
                return -float(np.log(p[np.arange(len(y)), y] + 1e-12).mean())

            res = minimize_scalar(nll, bounds=(math.log(0.005), math.log(1.0)), method="bounded")
            self.temperature = float(math.exp(res.x))

    def _type_scores(self, sims_row: np.ndarray, exclude: int | None = None) -> np.ndarray:
        """Per-type similarity of one query (given its similarities to every example)."""
        scores = np.full(len(self.class_names), -np.inf, np.float64)
        for c in range(len(self.class_names)):
            idx = np.flatnonzero(self.labels == c)
            if exclude is not None:
                idx = idx[idx != exclude]
            if len(idx) == 0:
                continue
            if self.config.scoring == "prototype":
                # Cosine to the normalised class mean = mean similarity / |mean vector|.
                scores[c] = float(sims_row[idx].mean() / max(float(np.linalg.norm(self.vectors[idx].mean(0))), 1e-12))
            else:
                top = np.sort(sims_row[idx])[::-1][: self.config.neighbours]
                scores[c] = float(top.mean())
        return scores

    # ----------------------------------------------------------------- classify
    def _require_fitted(self) -> None:
        if not len(self.vectors):
            raise ModelFileError("the few-shot classifier has no examples", None, "call fit() or load() first")

    def classify_vectors(self, vectors: np.ndarray, region_indices: Sequence[int] | None = None) -> list[RegionType]:
        """Types for precomputed region vectors."""
        self._require_fitted()
        indices = list(region_indices) if region_indices is not None else list(range(1, len(vectors) + 1))
        sims = vectors @ self.vectors.T
        out = []
        for idx, row in zip(indices, sims, strict=True):
            scores = self._type_scores(row)
            finite = np.isfinite(scores)
            probs = np.zeros_like(scores)
            probs[finite] = _softmax(scores[finite] / self.temperature)
            order = np.argsort(-probs)
            best = int(order[0])
            distance = 1.0 - float(row.max())
            name = self.class_names[best] if distance <= self.unknown_distance else UNKNOWN
            out.append(
                RegionType(
                    region_index=int(idx),
                    defect_type=name,
                    confidence=float(probs[best]) if name != UNKNOWN else float(1.0 - probs[best]),
                    method="few-shot",
                    candidates=tuple((self.class_names[i], float(probs[i])) for i in order),
                )
            )
        return out

    def classify(
        self, image: np.ndarray, masks: Sequence[np.ndarray] | Mapping[int, np.ndarray]
    ) -> list[RegionType]:
        """Type of each region of ``image``; ``masks`` is a list (indices 1..R) or {region index: mask}."""
        self._require_fitted()
        items = list(masks.items()) if isinstance(masks, Mapping) else list(enumerate(masks, start=1))
        items = [(i, np.asarray(m, bool)) for i, m in items]
        for i, m in items:
            if m.shape != image.shape[:2]:
                raise ValueError(f"mask of region {i} has shape {m.shape}, image is {image.shape[:2]}")
        if not items:
            return []
        vectors = self.embed(image, [m for _, m in items])
        if vectors.shape[1] != self.vectors.shape[1]:
            raise ModelFileError(
                f"region vectors have {vectors.shape[1]} values but the model's examples have {self.vectors.shape[1]}",
                None,
                "the saved model was built with another encoder; re-fit it",
            )
        return self.classify_vectors(vectors, [i for i, _ in items])

    def classify_inspection(self, image: np.ndarray, inspection: Inspection) -> Classification:
        """Types of every region of an :class:`Inspection` (image = the inspected RGB array)."""
        result = Classification()
        if not inspection.regions:
            return result
        masks = region_masks(inspection)
        missing = [r.index for r in inspection.regions if r.index not in masks or not masks[r.index].any()]
        if missing:
            result.notes.append(f"region(s) {missing} have no pixels in the mask; not classified")
        masks = {i: m for i, m in masks.items() if i not in missing}
        result.region_types = self.classify(image, masks)
        return result

    # ------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``fewshot.safetensors`` (example vectors, labels) and ``fewshot.json`` (the rest)."""
        from safetensors.numpy import save_file

        self._require_fitted()
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        # safetensors has no atomic mode: write beside and rename (same folder, same filesystem).
        tmp = out / f".{TENSORS_FILE}.tmp"
        save_file({"vectors": self.vectors, "labels": self.labels}, str(tmp))
        tmp.replace(out / TENSORS_FILE)
        write_json_atomic(
            out / CONFIG_FILE,
            {
                "format": "defectlens-fewshot",
                "version": FORMAT_VERSION,
                "config": self.config.to_json(),
                "class_names": self.class_names,
                "dim": int(self.vectors.shape[1]),
                "n_examples": len(self.vectors),
                "unknown_distance": self.unknown_distance,
                "temperature": self.temperature,
            },
        )
        return out

    @classmethod
    def load(cls, directory: str | Path) -> FewShotClassifier:
        """Read a classifier written by :meth:`save`; any mismatch is a :class:`ModelFileError`."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        base = Path(directory)
        meta_path, tensor_path = base / CONFIG_FILE, base / TENSORS_FILE
        fix = "re-fit the few-shot classifier and save it again"
        for p in (meta_path, tensor_path):
            if not p.is_file():
                raise ModelFileError("file missing", p, fix)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            config = FewShotConfig.from_json(meta["config"])
            names = [str(n) for n in meta["class_names"]]
            dim, n_ex = int(meta["dim"]), int(meta["n_examples"])
            unknown_distance, temperature = float(meta["unknown_distance"]), float(meta["temperature"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"corrupt metadata ({exc.__class__.__name__}: {exc})", meta_path, fix) from None
        if meta.get("format") != "defectlens-fewshot" or meta.get("version") != FORMAT_VERSION:
            raise ModelFileError(
                f"not a version-{FORMAT_VERSION} few-shot model (format={meta.get('format')!r}, version={meta.get('version')!r})",
                meta_path,
                fix,
            )
        try:
            tensors = load_file(str(tensor_path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelFileError(f"corrupt tensor file ({exc.__class__.__name__})", tensor_path, fix) from None
        vectors, labels = tensors.get("vectors"), tensors.get("labels")
        if vectors is None or labels is None or vectors.shape != (n_ex, dim) or labels.shape != (n_ex,):
            raise ModelFileError(
                f"tensors do not match the metadata (expected vectors {(n_ex, dim)})", tensor_path, fix
            )
        if n_ex and (labels.min() < 0 or labels.max() >= len(names)):
            raise ModelFileError("example labels refer to unknown types", tensor_path, fix)
        clf = cls(config)
        clf.class_names, clf.vectors, clf.labels = names, vectors.astype(np.float32), labels.astype(np.int64)
        clf.unknown_distance, clf.temperature = unknown_distance, temperature
        return clf
