"""Detector study: which settings of the normal-only detectors win across all shared categories.

Patch features are encoded once per (category, encoder settings) and cached under
``runs/detector_cache`` (safetensors + JSON; rebuilt, with a message, when the encoder
settings or the image list differ), so one detector setting is scored on a category in a
minute or two. Every row fits the real detector classes (``fit_encoded`` / ``score_encoded``)
on the cached features, scores the whole test split and records image AUROC, pixel AUROC,
AUPRO, recall and false-positive rate at the label-free threshold, fit seconds and ms per
image (encoding, measured when the cache was built, plus scoring). Results are appended to
``benchmarks/results/detector_study.json`` as they come (a cut-short run resumes) and the
table is rewritten to ``detector_study.md``.

    python benchmarks/detector_study.py [--settings NAME ...] [--categories NAME ...] [--list]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import defectlens.detect.memory_bank as memory_bank_module
from defectlens.detect import MemoryBankConfig, MemoryBankDetector, greedy_coreset, normal_statistics
from defectlens.detect.calibration import UNIT_QUANTILE
from defectlens.detect.discriminator import DiscriminatorConfig, DiscriminatorDetector
from defectlens.detect.fusion import FusionConfig, choose_fusion_weight, fuse, fuse_scores
from defectlens.detect.maps import image_score, on_image_cells
from defectlens.detect.patch_detector import PatchFeatureDetector
from defectlens.encode import CanvasSpec, EncodedBatch, EncoderConfig, PatchEncoder, Placement
from defectlens.errors import DefectlensError
from defectlens.evaluate.metrics import aupro, image_auroc, pixel_auroc
from defectlens.io import load_category, load_image
from defectlens.io.images import load_mask
from defectlens.types import AnomalyResult

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from common import add_data_argument, finish_record, has_normal_images, require_categories, run_record, saved_results, tables_written  # noqa: E402 - the benchmarks' shared module

CACHE_VERSION = 2
"""2: the encoder's batch norms folded into its convolutions (features within 4e-6 relative,
but a cache is never mixed across encoders)."""


# ---------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Setting:
    """One row of the study: encoder, detector and training choices."""

    name: str
    factor: str
    backbone: str = "efficientnet-lite0"
    stages: tuple[int, ...] = (2, 4)
    image_size: int = 256
    aggregate: int = 3
    """Side of the local average over each level's patches before they are fused (EncoderConfig.aggregate)."""
    n_train: int | None = 200
    """Normal images to fit on (seeded subset); None = all."""
    detector: str = "memory-bank"
    """'memory-bank', 'discriminator' or 'fused' (the two, normalised on held-out normals)."""
    bank: dict = field(default_factory=dict)
    discriminator: dict = field(default_factory=dict)
    flip_bank: bool = False
    """Add horizontally flipped training images to the normal features."""
    fusion_weight: float | None = 0.5
    """'fused' only: the discriminator's weight; None = chosen on the held-out normal images
    (:func:`~defectlens.detect.fusion.choose_fusion_weight`), as ``defectlens fit`` does now."""
    flip_test: bool = False
    """Average each test map with the map of the flipped image (flipped back)."""
    rotate_bank: tuple[int, ...] = ()
    """Add the training images turned by these quarter turns (1 = 90 degrees anticlockwise, 2, 3)
    to the normal features: DifferNet's rotation augmentation, for the bank."""

    def encoder_key(self) -> tuple:
        return (self.backbone, self.stages, self.image_size, self.aggregate)


DEFAULT_BANK = {"score_top_fraction": 0.05, "coreset_projection": 32, "search": "exact", "position_normalise": "none"}
"""The memory-bank settings chosen as defaults (MemoryBankConfig's own defaults since). The
rows were measured with exact search and raw maps; 'lite2-ivf' measures the IVF search and
'lite2-posz' the per-position z-score maps that are the defaults now."""


def on_defaults(name: str, factor: str, bank: dict | None = None, **changes) -> Setting:
    """A setting that varies one factor of the chosen defaults (all images, DEFAULT_BANK)."""
    return Setting(name, factor, n_train=None, bank={**DEFAULT_BANK, **(bank or {})}, **changes)


