"""Paraphrases of defect descriptions, written offline by the local language model and kept
only when hand-written rules accept them.

Why: the grounding model learns defect types from their sentences, and the shared data
describes only a dozen types, one sentence each. A text adapter trained on a dozen sentences
learns those sentences, not the words; more phrasings of the same defects (sampled from
SmolLM2 with different seeds) are cheap text augmentation.

A 135M model drifts often — it writes about "the text", negates the defect, invents numbers,
names another type or wanders off the topic — so every candidate passes
:func:`check_paraphrase` first, and what was rejected is kept, with the reasons, for a person to
read. Results are cached in one JSON file keyed by the sentence, the model file and these rules'
version, so a second training run does not call the language model again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from defectlens.errors import ConfigError
from defectlens.explain.llm import NEGATIONS, LMConfig, LMWriter, mentions_type
from defectlens.io.atomic import write_json_atomic
from defectlens.taxonomy import Taxonomy

if TYPE_CHECKING:
    from defectlens.encode.text import TextEncoder

PARAPHRASE_FORMAT = "defectlens.paraphrases"
PARAPHRASE_VERSION = 2
"""Bump when the prompt or the rules change: cached entries of another version are redone."""
MIN_SIMILARITY = 0.55
"""Least cosine similarity (sentence encoder) to the original. The rules catch drift in form;
this catches most drift in meaning ("... has been addressed as such": 0.40). Set by reading the
samples the rules alone accepted in a first run: below 0.55 nearly all had lost the defect;
above, most kept it."""
MAX_TRIES_PER_PARAPHRASE = 4
"""Samples drawn per wanted paraphrase before giving up on the rest (about 2.5 s each)."""

# Words that show the model talking about the task or the text instead of the defect.
_META_WORDS = re.compile(
    r"\b(sentence|sentences|rewrite|rewritten|description|describe[sd]?|paraphrase\w*|text|snippet|example|"
    r"you|your|i|we|our|here|sure|create|grammar\w*|punctuation|word|words|synonym\w*)\b",
    re.I,
)
# Only words of four letters or more count as content words; these longer ones do not either.
_STOP_WORDS = frozenset(
    ("with", "from", "that", "this", "which", "along", "across", "into", "onto", "over", "under", "left", "part", "surface", "defect")
)


@dataclass
class TypeParaphrases:
    """The accepted paraphrases of one type's description, and the rejected ones with why."""

    name: str
    description: str
    accepted: list[str] = field(default_factory=list)
    rejected: list[tuple[str, list[str]]] = field(default_factory=list)


def paraphrase_prompt(object_name: str, name: str, description: str) -> str:
    """The instruction the language model gets for one description."""
    return f'Rewrite this description of a {name} defect on a {object_name} in other words, as one short sentence: "{description}"'


def _stems(text: str) -> set[str]:
    # Crude stems (first five letters of content words): 'blotchy' and 'blotched' meet, and
    # no stemmer dependency is needed for a topic check.
    return {w[:5] for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 4 and w not in _STOP_WORDS}


def first_sentence(text: str) -> str:
    """The model's answer reduced to its first sentence, without quotes or list marks."""
    text = " ".join(text.replace('"', " ").replace("“", " ").replace("”", " ").split()).lstrip("-*• ")
    match = re.search(r"[.!?](\s|$)", text)
    sentence = text[: match.start() + 1] if match else text
    return sentence.strip()


def check_paraphrase(text: str, original: str, type_name: str, other_types: Iterable[str]) -> list[str]:
    """Problems of a candidate paraphrase (empty when it is accepted).

    Rules: a complete sentence of 4-30 words; about the defect, not the text or the task; no
    number the original does not have; not negated unless the original is; names no other
    type of the taxonomy; shares at least two content words with the original or the type
    name (on topic); and not the original again.
    """
    problems = []
    words = text.split()
    if not 4 <= len(words) <= 30:
        problems.append(f"{len(words)} words (4-30 wanted)")
    if not text.endswith((".", "!")):
        problems.append("not a complete sentence")
    if m := _META_WORDS.search(text):
        problems.append(f"speaks of the task or the text ({m.group(0)!r})")
    if re.search(r"\d", text) and not re.search(r"\d", original):
        problems.append("adds a number")
    if NEGATIONS.search(text) and not NEGATIONS.search(original):
        problems.append("negates the defect")
    for other in other_types:
        if other != type_name and mentions_type(text, other):
            problems.append(f"names another type ({other!r})")
    shared = _stems(text) & (_stems(original) | _stems(type_name))
    if len(shared) < 2:
        problems.append("off topic (fewer than two content words of the original)")
    if _stems(text) == _stems(original):
        problems.append("repeats the original")
    return problems


