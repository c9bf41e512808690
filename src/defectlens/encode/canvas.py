"""Placing images of any size and aspect ratio on a fixed network canvas, and back.

Squashing a 250x620 commutator into a square would stretch cracks sideways and make the
model see a different part than the one photographed. Instead each image is scaled by one
factor (aspect kept), centred on a canvas whose own aspect ratio is chosen from the training
images, and the border is filled by mirroring. Every map computed on the canvas is cropped
back to the image's footprint and resized to the original pixel grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# The deepest stage used has stride 32 at most; canvas sides are multiples of it so every
# feature cell covers whole pixels.
ALIGN = 32
MAX_CANVAS_ASPECT = 16.0
"""The longest canvas for its short side: at the default size (256) a 16:1 canvas is 1024 × 64 pixels, four cells of the
coarser feature stage (stride 16) across; parts longer than this are placed on it with a mirrored border."""


@dataclass(frozen=True)
class CanvasSpec:
    """Network input shape (height, width) in pixels, both multiples of 32."""

    height: int
    width: int

    @classmethod
    def for_sizes(cls, sizes: Sequence[tuple[int, int]], side: int) -> CanvasSpec:
        """Canvas of about ``side``² pixels whose aspect ratio is the median of ``sizes`` ((w, h) pairs)."""
        if side < ALIGN:
            raise ValueError(f"image size must be at least {ALIGN}, got {side}")
        aspect = float(np.median([w / h for w, h in sizes])) if sizes else 1.0
        # Capped where the short side would hold too few feature cells. At 4:1 it had been: a 20:1 strip then filled a fifth
        # of a 4:1 canvas, read at 1/8 of its pixels, and a 30-pixel defect went unseen (small-shop probe 2026-12-07).
        aspect = min(max(aspect, 1 / MAX_CANVAS_ASPECT), MAX_CANVAS_ASPECT)
        width = max(ALIGN, round(side * math.sqrt(aspect) / ALIGN) * ALIGN)
        height = max(ALIGN, round(side / math.sqrt(aspect) / ALIGN) * ALIGN)
        return cls(height, width)

    @classmethod
    def around(cls, height: int, width: int, scale: float, max_side: int = 1024) -> CanvasSpec:
        """Per-image canvas for fixed-scale mode: the scaled image rounded up to multiples of 32.

        Sides above ``max_side`` are capped (the image is then shrunk to fit), so a huge
        upload cannot exhaust memory.
        """
        def up(x: float) -> int:
            return min(max_side, max(ALIGN * 2, math.ceil(x / ALIGN) * ALIGN))

        return cls(up(height * scale), up(width * scale))


@dataclass(frozen=True)
class Placement:
    """Where an original image sits on the canvas."""

    original_height: int
    original_width: int
    top: int
    left: int
    height: int
    """Height of the scaled image on the canvas."""
    width: int

    def crop(self, canvas_map: torch.Tensor) -> torch.Tensor:
        """The part of a canvas-resolution map (..., Hc, Wc) that covers the image."""
        return canvas_map[..., self.top : self.top + self.height, self.left : self.left + self.width]


def place(image: np.ndarray, spec: CanvasSpec) -> tuple[np.ndarray, Placement]:
    """Scale ``image`` (H, W, 3 uint8) to fit ``spec`` without distortion, centre it, mirror-pad."""
    h, w = image.shape[:2]
    scale = min(spec.height / h, spec.width / w)
    new_h = min(spec.height, max(1, round(h * scale)))
    new_w = min(spec.width, max(1, round(w * scale)))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=None))
    top = (spec.height - new_h) // 2
    left = (spec.width - new_w) // 2
    pad = ((top, spec.height - new_h - top), (left, spec.width - new_w - left), (0, 0))
    # Mirroring continues the surface texture; a constant border would be an edge the model
    # has to learn is normal at every possible position.
    canvas = np.pad(resized, pad, mode="symmetric")
    return canvas, Placement(h, w, top, left, new_h, new_w)


def map_to_original(canvas_map: torch.Tensor, placement: Placement) -> np.ndarray:
    """Crop a (Hc, Wc) canvas map to the image footprint and resize it to the original grid."""
    cropped = placement.crop(canvas_map)[None, None].float()
    full = F.interpolate(
        cropped, size=(placement.original_height, placement.original_width), mode="bilinear", align_corners=False
    )
    return full[0, 0].numpy().astype(np.float32, copy=False)


def mask_to_grid(mask: np.ndarray, placement: Placement, spec: CanvasSpec, grid: tuple[int, int]) -> np.ndarray:
    """Share of each feature cell (grid = (h, w)) covered by an original-resolution mask.

    Used to pool features inside a region or to build training targets on the feature grid.
    Cells outside the image footprint get 0.
    """
    canvas = torch.zeros(spec.height, spec.width)
    m = torch.from_numpy(mask.astype(np.float32))[None, None]
    scaled = F.interpolate(m, size=(placement.height, placement.width), mode="bilinear", align_corners=False)[0, 0]
    canvas[placement.top : placement.top + placement.height, placement.left : placement.left + placement.width] = scaled
    return F.adaptive_avg_pool2d(canvas[None, None], grid)[0, 0].numpy()


def footprint_grid(placement: Placement, spec: CanvasSpec, grid: tuple[int, int]) -> np.ndarray:
    """Share of each feature cell that lies on the image rather than on the mirrored border."""
    ones = np.ones((placement.original_height, placement.original_width), dtype=bool)
    return mask_to_grid(ones, placement, spec, grid)
