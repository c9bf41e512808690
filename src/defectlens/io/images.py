"""Decoding images from disk into 8-bit RGB arrays, whatever their mode, depth or orientation.

Anything that cannot be decoded raises :class:`ImageReadError` naming the file and the fix,
so a batch can skip it and report it at the end.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import overload

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from defectlens.errors import (
    ClippedPixelsWarning,
    DefectlensWarning,
    ExtremeAspectWarning,
    HotPixelsWarning,
    ImageReadError,
    ShallowColourWarning,
    collected_warnings,
    out_of_resources,
    warn_caller,
)
from defectlens.io.names import folded_name, names_by_fold, same_spelling

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".tif", ".tiff", ".webp"})
OTHER_IMAGE_SUFFIXES = frozenset({".gif", ".heic", ".heif", ".avif", ".jp2", ".j2k", ".dng", ".cr2", ".nef", ".arw", ".raw", ".ico", ".psd", ".svg"})
"""Images in formats defectlens does not decode: a folder's files of these kinds are listed as not
inspected (they vanished without a word, while the folder's other files were inspected)."""
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP")
"""The decoders Pillow may use: the formats the suffixes above name (its JPEG reader also opens
the multi-picture JPEGs that cameras write). Pillow would otherwise try every format it knows on
any bytes, and some of its readers decode a whole embedded image just to read a header (an ICO or
ICNS file of 169 M pixels, before any size check) or fail on hostile bytes with errors of their own."""

# A hostile or mistaken upload can declare a gigantic canvas; refuse before decoding it.
MAX_PIXELS = 64_000_000
MIN_SIDE = 8
"""Smallest width or height accepted: the encoder needs a few pixels per feature cell."""
MAX_SIDE = 1_000_000
"""Longest side accepted: libpng refuses to write a longer one, so such an image was decoded and
scored, then failed writing its overlay; it is refused from its header instead."""
MAX_ASPECT = 20.0
"""Longer side over shorter side above which an image is inspected with a warning: it is squeezed
onto the canvas so hard that small defects merge into one region."""
DEEP_BIT_DEPTHS = (8, 10, 12, 14, 16)
"""Sensor depths that integer data deeper than 8 bits is assumed to have (see :func:`as_rgb_image`)."""
EXIF_ORIENTATION = 0x0112
"""The EXIF tag of an image's orientation (1 to 8)."""
TIFF_BITS_PER_SAMPLE = 258
"""The TIFF tag of the bits of each sample."""
HOT_PIXEL_SHARE = 1e-4
"""Share of an image's pixels (at least :data:`HOT_PIXEL_MIN`) that may lie far above the sensor depth the rest of it fits —
at least 4× over its range, none between — and not set its depth (:func:`sensor_bits`): hot pixels, or a camera's
frame-information pixels, at the top of 16 bits in a 12-bit frame had read the frame 16× darker, a good part flagged (camera
probe 2026-12-07). They are read clipped. A bright tail that rises from the rest (a highlight on metal) is the image's own."""
HOT_PIXEL_MIN = 4
"""Pixels that may always lie so (a small image's share would be none)."""


def path_is(path: Path, kind: str) -> bool:
    """``path.is_file()`` / ``is_dir()`` / ``exists()`` (``kind`` "file", "dir", "any"), False
    rather than an exception for a name the system refuses — too long, or holding a NUL
    (:func:`describe_unreadable` says which)."""
    try:
        return path.is_file() if kind == "file" else path.is_dir() if kind == "dir" else path.exists() or path.is_symlink()
    except (OSError, ValueError):
        return False


def describe_unreadable(path: Path) -> tuple[str, str]:
    """``(what is wrong, fix)`` for a path that is not a readable file: a symlink loop, a broken
    link, a folder, or nothing there — so a loop is not reported as "no such file"."""
    try:
        os.stat(path)
    except ValueError:
        return "not a usable file name (it holds a NUL character)", "rename the file"
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return "file name too long for the file system", "rename the file (at most 255 bytes a name)"
        if exc.errno == errno.ELOOP:
            return "symlink loop (the link resolves back to itself)", "point the link at a real file"
        if exc.errno == errno.EACCES:
            # A folder on its path this user cannot enter: asking whether it is a link had raised the same error, a traceback.
            return "permission denied (a folder on its path cannot be entered)", "give this user enter permission on its folders (chmod a+x)"
        if path.is_symlink():
            return f"broken symlink (points to {os.readlink(path)})", "point the link at an existing file"
        if exc.errno == errno.ENOENT:
            if str(path).startswith("~") and (expanded := home_expanded(path)) != path and expanded.exists():
                # Quoted, or after "=", the shell leaves "~" as it is (environment probe 2026-12-06).
                return "no such file", f"write the home folder out ({expanded}): a quoted ~ is not the home folder"
            if (near := near_name(path)) is not None:
                # A path pasted from Windows (Explorer's "Copy as path" quotes it; backslashes; spaces at an end) or typed in
                # another Unicode spelling: the file meant is there (Windows-inputs probe 2026-12-06: "check the path").
                return "no such file", f"did you mean {near}? (the name given holds {near_difference(str(path), str(near))})"
            return "no such file", "check the path"
        return f"cannot be read ({exc.strerror})", "check the path and its permissions"
    if path.is_dir():
        return "is a folder, not an image file", "pass the folder's images, or the folder where a folder is accepted"
    return "not a regular file", "pass an image file"


def home_expanded(path: Path) -> Path:
    """``path`` with its ``~`` expanded, or as it is where there is no such home ("~nosuchuser/a.png" had been a
    RuntimeError's traceback; regression probe 2026-12-06)."""
    try:
        return path.expanduser()
    except RuntimeError:
        return path


def near_name(path: Path) -> Path | None:
    """A file that is there under a form of ``path``'s name a person copying it from Windows or a Mac may have changed: without
    the quotes around it, without spaces at its ends, with ``/`` for ``\\``, in the other Unicode spelling (NFC or NFD). None
    when no such form is there."""
    text = str(path)
    trimmed = _unquoted(text.strip()).strip()
    # A quote at one end alone too ('plain.png" from a half-copied path), tried after the pair, so "O'Neil" stays whole.
    forms = [trimmed, trimmed.replace("\\", "/"), trimmed.strip(_QUOTES)]
    forms += [unicodedata.normalize(form, f) for f in list(forms) for form in ("NFC", "NFD")]
    for form in dict.fromkeys(forms):
        if form and form != text and os.path.exists(form):  # not a dangling link: "did you mean" a file that is not there
            return Path(form)
    return _other_case(Path(trimmed.strip(_QUOTES).replace("\\", "/")))


def _other_case(path: Path) -> Path | None:
    """The file of ``path``'s folder whose name is ``path``'s in another case (``plain.png`` for ``plain.PNG``), or None:
    Linux tells the two apart, the Windows PC or camera the name came from did not (Windows-inputs probe 2026-12-06)."""
    names = [name for name in names_by_fold(path.parent).get(folded_name(path.name), []) if name != path.name]
    # One such name, or no guess: "A.png" beside "a.PNG" and "a.png" is not for a hint to choose between.
    return path.parent / names[0] if len(names) == 1 and os.path.exists(path.parent / names[0]) else None


_QUOTE_PAIRS = {'"': '"', "'": "'", "“": "”“", "‘": "’‘", "„": "“”", "«": "»", "»": "«", "‹": "›", "›": "‹", "「": "」", "『": "』", "＂": "＂"}
"""Each quote a name may open with, and the quotes that close it: typed, a word processor's or a mail's curly ones,
guillemets either way round (French «…», German and Danish »…«), Japanese corner brackets, full-width quotes."""
_QUOTES = "".join(dict.fromkeys("".join(_QUOTE_PAIRS) + "".join(_QUOTE_PAIRS.values())))
"""Every quote of :data:`_QUOTE_PAIRS`, opening or closing."""


def _unquoted(text: str) -> str:
    """``text`` without one pair of quotes around it, straight or curly ("O'Neil" keeps its apostrophe)."""
    paired = len(text) >= 2 and text[-1] in _QUOTE_PAIRS.get(text[0], "")
    return text[1:-1] if paired else text


def near_difference(given: str, found: str) -> str:
    """What sets a name given apart from the :func:`near_name` found, in words."""
    bare = _unquoted(given.strip()).strip()
    said = [what for what, holds in (("quotes around it", bare != given.strip()),
                                      ("a quote at one end", bare == given.strip() and bare.strip(_QUOTES) == found),
                                      ("spaces at an end", given != given.strip()),
                                      ("backslashes", "\\" in given and "\\" not in found),
                                      ("another case", _case_differs(Path(bare.replace("\\", "/")).name, Path(found).name)),
                                      ("another Unicode spelling of the same letters",
                                       same_spelling(bare.replace("\\", "/")) == same_spelling(found)
                                       and bare.replace("\\", "/") != found)) if holds]
    return ", ".join(said) or "other characters"


def _case_differs(given: str, found: str) -> bool:
    """Whether two names differ in their letters' case alone (their Unicode spelling aside)."""
    return same_spelling(given) != same_spelling(found) and folded_name(given) == folded_name(found)


def size_refusal(width: int, height: int, max_pixels: int = MAX_PIXELS) -> str | None:
    """Why an image of ``width`` x ``height`` is refused before it is decoded (more pixels than
    ``max_pixels``, or a side over :data:`MAX_SIDE`), or None when its size is accepted."""
    if width * height > max_pixels:
        return f"image is {width}x{height} ({width * height:,} pixels), above the {max_pixels:,}-pixel limit"
    if max(width, height) > MAX_SIDE:
        return f"image is {width}x{height}, a side longer than {MAX_SIDE:,} pixels (its overlay could not be written)"
    return None


FLOAT_OVERSHOOT = 2.0
"""Float pixels whose maximum is at most this are [0, 1] pixels (see :func:`_to_uint8`); an image
in [0, 255] that never rises above 2 would be black."""


def sensor_bits(array: np.ndarray) -> int | None:
    """The sensor depth an image deeper than 8 bits is read at by itself (:func:`_to_uint8`): the smallest of
    :data:`DEEP_BIT_DEPTHS` that holds its values, but for a few hot ones (:data:`HOT_PIXEL_SHARE`); its colour's, an
    alpha channel apart. None for 8-bit, bool and float pixels, and for a deeper integer type holding 8-bit values
    (``np.asarray(img, np.int64)``: a fit on such arrays had recorded a depth of 8)."""
    if array.dtype.kind not in "ui" or array.dtype.itemsize == 1 or not array.size:
        return None
    colour = array[..., :-1] if array.ndim == 3 and array.shape[2] in (2, 4) else array
    bits = _depth_of(colour, int(colour.max())) if colour.size else None
    return bits if bits is not None and bits > 8 else None


def _depth_of(values: np.ndarray, high: int) -> int | None:
    """The smallest of :data:`DEEP_BIT_DEPTHS` that holds all of the integer ``values`` (whose maximum is ``high``) but a few
    far above it (:data:`HOT_PIXEL_SHARE`); None above 16 bits."""
    whole = next((b for b in DEEP_BIT_DEPTHS if high < 2**b), None)
    if whole is None:
        return None
    # Pixels, not their values: a hot pixel of a colour image is three (regression probe 2026-12-07).
    def pixels_from(level: int) -> int:
        return int(np.count_nonzero((values >= level).any(axis=-1) if values.ndim == 3 else values >= level))

    allowed = max(HOT_PIXEL_MIN, int(values.size / (values.shape[-1] if values.ndim == 3 else 1) * HOT_PIXEL_SHARE))
    for bits in (b for b in DEEP_BIT_DEPTHS if b < whole):
        over = pixels_from(2**bits)
        if over <= allowed and over == pixels_from(2 ** (bits + 2)):
            return bits
    return whole


def _to_uint8(arr: np.ndarray, source: str, bit_depth: int | None = None) -> np.ndarray:
    """Map any numeric pixel array to uint8 with a fixed rule (not stretched per image):

    * bool: 0 / 255;
    * integers up to 255 in 8-bit arrays: as they are;
    * deeper integers (16-bit PNG/TIFF, uint16 arrays): scaled by the full range of a sensor depth, so
      12-bit camera data stored in 16 bits (max 4095) spans 0..255 instead of about 11 grey levels. The
      depth is ``bit_depth`` when given — a model's, the deepest of its training images
      (:attr:`Provenance.bit_depth`), so that every frame of one camera maps alike; pixels above it are
      clipped, with a warning — else the smallest of 8, 10, 12, 14 or 16 bits holding the image's maximum
      (:func:`sensor_bits`): frames 4 % apart in exposure had been read 4× apart in brightness, a darker one
      taken for 12-bit data;
    * floats: [0, 1] scaled to 0..255, else [0, 255] as they are; NaN, infinity or values outside
      both ranges are refused. A maximum up to :data:`FLOAT_OVERSHOOT` is still [0, 1] pixels, the
      excess clipped with a warning: resampling overshoots 1 a little, and read as 0..255 such an
      image is black — a good part scored defective without a word.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind in "ui":
        low, high = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if low < 0:
            raise ImageReadError(f"pixel values go down to {low}", source, "pass non-negative pixel values")
        bits = _depth_of(arr, high)
        if bits is None:
            raise ImageReadError(f"pixel values go up to {high}, deeper than 16 bits", source, "convert to 8 or 16 bits per channel")
        # A model's depth for 16-bit data, and for wider integers holding more than 8 bits: int64 arrays of 8-bit values (a
        # numpy conversion) had been read 16x darker by a 12-bit model (regression probe).
        depth = bit_depth if bit_depth is not None and (arr.dtype == np.uint16 or high > 255) else bits
        if high >= 2**depth:
            pixels = int(np.count_nonzero((arr >= 2**depth).any(axis=-1) if arr.ndim == 3 else arr >= 2**depth))
            if bits <= depth:
                # A few far above a range the rest fits (hot pixels, a camera's frame information), the model's or the image's
                # own: said as such, not as another camera setting (regression probe 2026-12-07: "None-bit", "another setting?").
                warn_caller(f"{source}: {pixels} pixel(s) up to {high}, far over the {depth}-bit range of the rest of the image (hot "
                            "pixels, or a camera's frame information?), read as the brightest", HotPixelsWarning)
            else:
                warn_caller(f"{source}: pixel values go up to {high}, over the {depth}-bit range of the model's training images; "
                            "read clipped to it — another camera setting? Fit on images of this setting", ClippedPixelsWarning)
        # In integers, a band of rows at a time: float64 had taken 905 MB for a 16 M-pixel 16-bit colour image (regression probe
        # 2026-12-07). Exact as rint(value / ((2**depth - 1) / 255)): no value lies half-way, the range being odd.
        top = 2**depth - 1
        out = np.empty(arr.shape, np.uint8)
        band = max(1, FILL_BAND_PIXELS // max(1, arr[0].size if arr.ndim > 1 else 1))
        for row in range(0, arr.shape[0], band):
            part = arr[row : row + band].astype(np.uint32)
            out[row : row + band] = np.minimum((part * 510 + top) // (2 * top), 255)
        return out
    if arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            if not np.isfinite(arr).all():
                raise ImageReadError("pixel values include NaN or infinity", source, "pass finite pixel values")
        flow, fhigh = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if flow < 0 or fhigh > 255:
            raise ImageReadError(f"float pixel values span {flow:g}..{fhigh:g}", source, "scale them to [0, 1] or [0, 255]")
        if 1.0 < fhigh <= FLOAT_OVERSHOOT:
            over = int((arr > 1.0).sum())
            warn_caller(
                f"{source}: float pixels read as [0, 1]; {over} value(s) above 1 (up to {fhigh:g}) clipped to 1 — "
                "clip them before, or scale the image to [0, 255] if that is what it is",
                DefectlensWarning,
            )
        scaled = arr * 255.0 if fhigh <= FLOAT_OVERSHOOT else arr
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    raise ImageReadError(f"unsupported pixel type {arr.dtype}", source, "pass uint8, uint16 or float pixels")


FILL_BAND_PIXELS = 1 << 20
"""Pixels per band of rows in which transparency is filled (bounds its scratch memory to tens of MB)."""


def _fill_transparent(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite ``rgb`` over a mirror of its own opaque part: each see-through pixel shows the
    opaque pixel reflected across the nearest opaque edge. A flat background (black, white, grey)
    would look like a defect beside the part's texture; the mirror continues the texture instead.
    With nothing opaque at all, mid-grey is used."""
    opaque = alpha >= 128
    nearest = ndimage.distance_transform_edt(~opaque, return_distances=False, return_indices=True) if opaque.any() else None
    out = rgb.copy()
    # Only the pixels not fully opaque change, a band of rows at a time: whole-image index grids
    # and float copies made a 36 M-pixel upload with a transparent half peak at 3.1 GB.
    band = max(1, FILL_BAND_PIXELS // alpha.shape[1])
    for top in range(0, alpha.shape[0], band):
        ys, xs = np.nonzero(alpha[top : top + band] < 255)
        ys += top
        if nearest is None:  # nothing opaque at all
            fill = np.full((ys.size, 3), 128, np.uint8)
        else:
            ny, nx = nearest[0][ys, xs], nearest[1][ys, xs]
            my = np.clip(2 * ny - ys, 0, alpha.shape[0] - 1)
            mx = np.clip(2 * nx - xs, 0, alpha.shape[1] - 1)
            ok = opaque[my, mx]  # the reflection can land on transparency again: take the nearest then
            fill = rgb[np.where(ok, my, ny), np.where(ok, mx, nx)]
        a = alpha[ys, xs, None].astype(np.float32) / 255.0
        out[ys, xs] = np.clip(np.rint(rgb[ys, xs] * a + fill * (1.0 - a)), 0, 255).astype(np.uint8)
    return out


def as_rgb_image(array: object, source: str | Path = "<array>", bit_depth: int | None = None) -> np.ndarray:
    """The one gate every image passes, from a file (:func:`load_image`) or an array
    (:meth:`~defectlens.inspector.Inspector.inspect`): returns a (H, W, 3) uint8 RGB array or
    raises :class:`ImageReadError` naming ``source``.

    Accepts (H, W) grey, (H, W, 1), (H, W, 2) grey + alpha, (H, W, 3) RGB and (H, W, 4) RGBA, in
    bool, integer or float pixels (see :func:`_to_uint8` for the intensity rule). Transparent
    pixels are filled by mirroring the opaque part (a :class:`DefectlensWarning` says how much).
    Sides below 8 pixels and images above the pixel limit are refused; an extreme aspect ratio warns.
    ``bit_depth``: the sensor depth deeper integer pixels are read at (a model's; None: each image's own).
    """
    if isinstance(array, Image.Image):
        # Decoded as a file's pixels are: a palette's colours, not its indices; CMYK as colour,
        # not its K as alpha; EXIF orientation applied.
        array = _decode(ImageOps.exif_transpose(array))
    if isinstance(array, str | Path):
        # A path is read_image's or load_image's; this gate takes pixels ("got str — pass an image file path" read as a contradiction).
        raise ImageReadError("as_rgb_image takes pixels, and this is a path", array,
                             "read the file with load_image (or read_image, which takes both)")
    if not isinstance(array, np.ndarray):
        if type(array).__module__.split(".")[0] == "torch":
            # A network's tensor: said how to hand it over, not only what is taken (for its own layout).
            shape = tuple(getattr(array, "shape", ()))
            one = "tensor[0]" if len(shape) == 4 and shape[0] == 1 else "tensor"  # a batch of one, as a network takes it
            image_shape = shape[1:] if one != "tensor" else shape
            channels_first = len(image_shape) == 3 and image_shape[0] in (1, 3, 4) and image_shape[2] > 4
            how = (f"{one}.permute(1, 2, 0).detach().cpu().numpy() (images are (H, W, C) arrays here)" if channels_first
                   else f"{one}.detach().cpu().numpy()")
            raise ImageReadError(f"expected an image array or a Pillow image, got a torch {type(array).__name__} of shape {shape}",
                                 source, f"pass {how}")
        raise ImageReadError(
            f"expected an image array or a Pillow image, got {type(array).__name__}", source,
            "pass a numpy array or a Pillow image (an image file: its path to read_image or Inspector.inspect)"
        )
    arr = array[..., None] if array.ndim == 2 else array
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] > 4:
        raise ImageReadError(f"array has shape {array.shape}, channels first", source,
                             "pass array.transpose(1, 2, 0): images are (H, W, C) here")
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(f"array has shape {array.shape}", source,
                             "pass (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or (H, W, 4) RGBA pixels")
    h, w = arr.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ImageReadError(f"image is only {w}x{h} pixels", source, f"use images of at least {MIN_SIDE}x{MIN_SIDE}")
    if refusal := size_refusal(w, h):
        raise ImageReadError(refusal, source, "downscale or tile the image before inspecting it")
    if arr.shape[2] in (2, 4) and arr.dtype.kind in "ui" and arr.dtype.itemsize > 1:
        # Alpha read by its own range, apart from the colour: a 16-bit alpha at 65535 (opaque) had set the depth of 12-bit
        # colour to 16 bits, the part read 16× darker (camera probe 2026-12-07).
        arr = np.concatenate([_to_uint8(arr[..., :-1], str(source), bit_depth), _to_uint8(arr[..., -1:], f"{source} (alpha)")], axis=2)
    else:
        arr = _to_uint8(arr, str(source), bit_depth)
    channels = arr.shape[2]
    rgb = np.repeat(arr[..., :1], 3, axis=2) if channels <= 2 else arr[..., :3]
    if channels in (2, 4):
        alpha = arr[..., -1]
        see_through = float((alpha < 128).mean())
        if see_through > 0:
            how = "mirroring the opaque part" if see_through < 1 else "mid-grey (nothing is opaque)"
            # A few pixels had read "0% of the image" (layout probe 2026-12-06).
            share = f"{see_through:.0%} of the image is" if see_through >= 0.005 else f"{int((alpha < 128).sum())} pixel(s) of the image are"
            warn_caller(
                f"{source}: {share} more than half transparent (alpha below 128); "
                f"blended with a fill by {how}, so the transparent area is not judged as a defect",
                DefectlensWarning,
            )
        if (alpha < 255).any():
            rgb = _fill_transparent(rgb, alpha)
    if max(h, w) / min(h, w) > MAX_ASPECT:
        warn_caller(
            f"{source}: image is {w}x{h} (aspect {max(h, w) / min(h, w):.0f}:1); squeezed onto the canvas, nearby defects merge "
            "and are located coarsely — crop or tile it to a less extreme shape",
            ExtremeAspectWarning,
        )
    return np.ascontiguousarray(rgb)


_EXIF_ORIENTATIONS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
"""Each EXIF orientation's turn of a (H, W[, C]) array, as :func:`PIL.ImageOps.exif_transpose` turns an image."""


def upright_pixels(pixels: np.ndarray, orientation: int | None) -> np.ndarray:
    """``pixels`` turned upright by the EXIF ``orientation`` (1 to 8; None or 1: as they are)."""
    turn = _EXIF_ORIENTATIONS.get(orientation or 1)
    return np.ascontiguousarray(turn(pixels)) if turn is not None else pixels


def holds_deep_colour(img: Image.Image) -> bool:
    """Whether an opened PNG or TIFF holds more than 8 bits a channel in colour, or grey with transparency, which Pillow decodes to
    the upper 8 bits (it has no deeper colour mode). By its rawmode ("RGB;16B", …), and for a TIFF by its BitsPerSample tag: a
    planar one's rawmode names no depth (regression probe 2026-12-07: read as noise)."""
    if img.format not in ("PNG", "TIFF") or img.mode.startswith(("I", "F")):  # 16-bit grey is read whole; a BMP's "BGR;16" is 5-6 bits
        return False
    if any(";16" in str(getattr(t, "args", "")) for t in getattr(img, "tile", None) or []):
        return True
    bits = getattr(img, "tag_v2", {}).get(TIFF_BITS_PER_SAMPLE) if img.format == "TIFF" else None
    return isinstance(bits, tuple | list | int) and max(bits if isinstance(bits, tuple | list) else (bits,)) > 8


def _deep_colour(path: Path, img: Image.Image) -> np.ndarray | None:
    """The pixels of a deep colour (or grey with transparency) PNG or TIFF (:func:`holds_deep_colour`) at the depth they were
    saved at, first page, turned upright, read by libpng or libtiff (imagecodecs); None where they cannot read it (Pillow's
    upper 8 bits are then read, and said)."""
    import imagecodecs

    try:
        data = path.read_bytes()
        pixels = imagecodecs.png_decode(data) if img.format == "PNG" else imagecodecs.tiff_decode(data, index=0)
    except Exception:  # noqa: BLE001 — the codecs raise their own errors; Pillow's reading and its errors then stand
        return None
    return _upright_samples(pixels, (img.width, img.height), img.getexif().get(EXIF_ORIENTATION))


def _upright_samples(pixels: object, size: tuple[int, int], orientation: int | None) -> np.ndarray | None:
    """A decoder's colour ``pixels`` of an image Pillow sized ``size`` (width, height), as (H, W, C) turned upright; None where
    they are not of that picture. Planar ones come as (C, H, W); Pillow gives a TIFF turned by its orientation (5 to 8) its
    turned size (regression probe 2026-12-07: both had fallen back to the upper 8 bits)."""
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 3:
        return None
    if pixels.shape[0] in (2, 3, 4) and pixels.shape[2] not in (2, 3, 4):
        pixels = np.moveaxis(pixels, 0, 2)
    if pixels.shape[2] not in (2, 3, 4) or pixels.shape[:2] not in ((size[1], size[0]), (size[0], size[1])):
        return None
    return upright_pixels(pixels, orientation)


def unread_format(path: Path) -> ImageReadError:
    """The refusal of an image in a format that is not read (:data:`OTHER_IMAGE_SUFFIXES`), given alone or found in a folder."""
    return ImageReadError(f"{path.suffix.lower()} images are not read", path, "convert it to PNG or JPEG")


def _tiff_pixels(path: Path) -> np.ndarray:
    """The first page of a TIFF Pillow cannot open, read by libtiff (imagecodecs) once its header's size is within the limits,
    turned upright; refused as damaged where its header or data do not read (a TIFF cut short, whose directory comes after its
    data, had been told its pixel format is not read: regression probe 2026-12-07)."""
    import imagecodecs
    from PIL import TiffImagePlugin

    damaged = "its content is not what its name says, or it is cut short: re-export or re-copy it"
    try:
        with path.open("rb") as f:
            tags = TiffImagePlugin.ImageFileDirectory_v2(f.read(8))
            f.seek(tags.next)
            tags.load(f)
        width, height = int(tags[256]), int(tags[257])
    except Exception:  # noqa: BLE001 — a header that does not parse is a damaged file, whatever Pillow raises
        raise ImageReadError("not a readable image", path, damaged) from None
    if refusal := size_refusal(width, height):
        raise ImageReadError(refusal, path, "downscale or tile the image before inspecting it")
    try:
        pixels = imagecodecs.tiff_decode(path.read_bytes(), index=0)
    except Exception as exc:  # noqa: BLE001 — libtiff's errors are its own
        raise ImageReadError(f"image is corrupt or truncated, or of a pixel format not read ({exc})", path,
                             "re-export or re-copy it, as 8- or 16-bit integers or 32-bit floats") from None
    orientation = tags.get(274)
    if isinstance(pixels, np.ndarray) and pixels.ndim == 2 and pixels.shape == (height, width):
        return upright_pixels(pixels, orientation if isinstance(orientation, int) else None)
    upright = _upright_samples(pixels, (width, height), orientation if isinstance(orientation, int) else None)
    if upright is None:
        raise ImageReadError("a TIFF whose pixel layout is not read", path, "save it as 8- or 16-bit grey or colour")
    return upright


PAGES_COUNTED = 100
"""The pages of a TIFF counted for the warning of its other pages, at most: Pillow's count checks each page against every
one before it, and a 2 MB upload of 20 000 one-pixel pages had taken 9 s (80 000: 89 s) to count, again at each view of it
(security probe 2026-12-07)."""


def _say_other_pages(path: Path, img: Image.Image) -> None:
    """Warn of a multi-page image's other pages: they were never looked at, and nothing said so."""
    if img.format == "TIFF":
        pages = 1
        try:
            while pages <= PAGES_COUNTED:
                img.seek(pages)
                pages += 1
        except Exception:  # noqa: BLE001 - the end of its pages (EOFError), or a damaged page past the first: counted to there
            pass
        finally:
            img.seek(0)
        said = f"more than {PAGES_COUNTED}" if pages > PAGES_COUNTED else str(pages)
    else:
        pages = int(getattr(img, "n_frames", 1))
        said = str(pages)
    if pages > 1:
        warn_caller(f"{path}: {said} pages; only the first is inspected — save each page as its own image to inspect them all",
                    DefectlensWarning)


def _pillow_turns_wrongly(img: Image.Image) -> bool:
    """Whether ``img`` is a one-channel TIFF (grey, bilevel, palette) whose orientation (5 to 8) turns its sides: Pillow loads it
    into a buffer of the unturned shape, its pixels sheared, and drops the tag (regression probe 2026-12-07: a grey TIFF mask or
    image read so, unsaid). Read by libtiff instead (:func:`_turned_tiff`). Colour TIFFs Pillow turns right."""
    return img.format == "TIFF" and img.mode in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L", "F") and \
        img.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8)


def _turned_tiff(path: Path, img: Image.Image) -> np.ndarray:
    """The first page of a TIFF Pillow turns wrongly (:func:`_pillow_turns_wrongly`; ``img``, opened, not loaded), read by libtiff
    and turned upright by its orientation, a palette's colours looked up. Pillow has read its header (a BigTIFF's too: parsed
    again as a classic TIFF's, one had been refused as damaged; regression probe 2026-12-07)."""
    import imagecodecs

    try:
        pixels = imagecodecs.tiff_decode(path.read_bytes(), index=0)
    except Exception as exc:  # noqa: BLE001 — libtiff's errors are its own
        raise ImageReadError(f"image is corrupt or truncated ({exc})", path, "re-export or re-copy the image") from None
    # Pillow gives the turned size (width, height) before loading: the stored rows are its width.
    if not (isinstance(pixels, np.ndarray) and pixels.ndim == 2 and pixels.shape == (img.width, img.height)):
        raise ImageReadError("a turned TIFF whose pixel layout is not read", path, "save it upright (orientation 1), or as PNG")
    upright = upright_pixels(pixels, img.getexif().get(EXIF_ORIENTATION))
    if img.mode == "P":
        palette = np.asarray(img.getpalette() or [0, 0, 0], np.uint8).reshape(-1, 3)
        return palette[np.minimum(upright.astype(np.intp), len(palette) - 1)]
    return upright


def _is_tiff(path: Path) -> bool:
    """Whether the file at ``path`` starts as a TIFF does (either byte order, classic or BigTIFF)."""
    try:
        with path.open("rb") as f:
            return f.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
    except OSError:
        return False


def _decode(img: Image.Image) -> np.ndarray:
    """Pillow image -> numpy array in a mode :func:`as_rgb_image` understands (alpha kept)."""
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return np.asarray(img)  # deep grey: as_rgb_image applies the fixed depth rule
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        return np.asarray(img.convert("RGBA"))
    return np.asarray(img.convert("RGB"))


def image_digest(img: np.ndarray) -> str:
    """sha256 of one image's pixels (its shape, dtype and bytes): what tells one picture from another, whatever file holds
    it (a model's training-set fingerprint, copies among images)."""
    a = np.ascontiguousarray(img)
    h = hashlib.sha256(f"{a.shape}|{a.dtype.str}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def load_image(path: str | Path, bit_depth: int | None = None) -> np.ndarray:
    """Read ``path`` as a (H, W, 3) uint8 RGB array, applying EXIF orientation.

    Raises :class:`ImageReadError` for missing, empty, truncated, oversized or non-image files;
    the pixels then pass the same checks as an array given to the Inspector (:func:`as_rgb_image`,
    which reads pixels deeper than 8 bits at ``bit_depth``: pass a model's :attr:`Inspector.bit_depth`).
    """
    return as_rgb_image(decoded_pixels(path), path, bit_depth)


def _declared_too_large(said: Exception, path: Path) -> ImageReadError:
    """The refusal of an image Pillow stopped in ``Image.open`` as too large (its message has the pixel count), said with
    this tool's limit: Pillow's own, higher one read as the rule."""
    found = re.search(r"\((\d+) pixels\)", str(said))
    size = f"{int(found.group(1)):,} pixels" if found else "an enormous size"
    return ImageReadError(f"image declares {size}, over the {MAX_PIXELS:,}-pixel limit", path,
                          "downscale or tile the image, or check the file's origin")


_BEING_READ: ContextVar[Path | None] = ContextVar("defectlens_image_being_read", default=None)


def file_being_read() -> Path | None:
    """The image file this thread is decoding now, or None: what names the file in a decoder's own warnings, which
    name none (Pillow's "Corrupt EXIF data" in a folder of a thousand left the user to guess which; cli.progress)."""
    return _BEING_READ.get()


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    token = _BEING_READ.set(path)
    try:
        yield
    finally:
        _BEING_READ.reset(token)


def decoded_pixels(path: str | Path) -> np.ndarray:
    """The pixels of the image file at ``path`` as decoded (EXIF orientation applied), before the gate
    (:func:`as_rgb_image`): 16-bit grey stays 16-bit, alpha is kept. Errors as :func:`load_image`'s."""
    p = Path(path)
    if not path_is(p, "file"):
        what, fix = describe_unreadable(p)
        raise ImageReadError(what, p, fix)
    if p.stat().st_size == 0:
        raise ImageReadError("file is empty (0 bytes)", p, "re-export or re-copy the image")
    with _reading(p):
        return _decoded_file(p)


def _decoded_file(p: Path) -> np.ndarray:
    try:
        # Pillow's DecompressionBombWarning (89 M pixels) comes only for images over our own limit, refused just below with
        # the image's size: left as Pillow gives it, not filtered here. A filter set and put back around the opening is
        # the process's, and put back over what other threads of an application set meanwhile (API probe 2026-12-06:
        # 45 of 5 804 filters lost); the command line and the service ignore it from the start (cli.progress).
        with Image.open(p, formats=IMAGE_FORMATS) as img:
            if refusal := size_refusal(img.width, img.height):
                raise ImageReadError(refusal, p, "downscale or tile the image before inspecting it")
            if _pillow_turns_wrongly(img):
                _say_other_pages(p, img)
                return _turned_tiff(p, img)
            # Pillow decodes 16-bit colour, and grey with transparency, to its upper 8 bits (it has no deeper colour mode):
            # 12-bit data came out 16x darker, a good part flagged (camera probe 2026-12-07). libpng and libtiff read it whole.
            deep_colour = holds_deep_colour(img)
            whole = _deep_colour(p, img) if deep_colour else None
            if whole is None:
                img.load()  # force full decode now so truncation is detected here
                if deep_colour:
                    # Said once Pillow has read it (a truncated file had been said so, then refused: regression probe).
                    warn_caller(f"{p}: 16 bits a channel in colour or with transparency, read at the upper 8 bits: data of fewer than "
                                "16 bits reads darker than it is — save such images as 16-bit grey or 8-bit colour", ShallowColourWarning)
            _say_other_pages(p, img)
            arr = _decode(ImageOps.exif_transpose(img)) if whole is None else whole
    except ImageReadError:
        raise
    except Warning as exc:
        if not isinstance(exc, Image.DecompressionBombWarning):
            raise  # a warning the caller made an error (simplefilter("error")) is theirs, not a bad file
        # Made an error by the caller's filters, Pillow's warning of a large image is our refusal all the same (its 89 M
        # pixels are over our limit): the image refused in one line, a batch going on (regression probe 2026-12-06).
        raise _declared_too_large(exc, p) from None
    except UnidentifiedImageError:
        if _is_tiff(p):
            # A TIFF of a pixel format Pillow has no mode for (16- or 64-bit floats, 16-bit grey with alpha): read by libtiff,
            # its size checked from its header first ("re-copy it" could not help: camera probe 2026-12-07).
            return _tiff_pixels(p)
        if p.suffix.lower() in OTHER_IMAGE_SUFFIXES:
            raise unread_format(p) from None  # as a folder's are said (a GIF given alone had been told the suffixes read)
        # A known suffix on bytes no decoder recognises is a mislabelled or damaged file, not a format choice.
        fix = ("its content is not what its name says: re-export or re-copy it" if p.suffix.lower() in IMAGE_SUFFIXES
               else f"use one of {', '.join(sorted(IMAGE_SUFFIXES))}")
        raise ImageReadError("not a readable image", p, fix) from None
    except Image.DecompressionBombError as exc:
        # Pillow refuses these in Image.open, before the size is known to us.
        raise _declared_too_large(exc, p) from None
    except PermissionError:
        raise ImageReadError("permission denied", p, "check the file's permissions") from None
    except (MemoryError, OSError) as exc:
        # The machine's shortage (memory, open files) is no fault of the file: raised as it is, for the batch to go on past it
        # and the service to answer 503 (regression probe 2026-12-07: "could not be decoded (MemoryError) — re-export").
        if out_of_resources(exc) is not None:
            raise
        raise ImageReadError(f"image is corrupt or truncated ({exc})", p, "re-export or re-copy the image") from None
    except (SyntaxError, ValueError) as exc:
        raise ImageReadError(
            f"image is corrupt or truncated ({exc})", p, "re-export or re-copy the image"
        ) from None
    except Exception as exc:  # noqa: BLE001 — Pillow's decoders raise anything on hostile bytes
        raise ImageReadError(f"image could not be decoded ({exc.__class__.__name__}: {exc})", p, "re-export or re-copy the image") from None
    return arr


def read_image(image: object, source: str | Path = "<array>", bit_depth: int | None = None) -> np.ndarray:
    """Any image as the Inspector takes it — a file path (decoded by :func:`load_image`), an array
    or a Pillow image (through :func:`as_rgb_image`, named ``source`` in messages) — as (H, W, 3) uint8,
    pixels deeper than 8 bits read at ``bit_depth`` (None: each image's own, :func:`sensor_bits`)."""
    return load_image(image, bit_depth) if isinstance(image, str | Path) else as_rgb_image(image, source, bit_depth)


INVERTED_MASK_SHARE = 0.9
"""A mask marking more of its image than this as defect is probably drawn black on white. The
shared datasets' largest true masks cover 49 % (magnetic tile) and 63 % (steel strip)."""


MASK_LAYER_BLACK = 16
"""Colour level at and under which an RGBA mask's opaque pixels are the black background of a layer drawn white on black."""
MASK_LAYER_FILL = 0.98
"""Share of its bounding box an RGBA mask's opaque part must fill to be read as a layer drawn in its colours, not painted on
see-through (:func:`mask_as_drawn`): a layer is a rectangle, painted strokes are not."""


OVERLAY_SHARE = 0.5
"""Share of a mask's pixels see-through (between none and the most opaque) over which they may be a translucent canvas the
defect is drawn on (:func:`_alpha_cut`): a dimmed canvas covers most of the image, in one tone, in several or in a gradient,
with or without a clear margin."""
CANVAS_FILL = 0.9
"""Share of the box round a mask's drawn (not fully transparent) pixels its see-through pixels must fill to be a canvas: a canvas
is a layer, a rectangle; a large defect filled at half opacity on a transparent background has its own shape (regression
probes 2026-12-07 and 2026-12-08: fills of many shapes had been cut to their outlines, canvases read whole, as each rule by
share or by clear pixels alone failed one or the other)."""


def _alpha_cut(alpha: np.ndarray) -> tuple[float, float | None]:
    """The alpha level an RGBA mask's defect lies above, and the level of the translucent canvas it was found drawn on (None:
    none). Half its most opaque, as any mask's values are read — or, where the most opaque pixels enclose most of the
    see-through ones (fills inside their outlines, a LabelMe export's), under the fills' level, so a fill at alpha 100 inside
    an opaque outline is defect too (it had been cut to its outline); or, on a canvas (:data:`OVERLAY_SHARE`,
    :data:`CANVAS_FILL`), halfway from the canvas's level (near the top of its levels: a gradient's too) to the most opaque —
    read at half, the canvas had been defect (regression probe 2026-12-07)."""
    top = float(alpha.max())
    see_through = (alpha > 0) & (alpha < top)
    if not see_through.any():
        return top / 2, None
    enclosed = see_through & ndimage.binary_fill_holes(alpha == top)
    if enclosed.sum() > see_through.sum() / 2:
        return min(top / 2, float(np.percentile(alpha[enclosed], 5)) / 2), None
    drawn = alpha > 0
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    if see_through.sum() <= OVERLAY_SHARE * alpha.size or see_through.sum() < CANVAS_FILL * (box - (alpha == top).sum()):
        return top / 2, None
    level = float(np.percentile(alpha[see_through], 95))
    return (level + top) / 2, level


def mask_as_drawn(values: object, name: str = "mask", *, source: str | None = None) -> np.ndarray:
    """A mask's pixel values — (H, W), (H, W, 3) or (H, W, 4) numbers or booleans — as the bool (H, W) mask a person
    drew: the pixels above half the mask's own maximum (0/255, 0/1, 0/100, 16-bit alike; an anti-aliased edge cut at
    half), every non-zero pixel of a mask that numbers its regions or classes (0, 1, 2, …), the brightest channel of a
    colour mask, the alpha of one with varying transparency. The rule of :func:`load_mask`, for masks given as arrays
    too (``Inspector.calibrate`` had read a uint8 mask as any value above 0, and crashed on a path). ``name`` is
    how an error names it; a warning names ``source`` (the file the values were read from) where one is given."""
    arr = np.asarray(values)
    if arr.dtype == bool and arr.ndim == 2:
        return arr
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} is a {type(values).__name__} of {arr.dtype}: pass an (H, W) array of 0 and 1 (or 0 and 255), "
                         "or the path of a mask image")
    if arr.ndim == 3 and arr.shape[2] == 4:
        alpha, colour = arr[..., 3], arr[..., :3].max(axis=2)
        if alpha.min() == alpha.max():
            arr = arr[..., :3]
        else:
            cut, canvas = _alpha_cut(alpha)
            opaque = alpha > cut
            drawn = colour[opaque]
            black = int((drawn <= min(drawn.max() / 2, MASK_LAYER_BLACK)).sum()) if drawn.size else 0
            rows, cols = np.flatnonzero(opaque.any(axis=1)), np.flatnonzero(opaque.any(axis=0))
            box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1) if drawn.size else 0
            # An opaque layer — a rectangle, a see-through margin round it (a layer smaller than the canvas) — drawn white on black
            # is read in its colours, the margin normal: read in its alpha, the whole layer had been defect (messy-masks probe
            # 2026-12-07). Strokes and fills painted on see-through, in one colour or several (a black outline round a red fill, a
            # dark green or grey fill with a bright edge), are no black rectangle, and are where the alpha is (regression probes
            # 2026-12-07: rules by the share of dark or opaque pixels had lost one or the other).
            if black >= 4 and drawn.size - black >= 4 and drawn.size >= MASK_LAYER_FILL * box:
                arr = np.where(opaque, colour, 0)
            elif cut == alpha.max() / 2:
                arr = alpha  # read at half its maximum below, as any mask's values are
                if (wide := float(np.mean((alpha > cut) & (alpha < alpha.max())))) > OVERLAY_SHARE:
                    # A canvas of a shape no rule tells from a large see-through defect (a round one, one with a hole or a
                    # frame): said, not silent (regression probe 2026-12-08).
                    warn_caller(f"{source or name}: {wide:.0%} of the mask is see-through (alpha under {alpha.max():g}) and read as "
                                "defect: if it is a canvas the defect is drawn on, save the defect on its own, opaque", DefectlensWarning)
            else:
                arr = opaque.astype(np.uint8) * 255
            if canvas is not None:
                warn_caller(f"{source or name}: read as a defect drawn on a translucent canvas (alpha about {canvas:g} and under, over "
                            f"{np.mean((alpha > 0) & (alpha < alpha.max())):.0%} of the mask): only what is more opaque is defect — if the "
                            "see-through part is the defect too, save the mask with it opaque", DefectlensWarning)
    if arr.ndim == 3 and arr.shape[2] in (1, 3):
        arr = arr.max(axis=2)
    if arr.ndim != 2:
        raise ValueError(f"{name} has shape {arr.shape}: pass an (H, W) array (or (H, W, 3) / (H, W, 4) colour), or the path of a mask image")
    arr = arr.astype(np.float64) if arr.dtype == bool else arr
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values: pass finite values, 0 for normal pixels")
    top = float(arr.max()) if arr.size else 0.0
    if top <= 0:
        return np.zeros(arr.shape, bool)
    # Region or class numbers (1, 2, 3 … as annotation tools export them): every one is defect. Read at half the
    # maximum, a 0/1/2 mask had lost its region 1 without a word (metrics probe 2026-12-06).
    if _numbered_regions(arr, top):
        return arr > 0
    if (lost := _levels_below_the_cut(arr, top)) is not None:
        pixels, levels = lost
        at = f"value {levels[0]:g}" if len(levels) == 1 else f"{len(levels)} values from {levels[0]:g} to {levels[-1]:g}"
        warn_caller(f"{source or name}: {pixels} pixel(s) at {at}, flat areas at most half the mask's maximum {top:g}, are read as normal; "
                    f"if they number regions or classes (ids over {LABEL_MAX} keep only their upper half), give every defect pixel one value (255)",
                    DefectlensWarning)
    return arr > top / 2


