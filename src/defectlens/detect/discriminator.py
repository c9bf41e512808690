"""Feature-discriminator detector (SimpleNet-style), trained on frozen patch features.

Fit: patch features of normal images are standardised per channel, passed through a learned
linear *adaptor*, and a small MLP *discriminator* learns to tell them from copies pushed off
the normal manifold by Gaussian noise. Nothing but normal images is needed: the noise plays
the defect. Inspect: a patch's anomaly value is minus the discriminator's logit; the map and
image score are made exactly as the memory bank's (:mod:`defectlens.detect.maps`).

Unlike the memory bank, its inference cost does not grow with the number of training
patches (no search), and its fit cost is a fixed number of optimiser steps.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from defectlens.detect.base import LoadContext
from defectlens.detect.calibration import DEFAULT_QUANTILE, NormalStatistics
from defectlens.detect.maps import grid_to_results, on_image_cells
from defectlens.detect.patch_detector import FitSummary, PatchFeatureDetector, holdout_indices
from defectlens.encode import EncodedBatch, EncoderConfig, PatchEncoder
from defectlens.errors import ModelFileError
from defectlens.io.atomic import read_model_json, read_model_tensors, write_model_files
from defectlens.types import AnomalyResult, Thresholds

FORMAT = "defectlens.discriminator"
FORMAT_VERSION = 1
CONFIG_FILE = "discriminator.json"
WEIGHTS_FILE = "discriminator.safetensors"


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Settings of the feature-discriminator detector (saved with the model)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    hidden: int = 128
    """Width of the discriminator's hidden layer."""
    noise_std: float = 0.25
    """Standard deviation of the Gaussian that makes the synthetic anomalous features, in units
    of the standardised features' per-channel spread."""
    steps: int = 600
    """Optimiser steps; each sees ``patches_per_step`` normal and as many noisy patches."""
    patches_per_step: int = 1024
    learning_rate: float = 1e-3
    margin: float = 0.5
    """Truncated-L1 margin: logits beyond +-margin no longer pull (SimpleNet's th)."""
    blur_sigma: float = 4.0
    holdout_fraction: float = 0.1
    quantile: float = DEFAULT_QUANTILE
    score_top_fraction: float = 0.01
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.steps < 1 or self.patches_per_step < 1:
            raise ValueError("hidden, steps and patches_per_step must be positive")
        if self.noise_std <= 0:
            raise ValueError(f"noise_std must be positive, got {self.noise_std}")
        if not 0 <= self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}")
        if not 0 <= self.score_top_fraction < 1:
            raise ValueError(f"score_top_fraction must be in [0, 1), got {self.score_top_fraction}")

    def to_json(self) -> dict:
        """Plain-JSON form."""
        d = asdict(self)
        d["encoder"] = self.encoder.to_json()
        return d

    @classmethod
    def from_json(cls, d: dict) -> DiscriminatorConfig:
        """Inverse of :meth:`to_json`."""
        return cls(**{**d, "encoder": EncoderConfig.from_json(d["encoder"])})


