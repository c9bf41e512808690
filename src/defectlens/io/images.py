"""Decoding images from disk into 8-bit RGB arrays, whatever their mode, depth or orientation.

Anything that cannot be decoded raises :class:`ImageReadError` naming the file and the fix,
so a batch can skip it and report it at the end.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from defectlens.errors import ImageReadError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})

# A hostile or mistaken upload can declare a gigantic canvas; refuse before decoding it.
MAX_PIXELS = 64_000_000


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to uint8 RGB with a fixed (not per-image) intensity mapping,
    so that training and test images of the same camera map identically."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit grey: a fixed 65535 -> 255 scale keeps relative brightness across images.
        arr = np.asarray(img, dtype=np.uint16).astype(np.float32) / 257.0
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "I":
        arr = np.asarray(img, dtype=np.int64)
        # 32-bit int images from PNG are 16-bit data widened by Pillow.
        scale = 257.0 if arr.max(initial=0) > 255 else 1.0
        grey = np.clip(np.rint(arr / scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        scale = 255.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 1.0
        grey = np.clip(np.rint(np.nan_to_num(arr) * scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Composite transparent pixels over mid-grey: black or white would look like a defect.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def load_image(path: str | Path) -> np.ndarray:
    """Read ``path`` as a (H, W, 3) uint8 RGB array, applying EXIF orientation.

    Raises :class:`ImageReadError` for missing, empty, truncated, oversized or non-image files.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageReadError("no such file", p, "check the path")
    if p.stat().st_size == 0:
        raise ImageReadError("file is empty (0 bytes)", p, "re-export or re-copy the image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ImageReadError(
                        f"image is {img.width}x{img.height}, above the {MAX_PIXELS:,}-pixel limit",
                        p,
                        "downscale or tile the image before inspecting it",
                    )
                img.load()  # force full decode now so truncation is detected here
                upright = ImageOps.exif_transpose(img)
                arr = _to_rgb(upright)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(
            "not a readable image", p, f"use one of {', '.join(sorted(IMAGE_SUFFIXES))}"
        ) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageReadError("image declares an enormous size", p, "check the file's origin") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(
            f"image is corrupt or truncated ({exc})", p, "re-export or re-copy the image"
        ) from None
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise ImageReadError(f"image is only {arr.shape[1]}x{arr.shape[0]} pixels", p, "use images of at least 8x8")
    return arr


def load_mask(path: str | Path, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a ground-truth mask as a bool (H, W) array (any non-zero pixel is defective).

    ``expected_size`` is (width, height) of the image the mask belongs to; a mismatch raises
    :class:`ImageReadError`, since silently resizing would move the defect.
    """
    p = Path(path)
    rgb = load_image(p)
    mask = rgb.max(axis=2) > 127
    if expected_size is not None and (mask.shape[1], mask.shape[0]) != tuple(expected_size):
        raise ImageReadError(
            f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is {expected_size[0]}x{expected_size[1]}",
            p,
            "regenerate the mask at the image's resolution",
        )
    return mask