LABEL_MAX = 64
"""The largest value of a mask that numbers its regions or classes (0, 1, 2, …): a drawn mask's value (255, 100, 65535) is
larger, and so is its soft edge's or a lossy JPEG's grey levels beside it."""


def _numbered_regions(arr: np.ndarray, top: float) -> bool:
    """Whether ``arr``'s non-zero values number regions or classes, to be read as every non-zero pixel (as MVTec's evaluation
    reads masks): two or more whole numbers, all up to :data:`LABEL_MAX`. Told by the values alone, so regions may touch and
    a crack labelled 1 may be one pixel wide; a drawn mask's soft edge, "ignore" band or faint stray line beside its 255
    keeps the cut at half the maximum (regression probes 2026-12-06: an area rule read wide bands as defect and thin
    labelled cracks as none; a rule of areas apart read a faint line near a defect as defect)."""
    if top > LABEL_MAX:
        return False
    levels = np.unique(arr[arr > 0])
    return len(levels) >= 2 and bool(np.array_equal(levels, np.round(levels)))


def _levels_below_the_cut(arr: np.ndarray, top: float) -> tuple[int, list[float]] | None:
    """The pixels that a cut at half ``top`` reads as normal although they lie on flat whole-number levels of their
    own (3×3 patches of one value), and those levels; None when there are none. Region or class ids
    above :data:`LABEL_MAX` (100 and 200, 72 instances, a palette's (64, 0, 0) beside (128, 0, 0)) lose their lower
    half this way, silently until a regression probe (2026-12-06). A soft edge changes value pixel by pixel, and a
    lossy JPEG's faint blocks (under 1/64 of the maximum) are no level of their own."""
    low = (arr >= top / 64) & (arr <= top / 2)
    if not low.any():
        return None
    flat = low & (ndimage.minimum_filter(arr, 3, mode="nearest") == ndimage.maximum_filter(arr, 3, mode="nearest"))
    levels = np.unique(arr[flat])
    levels = levels[levels == np.round(levels)]
    if not len(levels):
        return None
    return int((low & np.isin(arr, levels)).sum()), [float(level) for level in levels]


