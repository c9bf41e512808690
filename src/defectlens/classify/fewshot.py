"""Few-shot defect-type classification from a handful of labelled examples per type.

Each region is described by one vector: the region (with some surrounding context) is cropped
from the original image as a square, encoded at a fixed resolution, and the feature maps of
several backbone stages are averaged inside the region mask (and, separately, over the whole
crop for context). Each pooled piece is L2-normalised before concatenation so that no stage
or piece dominates by sheer channel count or activation scale.

Cropping matters: a 0.1% blowhole on a 600 px tile covers less than one feature cell when the
whole image is squeezed onto a 256 px canvas, but fills a good part of a crop around it.

A region gets the type of its nearest examples (cosine similarity; k-nearest-neighbour or
class prototypes), and ``unknown`` when even its nearest example is farther than the examples
themselves are from each other (a leave-one-out distance quantile). Its confidence is a softmax
over the types and 'unknown', scored at that boundary: a region on it is as likely unknown as
its type (among the types alone, a classifier of one type was 100 % sure of every region).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.special import softmax

from defectlens.classify.examples import Example, region_views
from defectlens.classify.regions import Classification, region_masks
from defectlens.encode import CanvasSpec, EncoderConfig, PatchEncoder, mask_to_grid
from defectlens.errors import DatasetLayoutError, ModelFileError
from defectlens.io import load_image, load_mask, mask_as_drawn, read_image
from defectlens.io.atomic import read_model_json, read_model_tensors, write_model_files
from defectlens.taxonomy import UNKNOWN
from defectlens.types import Inspection, RegionType

FORMAT = "defectlens.fewshot"
# 2: the io helpers' descriptor keys (format, format_version) and a FitSummary on fit.
FORMAT_VERSION = 2
CONFIG_FILE = "fewshot.json"
TENSORS_FILE = "fewshot.safetensors"
Progress = Callable[[int], None]


@dataclass(frozen=True)
class FewShotFitSummary:
    """What :meth:`FewShotClassifier.fit` did (the fitted state lives on the classifier)."""

    n_examples: int
    """Example regions encoded and kept."""
    n_skipped: int
    """Examples that could not be read or had an empty mask (each named in ``notes``)."""
    class_names: tuple[str, ...]
    unknown_distance: float
    temperature: float
    seconds: float
    notes: tuple[str, ...] = ()


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


def _rgb(image: object, source: str = "<array>") -> np.ndarray:
    """``image`` through the gate every inspected image passes (decoded when a path). An (H, W, 3)
    uint8 array is what the gate gives: it passes as it is (the gate's warnings, an extreme
    aspect say, were given when it was decoded)."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return image
    return read_image(image, source)


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
        self.groups = np.zeros((0,), np.int64)
        """(N,) example each vector belongs to (an example's views share it); read by calibration."""
        self.unknown_distance = 2.0
        """Cosine distance (1 - similarity) above which a region is 'unknown'."""
        self.temperature = 0.05
        """Softmax temperature on similarities, fitted by leave-one-out likelihood when possible."""
        self.notes: list[str] = []

    def __repr__(self) -> str:
        examples = len(set(self.groups.tolist()))
        return f"FewShotClassifier(types={self.class_names!r}, {examples} examples, {len(self.vectors)} vectors, backbone={self.config.backbone!r})"

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
                    parts.append(F.normalize((fmap * w_region).sum((1, 2)) / w_region.sum(), dim=-1))
                    if self.config.with_context:
                        w_all = torch.from_numpy(mask_to_grid(np.ones_like(m), batch.placements[i], spec, grid))
                        parts.append(F.normalize((fmap * w_all).sum((1, 2)) / w_all.sum(), dim=-1))
                out.append(F.normalize(torch.cat(parts), dim=-1))
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
    def fit(self, examples: Sequence[Example], progress: Progress | None = None, bit_depth: int | None = None) -> FewShotFitSummary:
        """Encode the examples and calibrate the unknown threshold and the confidence temperature (pixels deeper than
        8 bits read at ``bit_depth``: the model's, as the images it inspects are read).

        Unreadable example images are skipped with a note (in :attr:`notes`), never fatal,
        unless nothing is left. An example's :attr:`~Example.views` are encoded beside its mask
        and count as the same example when the threshold and temperature are calibrated. The
        classifier is fitted in place; the summary says what was done.
        """
        start = time.perf_counter()
        self.notes = []
        vectors: list[np.ndarray] = []
        labels: list[int] = []
        groups: list[int] = []  # the example each vector is of (an example's views share it)
        names = sorted({e.defect_type for e in examples})
        for e in examples:
            try:
                image = load_image(e.path, bit_depth)
                h, w = image.shape[:2]
                if e.mask is not None and e.mask.shape == (h, w):
                    mask = e.mask
                else:
                    mask = load_mask(e.mask_path, expected_size=(w, h)) if e.mask_path is not None else np.ones((h, w), bool)
            except Exception as exc:  # noqa: BLE001 - any unreadable example is skipped and reported
                self.notes.append(f"example {e.path} skipped: {exc}")
                continue
            if not mask.any():
                self.notes.append(f"example {e.path} skipped: its mask {e.mask_path} is empty")
                continue
            views = [v for v in e.views if v.shape == mask.shape and v.any()]
            embedded = self.embed(image, [mask, *views])
            vectors.extend(embedded)
            labels.extend([names.index(e.defect_type)] * len(embedded))
            groups.extend([groups[-1] + 1 if groups else 0] * len(embedded))
            if progress:
                progress(1)
        if not vectors:
            raise DatasetLayoutError("none of the examples could be read", None, "check the example images and masks")
        notes = list(self.notes)
        summary = self.fit_vectors(np.stack(vectors), np.asarray(labels), names, np.asarray(groups))
        self.notes = notes + self.notes
        n_kept = groups[-1] + 1
        return FewShotFitSummary(
            n_kept, len(examples) - n_kept, summary.class_names, summary.unknown_distance, summary.temperature,
            time.perf_counter() - start, tuple(self.notes),
        )

    def fit_vectors(
        self, vectors: np.ndarray, labels: np.ndarray, class_names: Sequence[str], groups: np.ndarray | None = None
    ) -> FewShotFitSummary:
        """Fit on precomputed region vectors (what :meth:`fit` does after encoding). ``groups``
        (one integer per vector) marks vectors of one example (its views): leave-one-out
        calibration leaves the whole group out; by default every vector is its own example."""
        start = time.perf_counter()
        self.notes = []
        self.class_names = list(class_names)
        self.vectors = vectors.astype(np.float32)
        self.labels = labels.astype(np.int64)
        self.groups = np.arange(len(self.vectors)) if groups is None else np.asarray(groups, np.int64)
        if self.groups.shape != self.labels.shape:
            raise ValueError(f"groups has shape {self.groups.shape}, labels {self.labels.shape}")
        present = set(self.labels.tolist())
        dropped = [n for i, n in enumerate(self.class_names) if i not in present]
        if dropped:
            self.notes.append(f"type(s) {', '.join(dropped)} have no usable example and can never be predicted")
        self._calibrate()
        return FewShotFitSummary(
            len(self.vectors), 0, tuple(self.class_names), self.unknown_distance, self.temperature,
            time.perf_counter() - start, tuple(self.notes),
        )

    def _calibrate(self) -> None:
        sims = self.vectors @ self.vectors.T
        n = len(self.vectors)
        if len(set(self.groups.tolist())) < 2:
            self.unknown_distance = 2.0
            self.notes.append("one example only: 'unknown' is never predicted")
            return
        # Leave-one-out (one example, with its views, at a time): how far is each example from the
        # nearest *other* example of its own type? That spread is what "still this type" looks
        # like; beyond it (with a margin) is unknown.
        own = []
        for i in range(n):
            same = (self.labels == self.labels[i]) & (self.groups != self.groups[i])
            if same.any():
                own.append(1.0 - float(sims[i, same].max()))
        if not own:
            # k=1: no within-type distances; the nearest other example (any type) bounds them.
            own = [1.0 - float(sims[i, self.groups != self.groups[i]].max()) for i in range(n)]
        q = float(np.quantile(own, self.config.unknown_quantile))
        self.unknown_distance = min(2.0, q * self.config.unknown_margin)
        # Temperature: maximise the leave-one-out likelihood of the true type (needs >= 2 per type).
        loo_scores = np.stack([self._type_scores(sims[i], exclude=i) for i in range(n)])
        valid = np.isfinite(loo_scores[np.arange(n), self.labels])
        if valid.sum() >= 2 and len(self.class_names) > 1:
            s, y = loo_scores[valid], self.labels[valid]
            s = np.where(np.isfinite(s), s, -1.0)

            # Imported here: only fitting needs it, and scipy.optimize costs every process that
            # inspects (each Ray worker, each CLI start) a quarter of a second to import.
            from scipy.optimize import minimize_scalar

            def nll(log_t: float) -> float:
                p = softmax(s / math.exp(log_t), axis=-1)
                return -float(np.log(p[np.arange(len(y)), y] + 1e-12).mean())

            res = minimize_scalar(nll, bounds=(math.log(0.005), math.log(1.0)), method="bounded")
            self.temperature = float(math.exp(res.x))
            if note := self._separation_note(loo_scores, valid):
                self.notes.append(note)

    def _separation_note(self, loo_scores: np.ndarray, valid: np.ndarray) -> str | None:
        """What to say when the examples, each typed by the others (its views averaged), are typed right under half the
        time, or no more often than chance would give one time in twenty; None otherwise. Fourteen reviewed magnetic-tile
        examples (6 of 14 typed right so) had typed every region at 20-24 % confidence, chance among five types, with
        nothing said (review-loop probe 2026-12-06); 5 masked ones per type from the dataset: 20 of 25."""
        from scipy.stats import binom  # fitting only, as scipy.optimize above

        right = n = 0
        types: set[int] = set()
        for group in np.unique(self.groups[valid]):
            rows = valid & (self.groups == group)
            scores = np.where(np.isfinite(loo_scores[rows]), loo_scores[rows], -1.0).mean(axis=0)
            types.add(int(self.labels[rows][0]))
            right += int(np.argmax(scores) == self.labels[rows][0])
            n += 1
        # Among the types with an example to type by: the types left without one had counted too (regression probe 2026-12-06).
        chance = 1.0 / max(len(types), 1)
        guessed = right <= binom.ppf(0.95, n, chance)
        if n < 4 or (not guessed and 2 * right >= n):
            return None
        # Said as what it is, not "poorly ... about as often wrong" (8 of 11 right, regression probe).
        how = "no more often than guessing could" if guessed else "under half the time"
        return (f"the examples tell the types apart {how}: each typed by the others, {right} of {n} got their own type (guessing among "
                f"{len(types)} types gets {chance:.0%}); expect many regions' types wrong — add examples, or check their labels and masks")

    def _type_scores(self, sims_row: np.ndarray, exclude: int | None = None) -> np.ndarray:
        """Per-type similarity of one query (given its similarities to every example vector);
        ``exclude``: a vector whose whole example (its group) is left out."""
        scores = np.full(len(self.class_names), -np.inf, np.float64)
        for c in range(len(self.class_names)):
            idx = np.flatnonzero(self.labels == c)
            if exclude is not None:
                idx = idx[self.groups[idx] != self.groups[exclude]]
            if len(idx) == 0:
                continue
            if self.config.scoring == "prototype":
                # Cosine to the normalised class mean = mean similarity / |mean vector|.
                scores[c] = float(sims_row[idx].mean() / max(float(np.linalg.norm(self.vectors[idx].mean(0))), 1e-12))
            else:
                top = np.sort(sims_row[idx])[::-1][: self.config.neighbours]
                scores[c] = float(top.mean())
        return scores

    def examples_per_type(self) -> dict[str, int]:
        """How many examples (each with its views) the classifier learnt each type from."""
        return {name: len(set(self.groups[self.labels == c].tolist())) for c, name in enumerate(self.class_names)}

    # ----------------------------------------------------------------- classify
    def _require_fitted(self) -> None:
        if not len(self.vectors):
            raise ModelFileError("the few-shot classifier has no examples", None, "call fit() or load() first")

    def classify_vectors(self, vectors: np.ndarray, region_indices: Sequence[int] | None = None) -> list[RegionType]:
        """Types for precomputed region vectors, one per distinct region index (in first-seen order).

        Rows that share an index are views of one region (:func:`~defectlens.classify.examples.region_views`):
        its type probabilities are their mean, and it is ``unknown`` only when every view is farther
        than :attr:`unknown_distance` from every example."""
        self._require_fitted()
        indices = list(region_indices) if region_indices is not None else list(range(1, len(vectors) + 1))
        if len(indices) != len(vectors):
            raise ValueError(f"{len(vectors)} vectors but {len(indices)} region indices")
        sims = vectors @ self.vectors.T
        rows_of: dict[int, list[int]] = {}
        for row, idx in enumerate(indices):
            rows_of.setdefault(int(idx), []).append(row)
        out = []
        for idx, rows in rows_of.items():
            scores = [self._type_scores(sims[r]) for r in rows]
            probs = np.mean([self._softmax(s) for s in scores], axis=0)
            order = np.argsort(-probs)
            best = int(order[0])
            distance = 1.0 - float(sims[rows].max())
            name = self.class_names[best] if distance <= self.unknown_distance else UNKNOWN
            # The confidence weighs the named type against 'unknown' too, scored at the similarity
            # where a region turns unknown (on that boundary a region is as likely either): among the
            # types alone, a classifier of one type said 100 % on every region, false alarms included.
            beside_unknown = np.mean([self._softmax(np.append(s, 1.0 - self.unknown_distance)) for s in scores], axis=0)
            out.append(
                RegionType(
                    region_index=idx,
                    defect_type=name,
                    confidence=float(beside_unknown[best]) if name != UNKNOWN else float(beside_unknown[-1]),
                    method="few-shot",
                    candidates=tuple((self.class_names[i], float(probs[i])) for i in order),
                )
            )
        return out

    def _softmax(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities from per-type scores (softmax at :attr:`temperature`; 0 for a type with no example)."""
        finite = np.isfinite(scores)
        probs = np.zeros_like(scores)
        probs[finite] = softmax(scores[finite] / self.temperature)
        return probs

    def classify(
        self,
        image: np.ndarray | Image.Image | str | Path,
        masks: Sequence[np.ndarray | str | os.PathLike[str]] | Mapping[int, np.ndarray | str | os.PathLike[str]],
    ) -> list[RegionType]:
        """Type of each region of ``image`` (an array, a Pillow image or a path, checked as the
        Inspector checks them); ``masks`` is a list (indices 1..R) or {region index: mask}, each an array or a mask file,
        read as drawn (:func:`~defectlens.io.mask_as_drawn`)."""
        if isinstance(masks, str | bytes | os.PathLike):
            # Iterated, a path's characters were read as mask files ("/: is a folder"; regression probe 2026-12-06).
            raise TypeError(f"masks must be a list of region masks (or {{index: mask}}), got one path {str(masks)!r}: wrap it in a list")
        if isinstance(masks, np.ndarray) and masks.ndim == 2:
            # Iterated, one mask's rows were read as masks ("mask of region 1 has shape (248,)"; API probe 2026-12-06).
            raise TypeError(f"masks must be a list of region masks (or {{index: mask}}), got one array of shape {masks.shape}: "
                            "wrap it in a list")
        given = list(masks.items()) if isinstance(masks, Mapping) else list(enumerate(masks, start=1))
        rgb = _rgb(image)
        # Read as drawn, as Inspector.calibrate reads masks, arrays or mask files (an anti-aliased edge had counted as region);
        # an empty one is no region (it had been typed as the whole image, without a word).
        size = (rgb.shape[1], rgb.shape[0])
        items = [(i, load_mask(Path(m), size) if isinstance(m, str | os.PathLike) else mask_as_drawn(m, f"mask of region {i}")) for i, m in given]
        if empty := [i for i, m in items if not m.any()]:
            raise ValueError(f"mask of region {empty[0]} marks no pixel: pass masks that mark each region")
        return self._classify_masks(rgb, items)

    def _classify_masks(self, image: np.ndarray, items: Sequence[tuple[int, np.ndarray]]) -> list[RegionType]:
        """Types of (region index, mask) pairs of ``image``; pairs that share an index are views of one region."""
        self._require_fitted()
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

    def classify_inspection(self, image: np.ndarray | Image.Image | str | Path, inspection: Inspection) -> Classification:
        """Types of every region of an :class:`Inspection` (image = the inspected RGB array).

        Each region is read as its examples were located (:func:`~defectlens.classify.examples.region_views`
        on the inspection's map: cut around its peak, other cuts, contrast view), the types'
        probabilities averaged over those views. ``image`` may also be a Pillow image or a path."""
        result = Classification()
        if not inspection.regions:
            return result
        image = _rgb(image, inspection.source)
        if (image.shape[1], image.shape[0]) != tuple(inspection.image_size):
            width, height = inspection.image_size
            raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} but the inspection is of a {width}x{height} image: pass that image")
        masks = region_masks(inspection)
        missing = [r.index for r in inspection.regions if r.index not in masks or not masks[r.index].any()]
        if missing:
            result.notes.append(f"region(s) {missing} have no pixels in the mask; not classified")
        masks = {i: m for i, m in masks.items() if i not in missing}
        items: list[tuple[int, np.ndarray]] = []
        for i, mask in masks.items():
            views: tuple[np.ndarray, ...] = (mask,)
            if inspection.thresholds is not None and inspection.anomaly_map.shape == mask.shape:
                views = region_views(inspection.anomaly_map, mask, inspection.thresholds.pixel, image)
            items.extend((i, v) for v in views)
        result.region_types = self._classify_masks(image, items)
        return result

    # ------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``fewshot.safetensors`` (example vectors, labels) and ``fewshot.json`` (the rest), atomically."""
        self._require_fitted()
        config = {
            "config": self.config.to_json(),
            "class_names": self.class_names,
            "dim": int(self.vectors.shape[1]),
            "n_examples": len(self.vectors),
            "unknown_distance": self.unknown_distance,
            "temperature": self.temperature,
        }
        tensors = {"vectors": self.vectors, "labels": self.labels}
        return write_model_files(directory, TENSORS_FILE, tensors, CONFIG_FILE, config, FORMAT, FORMAT_VERSION)

    @classmethod
    def load(cls, directory: str | Path) -> FewShotClassifier:
        """Read a classifier written by :meth:`save`; any mismatch is a :class:`ModelFileError`."""
        base = Path(directory)
        meta_path, tensor_path = base / CONFIG_FILE, base / TENSORS_FILE
        fix = "re-fit the few-shot classifier and save it again"
        meta = read_model_json(base, CONFIG_FILE, FORMAT, FORMAT_VERSION, "few-shot classifier", "FewShotClassifier.save")
        try:
            config = FewShotConfig.from_json(meta["config"])
            names = [str(n) for n in meta["class_names"]]
            dim, n_ex = int(meta["dim"]), int(meta["n_examples"])
            unknown_distance, temperature = float(meta["unknown_distance"]), float(meta["temperature"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"corrupt metadata ({exc.__class__.__name__}: {exc})", meta_path, fix) from None
        tensors = read_model_tensors(tensor_path, "few-shot tensor file", fix, arrays=True)
        vectors, labels = tensors.get("vectors"), tensors.get("labels")
        if vectors is None or labels is None or vectors.shape != (n_ex, dim) or labels.shape != (n_ex,):
            raise ModelFileError(f"tensors do not match the metadata (expected vectors {(n_ex, dim)})", tensor_path, fix)
        if n_ex and (labels.min() < 0 or labels.max() >= len(names)):
            raise ModelFileError("example labels refer to unknown types", tensor_path, fix)
        clf = cls(config)
        clf.class_names, clf.vectors, clf.labels = names, vectors.astype(np.float32), labels.astype(np.int64)
        clf.groups = np.arange(n_ex)  # only calibration reads groups, and that was done at fit
        clf.unknown_distance, clf.temperature = unknown_distance, temperature
        return clf