SETTINGS: list[Setting] = [
    Setting("base", "baseline (lite0, stages 2+4, 256 px, 200 images, top-1 % score, leave-one-out calibration)"),
    Setting("all-images", "training images", n_train=None),
    on_defaults("defaults", "chosen defaults (all images, top-5 % score, 32-d coreset projection)"),
    Setting("discriminator", "detector", detector="discriminator"),
    Setting("fused", "detector", detector="fused"),
    Setting("holdout-calibration", "calibration", bank={"calibration": "holdout"}),
    Setting("k3", "neighbours", bank={"n_neighbours": 3}),
    Setting("coreset-proj32", "coreset", bank={"coreset_projection": 32}),
    Setting("blur-2", "smoothing", bank={"blur_sigma": 2.0}),
    Setting("blur-8", "smoothing", bank={"blur_sigma": 8.0}),
    Setting("flip-test", "augmentation", flip_test=True),
    Setting("flip-bank", "augmentation", flip_bank=True),
    # Rows below vary one factor of the chosen defaults, so they compare with the 'defaults' row.
    on_defaults("fa-2%", "false-alarm target of the label-free threshold (defaults: 1 %)", bank={"quantile": 0.98}),
    on_defaults("fa-5%", "false-alarm target of the label-free threshold (defaults: 1 %)", bank={"quantile": 0.95}),
    on_defaults("bank-32k", "bank size cap (defaults: 16 384 patches)", bank={"max_bank_size": 32_768}),
    on_defaults("flip-both", "augmentation (defaults + flipped bank and test images)", flip_bank=True, flip_test=True),
    on_defaults("canvas-320", "canvas (defaults: 256 px)", image_size=320),
    on_defaults("lite2", "backbone (defaults: lite0)", backbone="efficientnet-lite2"),
    on_defaults("stages-2+3+4", "stages (defaults: 2+4)", stages=(2, 3, 4)),
    on_defaults("stages-2+4+5", "stages (defaults: 2+4)", stages=(2, 4, 5)),
    on_defaults(
        "lite2-bank-8k",
        "bank size cap on Lite2 (default: 16 384 patches): half the search time",
        bank={"max_bank_size": 8192},
        backbone="efficientnet-lite2",
    ),
    on_defaults(
        "lite2-ivf",
        "search on Lite2 (default: exact): IVF, 8 of 256 k-means cells searched per patch",
        bank={"search": "ivf", "ivf_probes": 8},
        backbone="efficientnet-lite2",
    ),
    on_defaults(
        "lite2-posz",
        "maps on Lite2 + IVF (default: raw distances): z-score against the normal maps at each image-relative position, "
        "shrunk to the whole map's with the weight of 50 images",
        bank={"search": "ivf", "ivf_probes": 8, "position_normalise": "z-score"},
        backbone="efficientnet-lite2",
    ),
]
CURRENT_BANK: dict = {}
"""The memory bank's own defaults (MemoryBankConfig): IVF search, per-position z-score maps, top-1 % score."""
SETTINGS += [
    Setting("lite2-current", "the defaults as they are when the row is run (MemoryBankConfig's own; each row's `measured` names "
                             "the commit, rows before 2026-12-06 none)",
            backbone="efficientnet-lite2", n_train=None, bank=CURRENT_BANK),
    Setting("lite2-rot180-bank", "augmentation on the current defaults: bank + training images turned 180 degrees",
            backbone="efficientnet-lite2", n_train=None, bank=CURRENT_BANK, rotate_bank=(2,)),
    Setting("lite2-current-320", "canvas on the current defaults (default: 256 px)",
            backbone="efficientnet-lite2", n_train=None, bank=CURRENT_BANK, image_size=320),
    Setting("lite2-rot-bank", "augmentation on the current defaults: bank + training images turned 90, 180 and 270 degrees",
            backbone="efficientnet-lite2", n_train=None, bank=CURRENT_BANK, rotate_bank=(1, 2, 3)),
    Setting("lite2-fused-auto", "detector on the current defaults: memory bank + discriminator (both holding out 10 %), "
            "the discriminator's weight chosen on the held-out normal images (before: a fixed 0.5)",
            backbone="efficientnet-lite2", n_train=None, bank=CURRENT_BANK, detector="fused", fusion_weight=None),
    Setting("lite2-crossfit", "calibration on the current defaults: thresholds from maps made relative to the other "
            "4 of 5 folds' position statistics (default: all calibration maps, in-sample)",
            backbone="efficientnet-lite2", n_train=None, bank={**CURRENT_BANK, "position_folds": 5}),
    Setting("lite2-current-agg1", "neighbourhood on the current defaults: each level's patches taken alone (default: "
            "averaged over 3 x 3 before the levels are fused)",
            backbone="efficientnet-lite2", n_train=None, bank=CURRENT_BANK, aggregate=1),
    Setting("lite2-current-agg5", "neighbourhood on the current defaults: each level's patches averaged over 5 x 5 "
            "(default: 3 x 3)",
            backbone="efficientnet-lite2", n_train=None, bank=CURRENT_BANK, aggregate=5),
]
VARIANT_ROWS = ("base", "defaults", "lite2", "lite2-posz", "lite2-current")
"""Settings whose maps are re-scored with every image-score variant (no refit)."""
SCORE_VARIANTS: dict[str, Callable[[np.ndarray], float]] = {
    "max": lambda m: image_score(m, 0.0),
    "top-0.1%": lambda m: image_score(m, 0.001),
    "top-1%": lambda m: image_score(m, 0.01),
    "top-2%": lambda m: image_score(m, 0.02),
    "top-5%": lambda m: image_score(m, 0.05),
    "top-10%": lambda m: image_score(m, 0.10),
    "top-20%": lambda m: image_score(m, 0.20),
    "top-1%-minus-median": lambda m: image_score(m, 0.01) - float(np.median(m)),
}
"""Image scores compared on the baseline's maps (no refit: the maps are the same)."""