LOSSY_MASK_LEVELS = 5
"""A JPEG mask whose brightest value is under this (and over 0) holds no readable defect: a 0/1 mask's levels blur into each
other (its values 0 to 2). One of 0 and 10 still reads, and an all-black one is an empty mask (regression probe 2026-12-07)."""


def load_mask(path: str | Path, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a ground-truth mask as a bool (H, W) array: the pixels above half the mask's own
    maximum, so 0/255, 0/1, 0/100 and 16-bit masks all read as drawn, and a lossy JPEG's ringing
    stays out; every non-zero pixel of a mask that numbers its regions or classes (0, 1, 2, …: a
    label image), as MVTec's evaluation reads any non-zero pixel as defect. A mask with transparency (the usual export of annotation
    tools: the defect painted on a see-through background) is read from its alpha channel.

    ``expected_size`` is (width, height) of the image the mask belongs to; a mismatch raises
    :class:`ImageReadError`, since silently resizing would move the defect. Masks are not put
    through :func:`as_rgb_image`: its transparency fill turned a see-through background into
    defect, and its depth rule a 16-bit 0/1 mask into an empty one.
    """
    p = Path(path)
    if not path_is(p, "file"):
        what, fix = describe_unreadable(p)
        raise ImageReadError(what, p, fix)
    try:
        with _reading(p), Image.open(p, formats=IMAGE_FORMATS) as opened:
            if refusal := size_refusal(opened.width, opened.height):
                raise ImageReadError(refusal, p, "pass a mask the size of its image")
            lossy = opened.format == "JPEG"
            if _pillow_turns_wrongly(opened):
                values = _turned_tiff(p, opened)
            else:
                opened.load()
                # Upright as it is shown, as its image is read: a mask saved turned with an EXIF orientation had been read turned
                # away from the defect, its pixel metrics wrong and nothing said (messy-masks probe 2026-12-07).
                img = ImageOps.exif_transpose(opened)
                has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info)
                if has_alpha:
                    values = np.asarray(img.convert("RGBA"))
                elif img.mode.startswith("I") or img.mode == "F":
                    values = np.asarray(img)
                else:
                    values = np.asarray(img.convert("RGB"))
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError("not a readable image", p, "re-export the mask as a PNG") from None
    except PermissionError:
        # Its own fix: "re-export the mask as a PNG" had been given for a mask this user may not read (regression probe).
        raise ImageReadError("mask cannot be read (permission denied)", p, "give this user read permission on it (chmod a+r)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"mask cannot be read ({exc})", p, "re-export the mask as a PNG") from None
    if lossy and values.dtype == np.uint8 and 0 < int(values.max()) < LOSSY_MASK_LEVELS:
        # A 0/1 mask through JPEG: its defect and background blur into one level (all 1s), read as 100 % defect and told to be
        # inverted (messy-masks probe 2026-12-07).
        raise ImageReadError(f"mask saved as JPEG with values of at most {int(values.max())}: the compression blurs a mask of 0 and 1 "
                             "into one level", p, "save the mask as PNG (lossless), with 255 for defect")
    try:
        mask = mask_as_drawn(values, source=str(p))
    except ValueError as exc:  # NaN in a float mask
        raise ImageReadError(f"mask cannot be read ({exc})", p, "re-export the mask with 0 for normal pixels and 255 for defect") from None
    if expected_size is not None and (mask.shape[1], mask.shape[0]) != tuple(expected_size):
        raise ImageReadError(
            f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is {expected_size[0]}x{expected_size[1]}",
            p,
            "regenerate the mask at the image's resolution (upright, with any EXIF rotation of the image applied)",
        )
    share = float(mask.mean()) if mask.size else 0.0
    if share > INVERTED_MASK_SHARE:
        # Read as drawn (a defect may cover a part), but said: a mask with the defect drawn in
        # black on white reads as a part that is all defect but for its defect.
        warn_caller(
            f"{p}: the mask marks {share:.0%} of the image as defect — if its defect is drawn black on white, "
            "invert it (defects white, or opaque on a see-through background)",
            DefectlensWarning,
        )
    return mask


PNG_COMPRESS_LEVEL = 1
"""zlib level of every PNG defectlens writes (overlays, masks). Measured on magnetic-tile
overlays: level 1 encodes in 8 ms against 42 ms at Pillow's default 6, for files 9 % larger;
at 50-90 ms per inspected image the default level was a third of the time."""


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    """``image`` (a Pillow image or an (H, W[, 3 | 4]) uint8 array) encoded as PNG: zlib level
    :data:`PNG_COMPRESS_LEVEL`, every row with PNG's "sub" filter.

    Written by imagecodecs (libpng), not Pillow: Pillow tries every PNG filter on each row and
    keeps the best, which on an overlay took half of its encoding time (1.4 M pixels: 71 ms, of
    which 34 ms with no compression at all) for files within 2 % of one fixed filter's. With the
    filter fixed, 38 ms; a 0.16 M-pixel overlay 5.7 ms against 8.9."""
    import imagecodecs

    if isinstance(image, Image.Image):
        image = np.asarray(image if image.mode in ("L", "RGB", "RGBA") else image.convert("RGB"))
    if image.dtype != np.uint8:
        raise TypeError(f"png_bytes writes 8-bit images, got {image.dtype}")
    return bytes(imagecodecs.png_encode(np.ascontiguousarray(image, dtype=np.uint8), level=PNG_COMPRESS_LEVEL, filter=imagecodecs.PNG.FILTER.SUB))


THUMBNAIL_SIDE = 320
"""Longer side, in pixels, of the overlay thumbnails a gallery shows (its cards are 220 pixels wide)."""


JPEG_MAX_SIDE = 65_500
"""The longest side a JPEG may have (libjpeg's limit)."""


def jpeg_bytes(image: Image.Image | np.ndarray, quality: int = 90) -> bytes:
    """``image`` as JPEG bytes (RGB): an overlay of a magnetic tile is 19 kB at quality 90 against the PNG's 138 kB."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def jpeg_thumbnail(image: Image.Image | np.ndarray, side: int = THUMBNAIL_SIDE) -> bytes:
    """``image`` scaled down to at most ``side`` pixels on its longer side (never up), as a JPEG.

    What a gallery of thousands of parts shows: it showed the full overlays, 162 kB each on
    magnetic tile, so scrolling 3 000 of them fetched about 480 MB."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    small = picture.convert("RGB")
    small.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


class ImageFiles(Sequence[np.ndarray]):
    """Images on disk, decoded each time one is read: a fit's normal images without holding every
    one's pixels at once (250 parts of 1.4 M pixels are 1 GB decoded). Built from files already
    read once (:func:`~defectlens.inspector.scan_images`), which gave their shapes and digests."""

    def __init__(self, paths: Sequence[Path], shapes: Sequence[tuple[int, ...]], digests: Sequence[str] = (), grey: Sequence[bool] = (),
                 bits: Sequence[int | None] = (), bit_depth: int | None = None, notes: Sequence[str] = ()) -> None:
        if len(shapes) != len(paths) or (digests and len(digests) != len(paths)) or (grey and len(grey) != len(paths)) or (
                bits and len(bits) != len(paths)):
            raise ValueError(f"{len(paths)} paths but {len(shapes)} shapes, {len(digests)} digests, {len(grey)} grey flags and {len(bits)} depths")
        self.paths, self.shapes, self.digests = list(paths), [tuple(s) for s in shapes], list(digests)
        self.grey = list(grey)
        """Whether each image is grey (:func:`is_grey`), when the scan noted it (empty otherwise)."""
        self.bits = list(bits)
        """Each image's own sensor depth (:func:`sensor_bits`; None: 8-bit), when the scan noted it (empty otherwise)."""
        self.bit_depth = bit_depth
        """The sensor depth deeper pixels are read at (None: each image's own)."""
        self.notes = tuple(notes)
        """What the scan warned of these images (said then; a fit keeps it in the model's notes)."""

    def __len__(self) -> int:
        return len(self.paths)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, index: slice) -> ImageFiles: ...
    def __getitem__(self, index: int | slice) -> np.ndarray | ImageFiles:
        if isinstance(index, slice):
            return self.subset(range(len(self))[index])
        with collected_warnings():  # said once, by the scan that checked these files (a fit had said each twice)
            return load_image(self.paths[index], self.bit_depth)

    def subset(self, indices: Sequence[int]) -> ImageFiles:
        """The images at ``indices``, still on disk."""
        digests = [self.digests[i] for i in indices] if self.digests else []
        grey = [self.grey[i] for i in indices] if self.grey else []
        bits = [self.bits[i] for i in indices] if self.bits else []
        return ImageFiles([self.paths[i] for i in indices], [self.shapes[i] for i in indices], digests, grey, bits, self.bit_depth, self.notes)

    def read_at(self, bit_depth: int | None) -> ImageFiles:
        """These images, pixels deeper than 8 bits read at ``bit_depth``."""
        return ImageFiles(self.paths, self.shapes, self.digests, self.grey, self.bits, bit_depth, self.notes)


