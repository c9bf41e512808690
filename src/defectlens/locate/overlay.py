"""Overlay pictures for people: heat map over the image, region outlines, score and verdict."""

from __future__ import annotations

import shutil
import subprocess
from collections import deque
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal, overload

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from defectlens.locate.regions import weaker_regions
from defectlens.types import Inspection

_INFERNO = (
    "00000300000400000601000701010901010b02010e02021003021204031404031605041806041b07051d08061f0906210a07230b07260d08280e082a0f092d10"
    "092f120a32130a34140b36160b39170b3b190b3e1a0b401c0c431d0c451f0c47200c4a220b4c240b4e260b50270b52290b542b0a562d0a582e0a5a300a5c3209"
    "5d34095f3509603709613909623b09643c09653e0966400966410967430a68450a69460a69480b6a4a0b6a4b0c6b4d0c6b4f0d6c500d6c520e6c530e6d550f6d"
    "570f6d58106d5a116d5b116e5d126e5f126e60136e62146e63146e65156e66156e68166e6a176e6b176e6d186e6e186e70196e72196d731a6d751b6d761b6d78"
    "1c6d7a1c6d7b1d6c7d1d6c7e1e6c801f6b811f6b83206b85206a86216a88216a8922698b22698d23698e24689024689125679325679526669626669827659928"
    "649b28649c29639e2963a02a62a12b61a32b61a42c60a62c5fa72d5fa92e5eab2e5dac2f5cae305baf315bb1315ab23259b43358b53357b73456b83556ba3655"
    "bb3754bd3753be3852bf3951c13a50c23b4fc43c4ec53d4dc73e4cc83e4bc93f4acb4049cc4148cd4247cf4446d04544d14643d24742d44841d54940d64a3fd7"
    "4b3ed94d3dda4e3bdb4f3adc5039dd5238de5337df5436e05634e25733e35832e45a31e55b30e65c2ee65e2de75f2ce8612be9622aea6428eb6527ec6726ed68"
    "25ed6a23ee6c22ef6d21f06f1ff0701ef1721df2741cf2751af37719f37918f47a16f57c15f57e14f68012f68111f78310f7850ef8870df8880cf88a0bf98c09"
    "f98e08f99008fa9107fa9306fa9506fa9706fb9906fb9b06fb9d06fb9e07fba007fba208fba40afba60bfba80dfbaa0efbac10fbae12fbb014fbb116fbb318fb"
    "b51afbb71cfbb91efabb21fabd23fabf25fac128f9c32af9c52cf9c72ff8c931f8cb34f8cd37f7cf3af7d13cf6d33ff6d542f5d745f5d948f4db4bf4dc4ff3de"
    "52f3e056f3e259f2e45df2e660f1e864f1e968f1eb6cf1ed70f1ee74f1f079f1f27df2f381f2f485f3f689f4f78df5f891f6fa95f7fb99f9fc9dfafda0fcfea4"
)
"""Matplotlib's "inferno" colour scale at 256 levels, as ``(colormaps["inferno"](np.linspace(0, 1, 256))[:, :3] * 255)``
gives it in uint8 RGB (a test checks it against Matplotlib's). Kept here: Matplotlib, imported for it, needs a writable
cache folder, and every command and ``Inspector.load`` had failed on a host without one (locked-down host probe
2026-12-07); only the ROC plots need Matplotlib now."""
_HEAT = np.frombuffer(bytes.fromhex("".join(_INFERNO)), np.uint8).reshape(256, 3)
# Blend strength follows the level (0.15 to 0.65 of 256), so normal surface stays readable under
# the map. Per level of 256: the image's share and the heat colour already weighted by its own,
# so a pixel's blend is one product, one sum and a shift (1.4 M pixels: 23 ms against 35 ms for
# the blend computed per pixel from the level, and within one grey level of it).
_ALPHA = (38.4 + 128.0 * np.arange(256) / 255.0).astype(np.uint16)
_IMAGE_SHARE = 256 - _ALPHA
_WEIGHTED_HEAT = _HEAT.astype(np.uint16) * _ALPHA[:, None]
REGION_COLOUR = (0, 255, 120)
"""Colour of region outlines (and their labels) on every overlay."""
WEAKER_COLOUR = (150, 190, 170)
"""Outline and label of a weaker region (:func:`~defectlens.locate.weaker_regions`): the region colour, greyed."""
SMALLEST_TEXT, LARGEST_TEXT = 11, 64
"""Pixel sizes of overlay text: Pillow's default font at its own size on parts up to about 500 px, growing
with the image's longer side above that (a commutator's 1240-pixel overlay wrote 11-pixel labels,
unreadable once the gallery showed it 260 pixels tall)."""


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size) if size > SMALLEST_TEXT else ImageFont.load_default()