Similarity = Callable[[str, str], float]
"""(sentence, sentence) -> cosine similarity of their meanings."""


@functools.lru_cache(maxsize=1)
def _sentence_encoder() -> TextEncoder:
    from defectlens.encode.text import TextEncoder

    return TextEncoder()


def sentence_similarity(a: str, b: str) -> float:
    """Cosine similarity of two sentences' embeddings from the offline sentence encoder."""
    e = _sentence_encoder().embed([a, b])
    return float(e[0] @ e[1])


def _entry_key(object_name: str, name: str, description: str, n: int, model_file: str) -> str:
    raw = json.dumps([PARAPHRASE_VERSION, object_name, name, description, n, model_file])
    return hashlib.sha1(raw.encode()).hexdigest()


def paraphrase_type(
    writer: LMWriter,
    object_name: str,
    name: str,
    description: str,
    other_types: Sequence[str],
    n: int,
    similarity: Similarity | None = None,
) -> TypeParaphrases:
    """Sample up to ``n`` accepted paraphrases of one description (seeds 0, 1, ... until ``n``
    are accepted or ``MAX_TRIES_PER_PARAPHRASE × n`` samples were drawn). With ``similarity``,
    a sample that passes the rules must also be at least ``MIN_SIMILARITY`` alike the original."""
    out = TypeParaphrases(name, description)
    prompt = paraphrase_prompt(object_name, name, description)
    seen = {" ".join(description.lower().split())}
    for seed in range(MAX_TRIES_PER_PARAPHRASE * n):
        if len(out.accepted) >= n:
            break
        candidate = first_sentence(writer.generate(prompt, max_new_tokens=40, sample_seed=seed).text)
        key = " ".join(candidate.lower().split())
        problems = ["the same as an earlier sample"] if key in seen else check_paraphrase(candidate, description, name, other_types)
        seen.add(key)
        if not problems and similarity is not None and (alike := similarity(candidate, description)) < MIN_SIMILARITY:
            problems.append(f"strays from the original's meaning (similarity {alike:.2f} < {MIN_SIMILARITY})")
        if problems:
            out.rejected.append((candidate, problems))
        else:
            out.accepted.append(candidate)
    return out


class ParaphraseStore:
    """Paraphrases per description in one JSON file (or in memory when ``path`` is None).

    ``similarity`` (default: :func:`sentence_similarity`) is the meaning check of
    :func:`paraphrase_type`; None leaves only the rules.
    """

    def __init__(self, path: str | Path | None, writer: LMWriter | None = None, similarity: Similarity | None = sentence_similarity):
        self.path = Path(path) if path is not None else None
        self.writer = writer or LMWriter(LMConfig())
        self.similarity = similarity
        self._entries: dict[str, dict] = {}
        if self.path is not None and self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read the paraphrase cache ({exc.__class__.__name__})", self.path, "delete it; it is rebuilt") from None
            if data.get("format") == PARAPHRASE_FORMAT and data.get("version") == PARAPHRASE_VERSION:
                self._entries = dict(data.get("entries", {}))

    def for_taxonomy(self, taxonomy: Taxonomy, n: int) -> list[TypeParaphrases]:
        """Up to ``n`` paraphrases of each type's description (generated when not cached; the
        file is rewritten as a unit after each new type, so an interrupted run keeps its work)."""
        if n <= 0:
            return [TypeParaphrases(d.name, d.description or d.name) for d in taxonomy.defects]
        out = []
        for d in taxonomy.defects:
            description = d.description or d.name
            key = _entry_key(taxonomy.object_name, d.name, description, n, self.writer.config.model_file)
            entry = self._entries.get(key)
            if entry is None:
                result = paraphrase_type(self.writer, taxonomy.object_name, d.name, description, taxonomy.names, n, self.similarity)
                entry = {
                    "object": taxonomy.object_name,
                    "name": d.name,
                    "description": description,
                    "accepted": result.accepted,
                    "rejected": [[text, problems] for text, problems in result.rejected],
                }
                self._entries[key] = entry
                self._save()
            out.append(
                TypeParaphrases(d.name, description, list(entry["accepted"]), [(t, list(p)) for t, p in entry["rejected"]])
            )
        return out

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"format": PARAPHRASE_FORMAT, "version": PARAPHRASE_VERSION, "entries": self._entries}
        write_json_atomic(self.path, data)