def image_area(path: str | Path) -> int:
    """Pixels of the image at ``path`` from its header alone (nothing decoded); 0 when it cannot
    be read (its decoding will say why)."""
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as img:
            return int(img.width) * int(img.height)
    except Exception:  # noqa: BLE001 — Pillow's readers raise anything on hostile bytes; decoding says what
        return 0


GREY_TOLERANCE = 3.0
"""Mean difference between an RGB image's channels, in grey levels, under which it is grey (:func:`is_grey`): a camera's white
balance may shift a channel by a level or two (at 1.0, a grey tile with blue +1 had been judged a colour image by a model of
grey parts: regression probe 2026-12-07). The colour parts shared here differ by 19 or more."""
GREY_BLOCK = 16
"""Side of the blocks, on every second pixel each way (32 pixels of the image), whose mean channel differences :func:`is_grey`
reads for a colour over an area: a colour camera's noise in each channel (σ 2.7, ordinary at 8 bits, gave grey tiles a mean
difference of 3.1, judged colour and flagged) and the colour fringes its demosaicing leaves at a grey part's edges average out
over a block (0.4 and under 1), a cast or a part's colour does not (regression probes 2026-12-07: 3 × 3 windows had read a
demosaiced grey part with edges 10 pixels apart as colour)."""
GREY_VIVID = 40.0
"""Median size of an image's channel differences pixel by pixel at and over which it is colour whatever its blocks average to:
fine patterns of vivid colours (stripes or cells of 1 to 8 pixels, a ribbon cable) average to grey over a block (90 to 140
here; a grey part's noise, σ 8, 8; its demosaiced fringes, edges every 10 pixels, 30)."""