# ---------------------------------------------------------------------------- feature cache
@dataclass
class CachedCategory:
    """One category's images and their features for one encoder setting, cached on disk."""

    name: str
    encoder: EncoderConfig
    canvas: CanvasSpec
    folder: Path
    paths: dict[str, list[Path]]
    labels: list[int]
    mask_paths: list[str | None]
    _loaded: dict[str, tuple[torch.Tensor, list[Placement]]] = field(default_factory=dict)
    encode_ms_per_image: float = float("nan")

    def split(self, name: str, encoder: PatchEncoder) -> tuple[torch.Tensor, list[Placement]]:
        """Features (N, C, h, w) float16 and placements of split ``name`` ('train', 'test', or
        either with '_flip': the images mirrored left-right, or '_rot1'/'_rot2'/'_rot3': turned
        by that many quarter turns anticlockwise), encoding it on first use."""
        if name in self._loaded:
            return self._loaded[name]
        tensors, meta = self.folder / f"{name}.safetensors", self.folder / f"{name}.json"
        if tensors.is_file() and meta.is_file():
            info = json.loads(meta.read_text())
            self._loaded[name] = (load_file(str(tensors))["features"], [Placement(*p) for p in info["placements"]])
            self.encode_ms_per_image = info["encode_ms_per_image"]
            return self._loaded[name]
        base, _, transform = name.partition("_")
        paths = self.paths[base]
        feats, places, seconds = [], [], 0.0
        for start in range(0, len(paths), 8):
            images = [load_image(p) for p in paths[start : start + 8]]
            if transform == "flip":
                images = [np.ascontiguousarray(img[:, ::-1]) for img in images]
            elif transform.startswith("rot"):
                images = [np.ascontiguousarray(np.rot90(img, int(transform[3:]))) for img in images]
            t0 = time.perf_counter()
            enc = encoder.encode(images, self.canvas)
            seconds += time.perf_counter() - t0
            feats.append(enc.features.half())
            places.extend(enc.placements)
        features = torch.cat(feats).contiguous()
        save_file({"features": features}, str(tensors))
        ms = 1000 * seconds / max(1, len(paths))
        load = os.getloadavg()[0]
        meta.write_text(json.dumps({"placements": [list(p.__dict__.values()) for p in places], "encode_ms_per_image": ms, "load": load}))
        print(f"  encoded {self.name} {name}: {len(paths)} images, {ms:.0f} ms each (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        self.encode_ms_per_image = ms
        self._loaded[name] = (features, places)
        return self._loaded[name]

    def batches(self, split: str, indices: Sequence[int], encoder: PatchEncoder, size: int = 32) -> Iterator[EncodedBatch]:
        """EncodedBatch objects (float32) of ``indices`` of ``split``, ``size`` at a time."""
        feats, places = self.split(split, encoder)
        for start in range(0, len(indices), size):
            chunk = list(indices[start : start + size])
            yield EncodedBatch(feats[chunk].float(), [places[i] for i in chunk], self.canvas, [])


def _fingerprint(paths: Sequence[Path]) -> str:
    """The images as the cache knows them: name, size and modification time (an image painted over and padded to its old
    size had been scored from its stale features: benchmarks probe 2026-12-06)."""
    h = hashlib.sha256()
    for p in paths:
        state = p.stat()
        h.update(f"{p.name}:{state.st_size}:{state.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


_SAID_NO_MASKS: set[str] = set()
"""Categories already said to have no masks in this run."""


def open_cache(root: Path, cache_dir: Path, backbone: str, stages: tuple[int, ...], image_size: int, aggregate: int = 3) -> CachedCategory:
    """The category at ``root`` with its features for one encoder setting; splits are encoded
    on first use (:meth:`CachedCategory.split`) and each is saved as soon as it is done."""
    category = load_category(root)
    train_paths = category.require_train_good()
    test = category.require_test()
    sizes = []
    for p in train_paths:
        with Image.open(p) as im:
            sizes.append(im.size)
    canvas = CanvasSpec.for_sizes(sizes, image_size)
    encoder_config = EncoderConfig(backbone=backbone, stages=stages, canvas_height=canvas.height, canvas_width=canvas.width, standardize=True,
        aggregate=aggregate,
    )
    identity = {
        "cache_version": CACHE_VERSION,
        "encoder": encoder_config.to_json(),
        "train": _fingerprint(train_paths),
        "test": _fingerprint([t.path for t in test]),
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    folder = cache_dir / category.name / key
    identity_path = folder / "identity.json"
    if identity_path.is_file() and json.loads(identity_path.read_text()) != identity:
        print(f"{folder}: cache made with other encoder settings or images — rebuilding", file=sys.stderr)
        for stale in folder.iterdir():
            stale.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    identity_path.write_text(json.dumps(identity))
    if not any(t.mask_path for t in test) and category.name not in _SAID_NO_MASKS:
        _SAID_NO_MASKS.add(category.name)  # once a run, not once per encoder setting
        print(f"{category.name}: no masks — pixel metrics skipped", file=sys.stderr)
    return CachedCategory(
        category.name,
        encoder_config,
        canvas,
        folder,
        {"train": list(train_paths), "test": [t.path for t in test]},
        [int(t.is_defective) for t in test],
        [str(t.mask_path) if t.mask_path else None for t in test],
    )


# ---------------------------------------------------------------------------- one row
_CORESETS: dict[tuple, torch.Tensor] = {}


def _memoised_coreset(
    features: torch.Tensor | Sequence[torch.Tensor], n_select: int, projection_dim: int = 64, seed: int = 0
) -> torch.Tensor:
    """The greedy coreset, remembered for the run: settings that only change scoring (k, blur,
    test-time flips, calibration) reuse the bank of the setting they vary, instead of spending
    minutes re-selecting the same rows. Same inputs give the same rows, so nothing changes.
    The detector hands its patches as one block per image; every 16th is read for the key."""
    blocks = [features] if isinstance(features, torch.Tensor) else features
    sample = [blocks[i] for i in range(0, len(blocks), 16)]
    key = (len(blocks), tuple(int(b.shape[0]) for b in sample), sum(float(b[::97].float().sum()) for b in sample), n_select, projection_dim, seed)
    if key not in _CORESETS:
        _CORESETS[key] = greedy_coreset(features, n_select, projection_dim=projection_dim, seed=seed)
    return _CORESETS[key]


memory_bank_module.greedy_coreset = _memoised_coreset

_calibrate = PatchFeatureDetector.calibrate


def _recording_calibrate(self, results, quantile):
    """PatchFeatureDetector.calibrate that also keeps the normal scores it was given, so a row
    can report the operating point of every false-alarm target without refitting."""
    results = list(results)
    self.calibration_scores = [r.score for r in results]
    return _calibrate(self, results, quantile)


PatchFeatureDetector.calibrate = _recording_calibrate  # type: ignore[method-assign]
FALSE_ALARM_TARGETS = (0.01, 0.02, 0.03, 0.04, 0.05)
"""Label-free thresholds reported per row: the (1 - target) quantile of the normal calibration
scores, the rule MemoryBankConfig.quantile applies."""

def train_subset(n_available: int, n_train: int | None) -> list[int]:
    """The seeded subset of training images the vision-expert benchmark also uses."""
    if n_train is None or n_available <= n_train:
        return list(range(n_available))
    return sorted(int(i) for i in np.random.default_rng(0).choice(n_available, n_train, replace=False))


def _make_detector(kind: str, setting: Setting, encoder: PatchEncoder):
    if kind == "memory-bank":
        # Fused, the bank keeps images out as the discriminator does: both are normalised on
        # the same unseen normal images.
        fused = {"calibration": "holdout"} if setting.detector == "fused" else {}
        return MemoryBankDetector(MemoryBankConfig(encoder=encoder.config, **{**setting.bank, **fused}), encoder)
    return DiscriminatorDetector(DiscriminatorConfig(encoder=encoder.config, **setting.discriminator), encoder)


def _score_split(detector, cache: CachedCategory, split: str, indices: Sequence[int], flip_test: bool) -> list[AnomalyResult]:
    results = [r for b in cache.batches(split, indices, detector.encoder) for r in detector.score_encoded(b)]
    if not flip_test:
        return results
    flipped = [r for b in cache.batches(split + "_flip", indices, detector.encoder) for r in detector.score_encoded(b)]
    top = detector.config.score_top_fraction
    out = []
    for r, f in zip(results, flipped, strict=True):
        amap = (r.anomaly_map + f.anomaly_map[:, ::-1]) / 2
        out.append(AnomalyResult(score=image_score(amap, top), anomaly_map=np.ascontiguousarray(amap, dtype=np.float32)))
    return out


def _masks(cache: CachedCategory, results: Sequence[AnomalyResult]) -> list[np.ndarray]:
    masks = []
    for mask_path, r in zip(cache.mask_paths, results, strict=True):
        if mask_path is None:
            masks.append(np.zeros(r.anomaly_map.shape, bool))
        else:
            h, w = r.anomaly_map.shape
            masks.append(load_mask(mask_path, (w, h)))
    return masks


PATCHCORE_SUPPORT = 9
"""Bank neighbours of the nearest normal patch that PatchCore's re-weighting compares with."""


def patchcore_reweighting(detector: MemoryBankDetector, cache: CachedCategory, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """PatchCore's image-score re-weighting (Roth et al., CVPR 2022, eq. 7), per test image:
    ``(weights, raw maximum patch distances)``.

    The image's most distant on-image patch ``q`` and its nearest bank row ``m`` are found; ``m``'s
    own ``PATCHCORE_SUPPORT`` nearest bank rows ``N`` (``m`` first) give the weight
    ``1 - softmax(|q - n| for n in N)[m]``: a patch whose nearest normal neighbour sits in a
    sparse part of the bank (rare but normal) is weighted down, one far from a dense part is not."""
    assert detector.bank is not None
    bank = detector.bank.numpy()
    exact = faiss.IndexFlatL2(bank.shape[1])
    exact.add(bank)
    weights, maxima = [], []
    for feat, on in on_image_cells(cache.batches("test", indices, detector.encoder)):
        queries = feat.permute(1, 2, 0)[on].float().contiguous().numpy()
        dist2, rows = exact.search(queries, 1)
        worst = int(np.argmax(dist2[:, 0]))
        _, support = exact.search(bank[rows[worst, :1]], PATCHCORE_SUPPORT)
        dist = np.linalg.norm(bank[support[0]] - queries[worst], axis=1)
        soft = np.exp(dist - dist.max())
        weights.append(1.0 - soft[0] / soft.sum())
        maxima.append(float(np.sqrt(max(dist2[worst, 0], 0.0))))
    return np.asarray(weights), np.asarray(maxima)


def _at_threshold(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float]:
    flagged = scores > threshold
    return float(flagged[labels == 1].mean()), float(flagged[labels == 0].mean())


def run_setting(setting: Setting, cache: CachedCategory, encoder: PatchEncoder, with_pixels: bool = True) -> list[dict]:
    """Fit and score one setting on one cached category; one row (more for score variants)."""
    train = train_subset(len(cache.paths["train"]), setting.n_train)
    kinds = ["memory-bank", "discriminator"] if setting.detector == "fused" else [setting.detector]
    fitted = []
    fit_seconds = 0.0
    for kind in kinds:
        detector = _make_detector(kind, setting, encoder)
        held = set(detector.holdout_indices(len(train)))
        fit_idx = [i for j, i in enumerate(train) if j not in held]
        hold_idx = [i for j, i in enumerate(train) if j in held]

        def train_batches(fit_idx=fit_idx) -> Iterator[EncodedBatch]:
            yield from cache.batches("train", fit_idx, encoder)
            if setting.flip_bank:
                yield from cache.batches("train_flip", fit_idx, encoder)
            for turns in setting.rotate_bank:
                yield from cache.batches(f"train_rot{turns}", fit_idx, encoder)

        t0 = time.perf_counter()
        detector.fit_encoded(train_batches(), cache.batches("train", hold_idx, encoder))
        fit_seconds += time.perf_counter() - t0
        fitted.append(detector)
    test_idx = list(range(len(cache.labels)))
    t0 = time.perf_counter()
    per_detector = [_score_split(d, cache, "test", test_idx, setting.flip_test) for d in fitted]
    score_ms = 1000 * (time.perf_counter() - t0) / len(test_idx)
    if len(fitted) == 1:
        results, threshold = per_detector[0], fitted[0].thresholds.image
    else:
        # Fusion: each detector's output in its own held-out-normal units, then summed; the
        # threshold from the fused held-out scores (the images both detectors held out).
        hold = [_score_split(d, cache, "train", hold_idx, setting.flip_test) for d in fitted]
        # Each member in the product's fixed units (FusedDetector.calibrate), on the images both held out.
        bank_units, disc_units = (normal_statistics([r.score for r in h], [r.anomaly_map for r in h], UNIT_QUANTILE) for h in hold)
        weight = setting.fusion_weight
        if weight is None:
            weight = choose_fusion_weight([a.score for a in hold[0]], [b.score for b in hold[1]], bank_units, disc_units)
        cfg = FusionConfig("sum", weight)
        fused_hold = [fuse(a.score, a.anomaly_map, b.score, b.anomaly_map, bank_units, disc_units, cfg) for a, b in zip(*hold, strict=True)]
        stats = normal_statistics([s for s, _ in fused_hold], [m for _, m in fused_hold])
        results = [
            AnomalyResult(*fuse(a.score, a.anomaly_map, b.score, b.anomaly_map, bank_units, disc_units, cfg))
            for a, b in zip(*per_detector, strict=True)
        ]
        threshold = stats.image_quantile
        # Beside the fused row: each member alone and the fixed weight used before, same fits.
        fusion_detail = {
            "fusion_weight": weight,
            "image_auroc_bank_alone": image_auroc(cache.labels, [r.score for r in per_detector[0]]),
            "image_auroc_discriminator_alone": image_auroc(cache.labels, [r.score for r in per_detector[1]]),
            "image_auroc_fused_0.5": image_auroc(
                cache.labels,
                # Scores only: the fused maps of this variant are not needed.
                [
                    fuse_scores(a.score, b.score, bank_units, disc_units, FusionConfig("sum", 0.5))
                    for a, b in zip(*per_detector, strict=True)
                ],
            ),
        }
    labels = np.asarray(cache.labels)
    scores = np.asarray([r.score for r in results])
    recall, fpr = _at_threshold(labels, scores, threshold)
    row = {
        "setting": setting.name,
        "factor": setting.factor,
        "category": cache.name,
        "n_train": len(train),
        "image_auroc": image_auroc(labels, scores),
        "recall_at_threshold": recall,
        "fpr_at_threshold": fpr,
        "fit_seconds": fit_seconds,
        "ms_per_image": cache.encode_ms_per_image * (2 if setting.flip_test else 1) + score_ms,
    }
    if len(fitted) > 1:
        row.update(fusion_detail)
    normal = getattr(fitted[0], "calibration_scores", None) if len(fitted) == 1 else None
    if normal and not setting.flip_test:
        # Same maps, other targets: what the false-alarm target trades (no refit needed).
        row["operating_points"] = {
            f"{target:.0%}": _at_threshold(labels, scores, float(np.quantile(normal, 1 - target))) for target in FALSE_ALARM_TARGETS
        }
    if with_pixels:
        masks = _masks(cache, results)
        maps = [r.anomaly_map for r in results]
        row["pixel_auroc"] = pixel_auroc(masks, maps)
        row["aupro"] = aupro(masks, maps)
    rows = [row]
    if setting.name in VARIANT_ROWS:
        # Image-score variants on the same maps (no refit). Their AUROC only: the label-free
        # threshold of a variant would need its own calibration maps.
        variants = {name: np.asarray([fn(r.anomaly_map) for r in results]) for name, fn in SCORE_VARIANTS.items()}
        if setting.name == "lite2-current":
            weights, patch_max = patchcore_reweighting(fitted[0], cache, test_idx)
            variants["patchcore-reweighted-max"] = weights * patch_max
            variants["patchcore-weight x top-1%"] = weights * scores
        for variant, s in variants.items():
            rows.append(
                {
                    **{k: v for k, v in row.items() if k != "operating_points"},  # they belong to the row's own score
                    "setting": f"score:{variant}" + ("" if setting.name == "base" else f" ({setting.name})"),
                    "factor": "image score",
                    "image_auroc": image_auroc(labels, s),
                    "recall_at_threshold": None,
                    "fpr_at_threshold": None,
                }
            )
    return rows


# ---------------------------------------------------------------------------- tables
COLUMNS = ("image_auroc", "pixel_auroc", "aupro", "recall_at_threshold", "fpr_at_threshold", "fit_seconds", "ms_per_image")


def write_tables(rows: list[dict], out: Path, meta: dict) -> None:
    """Rewrite the JSON and the Markdown table (per setting: mean over categories, then per category)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "detector_study.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    categories = sorted({r["category"] for r in rows})
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    lines = [
        "# Detector study",
        "",
        f"Machine: {meta['machine']}. Generated by `benchmarks/detector_study.py`; every number is measured, none copied.",
        "Mean over the categories a setting was run on; image AUROC per category beside it.",
        *[f"- {note}" for note in meta.get("notes", [])],
        "",
        "| setting | factor | "
        + " | ".join(f"{c} image AUROC" for c in categories)
        + " | mean image AUROC | mean pixel AUROC | mean AUPRO | mean recall@t | mean FPR@t | mean fit s | mean ms/img |",
        "|" + "---|" * (len(categories) + 9),
    ]
    for name in settings:
        mine = {r["category"]: r for r in rows if r["setting"] == name}

        def mean(col: str, mine=mine) -> str:
            vals = [r[col] for r in mine.values() if r.get(col) is not None]
            return f"{np.mean(vals):.3f}" if vals and col not in ("fit_seconds", "ms_per_image") else (f"{np.mean(vals):.0f}" if vals else "–")

        per_cat = [f"{mine[c]['image_auroc']:.3f}" if c in mine else "–" for c in categories]
        factor = next(iter(mine.values()))["factor"]
        lines.append(f"| {name} | {factor} | " + " | ".join(per_cat) + " | " + " | ".join(mean(c) for c in COLUMNS) + " |")
    swept = [r for r in rows if r.get("operating_points")]
    if swept:
        targets = list(swept[0]["operating_points"])
        lines += [
            "",
            "## Recall / false-alarm rate on the test images at each label-free false-alarm target",
            "",
            "The threshold is the (1 − target) quantile of the normal calibration scores; same maps, no refit.",
            "",
            "| setting | category | " + " | ".join(f"target {t}" for t in targets) + " |",
            "|---|---|" + "---|" * len(targets),
        ]
        for r in swept:
            cells = [f"{rec:.2f} / {fpr:.3f}" for rec, fpr in r["operating_points"].values()]
            lines.append(f"| {r['setting']} | {r['category']} | " + " | ".join(cells) + " |")
    lines += leave_one_category_out(rows, categories)
    (out / "detector_study.md").write_text("\n".join(lines) + "\n")


LOCO_METRICS = ("image_auroc", "aupro")
"""What the leave-one-category-out check picks settings by (each on its own)."""


def leave_one_category_out(rows: list[dict], categories: list[str], current: str = "lite2-current") -> list[str]:
    """Markdown lines: for each category, the setting the *other* categories would pick (best mean),
    and how it does on the one left out, against the best setting for it and the current defaults.

    The study has no category outside ``../shared``; this is the nearest honest check of how a
    default chosen on the shared categories holds on one it was not chosen on."""
    by_setting: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_setting.setdefault(r["setting"], {})[r["category"]] = r
    lines = [
        "",
        "## Leave one category out: does the choice hold on a category it was not made on?",
        "",
        "For each category, the setting with the best mean over the *other* categories (among the "
        f"settings run on all {len(categories)}), and its result on the one left out. Rank: among those settings on that category.",
        "",
        "| metric | left out | chosen on the others | its value there | rank there | best there | current defaults there |",
        "|---|---|---|---|---|---|---|",
    ]
    for metric in LOCO_METRICS:
        full = {
            n: cats
            for n, cats in by_setting.items()
            # A 'score:' row's maps are its parent's: only image metrics tell it apart.
            if all(cats.get(c, {}).get(metric) is not None for c in categories) and not (metric != "image_auroc" and n.startswith("score:"))
        }
        if len(full) < 2:
            continue
        for held in categories:
            others = [c for c in categories if c != held]
            chosen = max(full, key=lambda n: np.mean([full[n][c][metric] for c in others]))
            ranked = sorted(full, key=lambda n: -full[n][held][metric])
            value = full[chosen][held][metric]
            best = ranked[0]
            cur = f"{full[current][held][metric]:.3f}" if current in full else "–"
            lines.append(
                f"| {metric} | {held} | {chosen} | {value:.3f} | {ranked.index(chosen) + 1} of {len(ranked)} | "
                f"{full[best][held][metric]:.3f} ({best}) | {cur} |"
            )
    return lines


def cached_study_parser(doc: str, categories: Sequence[str]) -> argparse.ArgumentParser:
    """The arguments every study on this feature cache takes (``--data``, ``--cache``, ``--out``,
    ``--categories``), for the studies that import this module."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "detector_cache")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--categories", nargs="*", default=list(categories))
    return parser


def main() -> None:
    """Run the chosen settings on the chosen categories and write the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "detector_cache")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--settings", nargs="*", default=None, help="names of settings to run (default: all)")
    parser.add_argument("--categories", nargs="*", default=None)
    parser.add_argument("--rerun", action="store_true", help="run rows already in the results again")
    parser.add_argument("--list", action="store_true", help="list the settings and exit")
    parser.add_argument("--tables", action="store_true", help="rewrite the tables from the results JSON and exit")
    args = parser.parse_args()
    if args.list:
        for s in SETTINGS:
            print(f"{s.name:16} {s.factor}")
        return
    if args.tables:
        saved = saved_results(path := args.out / "detector_study.json", needs=("rows", "meta"))
        tables_written(path, lambda: write_tables(saved["rows"], args.out, saved["meta"]))
        return
    known = {s.name: s for s in SETTINGS}
    unknown = [n for n in args.settings or [] if n not in known]
    if unknown:
        sys.exit(f"unknown setting(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    chosen = [known[n] for n in args.settings] if args.settings else SETTINGS
    names = require_categories(args.data, args.categories,
                               has_normal_images)
    record = run_record()
    results_path = args.out / "detector_study.json"
    rows: list[dict] = json.loads(results_path.read_text())["rows"] if results_path.is_file() else []
    # Notes written by hand about how rows were run (load, caveats) are kept across runs.
    notes = json.loads(results_path.read_text())["meta"].get("notes", []) if results_path.is_file() else []
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    meta = {"machine": machine, "notes": notes}
    for key in dict.fromkeys(s.encoder_key() for s in chosen):
        try:
            caches = {name: open_cache(args.data / name, args.cache, *key) for name in names}
        except DefectlensError as exc:  # an unknown category or one without test images: one line
            sys.exit(f"error: {exc}")
        encoder = PatchEncoder(next(iter(caches.values())).encoder)
        # Setting by setting across all categories: the earliest rows already compare categories.
        for setting in (s for s in chosen if s.encoder_key() == key):
            for name, cache in caches.items():
                if any(r["setting"] == setting.name and r["category"] == name for r in rows) and not args.rerun:
                    print(f"{setting.name} / {name}: already in the results (--rerun to measure it again)", flush=True)
                    continue
                category_encoder = encoder if encoder.config == cache.encoder else PatchEncoder(cache.encoder)
                new = run_setting(setting, cache, category_encoder, with_pixels=any(cache.mask_paths))
                # Each row says when and by which code it was measured: rows of earlier runs are kept beside it, and the
                # file's one record had read as theirs too (regression probe 2026-12-06).
                new = [{**r, "measured": {"utc": finish_record(record)["finished_utc"], "commit": record["commit"]}} for r in new]
                replaced = {(r["setting"], r["category"]) for r in new}
                rows = [r for r in rows if (r["setting"], r["category"]) not in replaced] + new
                for r in new:
                    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
                # The run's start and its latest row (one load average, overwritten row by row, had described the last alone).
                meta["load_average"] = os.getloadavg()[0]
                meta["run"] = finish_record(record)
                write_tables(rows, args.out, meta)

if __name__ == "__main__":
    main()