_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
          "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf", "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
          "/Library/Fonts/Arial Unicode.ttf", "C:/Windows/Fonts/arial.ttf", "C:/Windows/Fonts/msgothic.ttc")
"""Fonts tried for text beyond ASCII, after the one fontconfig names for its characters (where there is fontconfig)."""


def _draws(font: ImageFont.FreeTypeFont, char: str) -> bool:
    """Whether ``font`` has a glyph for ``char``: one unlike the box it draws for a character no font has."""
    if char.isspace():
        return True
    missing = font.getmask("\U0010fffd")
    glyph = font.getmask(char)
    return glyph.size != missing.size or bytes(glyph) != bytes(missing)


@lru_cache(maxsize=64)
def _font_covering(chars: frozenset[str], size: int) -> ImageFont.FreeTypeFont | None:
    """A font of ``size`` pixels that draws every one of ``chars``, or None where none is installed."""
    candidates: list[str] = []
    if shutil.which("fc-match"):
        pattern = ":charset=" + " ".join(f"{ord(c):x}" for c in sorted(chars))
        try:
            found = subprocess.run(["fc-match", "-f", "%{file}", pattern], capture_output=True, text=True, timeout=5, check=False)
            candidates.append(found.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    for path in (*candidates, *_FONTS):
        try:
            font = ImageFont.truetype(path, size)
        except OSError:
            continue
        if all(_draws(font, c) for c in chars):
            return font
    return None


def _drawable(text: str, size: int, fallback: str) -> tuple[ImageFont.ImageFont | ImageFont.FreeTypeFont, str]:
    """The font to draw ``text`` with at ``size`` pixels, and the text to draw: Pillow's own font for ASCII, else an
    installed font that has every character, else ``fallback`` in Pillow's font. Its font drew 'Ölfleck' as
    '▯lfleck' and Japanese type names as boxes alone (language probe 2026-12-06)."""
    if text.isascii():
        return _font(size), text
    font = _font_covering(frozenset(c for c in text if not c.isascii()), max(size, SMALLEST_TEXT))
    return (font, text) if font is not None else (_font(size), fallback)


def text_size(width: int, height: int) -> int:
    """Overlay text height in pixels for an image of ``width`` x ``height``."""
    return int(min(LARGEST_TEXT, max(SMALLEST_TEXT, round(max(width, height) / 45))))


def outline(mask: np.ndarray) -> np.ndarray:
    """The border pixels of a bool mask, about 0.5 % of the image's smaller side thick (at least one)."""
    return mask & ~ndimage.binary_erosion(mask, iterations=max(1, min(mask.shape[:2]) // 200))


def render_outlines(image: np.ndarray, masks: list[tuple[np.ndarray, tuple[int, int, int]]], caption: str = "") -> Image.Image:
    """``image`` with each (mask, colour) outlined, in order (later ones drawn over earlier ones),
    and an optional caption on a dark band at the top."""
    drawn = np.array(image, np.uint8, copy=True)
    for mask, colour in masks:
        drawn[outline(mask)] = colour
    canvas = Image.fromarray(drawn)
    if caption:
        draw = ImageDraw.Draw(canvas)
        covered = np.logical_or.reduce([m for m, _ in masks]) if masks else None
        _caption(draw, canvas, caption, REGION_COLOUR, _caption_box(draw, canvas, caption, covered))
    return canvas


def _caption(draw: ImageDraw.ImageDraw, canvas: Image.Image, text: str, colour: tuple[int, int, int], band: tuple[int, int, int, int]) -> None:
    """``text`` on a dark ``band`` of ``canvas`` (:func:`_caption_box`), sized to the image (characters no installed font
    has shown as '?')."""
    font, shown = _caption_drawn(canvas, text)
    draw.rectangle(band, fill=(0, 0, 0))
    draw.text((band[0] + 2, band[1]), shown, fill=colour, font=font)


def _caption_drawn(canvas: Image.Image, text: str) -> tuple[ImageFont.ImageFont | ImageFont.FreeTypeFont, str]:
    """The font and text :func:`_caption` draws ``text`` with on ``canvas``."""
    return _drawable(text, text_size(canvas.width, canvas.height), "".join(c if c.isascii() else "?" for c in text))


def _caption_box(draw: ImageDraw.ImageDraw, canvas: Image.Image, text: str, covered: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """The dark band :func:`_caption` draws ``text`` on: (x0, y0, x1, y1), as tall as the text is drawn, in the corner (or
    the middle of the top or bottom edge) where it hides the fewest ``covered`` pixels (the regions), the top left on a
    tie. Always at the top left, it had hidden the breaks magnetic tiles have at their corners, and a whole region whose
    name then pointed at nothing (report probe 2026-12-06)."""
    font, shown = _caption_drawn(canvas, text)
    box = draw.textbbox((2, 0), shown, font=font)
    width, height = min(canvas.width, int(box[2]) + 2), max(text_size(canvas.width, canvas.height), int(box[3])) + 1
    middle = (canvas.width - width) // 2
    # The corners first, then the middle of the top and the bottom edge (a region in each corner: the band had covered one).
    corners = [(0, 0), (canvas.width - width, 0), (0, canvas.height - height), (canvas.width - width, canvas.height - height),
               (middle, 0), (middle, canvas.height - height)]
    if covered is None or not covered.any():
        x, y = corners[0]
    else:
        hidden = [int(covered[max(0, y) : y + height, max(0, x) : x + width].sum()) for x, y in corners]
        x, y = corners[hidden.index(min(hidden))]
    return max(0, x), max(0, y), max(0, x) + width, max(0, y) + height


@overload
def label_position(bbox: tuple[int, int, int, int], width: int, size: int, canvas: tuple[int, int],
                   keep_clear: Sequence[tuple[int, int, int, int]], or_none: Literal[False] = False) -> tuple[int, int]: ...
@overload
def label_position(bbox: tuple[int, int, int, int], width: int, size: int, canvas: tuple[int, int],
                   keep_clear: Sequence[tuple[int, int, int, int]], or_none: bool) -> tuple[int, int] | None: ...
def label_position(
    bbox: tuple[int, int, int, int], width: int, size: int, canvas: tuple[int, int],
    keep_clear: Sequence[tuple[int, int, int, int]], or_none: bool = False,
) -> tuple[int, int] | None:
    """Where a region's name of ``width`` x ``size`` pixels goes: above its box's top left, inside
    the box where there is no room above, moved in from the right edge so the whole name shows
    (names there were cut to "unknow"), and clear of whatever of ``keep_clear`` it would cover — the
    caption band (a name there was hidden by the score), names already drawn (a probe's "#9 crack"
    over "#10 crack" read "#9 crackk"): moved below what is in its way, else above it (at the bottom
    edge two names had been drawn over each other: "#4 c#6ack"), else beside it. Where no place is
    clear (or the name is wider than the image) it stays where it was put, or with ``or_none`` None is returned."""
    x0, y0, _, _ = bbox
    bottom, right = canvas[1] - size - 1, canvas[0] - width - 1
    if or_none and (right < 0 or bottom < 0):
        return None  # wider or taller than the image: it could only run off it
    start = (max(0, min(x0 + 2, right)), max(0, min(y0 - size if y0 >= size else y0 + 2, bottom)))

    def in_the_way(x: int, y: int) -> tuple[int, int, int, int] | None:
        return next(((cx0, cy0, cx1, cy1) for cx0, cy0, cx1, cy1 in keep_clear
                     if x < cx1 and x + width > cx0 and y < cy1 and y + size > cy0), None)

    # Breadth first from where it was put, fewest moves first (below, above, right, left of what is in the way): moved
    # one way only from there, a name on a crowded bottom edge had been drawn over another with room beside the caption
    # (regression probe 2026-12-06: "#22 cra#26 crack").
    queue, seen = deque([start]), {start}
    while queue and len(seen) <= LABEL_SEARCH_LIMIT:
        x, y = queue.popleft()
        if (hit := in_the_way(x, y)) is None:
            return x, y
        for step in ((x, hit[3] + 1), (x, hit[1] - size - 1), (hit[2] + 1, y), (hit[0] - width - 1, y)):
            if 0 <= step[0] <= right and 0 <= step[1] <= bottom and step not in seen:
                seen.add(step)
                queue.append(step)
    return None if or_none else start


def _far(at: tuple[int, int] | None, width: int, height: int, bbox: tuple[int, int, int, int]) -> bool:
    """Whether a name of ``width`` x ``height`` put ``at`` (None: nowhere) lies too far from its region's ``bbox`` to be read
    as its name: more than three text lines, and at least 24 pixels, away."""
    return at is None or _gap((at[0], at[1], at[0] + width, at[1] + height), bbox) > max(3 * height, 24)


def _gap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """Pixels between two boxes (x0, y0, x1, y1) along the axis they are farthest apart on; 0 when they touch."""
    return max(0, a[0] - b[2], b[0] - a[2], a[1] - b[3], b[1] - a[3])


LABEL_SEARCH_LIMIT = 400
"""Places a region's name is tried at before it is left where it was put (an image crowded with regions)."""


def overlay_scale(inspection: Inspection, normal_pixel_median: float | None) -> tuple[float, float]:
    """The heat map's (low, high) for :func:`render_overlay`, the same for every overlay of a
    model: from the normal images' median pixel (or the map's minimum when the model has no
    normal statistics) to 1.25 × the image threshold, so colours compare across images."""
    low = normal_pixel_median if normal_pixel_median is not None else float(inspection.anomaly_map.min())
    high = max(inspection.thresholds.image if inspection.thresholds else inspection.score, low + 1e-6) * 1.25
    return low, high


def render_overlay(image: np.ndarray, inspection: Inspection, low: float, high: float, labels: list[str] | None = None) -> Image.Image:
    """Blend the anomaly map (scaled from ``low`` to ``high``) over ``image`` and outline regions.

    ``labels`` optionally names each region (e.g. its defect type), in region order: drawn after its
    index ("#1 crack"), as the report lists it; "#1" alone without.
    """
    span = max(high - low, 1e-6)
    level = np.clip((inspection.anomaly_map - low) * (255.0 / span), 0.0, 255.0).astype(np.uint8)
    mixed = image * _IMAGE_SHARE[level][..., None]
    mixed += _WEIGHTED_HEAT[level]
    mixed >>= 8
    blended = mixed.astype(np.uint8)
    weaker = weaker_regions(inspection)
    if inspection.mask.any():
        if weaker and inspection.region_labels is not None:
            # Dimmer, as the report lists them apart: drawn alike, they read as so many defects.
            faint = np.isin(inspection.region_labels, sorted(weaker))
            blended[outline(inspection.mask & ~faint)] = REGION_COLOUR
            blended[outline(faint)] = WEAKER_COLOUR
        else:
            blended[outline(inspection.mask)] = REGION_COLOUR
    canvas = Image.fromarray(blended)
    draw = ImageDraw.Draw(canvas)
    size = text_size(canvas.width, canvas.height)
    font = _font(size)
    verdict = "DEFECTIVE" if inspection.is_defective else "GOOD"
    caption = f"{verdict}  score {inspection.score:.2f}"
    covered = inspection.mask
    if inspection.hot_spot is not None:
        # A good part's hot spot is where a person should look: the band had blacked it out at the top edge.
        covered = covered.copy()
        x, y = inspection.hot_spot
        r = max(6, min(canvas.width, canvas.height) // 16)
        covered[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1] = True
    band = _caption_box(draw, canvas, caption, covered)
    taken = [band]
    # Names stay off the other regions' boxes too ("#1" of a region over most of the frame had been drawn on #2's outline;
    # report probe 2026-12-06); a box over a quarter of the image is no place to keep clear of, or no name would fit.
    boxes = [(r.index, r.bbox) for r in inspection.regions if (r.bbox[2] - r.bbox[0]) * (r.bbox[3] - r.bbox[1]) * 4 < canvas.width * canvas.height]
    # The counted regions' names first, then the weaker ones': on a small image a weaker name had taken the place of a
    # counted one and been drawn over it (regression probe 2026-12-06).
    order = sorted(range(len(inspection.regions)), key=lambda i: inspection.regions[i].index in weaker)
    for i in order:
        region = inspection.regions[i]
        is_weaker = region.index in weaker
        # The index with the type: "uneven, uneven" could not be matched to the report's rows.
        name = f"#{region.index} {labels[i]}" if labels and i < len(labels) else f"#{region.index}"
        name += " (weaker)" if is_weaker else ""
        # A type name no installed font can draw: the index alone, which the report's rows carry (boxes said nothing).
        label_font, name = _drawable(name, size, f"#{region.index}" + (" (weaker)" if is_weaker else ""))
        others = [box for index, box in boxes if index != region.index]
        placed = None
        # The whole name, else the index (which the report's rows carry) where the whole one finds no clear place.
        for shown in dict.fromkeys((name, f"#{region.index}" + (" (weaker)" if is_weaker else ""), f"#{region.index}")):
            box = draw.textbbox((0, 0), shown, font=label_font, stroke_width=1)
            # As tall as it is drawn: an installed font's accents and descenders reach beyond the text size, and names ran
            # into each other (regression probe 2026-12-06).
            width, height = int(box[2]), max(size, int(box[3]))
            at = label_position(region.bbox, width, height, (canvas.width, canvas.height), [*taken, *others], or_none=True)
            if _far(at, width, height, region.bbox):
                # The other regions' boxes are kept clear only near its own: kept clear at any cost, a name had been put
                # 195 px away, beside another region (regression probe 2026-12-06).
                at = label_position(region.bbox, width, height, (canvas.width, canvas.height), taken, or_none=True)
            if is_weaker and _far(at, width, height, region.bbox):
                at = None  # a weaker region's name far from it points at nothing: left out, as where no place is clear
            if at is not None:
                placed = (at, shown, width, height)
                break
        if placed is None:
            if is_weaker:
                continue  # outlined, listed in the report; a name over another's would hide both
            width, height = int(draw.textbbox((0, 0), f"#{region.index}", font=label_font, stroke_width=1)[2]), size
            placed = (label_position(region.bbox, width, height, (canvas.width, canvas.height), taken), f"#{region.index}", width, height)
        at, shown, width, height = placed
        # One pixel round it: the dark stroke reaches beyond the text's box, and side by side two names touched.
        taken.append((at[0] - 1, at[1] - 1, at[0] + width + 1, at[1] + height + 1))
        # A dark edge keeps the name readable on bright surfaces and on the heat map.
        draw.text(at, shown, fill=WEAKER_COLOUR if is_weaker else REGION_COLOUR, font=label_font, stroke_width=1, stroke_fill=(0, 0, 0))
    _caption(draw, canvas, caption, (255, 60, 60) if inspection.is_defective else (60, 220, 60), band)
    if inspection.hot_spot is not None:
        # A good part's map peaking above the threshold: ringed, as the report says where to look;
        # drawn over the caption band, which had hidden a ring at the top edge.
        x, y = inspection.hot_spot
        r = max(6, min(canvas.width, canvas.height) // 16)
        draw.ellipse((x - r, y - r, x + r, y + r), outline=WEAKER_COLOUR, width=max(1, size // 8))
        name = "look here"
        width = int(draw.textbbox((0, 0), name, font=font, stroke_width=1)[2])
        at = label_position((x - r, y - r, x + r, y + r), width, size, (canvas.width, canvas.height), taken)
        draw.text(at, name, fill=WEAKER_COLOUR, font=font, stroke_width=1, stroke_fill=(0, 0, 0))
    return canvas