class _Network(nn.Module):
    """Standardise -> linear adaptor -> MLP discriminator (one logit per patch, high = normal)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.adaptor = nn.Linear(dim, dim)
        self.discriminator = nn.Sequential(nn.Linear(dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))
        # The adaptor starts as the identity: training begins from the standardised features.
        nn.init.eye_(self.adaptor.weight)
        nn.init.zeros_(self.adaptor.bias)

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        return self.adaptor((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(self.adapt(x))[..., 0]


class DiscriminatorDetector(PatchFeatureDetector):
    """Anomaly detector that learned, from normal patches only, where normal features end."""

    name = "discriminator"

    def __init__(self, config: DiscriminatorConfig | None = None, encoder: PatchEncoder | None = None):
        self.config = config or DiscriminatorConfig()
        self.encoder = encoder or PatchEncoder(self.config.encoder)
        if self.encoder.config != self.config.encoder:
            raise ValueError("encoder settings differ from the detector's config")
        self.batch_size = self.config.batch_size
        self.network: _Network | None = None
        self.thresholds: Thresholds | None = None
        self.normal_stats: NormalStatistics | None = None

    # ------------------------------------------------------------------ fitting
    def holdout_indices(self, n_images: int) -> list[int]:
        """Which of ``n_images`` fit images :meth:`fit` keeps out of training to calibrate on."""
        return holdout_indices(n_images, self.config.holdout_fraction, self.config.seed)

    def fit_encoded(self, train: Iterable[EncodedBatch], holdout: Iterable[EncodedBatch] = ()) -> FitSummary:
        """Train on encoded normal images and calibrate on encoded held-out ones."""
        start = time.perf_counter()
        patches = [feat.permute(1, 2, 0)[keep] for feat, keep in on_image_cells(train)]
        if not patches:
            raise ValueError("fit needs at least one normal image")
        normal = torch.cat(patches).float()
        self.network = self._train(normal)
        n_holdout = self.calibrate((r for batch in holdout for r in self.score_encoded(batch)), self.config.quantile)
        return FitSummary(len(patches) + n_holdout, n_holdout, len(normal), 0, time.perf_counter() - start)

    def _train(self, normal: torch.Tensor) -> _Network:
        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.seed)
        # The layers' initial weights come from torch's global generator: seeded for a repeatable
        # fit, inside fork_rng so that the caller's random state is as it was afterwards.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            net = _Network(normal.shape[1], cfg.hidden)
        net.mean.copy_(normal.mean(0))
        net.std.copy_(normal.std(0).clamp_min(1e-6))
        optimiser = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
        threads = torch.get_num_threads()
        # Each step's matrices are small (patches_per_step x channels): a second thread gains
        # little, and on shared cores its synchronisation made steps ten times slower (measured).
        torch.set_num_threads(1)
        try:
            self._optimise(net, optimiser, normal, gen)
        finally:
            torch.set_num_threads(threads)
        return net.eval()

    def _optimise(self, net: _Network, optimiser: torch.optim.Optimizer, normal: torch.Tensor, gen: torch.Generator) -> None:
        cfg = self.config
        for _ in range(cfg.steps):
            pick = torch.randint(len(normal), (cfg.patches_per_step,), generator=gen)
            adapted = net.adapt(normal[pick])
            noisy = adapted + cfg.noise_std * torch.randn(adapted.shape, generator=gen)
            # Truncated L1 (SimpleNet): push normal logits above +margin and noisy ones below
            # -margin; past the margin a patch stops pulling, so easy ones do not dominate.
            loss = torch.relu(cfg.margin - net.discriminator(adapted)).mean() + torch.relu(cfg.margin + net.discriminator(noisy)).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

    # ------------------------------------------------------------------ scoring
    @torch.inference_mode()
    def score_encoded(self, encoded: EncodedBatch) -> list[AnomalyResult]:
        """Score images already encoded by this detector's encoder."""
        if self.network is None:
            raise RuntimeError("the detector is not fitted: call fit() or load() first")
        grid = -self.network(encoded.features.float().permute(0, 2, 3, 1))
        return grid_to_results(grid, encoded, self.config.blur_sigma, self.config.score_top_fraction)

    # ------------------------------------------------------------------ persistence
    def describe(self) -> dict:
        """What the model card says about this detector (plain JSON)."""
        c = self.config
        return {
            "encoder": c.encoder.to_json(),
            "hidden": c.hidden,
            "noise_std": c.noise_std,
            "steps": c.steps,
            "blur_sigma": c.blur_sigma,
            "score_top_fraction": c.score_top_fraction,
            "threshold_quantile": c.quantile,
            "calibration": "holdout",
        }

    def save(self, directory: str | Path) -> None:
        """Write ``discriminator.json`` + ``discriminator.safetensors`` (atomically, never pickle)."""
        if self.network is None:
            raise RuntimeError("nothing to save: the detector is not fitted")
        tensors = {k: v.detach().contiguous() for k, v in self.network.state_dict().items()}
        config = {"config": self.config.to_json(), "feature_dim": int(self.network.mean.shape[0]), **self.calibration_json()}
        write_model_files(directory, WEIGHTS_FILE, tensors, CONFIG_FILE, config, FORMAT, FORMAT_VERSION)

    @classmethod
    def load(cls, directory: str | Path, encoder: PatchEncoder | None = None, *, context: LoadContext | None = None) -> DiscriminatorDetector:
        """Load a saved detector, checking format, version, encoder and weight shapes
        (``context`` is accepted for the registry's uniform call and not needed)."""
        root = Path(directory)
        meta = read_model_json(root, CONFIG_FILE, FORMAT, FORMAT_VERSION, "discriminator model", "`defectlens fit --detector discriminator`")
        try:
            config = DiscriminatorConfig.from_json(meta["config"])
            thresholds = Thresholds(**meta["thresholds"]) if meta.get("thresholds") else None
            stats = NormalStatistics(**meta["normal_stats"]) if meta.get("normal_stats") else None
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"invalid discriminator settings ({exc})", root / CONFIG_FILE, "re-fit the model") from None
        config.encoder.require_same(encoder.config if encoder else None, root, "re-fit the model with the encoder you want")
        if thresholds is None:
            raise ModelFileError("model has no thresholds", root / CONFIG_FILE, "re-fit it on at least 2 normal images")
        detector = cls(config, encoder)
        path = root / WEIGHTS_FILE
        tensors = read_model_tensors(path, "discriminator weights", "re-fit the model")
        with torch.random.fork_rng(devices=[]):  # initial weights, replaced below: the caller's random state is left alone
            network = _Network(detector.encoder.feature_dim, config.hidden)
        try:
            network.load_state_dict(tensors)
        except RuntimeError:
            raise ModelFileError(
                f"discriminator weights do not fit {config.encoder.backbone} features of {detector.encoder.feature_dim} channels",
                path,
                "the model was made with another backbone or version: re-fit it",
            ) from None
        detector.network = network.eval()
        detector.thresholds, detector.normal_stats = thresholds, stats
        return detector
