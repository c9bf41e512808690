"""Multi-level patch features from an EfficientNet-Lite trunk.

PatchCore's observation: mid-level features (not the semantic top) describe local texture
and structure best; averaging each over a 3x3 neighbourhood gives a patch some context,
and upsampling the coarser level onto the finer grid aligns them cell by cell.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from defectlens.encode.canvas import CanvasSpec, Placement, place
from defectlens.encode.efficientnet import BACKBONES, DEFAULT_BACKBONE, EfficientNetLite, load_efficientnet_lite
from defectlens.errors import ModelFileError
from defectlens.io.images import shape_of

# TF EfficientNet-Lite preprocessing: (x - 127) / 128, per channel.
_MEAN, _STD = 127.0, 128.0
# Grey-level spread images are standardised to (about that of a well-exposed photograph).
_STANDARD_SPREAD = 48.0


def grey_statistics(pixels: np.ndarray) -> tuple[float, float]:
    """Mean and (n - 1) standard deviation of uint8 pixel values, from exact integer sums.

    A float32 reduction's rounding depends on how many threads split it, and one last-digit
    difference here reaches every feature, so the same image would score differently with 1
    and 2 threads (a Ray worker and the local engine). Integer sums make them the same."""
    values = pixels.astype(np.int64, copy=False).ravel()
    n = int(values.size)
    total = int(values.sum())
    squares = int(np.dot(values, values))
    variance = (n * squares - total * total) / (n * (n - 1)) if n > 1 else 0.0
    return total / n, float(np.sqrt(variance))


@dataclass(frozen=True)
class EncoderConfig:
    """Everything that determines the patch features; saved with every model built on them."""

    backbone: str = DEFAULT_BACKBONE
    stages: tuple[int, ...] = (2, 4)
    """0-based EfficientNet stage indices; (2, 4) = strides 8 and 16."""
    aggregate: int = 3
    """Side of the local average-pooling window (1 disables it)."""
    canvas_height: int = 256
    canvas_width: int = 256
    fixed_scale: float | None = None
    """When set, every image is scaled by this one factor and gets its own canvas (rounded up
    to multiples of 32) instead of being fitted into the fixed canvas above."""
    standardize: bool = False
    """Shift and scale each image's grey levels to a common mean and spread before encoding.
    Removes exposure differences between shots, which are not defects."""

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if not self.stages or sorted(self.stages) != list(self.stages) or min(self.stages) < 0 or max(self.stages) > 6:
            raise ValueError(f"stages must be increasing indices in 0..6, got {self.stages}")
        if self.aggregate < 1 or self.aggregate % 2 == 0:
            raise ValueError(f"aggregate must be an odd number >= 1, got {self.aggregate}")

    @property
    def canvas(self) -> CanvasSpec:
        """The network input shape in fit-to-canvas mode."""
        return CanvasSpec(self.canvas_height, self.canvas_width)

    def canvas_for(self, height: int, width: int) -> CanvasSpec:
        """The canvas an image of this size is placed on (fixed canvas, or its own in fixed-scale mode)."""
        if self.fixed_scale is None:
            return self.canvas
        return CanvasSpec.around(height, width, self.fixed_scale)

    def to_json(self) -> dict:
        """Plain-JSON form."""
        d = asdict(self)
        d["stages"] = list(self.stages)
        return d

    def require_same(self, given: EncoderConfig | None, where: Path, remedy: str) -> None:
        """A model saved with this encoder cannot run on another: raise a
        :class:`~defectlens.errors.ModelFileError` unless ``given`` (if any) equals it."""
        if given is not None and given != self:
            # Name every setting that differs (the canvas, say, when backbone and stages agree).
            mine, theirs = asdict(self), asdict(given)
            differ = [k for k in mine if mine[k] != theirs[k]]
            built = ", ".join(f"{k} {mine[k]!r}" for k in differ)
            other = ", ".join(f"{k} {theirs[k]!r}" for k in differ)
            raise ModelFileError(
                f"model was built on {self.backbone} with {built}, not {other}",
                where,
                f"load it without overriding the encoder, or {remedy}",
            )

    @classmethod
    def from_json(cls, d: dict) -> EncoderConfig:
        """Inverse of :meth:`to_json`."""
        return cls(**{**d, "stages": tuple(d["stages"])})


@dataclass
class EncodedBatch:
    """Patch features of a batch of same-canvas images on the finest selected feature grid."""

    features: torch.Tensor
    """(N, C, h, w) float32."""
    placements: list[Placement]
    canvas: CanvasSpec
    levels: list[torch.Tensor]
    """The per-stage maps before fusion, (N, C_i, h_i, w_i): for consumers that weigh levels."""


class FeatureNetwork(Protocol):
    """The network half of the encoder: normalised canvases (N, 3, Hc, Wc) in, the fused patch
    features (N, C, h, w) and the per-stage maps out. PyTorch (:class:`FusedTrunk`) or an
    exported copy run by another runtime (:mod:`defectlens.export.runtime`): detectors never know which."""

    name: str
    """What runs it, for messages and benchmarks ("torch", "onnxruntime", "openvino")."""

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(fused features, per-stage maps) of a normalised batch."""
        ...


