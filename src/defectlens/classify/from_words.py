"""Defect types from the words of their descriptions and the shape of each region — no
example, no training, no language-vision model.

A taxonomy sentence says what a defect looks like in words an inspector would use: "small
round pits", "a thin dark line", "a band along the edge", "large irregular patches". Four of
those qualities can be measured on a region directly:

* **elongation** — ratio of the region's principal axes (a line against a pit or a blob);
* **size** — the share of the image it covers (a pore against a region);
* **edge** — how much of it lies in the image's border band (along the edge or not);
* **contrast** — darker or brighter than the surface around it.

:func:`description_cues` reads the expected sign of each quality from the description with a
small hand-written lexicon (``WORD_CUES``); :func:`region_qualities` measures the region, each
quality on [-1, 1]; a type's score (:func:`type_scores`) is the sum over the qualities its
sentence speaks of of expected sign × measured value (each quality a piece of evidence, as in
naive Bayes), divided by the square root of how many it speaks of — a standardised sum, so a
sentence that names three qualities does not outscore one that names a single quality merely by
naming more — and the region takes the best type. A type whose sentence names none scores 0.

Measured in ``benchmarks/types_from_words.py`` with ground-truth masks as regions. The lexicon
and the scales were written by hand while reading results on magnetic_tile and steel_strip
(the two shared categories with several types), so expect somewhat less on other parts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage
from scipy.special import softmax

from defectlens.taxonomy import UNKNOWN, Taxonomy
from defectlens.types import RegionType

WORD_CUES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # quality: (words that say "more of it", words that say "less of it"); regex word stems.
    "elongation": (
        (r"lines?", r"streaks?", r"scratch\w*", r"crack\w*", r"fissures?", r"fractures?", r"elongated", r"thin", r"long",
         r"straight", r"split", r"bands?"),
        (r"round", r"pits?", r"pores?", r"holes?", r"craters?", r"spots?", r"blotch\w*"),
    ),
    "size": (
        (r"large", r"region", r"areas?", r"patch\w*", r"bands?", r"wide", r"blotch\w*"),
        (r"small", r"tiny", r"fine", r"thin", r"pits?", r"pores?", r"spots?"),
    ),
    "edge": ((r"edges?", r"corners?", r"borders?", r"rims?"), ()),
    "contrast": ((r"bright", r"light", r"lighter", r"white"), (r"dark", r"darker", r"black")),
}
BORDER_BAND = 0.1
"""The image's border band, as a share of its shorter side: a region mostly inside it is 'at the edge'."""
TYPICAL_AREA = 0.02
"""Area share that is neither small nor large (size 0); a tenth of it is -1, ten times +1."""
TYPICAL_ELONGATION = 3.0
"""Axis ratio that is neither round nor line-like (elongation 0); 1 is -1, 9 is +1."""
LOGIT_SCALE = 2.0
"""Inverse temperature turning the scores into the candidates' confidences."""


def description_cues(description: str) -> dict[str, float]:
    """Expected sign of each quality a description speaks of, in [-1, 1] (qualities whose
    words cancel out, e.g. 'bright or dark', are left out)."""
    cues = {}
    for quality, (more, less) in WORD_CUES.items():
        n_more = sum(bool(re.search(rf"\b{w}\b", description, re.I)) for w in more)
        n_less = sum(bool(re.search(rf"\b{w}\b", description, re.I)) for w in less)
        if n_more != n_less:
            cues[quality] = (n_more - n_less) / (n_more + n_less)
    return cues


