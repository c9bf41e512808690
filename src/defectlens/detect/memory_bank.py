"""PatchCore-style memory-bank detector.

Fit: patch features of normal images -> greedy coreset -> a search index, then thresholds from
the normal images themselves, each scored leave-one-out (without the bank rows it gave).
Inspect: every patch's distance to its nearest normal patch is its anomaly value; the map is
smoothed, mapped back to the image's own pixel grid, and the mean of its top share is the image
score (:mod:`defectlens.detect.maps`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import overload

import faiss
import numpy as np
import torch

from defectlens.detect.base import LoadContext
from defectlens.detect.calibration import DEFAULT_QUANTILE, NormalStatistics, normal_units
from defectlens.detect.coreset import greedy_coreset, take_rows
from defectlens.detect.frame_check import FrameCheck
from defectlens.detect.global_score import MAX_WEIGHT, GlobalScore, pooled_features
from defectlens.detect.ivf import CellSearch
from defectlens.detect.maps import POSITION_MODES, PositionNormaliser, for_calibration, grid_to_results, image_score, on_image_cells
from defectlens.detect.patch_detector import FitSummary, PatchFeatureDetector, holdout_indices
from defectlens.encode import EncodedBatch, EncoderConfig, PatchEncoder
from defectlens.encode.features import fuse_levels
from defectlens.errors import ModelFileError
from defectlens.io.atomic import read_model_json, read_model_tensors, write_model_files
from defectlens.types import AnomalyResult, Thresholds

FORMAT = "defectlens.memory-bank"
FORMAT_VERSION = 3
"""2: the bank file may hold IVF cell centres and per-position normal statistics, which change
the maps; a reader of version 1 would ignore them, so it must refuse the file instead.
3: it may hold a global score (:mod:`~defectlens.detect.global_score`), which changes the image
scores. Written only by a model that has one: every other model is still written as version 2,
which older readers load."""
WITHOUT_GLOBAL_VERSION = 2
OLDEST_FORMAT_VERSION = 1
CONFIG_FILE = "detector.json"
BANK_FILE = "memory_bank.safetensors"

CALIBRATIONS = ("leave-one-out", "holdout")
SEARCHES = ("exact", "ivf")
IVF_ROWS_PER_LIST = 64
"""Bank rows per IVF cell: 256 cells for the default 16 384-row bank."""
IVF_MIN_BANK = 4096
"""Smaller banks are searched exactly whatever ``search`` says: exhaustive search of a few
thousand rows is already cheap, and a few lists would make the probed share coarse."""


MAX_EXTRA_NEIGHBOURHOOD = 9
"""The largest extra neighbourhood a bank may average its cells over (1 and 5 are the sizes studied)."""


@dataclass(frozen=True)
class MemoryBankConfig:
    """Settings of the memory-bank detector (saved with the model)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    coreset_ratio: float = 0.1
    """Share of training patches kept in the bank."""
    coreset_projection: int = 32
    """Dimensions of the random projection the greedy coreset measures distances in. 32 gave
    the same image AUROC as 64 in the detector study (mean 0.915 both) at less than half the
    selection time (then most of the fit's time; since the selection runs in NumPy, 5.7 s of a
    15 s fit on 200 magnetic tiles, encoding 7 s)."""
    n_neighbours: int = 1
    """A patch's anomaly value is its mean distance to this many nearest normal patches."""
    max_bank_size: int = 16_384
    """Upper bound on the bank: search cost grows linearly with it."""
    blur_sigma: float = 4.0
    """Gaussian smoothing of the map, in canvas pixels (PatchCore uses 4)."""
    calibration: str = "leave-one-out"
    """How thresholds are set without labels. 'leave-one-out': every normal image goes into the
    bank, and every one (or ``calibration_images`` of them) is scored against the bank without
    its own patches (each as if it had been left out), so no image is lost to calibration and the
    quantile rests on all of them. 'holdout': ``holdout_fraction`` of the images is kept out of
    the bank and scored (what a fused detector needs: both detectors see the same unseen images)."""
    position_images: int = 200
    """Most calibration maps the per-position statistics are made from (the first of the seeded
    order :attr:`calibration_images` also draws from). The statistics' shrinkage
    (:data:`~defectlens.detect.maps.POSITION_PRIOR_IMAGES`) was measured with 200; made from all
    250 of commutator's maps instead, its image AUROC was 0.9487 against 0.9502 (magnetic tile's
    600: 0.9783 against 0.9764, AUPRO 0.768 against 0.775), so the maps keep the 200 and only the
    thresholds gain every image."""
    calibration_images: int | None = None
    """Most images re-scored for leave-one-out calibration (a seeded choice); None: every normal
    image. It was 200: on 600 magnetic tiles the 98th percentile of 200 scores put the threshold
    where 1.4 % of the good test tiles flagged (recall 0.66) against the 2 % target; on all 600,
    2.0 % (recall 0.71). A 98th percentile of n scores has a standard error of about
    sqrt(0.02 * 0.98 / n) in false-alarm rate: 1.0 point at 200, 0.6 at 600. Re-scoring costs
    about a scoring pass over the images; set a bound for very large normal sets."""
    holdout_fraction: float = 0.1
    """Share of the normal images kept out of the bank with 'holdout' calibration."""
    quantile: float = DEFAULT_QUANTILE
    """Quantile of held-out normal scores used as the label-free threshold."""
    score_top_fraction: float = 0.01
    """The image score is the mean of this top share of the map's pixels (0 = the map maximum).
    From the detector study (benchmarks/results/detector_study.md): on raw distance maps the top
    5 % beat the top 1 % (mean image AUROC 0.929 vs 0.915 with 200 images) because the hottest
    pixels were the image's edges; on maps made relative to each position (the default since)
    the edges no longer dominate, and the top 1 % and 5 % tie on the mean (0.971 vs 0.972) while
    the top 1 % is the better worst case (0.955 on commutator against 0.948): a smaller share
    dilutes small defects less on parts not in the study."""
    search: str = "ivf"
    """Nearest-neighbour search. 'exact': every bank row. 'ivf': the bank is
    split into k-means cells and each query searches only the ``ivf_probes`` cells nearest to
    it (IVF-flat, scanned cell by cell: :mod:`defectlens.detect.ivf`); the cells' centres are saved with the bank so a loaded model finds
    exactly the neighbours the fitted one did. In the detector study (rows 'lite2' and
    'lite2-ivf') 8 of 256 cells kept image and pixel AUROC within 0.002 of exact search on
    every shared category while the search took a quarter of the time."""
    ivf_probes: int = 8
    """Cells searched per query with ``search='ivf'`` (each bank of :attr:`extra_neighbourhoods`
    alike). Fewer cost accuracy end to end: the 3 x 3 + 1 x 1 banks searched in 2 cells each (as
    many rows per patch as one bank in 8) lost magnetic tile's recall and commutator's image AUROC
    (README, "Two banks for the price of one, tried")."""
    position_normalise: str = "z-score"
    """Make maps relative to the calibration images' maps at each position of the image
    (:class:`~defectlens.detect.maps.PositionNormaliser`): 'z-score' (in units of their spread
    there), 'mean' (less their mean there) or 'none'. From the detector study (rows 'lite2-ivf'
    and 'lite2-posz'); the statistics come from up to :attr:`position_images` of the normal
    images the thresholds are set on."""
    position_folds: int = 0
    """With per-position maps: thresholds from calibration maps each made relative to the
    statistics of the *other* folds' maps (k-fold), so no calibration image is judged by
    statistics it helped make; 0 = the statistics of up to :attr:`position_images` of them (those
    in-sample). Inspection uses those statistics either way. Detector study row 'lite2-crossfit'
    (5 folds): commutator's false alarms at the 2 % target stayed 5.2 % (a train/test shift, not
    this leakage) while recall fell (magnetic tile 0.62 -> 0.57; cookie, 31 images, 0.94 -> 0.28),
    so the default stays in-sample."""
    global_weight: float = 0.0
    """Weight of the global score (:mod:`~defectlens.detect.global_score`: how unusual the image's
    averaged features are, under a Gaussian of the normal images') added to the image score, in
    units of each one's normal spread; 0 = off (the default). For parts whose defects change the
    whole surface, with a threshold set on labelled parts: on magnetic tile 0.25 raised image AUROC
    0.976 -> 0.979 and, thresholds set at 3 % false alarms on labelled parts, recall 0.822 -> 0.865
    (at the label-free threshold it raised none), while on commutator, whose cracks do not change
    the whole, image AUROC fell 0.950 -> 0.945 (``benchmarks/global_score_study.py``, README).
    Leave-one-out calibration only; the maps do not change."""
    extra_neighbourhoods: tuple[int, ...] = ()
    """Further neighbourhood sizes, each with a bank of its own on the same encoder pass (the
    encoder's levels re-fused at that size, :func:`~defectlens.encode.fuse_levels`); the maps of
    all, each relative to its own normal maps per position, are averaged, and the image score and
    thresholds are read from the average. ``(1,)`` averages the encoder's 3 x 3 with 1 x 1: in the
    neighbourhood study (``benchmarks/neighbourhood_study.py``) AUPRO rose on every shared part
    (mean 0.839 -> 0.861) and mean image AUROC 0.971 -> 0.973, at a second bank's search per
    image and coreset per fit. () = the encoder's neighbourhood alone (the default)."""
    neighbourhood: int | None = None
    """Set on the bank of one of :attr:`extra_neighbourhoods` (by its parent): it reads the
    encoder's levels re-fused at this size instead of the encoder's features."""
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        # Read back from hand-editable JSON: "4" or NaN for blur_sigma loaded and changed every score,
        # and batch_size 0 failed deep in a range() (hostile probe 2026-12-05).
        for f in fields(self):
            value, numeric = getattr(self, f.name), isinstance(f.default, int | float) and not isinstance(f.default, bool)
            if numeric and (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)):
                raise ValueError(f"{f.name} must be a finite number, got {value!r}")
        if self.blur_sigma < 0 or self.batch_size < 1 or self.coreset_projection < 1 or not 0 < self.quantile < 1:
            raise ValueError(f"blur_sigma must be >= 0, batch_size and coreset_projection >= 1, quantile in (0, 1); got "
                             f"{self.blur_sigma}, {self.batch_size}, {self.coreset_projection}, {self.quantile}")
        object.__setattr__(self, "extra_neighbourhoods", tuple(int(a) for a in self.extra_neighbourhoods))
        for size in self.extra_neighbourhoods:
            # Bounded: a 101 × 101 neighbourhood on a 36 × 28 grid had been built, one vector for the whole part (probe 2026-12-07).
            if size < 1 or size % 2 == 0 or size == self.encoder.aggregate or size > MAX_EXTRA_NEIGHBOURHOOD:
                raise ValueError(f"extra neighbourhoods must be odd sizes up to {MAX_EXTRA_NEIGHBOURHOOD} other than the encoder's "
                                 f"{self.encoder.aggregate}, got {size}")
        if len(set(self.extra_neighbourhoods)) != len(self.extra_neighbourhoods):
            raise ValueError(f"extra neighbourhoods repeat a size: {self.extra_neighbourhoods}")
        if self.extra_neighbourhoods and (self.position_normalise == "none" or self.global_weight > 0):
            # Maps are averaged: they must be in the same units (relative per position), and the
            # global score is added to one bank's image score, not to an average.
            raise ValueError("extra neighbourhoods need maps relative per position and no global weight")
        if self.position_folds == 1 or self.position_folds < 0:
            raise ValueError(f"position_folds must be 0 (in-sample) or at least 2, got {self.position_folds}")
        if not 0.0 <= self.global_weight <= MAX_WEIGHT:
            raise ValueError(f"global_weight must be in [0, {MAX_WEIGHT:g}], got {self.global_weight}")
        if self.global_weight > 0 and self.calibration != "leave-one-out":
            raise ValueError("global_weight needs leave-one-out calibration (each normal image's global score is out of fold)")
        if self.search not in SEARCHES:
            raise ValueError(f"search must be one of {', '.join(SEARCHES)}, got {self.search!r}")
        if self.position_normalise not in POSITION_MODES:
            raise ValueError(f"position_normalise must be one of {', '.join(POSITION_MODES)}, got {self.position_normalise!r}")
        if self.ivf_probes < 1:
            raise ValueError(f"ivf_probes must be positive, got {self.ivf_probes}")
        if not 0 <= self.score_top_fraction < 1:
            raise ValueError(f"score_top_fraction must be in [0, 1), got {self.score_top_fraction}")
        if not 0 < self.coreset_ratio <= 1:
            raise ValueError(f"coreset_ratio must be in (0, 1], got {self.coreset_ratio}")
        if self.n_neighbours < 1:
            raise ValueError(f"n_neighbours must be positive, got {self.n_neighbours}")
        if self.max_bank_size < 1:
            raise ValueError(f"max_bank_size must be positive, got {self.max_bank_size}")
        if self.position_images < 2:
            raise ValueError(f"position_images must be at least 2, got {self.position_images}")
        if self.calibration_images is not None and self.calibration_images < 1:
            raise ValueError(f"calibration_images must be positive or None (every image), got {self.calibration_images}")
        if not 0 <= self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got {self.calibration!r}")

    def to_json(self) -> dict:
        """Plain-JSON form."""
        d = dict(self.__dict__)
        d["encoder"] = self.encoder.to_json()
        d["extra_neighbourhoods"] = list(self.extra_neighbourhoods)
        return d

    @classmethod
    def from_json(cls, d: dict) -> MemoryBankConfig:
        """Inverse of :meth:`to_json`. Models saved before ``score_top_fraction`` existed scored
        images by the map maximum, and their thresholds are on that scale: they keep it (and the
        held-out calibration they were made with)."""
        before = {"score_top_fraction": 0.0, "calibration": "holdout", "search": "exact", "position_normalise": "none", "position_folds": 0}
        return cls(**{**before, **d, "encoder": EncoderConfig.from_json(d["encoder"])})