def is_grey(image: np.ndarray) -> bool:
    """Whether an (H, W, 3) image's three channels are one grey: their differences averaged over :data:`GREY_BLOCK`-sided blocks
    of every second pixel under :data:`GREY_TOLERANCE`, and pixel by pixel under :data:`GREY_VIVID` at the median. A grey
    camera's frame given to a model of colour parts scores unlike them."""
    return all(block < GREY_TOLERANCE and vivid < GREY_VIVID for block, vivid in _channel_differences(image))


def channel_difference(image: np.ndarray) -> float:
    """How far an (H, W, 3) image is from grey: its channels' mean difference over blocks, in grey levels, the larger of
    red-green and green-blue (what :func:`is_grey` holds to :data:`GREY_TOLERANCE`)."""
    return max(block for block, _ in _channel_differences(image))


def _channel_differences(image: np.ndarray) -> Iterator[tuple[float, float]]:
    """For red-green, then green-blue: the mean size of the channels' difference averaged over :data:`GREY_BLOCK`-sided blocks
    of every second pixel, and the median size of their difference pixel by pixel. One pair at a time: :func:`is_grey`, run on
    every image scanned, stops at the first that is colour."""
    sample = image[::2, ::2]
    side = max(1, min(GREY_BLOCK, sample.shape[0], sample.shape[1]))
    height, width = sample.shape[0] // side * side, sample.shape[1] // side * side
    for first, second in ((0, 1), (1, 2)):
        difference = sample[..., first].astype(np.int16) - sample[..., second]
        block_means = difference[:height, :width].reshape(height // side, side, width // side, side).mean(axis=(1, 3))
        yield float(np.abs(block_means).mean()), float(np.median(np.abs(difference[::2, ::2])))


def shape_of(images: Sequence[np.ndarray], index: int) -> tuple[int, ...]:
    """The shape of ``images[index]``, without decoding it when the images are :class:`ImageFiles`."""
    return images.shapes[index] if isinstance(images, ImageFiles) else tuple(images[index].shape)


def take(images: Sequence[np.ndarray], indices: Sequence[int]) -> Sequence[np.ndarray]:
    """``images`` at ``indices``: a list of the arrays, or :class:`ImageFiles` still on disk."""
    return images.subset(indices) if isinstance(images, ImageFiles) else [images[i] for i in indices]
