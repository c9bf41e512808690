"""Defect types from the descriptions' words and each region's shape (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from defectlens.classify.from_words import classify_regions_from_words, description_cues, region_qualities
from defectlens.classify.regions import type_regions
from defectlens.taxonomy import parse_taxonomy
from defectlens.types import Inspection, Region

TAXONOMY = parse_taxonomy(
    {
        "object": "magnetic tile",
        "defects": [
            {"name": "blowhole", "description": "small round pits or pores on the tile surface left by trapped gas"},
            {"name": "crack", "description": "a thin dark line or fissure running across the tile surface"},
            {"name": "fray", "description": "a rough, frayed or chipped band along the tile edge"},
            {"name": "uneven", "description": "an uneven, wavy or blotchy region in the ground surface texture"},
        ],
    }
)


def _surface(seed: int = 0) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).normal(128, 8, size=(200, 200)), 0, 255).astype(np.uint8)


def test_descriptions_become_expected_qualities():
    assert description_cues("small round pits or pores") == {"elongation": -1.0, "size": -1.0}
    assert description_cues("a thin dark line") == {"elongation": 1.0, "size": -1.0, "contrast": -1.0}
    # Words that cancel ('bright or dark') say nothing about that quality.
    assert "contrast" not in description_cues("long thin bright or dark lines")
    assert description_cues("something odd") == {}


def test_region_qualities_measure_shape_place_and_contrast():
    image = _surface()
    pit = np.zeros((200, 200), bool)
    pit[95:101, 95:101] = True
    image[pit] = 40
    q = region_qualities(image.astype(float), pit)
    assert q["size"] == -1.0 and q["elongation"] < -0.5 and q["edge"] == -1.0 and q["contrast"] == -1.0
    band = np.zeros((200, 200), bool)
    band[:12, 20:180] = True
    q = region_qualities(image.astype(float), band)
    assert q["edge"] == 1.0 and q["elongation"] > 0.5
    with pytest.raises(ValueError, match="empty"):
        region_qualities(image.astype(float), np.zeros((200, 200), bool))
    with pytest.raises(ValueError, match="shape"):
        region_qualities(image.astype(float), pit[:100])


def _regions() -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    image = _surface(1)
    masks, truth = [], []
    pit = np.zeros((200, 200), bool)
    pit[60:66, 60:66] = True
    image[pit] = 30
    masks.append(pit), truth.append("blowhole")
    line = np.zeros((200, 200), bool)
    line[120:122, 40:160] = True
    image[line] = 30
    masks.append(line), truth.append("crack")
    band = np.zeros((200, 200), bool)
    band[188:, 10:190] = True
    image[band] = 90
    masks.append(band), truth.append("fray")
    blotch = np.zeros((200, 200), bool)
    blotch[30:110, 90:170] = True
    image[blotch] = np.clip(image[blotch].astype(int) + 25, 0, 255)
    masks.append(blotch), truth.append("uneven")
    return np.stack([image] * 3, axis=-1), masks, truth


def test_each_drawn_defect_gets_the_type_its_words_describe():
    image, masks, truth = _regions()
    out = classify_regions_from_words(image, masks, TAXONOMY, [4, 5, 6, 7])
    assert [r.defect_type for r in out] == truth
    assert [r.region_index for r in out] == [4, 5, 6, 7] and all(r.method == "words" for r in out)
    for r in out:
        assert r.candidates[0][0] == r.defect_type and abs(sum(p for _, p in r.candidates) - 1) < 1e-9


def test_inspections_are_typed_from_words_when_there_are_no_examples():
    image, masks, truth = _regions()
    labels = np.zeros((200, 200), np.int32)
    regions = []
    for i, m in enumerate(masks, start=1):
        labels[m] = i
        ys, xs = np.nonzero(m)
        bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        regions.append(Region(i, bbox, int(m.sum()), float(m.mean()), (float(xs.mean()), float(ys.mean())), 1.0, 1.0))
    inspection = Inspection(
        "drawn.png", (200, 200), 1.0, True, np.zeros((200, 200), np.float32), labels > 0, regions, region_labels=labels
    )
    typed = type_regions(image, inspection, taxonomy=TAXONOMY)
    assert [t.defect_type for t in typed.region_types] == truth
    undescribed = parse_taxonomy({"object": "tile", "defects": [{"name": "crack"}]})
    untyped = type_regions(image, inspection, taxonomy=undescribed)
    assert untyped.region_types == [] and "not typed" in untyped.notes[0]
    # Descriptions in words the lexicon does not read (German, Japanese) type nothing, and say so: every region had taken
    # the first type, with its severity and action (language probe 2026-12-06).
    german = parse_taxonomy({"object": "Keks", "defects": [{"name": "Riss", "description": "ein Riss im Gebäck"},
                                                            {"name": "Fleck", "description": "ein Ölfleck auf der Oberfläche"}]})
    unread = type_regions(image, inspection, taxonomy=german)
    assert unread.region_types == [] and unread.notes[0].startswith("regions are not typed: no word of the taxonomy's descriptions")
    from defectlens.classify.regions import untyped_reason

    assert untyped_reason(None, german) == unread.notes[0]
    # Partly readable: the types without a cue cannot be told apart; a tie between them reads unknown, and it is said.
    mixed = parse_taxonomy({"object": "Keks", "defects": [{"name": "Riss", "description": "ein Riss im Gebäck"},
                                                           {"name": "Ausbruch", "description": "Ausbruch am Rand"},
                                                           {"name": "Fleck", "description": "ein heller Fleck (spot)"}]})
    partly = type_regions(image, inspection, taxonomy=mixed)
    assert partly.notes == ["type(s) Riss, Ausbruch: no word of their descriptions is one the words classifier reads (English "
                            "words of shape, size, place and brightness), so it cannot tell them apart — give --examples, or add such words"]
    assert all(t.defect_type in ("Fleck", "unknown") for t in partly.region_types)
    assert any(t.defect_type == "unknown" for t in partly.region_types)  # the line and the band: no Fleck, and a tie below it
    one_type = parse_taxonomy({"object": "Keks", "defects": [{"name": "Riss", "description": "ein Riss im Gebäck"}]})
    assert {t.defect_type for t in type_regions(image, inspection, taxonomy=one_type).region_types} == {"Riss"}  # the only type


def test_a_sentence_naming_more_qualities_does_not_win_by_naming_more():
    from defectlens.classify.from_words import type_scores

    cues = [{"edge": 1.0}, {"edge": 1.0, "elongation": 1.0, "size": 1.0}]  # 'broken off the edge', 'a band along the edge'
    at_the_edge = {"edge": 1.0, "elongation": 0.3, "size": 0.2, "contrast": 0.0}
    assert np.argmax(type_scores(at_the_edge, cues)) == 0  # a plain sum would say 'band' (1.5 against 1)
    band = {"edge": 1.0, "elongation": 0.9, "size": 0.8, "contrast": 0.0}
    assert np.argmax(type_scores(band, cues)) == 1
    assert type_scores(band, [{}])[0] == 0.0