class FusedTrunk(nn.Module):
    """The EfficientNet-Lite trunk plus the multi-level fusion: the part of the encoder that is
    exported (everything after the image is placed on its canvas and normalised)."""

    name = "torch"

    def __init__(self, trunk: EfficientNetLite, stages: tuple[int, ...], aggregate: int):
        super().__init__()
        self.trunk = trunk
        self.stages = stages
        self.aggregate = aggregate

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(fused (N, C, h, w), per-stage maps) — coarser stages averaged and upsampled onto the finest grid."""
        levels = self.trunk.forward_stages(x, self.stages)
        return fuse_levels(levels, self.aggregate), [lvl.contiguous().float() for lvl in levels]


def fuse_levels(levels: Sequence[torch.Tensor], aggregate: int, grid: tuple[int, int] | None = None) -> torch.Tensor:
    """Per-stage maps (N, C_i, h_i, w_i) -> one (N, sum C_i, h, w) feature map: each stage averaged
    over an ``aggregate`` x ``aggregate`` neighbourhood on its own grid, then resized onto ``grid``
    (default: the first, finest stage's grid). What the encoder's fused features are, and what a
    detector that weighs several neighbourhood sizes recomputes from :attr:`EncodedBatch.levels`."""
    target = (int(levels[0].shape[-2]), int(levels[0].shape[-1])) if grid is None else grid
    fused = []
    for lvl in levels:
        lvl = lvl.contiguous().float()
        if aggregate > 1:
            # count_include_pad=False: border cells average only real neighbours.
            lvl = F.avg_pool2d(lvl, aggregate, stride=1, padding=aggregate // 2, count_include_pad=False)
        if tuple(lvl.shape[-2:]) != target:
            # Area averaging when shrinking a finer stage, bilinear when enlarging a coarser one.
            shrink = lvl.shape[-2] > target[0]
            lvl = F.adaptive_avg_pool2d(lvl, target) if shrink else F.interpolate(lvl, size=target, mode="bilinear", align_corners=False)
        fused.append(lvl)
    return torch.cat(fused, dim=1).float()


class PatchEncoder:
    """Turns RGB images into aligned multi-level patch features (frozen ImageNet weights)."""

    def __init__(self, config: EncoderConfig):
        self.config = config
        # torch's Module.to overloads omit memory_format, which Module.to accepts at runtime.
        self.net = load_efficientnet_lite(config.backbone).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.channels = [self.net.stages[s].channels for s in config.stages]
        self.stride = self.net.stages[config.stages[0]].stride
        self.torch_network = FusedTrunk(self.net, config.stages, config.aggregate).eval()
        """The PyTorch network (what `defectlens export` writes out)."""
        self.network: FeatureNetwork = self.torch_network
        """What :meth:`encode` runs: the PyTorch network, or an exported one (:meth:`use_network`)."""

    def use_network(self, network: FeatureNetwork) -> None:
        """Run the encoder's network on ``network`` from now on (an exported model's runtime);
        placement and normalisation stay here, so every backend sees identical input."""
        self.network = network

    @property
    def feature_dim(self) -> int:
        """Channels of the fused feature vector of one patch."""
        return sum(self.channels)

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the fused feature grid for this config's fixed canvas."""
        return self.grid_for(self.config.canvas)

    def grid_for(self, spec: CanvasSpec) -> tuple[int, int]:
        """(h, w) of the fused feature grid of a canvas."""
        return spec.height // self.stride, spec.width // self.stride

    def prepare(self, images: Sequence[np.ndarray], spec: CanvasSpec) -> tuple[torch.Tensor, list[Placement]]:
        """Place RGB uint8 images on ``spec`` and normalise them into a (N, 3, Hc, Wc) tensor."""
        canvases, placements = zip(*(place(img, spec) for img in images), strict=True)
        x = torch.from_numpy(np.stack(canvases)).permute(0, 3, 1, 2).float()
        if self.config.standardize:
            # Statistics over the image's own footprint only: the mirrored border would double-count it.
            for xi, canvas, p in zip(x, canvases, placements, strict=True):
                mean, std = grey_statistics(canvas[p.top : p.top + p.height, p.left : p.left + p.width])
                xi.sub_(mean).div_(max(std, 1.0)).mul_(_STANDARD_SPREAD).add_(_MEAN)
        x = (x - _MEAN) / _STD
        return x.contiguous(memory_format=torch.channels_last), list(placements)

    def iter_groups(self, images: Sequence[np.ndarray], batch_size: int = 8) -> Iterator[tuple[list[int], EncodedBatch]]:
        """Encode images of any sizes, batching those that share a canvas; yields (indices, batch).

        In fit-to-canvas mode every image shares the one canvas; in fixed-scale mode images
        of equal size (common in a production line) still share batches.
        """
        groups: dict[CanvasSpec, list[int]] = {}
        for i in range(len(images)):
            # By shape alone: images still on disk (ImageFiles) are decoded only when encoded.
            groups.setdefault(self.config.canvas_for(*shape_of(images, i)[:2]), []).append(i)
        for spec, members in groups.items():
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                yield chunk, self.encode([images[i] for i in chunk], spec)

    @torch.inference_mode()
    def encode(self, images: Sequence[np.ndarray], spec: CanvasSpec | None = None) -> EncodedBatch:
        """Fused patch features (N, C, h, w) for RGB uint8 images placed on one canvas.

        ``spec`` defaults to the config's fixed canvas; in fixed-scale mode pass the shared
        canvas of the batch, or use :meth:`iter_groups`.
        """
        if spec is None:
            spec = self.config.canvas
        x, placements = self.prepare(images, spec)
        fused, levels = self.network(x)
        return EncodedBatch(fused, placements, spec, levels)
