"""The pixels of each located region, as every region classifier needs them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol, TypeGuard

import numpy as np
from scipy import ndimage

from defectlens.locate.regions import EIGHT_CONNECTED
from defectlens.taxonomy import UNKNOWN, Taxonomy
from defectlens.types import GroundingResult, Inspection, RegionType


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
    labels, n = ndimage.label(inspection.mask, structure=EIGHT_CONNECTED)
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


class RegionClassifier(Protocol):
    """A classifier fitted on labelled examples (few-shot, or a vision-language endpoint)."""

    def classify_inspection(self, image: np.ndarray, inspection: Inspection) -> Classification:
        """Types of the inspection's regions."""
        ...


def type_regions(
    image: np.ndarray,
    inspection: Inspection,
    classifier: RegionClassifier | None = None,
    taxonomy: Taxonomy | None = None,
    grounding: GroundingResult | None = None,
) -> Classification:
    """Types of an inspection's regions from the best source there is, in this order:

    1. labelled examples (``classifier``);
    2. the taxonomy's descriptions read against each region's shape
       (:func:`~defectlens.classify.from_words.classify_regions_from_words`), when every type
       has a description;
    3. a grounding model's description maps (``grounding``).

    Words come before the grounding model because they typed held-out categories better
    (``benchmarks/types_from_words.py``, ground-truth regions: magnetic tile 0.541 against 0.162,
    steel strip 0.553 against 0.274). No source: no types, and a note says how to get them.
    """
    from defectlens.classify.from_text import classify_from_grounding
    from defectlens.classify.from_words import classify_regions_from_words

    if not inspection.regions:
        return Classification()
    if classifier is not None:
        return _within_taxonomy(classifier.classify_inspection(image, inspection), taxonomy)
    if _words_apply(taxonomy):
        masks = region_masks(inspection)
        typed = classify_regions_from_words(image, list(masks.values()), taxonomy, list(masks))
        return Classification(typed, [unread] if (unread := _unread_types(taxonomy)) else [])
    if grounding is not None and inspection.region_labels is not None:
        return Classification(classify_from_grounding(grounding, inspection.region_labels))
    return Classification(notes=[untyped_reason(None, taxonomy) or UNTYPED])


def _within_taxonomy(result: Classification, taxonomy: Taxonomy | None) -> Classification:
    """Examples' types the taxonomy does not know (examples of another part), as 'unknown' with a note: the
    report had said unknown while the JSON, the overlay, the table and summary.csv named the examples' type
    (layout probe 2026-12-06). Its candidates keep the examples' names: why the region was so typed. The others are spelt as
    the taxonomy spells them: an examples folder "CRACK" had named every output's type so, apart from the taxonomy's "crack"
    (types probe 2026-12-07)."""
    if taxonomy is None:
        return result
    kept: list[RegionType] = []
    foreign: dict[str, list[int]] = {}
    for rt in result.region_types:
        if rt.defect_type != UNKNOWN and taxonomy.get(rt.defect_type) is None:
            foreign.setdefault(rt.defect_type, []).append(rt.region_index)
            rt = replace(rt, defect_type=UNKNOWN)
        else:
            rt = replace(rt, defect_type=taxonomy.reported(rt.defect_type),
                         candidates=tuple((taxonomy.reported(n) if taxonomy.get(n) else n, s) for n, s in rt.candidates))
        kept.append(rt)
    # One line a type, not one a region (six regions had given six lines alike).
    notes = [*result.notes, *(f"region(s) {', '.join(f'#{i}' for i in indices)}: typed {name!r} by the examples, a type not in the "
                              "taxonomy; reported as unknown" for name, indices in foreign.items())]
    return Classification(kept, notes)


UNTYPED = ("regions are not typed: the model has no defect examples and no taxonomy with descriptions "
           "(add a taxonomy.json to the model folder, or give --examples)")
"""Said where :func:`type_regions` has no source of types (the model holds no taxonomy)."""


def untyped_reason(classifier: RegionClassifier | None, taxonomy: Taxonomy | None, grounding_model: bool = False) -> str | None:
    """Why :func:`type_regions` will type no region, or None when it has a source of types: examples,
    a taxonomy whose every type has a description in words the words classifier reads, or a grounding
    model's maps (``grounding_model``). A taxonomy without descriptions is named as such ("add a
    taxonomy.json" had been said beside one), and one whose descriptions give no word it reads too."""
    if classifier is not None or grounding_model or _words_apply(taxonomy):
        return None
    if taxonomy is not None and taxonomy.defects:
        bare = [d.name for d in taxonomy.defects if not d.description]
        if not bare:
            return UNREAD_DESCRIPTIONS
        return (f"regions are not typed: the taxonomy's types {', '.join(bare[:5])} have no description — add a description to "
                "each type in taxonomy.json, or give --examples")
    return UNTYPED


UNREAD_DESCRIPTIONS = ("regions are not typed: no word of the taxonomy's descriptions is one the words classifier reads (English "
                       "words of shape, size, place and brightness: line, round, small, large, edge, dark, bright, …) — give --examples, "
                       "or add such words to the descriptions")
"""Said where every type has a description but none gives a cue: descriptions in German or Japanese had typed every
region as the taxonomy's first type, with its severity and action, at a third's confidence (language probe 2026-12-06)."""


def _unread_types(taxonomy: Taxonomy) -> str | None:
    """Said where some of several types' descriptions give no word the words classifier reads: those types win a region
    only by a tie, which reads unknown (a partly German taxonomy's cue-less types had been chosen by their order)."""
    from defectlens.classify.from_words import description_cues

    unread = [d.name for d in taxonomy.defects if not description_cues(d.description or "")]
    if len(taxonomy.defects) < 2 or not unread:
        return None
    return (f"type(s) {', '.join(unread)}: no word of their descriptions is one the words classifier reads (English words of "
            "shape, size, place and brightness), so it cannot tell them apart — give --examples, or add such words")


def _words_apply(taxonomy: Taxonomy | None) -> TypeGuard[Taxonomy]:
    """Whether the taxonomy's descriptions can type regions: every type has one, and for more than one type at least
    one of them gives a cue (with none, every region had taken the first type)."""
    from defectlens.classify.from_words import description_cues

    if taxonomy is None or not taxonomy.defects or not all(d.description for d in taxonomy.defects):
        return False
    return len(taxonomy.defects) == 1 or any(description_cues(d.description or "") for d in taxonomy.defects)
