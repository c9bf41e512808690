"""The pixels of each located region, as every region classifier needs them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from defectlens.types import Inspection, RegionType

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass
class Classification:
    """Types of an image's regions plus notes on anything skipped."""

    region_types: list[RegionType] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def region_masks(inspection: Inspection) -> dict[int, np.ndarray]:
    """Boolean mask of every region of an inspection, keyed by :attr:`Region.index`.

    Uses ``inspection.region_labels`` when present. Otherwise the mask is labelled with
    8-connectivity (as the locate stage does) and each component is matched to the region
    whose centroid it is nearest to among those with the same bbox (bbox first: exact).
    """
    if inspection.region_labels is not None and inspection.region_labels.shape == inspection.mask.shape:
        return {r.index: inspection.region_labels == r.index for r in inspection.regions}
    labels, n = ndimage.label(inspection.mask, structure=_EIGHT_CONNECTED)
    if n == 0 or not inspection.regions:
        return {}
    boxes = ndimage.find_objects(labels)
    cents = ndimage.center_of_mass(np.ones_like(labels), labels, np.arange(1, n + 1))
    comp_boxes = [(int(s[1].start), int(s[0].start), int(s[1].stop), int(s[0].stop)) for s in boxes]
    out: dict[int, np.ndarray] = {}
    used: set[int] = set()
    for r in inspection.regions:
        same_box = [i for i, b in enumerate(comp_boxes) if b == tuple(r.bbox) and i not in used]
        pool = same_box or [i for i in range(n) if i not in used]
        if not pool:
            break
        best = min(pool, key=lambda i: (cents[i][1] - r.centroid[0]) ** 2 + (cents[i][0] - r.centroid[1]) ** 2)
        used.add(best)
        out[r.index] = labels == best + 1
    return out