class MemoryBankDetector(PatchFeatureDetector):
    """Nearest-neighbour anomaly detector over a coreset of normal patch features."""

    name = "memory-bank"

    def __init__(self, config: MemoryBankConfig | None = None, encoder: PatchEncoder | None = None):
        self.config = config or MemoryBankConfig()
        self.encoder = encoder or PatchEncoder(self.config.encoder)
        if self.encoder.config != self.config.encoder:
            raise ValueError("encoder settings differ from the detector's config")
        self.batch_size = self.config.batch_size
        self.bank: torch.Tensor | None = None
        self.index: CellSearch | None = None
        self.ivf_centroids: torch.Tensor | None = None
        """Centres of the IVF cells (None: exact search)."""
        self.positions: PositionNormaliser | None = None
        """Normal maps' statistics per position (None: maps are raw distances)."""
        self.global_score: GlobalScore | None = None
        """The Gaussian of normal images' pooled features (None: ``global_weight`` is 0)."""
        self.frame_check: FrameCheck | None = None
        """Whether an image is the part at all (None: fitted on too few images, a further
        neighbourhood's bank, or saved before the check existed)."""
        self.global_scale = 0.0
        """Image-score points per unit of the global score: ``global_weight`` times the bank's own
        unit (its normal scores' UNIT_QUANTILE less their median), so the weight reads the same on every part."""
        self.thresholds: Thresholds | None = None
        self.normal_stats: NormalStatistics | None = None
        self._bank_sources: np.ndarray | None = None
        """Which fit image gave each bank row (only after fitting here, not after loading)."""
        self.neighbours: list[MemoryBankDetector] = []
        """The banks of :attr:`MemoryBankConfig.extra_neighbourhoods` (sharing this encoder)."""

    def with_map_sigma(self, sigma: float) -> MemoryBankDetector:
        """This fitted detector with its maps smoothed by a Gaussian of ``sigma`` canvas pixels
        instead of :attr:`MemoryBankConfig.blur_sigma` (every bank alike). Nothing is copied: the
        banks, index, statistics and thresholds are this detector's own. The thresholds were set on
        its own maps, so this is for reading a map's shape (where a defect lies), not for verdicts."""
        sharper = copy.copy(self)
        sharper.config = replace(self.config, blur_sigma=sigma)
        sharper.neighbours = [n.with_map_sigma(sigma) for n in self.neighbours]
        return sharper

    def _neighbour(self, size: int) -> MemoryBankDetector:
        """An empty bank for neighbourhood ``size`` on this detector's encoder."""
        return MemoryBankDetector(replace(self.config, extra_neighbourhoods=(), neighbourhood=size), self.encoder)

    def _own_view(self, encoded: EncodedBatch) -> EncodedBatch:
        """``encoded`` as this bank reads it: the encoder's features, or its levels re-fused at
        :attr:`MemoryBankConfig.neighbourhood`."""
        size = self.config.neighbourhood
        if size is None:
            return encoded
        if not encoded.levels:
            raise ValueError("a bank of another neighbourhood needs the encoder's levels, and these features come without them")
        # Onto the finest level's grid, which is the encoder's feature grid (fuse_levels' default).
        return EncodedBatch(fuse_levels(encoded.levels, size), encoded.placements, encoded.canvas, [])

    def _averaged(self, own: list[AnomalyResult], others: list[list[AnomalyResult]]) -> list[AnomalyResult]:
        """Each image's maps of every bank averaged, and re-scored."""
        out = []
        for i, result in enumerate(own):
            amap = np.mean([result.anomaly_map, *(o[i].anomaly_map for o in others)], axis=0).astype(np.float32)
            out.append(AnomalyResult(score=image_score(amap, self.config.score_top_fraction), anomaly_map=amap, unlike_normal=result.unlike_normal,
                                     frame_units=result.frame_units))
        return out

    # ------------------------------------------------------------------ fitting
    def holdout_indices(self, n_images: int) -> list[int]:
        """Which of ``n_images`` fit images :meth:`fit` keeps out of the bank to calibrate on
        (seeded, so a fused detector can calibrate on exactly the same normal images)."""
        if self.config.calibration != "holdout":
            return []
        return holdout_indices(n_images, self.config.holdout_fraction, self.config.seed)

    def fit_encoded(self, train: Iterable[EncodedBatch], holdout: Iterable[EncodedBatch] = ()) -> FitSummary:
        """Build the bank from encoded normal images and calibrate on encoded held-out ones.

        The step after encoding, on its own so that a study can fit many settings on features
        encoded once (see ``benchmarks/detector_study.py``)."""
        return self._fit(train, holdout)[0]

    def _fit(self, train: Iterable[EncodedBatch], holdout: Iterable[EncodedBatch]) -> tuple[FitSummary, list[AnomalyResult]]:
        """:meth:`fit_encoded`, also returning the normal results the thresholds were set on
        (what a parent averaging several neighbourhoods' banks reads from each)."""
        start = time.perf_counter()
        # The encoder's levels are read only to re-fuse them at another neighbourhood (this bank's,
        # or a further bank's): otherwise batches are kept without them, dropped as they arrive
        # (on 600 magnetic tiles 0.2 GB of a 1.4 GB peak).
        drop_levels = not self.config.extra_neighbourhoods and self.config.neighbourhood is None
        given = [replace(b, levels=[]) if drop_levels else b for b in train]
        holdout = [replace(b, levels=[]) if drop_levels else b for b in holdout]
        train = [self._own_view(b) for b in given]
        holdout_view = (self._own_view(b) for b in holdout)
        if not self.config.extra_neighbourhoods:
            del given  # nothing else needs the encoder's batches: free them with the features below
        cells = list(on_image_cells(train))  # views into the batches: nothing copied yet
        if not cells:
            raise ValueError("fit needs at least one normal image")
        n_images = len(cells)
        counts = [int(keep.sum()) for _, keep in cells]
        # Each image's patches made as rows when read, never all at once: the selection keeps only
        # their projection and the bank takes its rows from them (a copy of every patch beside the
        # encoded images was 0.6 GB of a 1.9 GB peak on 1 200 magnetic tiles).
        patch_rows = _OnImageRows(cells)
        # Averaged features of every fit image: for the frame check (the encoder's bank only; a
        # further neighbourhood's bank sees the same images) and the global score when weighted.
        pooled = pooled_features(cells) if self.config.neighbourhood is None else None
        del cells
        sources = torch.repeat_interleave(torch.arange(n_images, dtype=torch.int32), torch.tensor(counts))
        n_patches = int(sum(counts))
        n_select = min(self.config.max_bank_size, max(1, round(n_patches * self.config.coreset_ratio)))
        chosen = greedy_coreset(patch_rows, n_select, projection_dim=self.config.coreset_projection, seed=self.config.seed)
        self._set_bank(take_rows(patch_rows, chosen, counts))
        self._bank_sources = sources[chosen].numpy()
        del patch_rows
        left_out = self._calibration_subsets(train) if self.config.calibration == "leave-one-out" else []
        # Only the images re-scored for calibration are needed from here on; each batch's
        # features are freed once it is scored (see _score_left_out).
        del train
        self.positions, self.frame_check = None, None  # not applied to the calibration images
        if self.config.calibration == "leave-one-out":
            # Which fit image each result is (read before scoring empties left_out).
            image_ids = np.concatenate([ids for _, ids in left_out]) if left_out else np.zeros(0, np.int64)
            # Each map cut to what calibration reads as it comes (whole maps of every normal image
            # of a large part would not fit in memory).
            normal = [for_calibration(r) for r in self._score_left_out(left_out)]
            drawn_from = n_images
        else:
            normal = [for_calibration(r) for batch in holdout_view for r in self._score_own(batch)]
            image_ids, drawn_from = np.arange(len(normal)), len(normal)
        if self.config.position_normalise != "none" and len(normal) >= 2:
            # Normal maps give the per-position statistics and, made relative to them, the
            # thresholds: the thresholds are on the scale inspection will use.
            in_statistics = np.isin(image_ids, self._seeded_choice(drawn_from, self.config.position_images))
            self.positions = PositionNormaliser.from_maps([r.anomaly_map for r, use in zip(normal, in_statistics, strict=True) if use])
            normal = self._relative_calibration(normal)
        self.global_score, self.global_scale = None, 0.0
        if pooled is not None and self.config.global_weight > 0:
            self.global_score, out_of_fold = GlobalScore.fit(pooled, self.config.seed)
            normal = self._add_global_score(normal, out_of_fold, image_ids)
            # The frame check's Gaussian is the same one of the same images: fitted once, one
            # distance per image for both.
            self.frame_check = FrameCheck.on(self.global_score, out_of_fold)
        else:
            self.frame_check = None if pooled is None else FrameCheck.fit(pooled, self.config.seed)
        if self.config.extra_neighbourhoods:
            # Each further bank fitted and calibrated as this one is (same images, same order),
            # then the thresholds read from the averaged normal maps inspection will produce.
            self.neighbours = [self._neighbour(size) for size in self.config.extra_neighbourhoods]
            # The further banks read only the levels: this bank's features are freed first (on 600
            # magnetic tiles they held 0.4 GB through the second bank's fit).
            given = [EncodedBatch(torch.empty(0), b.placements, b.canvas, b.levels) for b in given]
            others = []
            for k, neighbour in enumerate(self.neighbours):
                # The last bank is handed the levels themselves (not a copy of the list): it frees
                # them once it has re-fused them.
                last = k == len(self.neighbours) - 1
                others.append(neighbour._fit(_drained(given) if last else given, holdout)[1])
            normal = self._averaged(normal, others)
        n_calibration = self.calibrate(normal, self.config.quantile)
        n_holdout = 0 if self.config.calibration == "leave-one-out" else n_calibration
        return FitSummary(n_images + n_holdout, n_holdout, n_patches, len(chosen), time.perf_counter() - start), normal

    def _add_global_score(self, normal: list[AnomalyResult], out_of_fold: np.ndarray, image_ids: np.ndarray) -> list[AnomalyResult]:
        """Add the global score to the calibration images' scores, each image's out of fold (it is
        scored as if left out, like its bank score): ``out_of_fold`` in units, one per fit image."""
        _, bank_unit = normal_units([r.score for r in normal])
        self.global_scale = self.config.global_weight * max(bank_unit, 1e-12)
        return [replace(r, score=r.score + self.global_scale * float(out_of_fold[i])) for r, i in zip(normal, image_ids, strict=True)]

    def leave_one_out_results(self, train: Sequence[EncodedBatch]) -> Iterator[AnomalyResult]:
        """Results of the images this detector was just fitted on (``train``, the same encoded
        batches in the same order; every one, or a seeded ``calibration_images`` of them), each
        scored against the bank without the patches it gave: normal scores of images the bank did
        not see, for thresholds and for choosing a fusion weight. Only right after :meth:`fit_encoded`.
        The bank's results alone: the global score, when on, is not in them."""
        if self._bank_sources is None:
            raise RuntimeError("leave-one-out scores need the fit's encoded images: call right after fit_encoded()")
        yield from self._score_left_out(self._calibration_subsets(train))

    def _calibration_subsets(self, train: Sequence[EncodedBatch]) -> list[tuple[EncodedBatch, np.ndarray]]:
        """The images of ``train`` that leave-one-out calibration re-scores (all, or
        ``calibration_images`` of them, seeded), as compact batches, each with its images' indices
        in ``train``; a batch re-scored whole is the batch itself, not a copy."""
        n_images = sum(len(b.placements) for b in train)
        chosen = set(self._seeded_choice(n_images, self.config.calibration_images).tolist())
        subsets = []
        image_id = 0
        for encoded in train:
            ids = np.arange(image_id, image_id + len(encoded.placements))
            image_id += len(ids)
            keep = [j for j, i in enumerate(ids) if i in chosen]
            if len(keep) == len(ids):
                subsets.append((encoded, ids))
            elif keep:
                subset = EncodedBatch(encoded.features[keep], [encoded.placements[j] for j in keep], encoded.canvas, [])
                subsets.append((subset, ids[keep]))
        return subsets

    def _seeded_choice(self, n_images: int, cap: int | None) -> np.ndarray:
        """Which of ``n_images`` fit images (indices) a capped step uses: the first ``cap`` of one
        seeded order, so the per-position statistics and a capped calibration share images."""
        return np.random.default_rng(self.config.seed).permutation(n_images)[: n_images if cap is None else cap]

    def _score_left_out(self, subsets: list[tuple[EncodedBatch, np.ndarray]]) -> Iterator[AnomalyResult]:
        """Each subset's images scored against the bank without the rows they gave. Subsets are
        taken out of the list as they are scored, so features nothing else holds are freed as
        scoring goes rather than all held to the end (every normal image is re-scored)."""
        assert self._bank_sources is not None
        subsets.reverse()
        while subsets:
            subset, ids = subsets.pop()
            yield from self._score_own(subset, exclude=(ids, self._bank_sources))

    def _set_bank(self, bank: torch.Tensor, centroids: torch.Tensor | None = None) -> None:
        """Index ``bank``; with IVF search, in the cells of ``centroids`` (computed here when
        None: seeded k-means on the bank)."""
        self.bank = bank.float().contiguous()
        dim = self.bank.shape[1]
        if centroids is None and self.config.search == "ivf" and len(self.bank) >= IVF_MIN_BANK:
            kmeans = faiss.Kmeans(dim, len(self.bank) // IVF_ROWS_PER_LIST, niter=20, seed=self.config.seed + 1)
            kmeans.train(self.bank.numpy())
            assert kmeans.centroids is not None  # set by train()
            centroids = torch.from_numpy(kmeans.centroids.copy())
        self.ivf_centroids = centroids
        # Cells from saved centres, not re-trained: k-means is only reproducible up to thread
        # scheduling, and a loaded model must find the same neighbours as the fitted one.
        bank_rows = self.bank.numpy()
        self.index = CellSearch.exact(bank_rows) if centroids is None else CellSearch(bank_rows, centroids.float().numpy(), self.config.ivf_probes)

    # ------------------------------------------------------------------ scoring
    def score_encoded(self, encoded: EncodedBatch, exclude: tuple[np.ndarray, np.ndarray] | None = None) -> list[AnomalyResult]:
        """Score images already encoded by this detector's encoder (with extra neighbourhoods,
        every bank's map averaged).

        ``exclude`` = (source id of each image, source id of each bank row): bank rows from an
        image's own source are skipped when scoring it (leave-one-out calibration, this bank only)."""
        if not self.neighbours or exclude is not None:
            return self._score_own(self._own_view(encoded), exclude)
        # Only the average is scored: each bank's own top-1 % would be thrown away (a partial
        # sort of every map, about 0.45 ms an image per bank on magnetic tiles).
        own = self._score_own(self._own_view(encoded), scored=False)
        return self._averaged(own, [n._score_own(n._own_view(encoded), scored=False) for n in self.neighbours])

    def _score_own(self, encoded: EncodedBatch, exclude: tuple[np.ndarray, np.ndarray] | None = None, scored: bool = True) -> list[AnomalyResult]:
        """This bank's results on features it reads directly (see :meth:`_own_view`); with
        ``scored`` False their maps only (scores NaN: the caller scores an average of maps)."""
        if self.index is None or self.bank is None:
            raise RuntimeError("the detector is not fitted: call fit() or load() first")
        n, c, h, w = encoded.features.shape
        k = self.config.n_neighbours
        queries = encoded.features.permute(0, 2, 3, 1).reshape(-1, c).float().contiguous().numpy()
        if exclude is None:
            _, rows = self._search(queries, k)
        else:
            image_sources, bank_sources = exclude
            _, rows = self._search(queries, k, (np.repeat(image_sources, h * w), bank_sources))
        dist2 = squared_distances(queries, self.bank.numpy(), rows)
        grid = torch.from_numpy(np.sqrt(dist2).mean(1)).reshape(n, h, w)
        relative = None if self.positions is None else self._relative_map
        results = grid_to_results(grid, encoded, self.config.blur_sigma, self.config.score_top_fraction if scored else None, relative)
        if exclude is not None or (self.global_score is None and self.frame_check is None):
            # Calibration adds each left-out image's global score out of fold (_add_global_score),
            # and normal images are not frame-checked.
            return results
        pooled = pooled_features(on_image_cells([encoded]))
        units = None if self.global_score is None else self.global_score.units(pooled)
        if self.frame_check is not None:
            shared = units if self.frame_check.gaussian is self.global_score else None
            frame_units = self.frame_check.gaussian.units(pooled) if shared is None else shared
            results = [replace(r, unlike_normal=why, frame_units=float(u))
                       for r, why, u in zip(results, self.frame_check.reasons(pooled, frame_units), frame_units, strict=True)]
        if units is None:
            return results
        return [replace(r, score=r.score + self.global_scale * float(u)) for r, u in zip(results, units, strict=True)]

    def _relative_map(self, anomaly_map: np.ndarray, positions: PositionNormaliser | None = None) -> np.ndarray:
        positions = positions or self.positions
        assert positions is not None
        return positions.apply(anomaly_map, self.config.position_normalise)

    def _relative(self, result: AnomalyResult, positions: PositionNormaliser | None = None) -> AnomalyResult:
        """``result`` (a raw map's) with its map made relative to the normal maps per position
        (``positions``, default the detector's own), re-scored."""
        relative = self._relative_map(result.anomaly_map, positions)
        return AnomalyResult(score=image_score(relative, self.config.score_top_fraction), anomaly_map=relative)

    def _relative_calibration(self, normal: list[AnomalyResult]) -> list[AnomalyResult]:
        """Calibration results made relative per position: to the detector's statistics, or out
        of fold with ``position_folds`` (seeded folds; too few maps for the folds: the detector's)."""
        folds = self.config.position_folds
        if folds < 2 or len(normal) < 2 * folds:
            # In place: each raw map is freed as its relative one is made (the calibration maps of
            # every normal image, held twice, were a fit's peak on many or large parts).
            for position, result in enumerate(normal):
                normal[position] = self._relative(result)
            return normal
        fold_of = np.random.default_rng(self.config.seed).permutation(len(normal)) % folds
        out = list(normal)
        for fold in range(folds):
            others = PositionNormaliser.from_maps([r.anomaly_map for r, f in zip(normal, fold_of, strict=True) if f != fold])
            for i in np.flatnonzero(fold_of == fold):
                out[i] = self._relative(normal[i], others)
        return out

    def _search(self, queries: np.ndarray, k: int, exclude: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Squared distances and rows of the ``k`` nearest bank rows of each query (``exclude``:
        see :meth:`CellSearch.search`)."""
        assert self.index is not None and self.bank is not None
        dist2, rows = self.index.search(queries, k, exclude)
        short = (rows < 0).any(axis=1)
        if short.any():
            # The probed IVF cells held fewer than k rows (of other images, leaving one out):
            # search those queries over every row rather than score them against a padding value.
            exact = CellSearch.exact(self.bank.numpy())
            dist2[short], rows[short] = exact.search(queries[short], k, None if exclude is None else (exclude[0][short], exclude[1]))
            short = (rows < 0).any(axis=1)
            if short.any():
                # Fewer than k rows in the whole bank from other images (a bank of one or two
                # images): the image's own rows stand in.
                dist2[short], rows[short] = exact.search(queries[short], k)
        return dist2, rows

    # ------------------------------------------------------------------ persistence
    def describe(self) -> dict:
        """What the model card says about this detector (plain JSON)."""
        c = self.config
        return {
            "encoder": c.encoder.to_json(),
            "bank_size": None if self.bank is None else int(self.bank.shape[0]),
            "coreset_ratio": c.coreset_ratio,
            "blur_sigma": c.blur_sigma,
            "score_top_fraction": c.score_top_fraction,
            "threshold_quantile": c.quantile,
            "calibration": c.calibration,
            "n_neighbours": c.n_neighbours,
            "search": "exact" if self.ivf_centroids is None else f"ivf ({len(self.ivf_centroids)} cells, {c.ivf_probes} probed)",
            "position_normalise": c.position_normalise if self.positions is not None else "none",
            # How many normal maps the per-position statistics rest on (the thresholds: normal_stats).
            "position_statistics_images": (
                min(self.normal_stats.n_images, c.position_images) if self.positions is not None and self.normal_stats is not None else None
            ),
            "global_weight": c.global_weight,
            "frame_check_limit": None if self.frame_check is None else round(self.frame_check.limit, 3),
            "extra_neighbourhoods": list(c.extra_neighbourhoods) or None,
        }

    def save(self, directory: str | Path) -> None:
        """Write ``detector.json`` + ``memory_bank.safetensors`` (atomically, never pickle)."""
        if self.bank is None:
            raise RuntimeError("nothing to save: the detector is not fitted")
        version = FORMAT_VERSION if self.global_score is not None else WITHOUT_GLOBAL_VERSION
        tensors = {"bank": self.bank}
        if self.ivf_centroids is not None:
            tensors["ivf_centroids"] = self.ivf_centroids
        if self.positions is not None:
            tensors.update(self.positions.tensors())
        if self.global_score is not None:
            tensors.update(self.global_score.tensors())
        if self.frame_check is not None:
            # Extra tensors: a reader from before the check loads the model without it.
            tensors.update(self.frame_check.tensors(shared=self.global_score))
        config = {
            **({"global_scale": self.global_scale} if self.global_score is not None else {}),
            "config": self.config.to_json(),
            "feature_dim": int(self.bank.shape[1]),
            "bank_size": int(self.bank.shape[0]),
            **self.calibration_json(),
        }
        out = write_model_files(directory, BANK_FILE, tensors, CONFIG_FILE, config, FORMAT, version)
        for neighbour in self.neighbours:
            neighbour.save(out / neighbour_folder(neighbour.config.neighbourhood))

    @classmethod
    def load(cls, directory: str | Path, encoder: PatchEncoder | None = None, *, context: LoadContext | None = None) -> MemoryBankDetector:
        """Load a saved detector, checking format, version, encoder and tensor shapes
        (``context`` is accepted for the registry's uniform call and not needed)."""
        root = Path(directory)
        meta = read_detector_json(root)
        try:
            config = MemoryBankConfig.from_json(meta["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"invalid detector settings ({exc})", root / CONFIG_FILE, "re-fit the model") from None
        config.encoder.require_same(encoder.config if encoder else None, root, "re-fit the model with the encoder you want")
        detector = cls(config, encoder)
        bank_path = root / BANK_FILE
        tensors = read_model_tensors(bank_path, "memory bank", "re-fit the model")
        if "bank" not in tensors:
            raise ModelFileError("memory bank is corrupt (no bank tensor)", bank_path, "re-fit the model")
        bank = tensors["bank"]
        if bank.ndim != 2 or bank.shape[1] != detector.encoder.feature_dim:
            raise ModelFileError(
                f"memory bank has shape {tuple(bank.shape)} but {config.encoder.backbone} gives {detector.encoder.feature_dim}-d features",
                bank_path,
                "the model was made with another backbone or version: re-fit it",
            )
        if bank.shape[1] != meta.get("feature_dim"):
            # Said apart: one message for both had named the two sides that agreed (security probe 2026-12-07).
            recorded = f"feature_dim {meta['feature_dim']!r}" if "feature_dim" in meta else "no feature_dim"
            raise ModelFileError(f"memory bank holds {bank.shape[1]}-d features but {CONFIG_FILE} records {recorded}", root / CONFIG_FILE,
                                 "the model's files are from two fits: re-fit it")
        # A bank that disagrees with its descriptor, or holds NaN/inf, would load and call every
        # image DEFECTIVE (score 1e19): refuse it with the file named.
        if bank.shape[0] != meta.get("bank_size") or bank.shape[0] < 1:
            raise ModelFileError(
                f"memory bank has {bank.shape[0]} rows but {CONFIG_FILE} records bank_size {meta.get('bank_size')!r}",
                bank_path,
                "the files come from different fits: re-fit the model",
            )
        centroids = tensors.get("ivf_centroids")
        if centroids is not None and (centroids.ndim != 2 or centroids.shape[1] != bank.shape[1] or len(centroids) < 1):
            raise ModelFileError(f"IVF cell centres have shape {tuple(centroids.shape)}, not (cells, {bank.shape[1]})", bank_path, "re-fit the model")
        try:
            positions = PositionNormaliser.from_tensors(tensors)
        except (KeyError, ValueError) as exc:
            raise ModelFileError(f"per-position normal statistics are damaged ({exc})", bank_path, "re-fit the model") from None
        try:
            global_score = GlobalScore.from_tensors(tensors, int(bank.shape[1]))
            global_scale = float(meta.get("global_scale", 0.0))
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"the global score is damaged ({exc})", bank_path, "re-fit the model") from None
        try:
            frame_check = FrameCheck.from_tensors(tensors, int(bank.shape[1]), shared=global_score)
        except ValueError as exc:
            raise ModelFileError(f"the frame check is damaged ({exc})", bank_path, "re-fit the model") from None
        if (global_score is not None) != (config.global_weight > 0) or not np.isfinite(global_scale):
            raise ModelFileError(
                f"global_weight {config.global_weight} does not match the files (global score {'present' if global_score else 'absent'})",
                root / CONFIG_FILE,
                "the files come from different fits: re-fit the model",
            )
        try:
            thresholds = Thresholds(**meta["thresholds"]) if meta.get("thresholds") else None
            stats = NormalStatistics(**meta["normal_stats"]) if meta.get("normal_stats") else None
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"invalid thresholds or normal statistics ({exc})", root / CONFIG_FILE, "re-fit the model") from None
        if thresholds is None:
            raise ModelFileError(
                "model has no thresholds (it was fitted on a single normal image)",
                root / CONFIG_FILE,
                "re-fit it on at least 2 normal images",
            )
        detector._set_bank(bank, centroids)
        detector.positions = positions
        detector.global_score, detector.global_scale = global_score, global_scale
        detector.frame_check = frame_check
        detector.thresholds, detector.normal_stats = thresholds, stats
        for size in config.extra_neighbourhoods:
            folder = root / neighbour_folder(size)
            if not (folder / CONFIG_FILE).is_file():
                raise ModelFileError(f"the bank of neighbourhood {size} is missing", folder, "re-fit the model")
            neighbour = cls.load(folder, detector.encoder)
            if neighbour.config.neighbourhood != size:
                raise ModelFileError(f"{folder.name} holds the bank of neighbourhood {neighbour.config.neighbourhood}", folder, "re-fit the model")
            detector.neighbours.append(neighbour)
        return detector


class _OnImageRows(Sequence[torch.Tensor]):
    """Each fit image's on-image patch features as rows (n_i, C), made when one is read: the
    blocks :func:`~defectlens.detect.coreset.greedy_coreset` and ``take_rows`` read."""

    def __init__(self, cells: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.cells = cells

    def __len__(self) -> int:
        return len(self.cells)

    @overload
    def __getitem__(self, index: int) -> torch.Tensor: ...
    @overload
    def __getitem__(self, index: slice) -> list[torch.Tensor]: ...
    def __getitem__(self, index: int | slice) -> torch.Tensor | list[torch.Tensor]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        feat, keep = self.cells[index]
        return feat.permute(1, 2, 0)[keep]


def _drained(items: list[EncodedBatch]) -> Iterator[EncodedBatch]:
    """The items of ``items``, each removed from the list as it is handed out."""
    items.reverse()
    while items:
        yield items.pop()


def neighbour_folder(size: int | None) -> str:
    """Sub-folder of a saved memory bank holding the bank of neighbourhood ``size``."""
    return f"neighbourhood-{size}"


def squared_distances(queries: np.ndarray, bank: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(Q, k) squared distances from each query to its ``rows`` of ``bank``, summed pair by pair.

    The search's own distances are not used: exact search takes them as |q|² + |b|² - 2 q·b from
    a matrix product, which loses digits near zero and whose sums depend on how many threads
    split it — the same image would score differently in a one-core Ray worker and in the local
    engine. Direct sums give every runtime, thread count and search the same distances from the
    same features. (The features themselves still move in their last digits with the thread count:
    the encoder's 1 x 1 convolutions, ≤ 1.2e-5; see the README's "Reproducibility".)"""
    diff = queries[:, None, :] - bank[rows]
    return np.einsum("qkc,qkc->qk", diff, diff)


def read_detector_json(root: Path) -> dict:
    """Read and check ``detector.json`` of a saved model: a clear error for every way it can be wrong."""
    return read_model_json(root, CONFIG_FILE, FORMAT, FORMAT_VERSION, "memory-bank model", "`defectlens fit`", OLDEST_FORMAT_VERSION)
