"""What every normal-only detector on frozen patch features shares: how images become encoded
batches for fitting (with a held-out share when the detector calibrates that way) and for
scoring. A family only says how it fits on encoded batches and how it scores one
(``fit_encoded`` / ``score_encoded``); that split also lets the detector study fit many
settings on features encoded once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from defectlens.detect.base import Progress
from defectlens.detect.calibration import NormalStatistics, normal_statistics, thresholds_from_normal
from defectlens.detect.maps import for_calibration
from defectlens.encode import EncodedBatch, PatchEncoder
from defectlens.fielddocs import with_field_docs
from defectlens.io import take
from defectlens.types import AnomalyResult, Thresholds


@with_field_docs
@dataclass(frozen=True)
class FitSummary:
    """What fitting did, for logs and the benchmark table."""

    n_images: int
    """Normal images fitted on (copies of others counted once)."""
    n_holdout: int
    """Normal images kept out of the bank to set the thresholds on. 0 for the memory bank, whose
    thresholds come from every normal image, each scored without the bank rows it gave (leave-one-out)."""
    n_patches: int
    """Patch feature vectors the normal images gave (before the coreset chose the bank's rows)."""
    bank_size: int
    """Rows of the memory bank (0 for detectors without one)."""
    seconds: float
    """Wall-clock time of the fit."""
    notes: tuple[str, ...] = ()
    """What the fit warned of (copies left out, thresholds resting on too few images): kept with the
    model and on its card, where a notebook that filtered warnings, or whoever loads it later, reads them."""


MIN_HOLDOUT_IMAGES = 3
"""Fewest normal images held out when there are enough (twice as many): of one or two images
a median and a high quantile are the same number or nearly, so the normal scale they define
(and a fused detector's thresholds) would be degenerate."""


def holdout_indices(n_images: int, fraction: float, seed: int) -> list[int]:
    """Seeded choice of the ``fraction`` of ``n_images`` normal images a detector keeps out of
    training to calibrate on: at least :data:`MIN_HOLDOUT_IMAGES` (at least one when there are
    two or more), never more than half."""
    if fraction <= 0 or n_images < 2:
        return []
    n_holdout = min(n_images // 2, max(MIN_HOLDOUT_IMAGES, round(n_images * fraction)))
    order = np.random.default_rng(seed).permutation(n_images)
    return sorted(int(i) for i in order[:n_holdout])


class PatchFeatureDetector:
    """Base of the detectors that score cells of a :class:`~defectlens.encode.PatchEncoder`'s grid."""

    encoder: PatchEncoder
    batch_size: int = 8
    thresholds: Thresholds | None = None
    normal_stats: NormalStatistics | None = None

    @classmethod
    def needs_taxonomy(cls, directory: str | Path) -> bool:
        """Never: these detectors know their part from the normal images they were fitted on."""
        return False

    def calibrate(self, results: Iterable[AnomalyResult], quantile: float) -> int:
        """Set normal statistics and label-free thresholds from normal images' results (held
        out, or scored leave-one-out); returns how many there were (none: nothing is set)."""
        # Each map cut to what calibration reads as it comes (see maps.for_calibration).
        results = [for_calibration(r) for r in results]
        if results:
            self.normal_stats = normal_statistics([r.score for r in results], [r.anomaly_map for r in results], quantile)
            self.thresholds = thresholds_from_normal(self.normal_stats)
        return len(results)

    def calibration_json(self) -> dict:
        """Thresholds and normal statistics as saved beside a detector's settings."""
        return {
            "thresholds": self.thresholds.to_json() if self.thresholds else None,
            "normal_stats": self.normal_stats.to_json() if self.normal_stats else None,
        }

    def holdout_indices(self, n_images: int) -> list[int]:
        """Which of ``n_images`` fit images :meth:`fit` keeps out of training to calibrate on."""
        raise NotImplementedError

    def fit_encoded(self, train: Iterable[EncodedBatch], holdout: Iterable[EncodedBatch] = ()) -> FitSummary:
        """Fit on encoded normal images and calibrate on the encoded held-out ones."""
        raise NotImplementedError

    def score_encoded(self, encoded: EncodedBatch) -> list[AnomalyResult]:
        """Score images already encoded by this detector's encoder."""
        raise NotImplementedError

    def fit(self, images: Sequence[np.ndarray], progress: Progress | None = None) -> FitSummary:
        """Fit on normal RGB images; thresholds from the detector's calibration (see its config)."""
        if len(images) == 0:
            raise ValueError("fit needs at least one normal image")
        start = time.perf_counter()
        held = set(self.holdout_indices(len(images)))
        # Taken, not copied: images still on disk (ImageFiles) are decoded batch by batch as encoded.
        train = take(images, [i for i in range(len(images)) if i not in held])
        holdout = take(images, sorted(held))

        def encoded(group: Sequence[np.ndarray]) -> Iterator[EncodedBatch]:
            for members, batch in self.encoder.iter_groups(group, self.batch_size):
                yield batch
                if progress:
                    progress(len(members))

        summary = self.fit_encoded(encoded(train), encoded(holdout))
        return replace(summary, n_images=len(images), seconds=time.perf_counter() - start)

    def score(self, images: Sequence[np.ndarray], progress: Progress | None = None) -> list[AnomalyResult]:
        """Anomaly score and original-resolution map for each RGB image."""
        results: list[AnomalyResult | None] = [None] * len(images)
        for members, encoded in self.encoder.iter_groups(images, self.batch_size):
            for i, result in zip(members, self.score_encoded(encoded), strict=True):
                results[i] = result
            if progress:
                progress(len(members))
        return [r for r in results if r is not None]
