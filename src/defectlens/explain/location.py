"""Where a region is and how big it is, in words an operator uses on the line."""

from __future__ import annotations

# The image is read as a 3x3 grid: thirds are coarse enough to be stable under small
# localisation errors and fine enough to find the spot on the physical part.
_ZONES = {
    ("upper", "left"): "upper-left",
    ("upper", "centre"): "top",
    ("upper", "right"): "upper-right",
    ("middle", "left"): "left",
    ("middle", "centre"): "centre",
    ("middle", "right"): "right",
    ("lower", "left"): "lower-left",
    ("lower", "centre"): "bottom",
    ("lower", "right"): "lower-right",
}
EDGE_BAND = 0.05
"""A region whose bbox comes within this share of the image side from a border is 'at the edge'."""

# (upper bound of the area share, word); the last bound is open.
_SIZES = ((0.001, "tiny"), (0.01, "small"), (0.05, "medium"), (0.2, "large"), (float("inf"), "very large"))


def _band(value: float, extent: float, names: tuple[str, str, str]) -> str:
    t = value / extent if extent > 0 else 0.5
    return names[0] if t < 1 / 3 else names[2] if t >= 2 / 3 else names[1]


def describe_location(
    position: tuple[float, float], image_size: tuple[int, int], bbox: tuple[int, int, int, int] | None = None
) -> str:
    """Position in words of a point (x, y) — a region's peak, or its centroid — within an image of (width, height).

    Gives one of nine zones ('upper-left', 'top', ..., 'centre', ..., 'lower-right'); when
    ``bbox`` reaches a border the word 'edge' is added ('upper-left edge', 'left edge'), and a
    central region that spans to a border becomes 'centre, reaching the edge'.
    """
    w, h = image_size
    cx, cy = position
    zone = _ZONES[(_band(cy, h, ("upper", "middle", "lower")), _band(cx, w, ("left", "centre", "right")))]
    if bbox is None:
        return zone
    x0, y0, x1, y1 = bbox
    at_edge = x0 <= EDGE_BAND * w or y0 <= EDGE_BAND * h or x1 >= (1 - EDGE_BAND) * w or y1 >= (1 - EDGE_BAND) * h
    if not at_edge:
        return zone
    return "centre, reaching the edge" if zone == "centre" else f"{zone} edge"


def zone_of(location: str) -> str:
    """The zone of a :func:`describe_location` phrase: 'upper-left edge' -> 'upper-left',
    'centre, reaching the edge' -> 'centre'."""
    return location.split(",")[0].removesuffix(" edge")


def describe_size(area_fraction: float) -> str:
    """Size in words from the share of the part a region covers."""
    for bound, word in _SIZES:
        if area_fraction < bound:
            return word
    return _SIZES[-1][1]


def format_share(area_fraction: float) -> str:
    """A share as a short percentage ('0.12%', '3.4%', '27%')."""
    pct = 100.0 * area_fraction
    if pct < 1:
        return f"{pct:.2f}%"
    if pct < 10:
        return f"{pct:.1f}%"
    return f"{pct:.0f}%"