def region_qualities(grey: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """The four qualities of one region (bool ``mask``) of a grey image, each in [-1, 1]."""
    mask = np.asarray(mask, bool)
    if mask.shape != grey.shape[:2]:
        raise ValueError(f"region mask shape {mask.shape} differs from the image's {grey.shape[:2]}")
    if not mask.any():
        raise ValueError("the region mask is empty")
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    size = np.log10(len(ys) / mask.size / TYPICAL_AREA)
    spread = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(np.float64))) if len(ys) > 2 else np.ones(2)
    # A one-pixel-wide line has no spread across it: a quarter pixel² stands in for it.
    ratio = np.sqrt(max(spread[-1], 1e-6) / max(spread[0], 0.25))
    elongation = np.log(ratio / TYPICAL_ELONGATION) / np.log(TYPICAL_ELONGATION)
    shorter = min(h, w)
    to_border = np.minimum(np.minimum(ys, h - 1 - ys), np.minimum(xs, w - 1 - xs)) / shorter
    edge = 2.0 * float(np.mean(to_border < BORDER_BAND)) - 1.0
    ring = ndimage.binary_dilation(mask, iterations=max(2, shorter // 30)) & ~mask
    contrast = (grey[mask].mean() - grey[ring].mean()) / (float(grey.std()) + 1e-6) if ring.any() else 0.0
    values = {"elongation": elongation, "size": size, "edge": edge, "contrast": contrast}
    return {k: float(np.clip(v, -1.0, 1.0)) for k, v in values.items()}


def type_scores(qualities: Mapping[str, float], cues: Sequence[Mapping[str, float]]) -> np.ndarray:
    """Each type's score for a region's measured ``qualities``: the standardised sum of expected
    sign × measured value over the qualities its description speaks of (``cues``, one per type).

    Divided by sqrt(n): n pieces of evidence of about equal spread sum to a spread of sqrt(n).
    Summed plainly, a type whose sentence names more qualities won wherever the extra ones were
    merely not against it — magnetic tile's 'a piece broken off the edge' (one quality) lost its
    breaks to 'a frayed band along the edge' (three). Measured with ground-truth masks
    (``benchmarks/types_from_words.py``): magnetic tile 0.446 -> 0.541, steel strip 0.589 -> 0.553;
    a plain mean (divided by n) gave 0.546 / 0.464."""
    return np.array([sum(sign * qualities[q] for q, sign in c.items()) / np.sqrt(len(c)) if c else 0.0 for c in cues])


def classify_regions_from_words(
    image: np.ndarray,
    region_masks: Sequence[np.ndarray],
    taxonomy: Taxonomy,
    region_indices: Sequence[int] | None = None,
) -> list[RegionType]:
    """Type of each region from its shape and the taxonomy's descriptions (method 'words').

    Args:
        image: the inspected image (H, W) or (H, W, C), any numeric type.
        region_masks: one bool (H, W) mask per region.
        taxonomy: the part's taxonomy; types without a description are known by their name.
        region_indices: :attr:`Region.index` of each mask (default 1, 2, ...).

    Returns:
        One :class:`RegionType` per non-empty mask, candidates best first.
    """
    array = np.asarray(image, dtype=np.float64)
    grey = array.mean(axis=-1) if array.ndim == 3 else array
    if region_indices is None:
        region_indices = list(range(1, len(region_masks) + 1))
    if len(region_indices) != len(region_masks):
        raise ValueError("region_indices and region_masks differ in length")
    names = list(taxonomy.names)
    cues = [description_cues(d.description or d.name) for d in taxonomy.defects]
    out = []
    for index, mask in zip(region_indices, region_masks, strict=True):
        if not np.asarray(mask).any():
            continue
        qualities = region_qualities(grey, mask)
        probs = softmax(LOGIT_SCALE * type_scores(qualities, cues))
        order = np.argsort(-probs, kind="stable")
        # Two types the words cannot tell apart (neither description gives a cue the region speaks to): unknown, not the
        # first listed (regression probe 2026-12-06: of two German types without a cue, the first always won).
        tied = len(order) > 1 and probs[order[0]] - probs[order[1]] < 1e-9
        out.append(
            RegionType(
                region_index=int(index),
                defect_type=UNKNOWN if tied else names[int(order[0])],
                confidence=float(probs[order[0]]),
                method="words",
                candidates=tuple((names[i], float(probs[i])) for i in order),
            )
        )
    return out
