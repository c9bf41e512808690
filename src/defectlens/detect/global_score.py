"""A whole-image score beside the memory bank's: how unusual an image's features are *as a whole*.

The memory bank judges each patch by its nearest normal patch, so a part whose every patch
looks like some normal patch — a tile ground differently all over, a surface whose mix of
textures is off — can pass it. Here each image's patch features are averaged over the image
(its on-image cells) and scored by their squared Mahalanobis distance under one Gaussian of
the normal images' averages (Gaussian anomaly detection, Rippel et al. 2020), with Ledoit–Wolf
shrinkage because the normal images are few against the features' dimension.

The distance is put in units of its own normal spread (0 = the normal images' median, 1 = their
:data:`~defectlens.detect.calibration.UNIT_QUANTILE`), read from out-of-fold distances so that no
normal image is judged by a Gaussian it helped fit. Measured in ``benchmarks/global_score_study.py``
and through ``fit --global-weight`` (README): added to the bank's score at weight 0.25 it lifts
magnetic tile's ranking (image AUROC 0.976 -> 0.979; recall at 3 % false alarms with a threshold set
on labelled parts 0.822 -> 0.865, none at the label-free threshold) and costs commutator's (0.950 ->
0.945), so it is an option (``MemoryBankConfig.global_weight``), off by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from defectlens.detect.calibration import normal_units

FOLDS = 5
"""Folds of the out-of-fold normal distances the unit is read from."""
MIN_IMAGES = 2 * FOLDS
"""Fewest normal images the Gaussian is fitted on: each fold must leave several to fit on."""
MAX_WEIGHT = 4.0
"""Largest weight the global score may have beside the bank's (in units of each one's normal spread)."""
TENSOR_PREFIX = "global_"


def pooled_features(cells: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> np.ndarray:
    """(N, C) float64: each image's patch features (C, h, w) averaged over its on-image cells
    (h, w) — the pairs :func:`~defectlens.detect.maps.on_image_cells` gives."""
    # Summed by numpy, one thread: a Ray worker on one core must get the local engine's very scores.
    return np.stack([feat[:, keep].numpy().astype(np.float64).mean(axis=1) for feat, keep in cells])


@dataclass(frozen=True)
class GlobalScore:
    """The fitted Gaussian of normal images' pooled features and the unit of its distances."""

    location: np.ndarray
    """(C,) mean of the normal images' pooled features (Ledoit–Wolf's location)."""
    precision: np.ndarray
    """(C, C) inverse of the shrunk covariance."""
    median: float
    """Median of the normal images' out-of-fold distances."""
    unit: float
    """Their :data:`~defectlens.detect.calibration.UNIT_QUANTILE` less their median (> 0)."""

    @classmethod
    def fit(cls, pooled: np.ndarray, seed: int = 0) -> tuple[GlobalScore, np.ndarray]:
        """Fit on the normal images' pooled features (N, C); also returns each normal image's
        out-of-fold distance in units (what a calibration that leaves the image out must add)."""
        if len(pooled) < MIN_IMAGES:
            raise ValueError(f"the global score needs at least {MIN_IMAGES} normal images, got {len(pooled)}")
        order = np.random.default_rng(seed).permutation(len(pooled))
        out_of_fold = np.empty(len(pooled))
        for fold in range(FOLDS):
            held = order[fold::FOLDS]
            out_of_fold[held] = _distances(*_gaussian(pooled[np.setdiff1d(order, held)]), pooled[held])
        median, unit = normal_units(out_of_fold)
        if not unit > 0:
            raise ValueError("the normal images' pooled features do not vary: the global score has no unit")
        model = cls(*_gaussian(pooled), median=median, unit=unit)
        return model, (out_of_fold - median) / unit

    def units(self, pooled: np.ndarray) -> np.ndarray:
        """Distances of pooled features (N, C) in units of the normal spread."""
        return (_distances(self.location, self.precision, pooled) - self.median) / self.unit

    def tensors(self, prefix: str = TENSOR_PREFIX) -> dict[str, torch.Tensor]:
        """Its numbers as tensors for the model file (float64: the distances are sums over C² terms),
        named with ``prefix`` (another user of the same Gaussian, the frame check, keeps its own)."""
        return {
            f"{prefix}location": torch.from_numpy(self.location),
            f"{prefix}precision": torch.from_numpy(self.precision),
            f"{prefix}median_unit": torch.tensor([self.median, self.unit], dtype=torch.float64),
        }

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], feature_dim: int, prefix: str = TENSOR_PREFIX) -> GlobalScore | None:
        """Inverse of :meth:`tensors`; None when the file holds no such Gaussian. Raises
        ``ValueError`` on shapes that do not fit ``feature_dim``-d features."""
        names = [f"{prefix}{n}" for n in ("location", "precision", "median_unit")]
        if not any(n in tensors for n in names):
            return None
        try:
            location, precision, median_unit = (tensors[n].double().numpy() for n in names)
        except KeyError as exc:
            raise ValueError(f"the global score is incomplete ({exc.args[0]} missing)") from None
        if location.shape != (feature_dim,) or precision.shape != (feature_dim, feature_dim) or median_unit.shape != (2,) or not median_unit[1] > 0:
            raise ValueError(f"the global score has shapes {location.shape} / {precision.shape}, not for {feature_dim}-d features")
        return cls(location, precision, float(median_unit[0]), float(median_unit[1]))


def _gaussian(pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Imported here: scikit-learn is needed to fit, never to inspect.
    from sklearn.covariance import LedoitWolf

    model = LedoitWolf().fit(pooled)
    return np.asarray(model.location_, np.float64), np.asarray(model.precision_, np.float64)


def _distances(location: np.ndarray, precision: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    d = pooled - location
    return np.einsum("ij,jk,ik->i", d, precision, d)
