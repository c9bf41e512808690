"""Anomaly maps: the one smoothing and the one image score every detector uses.

A patch's anomaly value is noisy and a defect covers an area, so maps are smoothed with a
Gaussian before anything reads them, and an image's score is the mean of its map's top share
of pixels rather than the single hottest pixel. Both live here so the memory bank and the
grounding model (and any later detector) agree on what "smoothed" and "score" mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from defectlens.detect.calibration import subsample
from defectlens.encode import CanvasSpec, EncodedBatch, Placement, footprint_grid, map_to_original
from defectlens.types import AnomalyResult


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of radius ``ceil(3 sigma)`` (at least 1)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def smooth_maps(maps: torch.Tensor, sigma: float, kernel: torch.Tensor | None = None) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W) maps; ``sigma <= 0`` returns them unchanged.

    Borders are replicate-padded so they are not pulled towards zero (a defect at the edge
    of the image keeps its height). ``kernel`` lets a caller reuse :func:`gaussian_kernel`.
    """
    if sigma <= 0:
        return maps
    k = gaussian_kernel(sigma) if kernel is None else kernel
    r = k.numel() // 2
    x = F.conv2d(F.pad(maps, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return _blur_columns(x, k)


def _blur_columns(maps: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """The vertical pass of :func:`smooth_maps`: (N, 1, H, W) maps blurred down each column."""
    r = kernel.numel() // 2
    return F.conv2d(F.pad(maps, (0, 0, r, r), mode="replicate"), kernel.view(1, 1, -1, 1))


def smooth_map(anomaly_map: np.ndarray, sigma: float) -> np.ndarray:
    """:func:`smooth_maps` for one (H, W) numpy map; returns float32."""
    maps = torch.from_numpy(np.ascontiguousarray(anomaly_map, dtype=np.float32))[None, None]
    return smooth_maps(maps, sigma)[0, 0].numpy()


WORKING_PIXELS = 1 << 18
"""Most pixels of a map that the image score, the thresholds and the pixel metrics read
(262 144, e.g. 512 x 512; see :func:`working_view`). Every shared category's images are smaller
(the largest, commutator's, 0.16 M pixels), so for them every pixel is read."""


def working_stride(shape: tuple[int, ...], limit: int = WORKING_PIXELS) -> int:
    """The stride :func:`working_view` reads a map of ``shape`` at: 1 up to ``limit`` pixels, else
    the smallest stride that brings the lattice under it."""
    limit = max(1, int(limit))
    size = math.prod(shape)
    if len(shape) != 2 or size <= limit:
        return 1
    stride = math.ceil(math.sqrt(size / limit))
    while math.ceil(shape[0] / stride) * math.ceil(shape[1] / stride) > limit:
        stride += 1  # ceil division can leave a row or column more than the square root allows
    return stride


def working_view(anomaly_map: np.ndarray, limit: int = WORKING_PIXELS) -> np.ndarray:
    """The map, or, when it has more than ``limit`` pixels (:data:`WORKING_PIXELS`), every ``s``-th
    pixel of it along both axes (a view; ``s`` from :func:`working_stride`).

    A map is made on the canvas (about ``image_size``² pixels) and only then resized to the
    image's own size, so a large image's map holds no more detail than a small one's: its top 1 %
    and its quantiles are read as well from a lattice of its pixels. Reading all of them made a
    1.4 M-pixel part cost 4.3 GiB to fit (every calibration map held whole) and 2.7 GiB to
    evaluate. Masks are thinned the same way (the same shape gives the same stride), after their
    regions are found on the whole mask (``PixelAccumulator.add``'s ``stride``)."""
    a = np.asarray(anomaly_map)
    stride = working_stride(a.shape, limit)
    return a if stride == 1 else a[::stride, ::stride]


def for_calibration(result: AnomalyResult) -> AnomalyResult:
    """``result`` with its map cut to its :func:`working_view` (a copy: the whole map can be
    freed), which is all a calibration reads of it. Calibrating detectors keep every normal
    image's result until the thresholds are set; whole maps of large images would not fit."""
    thin = working_view(result.anomaly_map)
    if thin.size == np.size(result.anomaly_map):
        return result
    return replace(result, anomaly_map=np.ascontiguousarray(thin))


def image_score(anomaly_map: np.ndarray, top_fraction: float) -> float:
    """Mean of the highest ``top_fraction`` of the map's values (``round``, at least one
    pixel) in its :func:`working_view`; the maximum when ``top_fraction`` is 0."""
    values = working_view(anomaly_map).ravel()
    k = max(1, round(values.size * top_fraction))
    if k == 1:
        return float(values.max())
    return float(np.partition(values, values.size - k)[values.size - k :].mean())


@lru_cache(maxsize=32)
def upsample_smooth_operator(n_cells: int, n_pixels: int, sigma: float) -> torch.Tensor:
    """(n_pixels, n_cells) matrix of bilinear upsampling (``align_corners=False``) followed by
    :func:`smooth_maps`' Gaussian, along one axis.

    Both steps are linear and act on rows and columns separately, so a map is
    ``rows @ grid @ cols.T``: the same values as upsampling the grid and blurring the canvas
    (up to float rounding), built here by passing the unit vectors through those very steps.
    Two small matrix products replace two 25-tap convolutions over every canvas pixel: in
    ``benchmarks/throughput.py`` the maps stage fell from 2.8-6.0 to 0.6-0.9 ms an image."""
    basis = torch.eye(n_cells, dtype=torch.float32).view(n_cells, 1, n_cells, 1)
    up = F.interpolate(basis, size=(n_pixels, 1), mode="bilinear", align_corners=False)
    if sigma > 0:
        up = _blur_columns(up, gaussian_kernel(sigma))
    return up[:, 0, :, 0].T.contiguous()


def grid_to_results(
    grid_values: torch.Tensor,
    encoded: EncodedBatch,
    sigma: float,
    top_fraction: float | None,
    relative: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[AnomalyResult]:
    """Turn (N, h, w) cell values of ``encoded``'s images into results: upsampled to the canvas,
    smoothed, cropped to each image's footprint and resized to its original size, then passed
    through ``relative`` (e.g. :meth:`PositionNormaliser.apply`) before the image is scored
    (:func:`image_score`; ``top_fraction`` None: not scored, the score is NaN)."""
    spec = encoded.canvas
    h, w = int(grid_values.shape[-2]), int(grid_values.shape[-1])
    rows = upsample_smooth_operator(h, spec.height, float(sigma))
    cols = upsample_smooth_operator(w, spec.width, float(sigma))
    canvas_maps = rows @ grid_values.float() @ cols.T
    results = []
    for cmap, placement in zip(canvas_maps, encoded.placements, strict=True):
        full = map_to_original(cmap, placement)
        if relative is not None:
            full = relative(full)
        score = float("nan") if top_fraction is None else image_score(full, top_fraction)
        results.append(AnomalyResult(score=score, anomaly_map=full))
    return results


POSITION_GRID = 64
"""Side of the image-relative grid on which the normal maps' statistics per position are kept."""
POSITION_PRIOR_IMAGES = 50.0
"""Weight, in images, of the whole map's statistics in each position's (see
:meth:`PositionNormaliser.from_maps`). From the detector study: with none, cookie (31 normal
images) lost 0.022 image AUROC and 0.10 AUPRO; with 50 it lost 0.005 and 0.023 while the
categories with 170-600 images kept most of their gain."""
RESAMPLED_SHAPES_KEPT = 4
"""Map shapes whose resampled position statistics a :class:`PositionNormaliser` keeps (at most
8 MB each for a megapixel image)."""
POSITION_MODES = ("none", "mean", "z-score")
"""How a map is made relative to the normal maps at each position (see :class:`PositionNormaliser`)."""


@dataclass(frozen=True)
class PositionNormaliser:
    """Where on a part its normal images' maps run high, and how much they vary there.

    A memory bank's map runs hot wherever normal patches are rare: along a part's edges and in
    the image's corners, on every image, defect or not. Dividing each pixel's excess over the
    normal mean *at its position* by the normal spread there makes a value at the edge and one
    in the middle mean the same thing. Positions are relative to the image's own footprint
    (grid cell (i, j) of POSITION_GRID² covering it), so images of different sizes share them.
    Normalised maps are mapped back to distance-like units (the normal maps' overall mean and
    spread), so thresholds and overlays keep their scale.
    """

    mean: torch.Tensor
    """(G, G) mean normal map value per position."""
    spread: torch.Tensor
    """(G, G) standard deviation per position, floored (see :meth:`from_maps`)."""
    overall_mean: float
    overall_spread: float
    _at_shape: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, init=False, compare=False, repr=False)
    """(mean, spread) resampled to a map's shape, for the last few shapes seen: the parts of one
    line share a size, and resampling the two 64 x 64 grids took about 0.25 ms for each
    magnetic-tile map."""

    @classmethod
    def from_maps(
        cls,
        maps: Sequence[np.ndarray],
        grid: int = POSITION_GRID,
        prior_images: float = POSITION_PRIOR_IMAGES,
        robust: bool = False,
    ) -> PositionNormaliser:
        """Statistics of the maps (at least 2), each resampled to ``grid``².

        Each position's centre and spread are pulled towards the whole map's, with the weight of
        ``prior_images`` images against the n measured there: from a few dozen images a
        position's spread is noise, and dividing by it would invent alarms. The centre and
        spread are the mean and standard deviation of known-normal maps, or, with ``robust``,
        the median and 1.4826 × the median absolute deviation: for maps of unlabelled parts,
        of which many may be defective somewhere (batch scoring)."""
        if len(maps) < 2:
            raise ValueError("position statistics need the maps of at least 2 images")
        stack = torch.stack([_to_grid(m, grid) for m in maps]).double()
        if robust:
            centre = stack.median(dim=0).values
            deviation = MAD_TO_SIGMA * (stack - centre).abs().median(dim=0).values
            overall_mean = float(stack.median())
            overall_spread = max(MAD_TO_SIGMA * float((stack - overall_mean).abs().median()), 1e-6)
        else:
            centre, deviation = stack.mean(0), stack.std(0)
            overall_mean, overall_spread = float(stack.mean()), max(float(stack.std()), 1e-6)
        weight = len(maps) / (len(maps) + prior_images)
        mean = weight * centre + (1 - weight) * overall_mean
        # Spreads are pooled on a log scale: they multiply, and must stay positive.
        spread = torch.exp(weight * deviation.clamp_min(1e-6).log() + (1 - weight) * math.log(overall_spread))
        # A floor keeps a position where every image happened to agree from turning the
        # smallest deviation into an alarm.
        spread = spread.clamp_min(0.1 * float(spread.mean()))
        return cls(mean.float(), spread.float(), overall_mean, overall_spread)

    def apply(self, anomaly_map: np.ndarray, mode: str = "z-score") -> np.ndarray:
        """The map relative to the normal maps at each position, put back on distance units:
        'z-score' in units of the normal spread there, 'mean' only less the normal mean there."""
        mean, spread = self._resampled((int(anomaly_map.shape[0]), int(anomaly_map.shape[1])))
        excess = np.asarray(anomaly_map, np.float32) - mean
        if mode == "mean":
            return (excess + self.overall_mean).astype(np.float32, copy=False)
        if mode != "z-score":
            raise ValueError(f"unknown position normalisation {mode!r}; choose one of {', '.join(POSITION_MODES[1:])}")
        z = excess / spread
        return (z * self.overall_spread + self.overall_mean).astype(np.float32, copy=False)

    def _resampled(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        found = self._at_shape.get(shape)
        if found is None:
            found = (_from_grid(self.mean, shape), _from_grid(self.spread, shape))
            # A new dict replaces the old one, never changed in place: the service scores
            # images on several threads, and a reader must never see a dict being changed.
            kept = list(self._at_shape.items())[-(RESAMPLED_SHAPES_KEPT - 1) :]
            object.__setattr__(self, "_at_shape", {**dict(kept), shape: found})
        return found

    def tensors(self) -> dict[str, torch.Tensor]:
        """What is saved with a model (safetensors); :meth:`from_tensors` reads it back."""
        overall = torch.tensor([self.overall_mean, self.overall_spread], dtype=torch.float32)
        return {"position_mean": self.mean.contiguous(), "position_spread": self.spread.contiguous(), "position_overall": overall}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> PositionNormaliser | None:
        """The normaliser saved by :meth:`tensors`, or None when the model has none; ValueError
        when the saved tensors do not fit together."""
        if "position_mean" not in tensors:
            return None
        mean, spread, overall = tensors["position_mean"], tensors["position_spread"], tensors["position_overall"]
        if mean.ndim != 2 or mean.shape != spread.shape or overall.shape != (2,) or bool((spread <= 0).any()):
            raise ValueError(f"position statistics have shapes {tuple(mean.shape)}, {tuple(spread.shape)}, {tuple(overall.shape)}")
        return cls(mean.float(), spread.float(), float(overall[0]), float(overall[1]))


def _to_grid(anomaly_map: np.ndarray, grid: int) -> torch.Tensor:
    m = torch.from_numpy(np.ascontiguousarray(anomaly_map, dtype=np.float32))[None, None]
    return F.interpolate(m, size=(grid, grid), mode="area")[0, 0]


def _from_grid(values: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
    return F.interpolate(values[None, None], size=(int(shape[0]), int(shape[1])), mode="bilinear", align_corners=False)[0, 0].numpy()


@lru_cache(maxsize=256)
def _on_image(placement: Placement, spec: CanvasSpec, grid: tuple[int, int]) -> torch.Tensor:
    footprint = footprint_grid(placement, spec, grid)
    on = footprint > 0.5
    if not on.any():
        # An image squeezed thinner than half a cell (a 32:1 strip): the cells it covers most, not
        # none (a mean over no cell was NaN, and the frame check said "nan against a limit").
        on = footprint >= footprint.max()
    return torch.from_numpy(on)


def on_image_cells(batches: Iterable[EncodedBatch]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(features (C, h, w), on-image cells (h, w) bool) per image of encoded normal batches.

    Only cells that lie on the image train a detector: the mirrored border around an image
    placed on its canvas is not part of the part."""
    for encoded in batches:
        grid = (int(encoded.features.shape[-2]), int(encoded.features.shape[-1]))
        for feat, placement in zip(encoded.features, encoded.placements, strict=True):
            yield feat, _on_image(placement, encoded.canvas, grid)


MIN_BATCH = 8
"""Fewest images a batch-relative detector (the grounding batch cue, batch scoring) reads
together: below this a median and MAD, or a closest share of the others, say little."""
MAD_TO_SIGMA = 1.4826
"""Median absolute deviation -> standard deviation of a normal distribution."""


def robust_units(values: np.ndarray) -> tuple[float, float]:
    """Median and MAD-based spread of ``values`` (subsampled, seeded): the units of a batch in
    which most values are normal, whatever the few outliers do."""
    values = subsample(np.asarray(values, np.float64).ravel())
    median = float(np.median(values))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
    return median, max(spread, 1e-6)


def batch_relative_maps(maps: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each map in robust z-scores over all pixels of the batch (what batch-relative detectors report;
    the pixels of each map's :func:`working_view`: a batch of 48 large parts' every pixel in float64
    took 0.5 GB, and twice that to take its median)."""
    median, spread = robust_units(np.concatenate([np.asarray(working_view(m), np.float64).ravel() for m in maps]))
    return [((np.asarray(m, np.float32) - median) / spread).astype(np.float32) for m in maps]


def batch_relative_scores(scores: Sequence[float] | np.ndarray) -> list[float]:
    """Image scores in robust z-scores of the batch's image scores."""
    values = np.asarray(scores, np.float64)
    median, spread = robust_units(values)
    return [float((s - median) / spread) for s in values]
