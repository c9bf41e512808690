"""The defect taxonomy of a part: ``taxonomy.json`` validated with pydantic.

The file lists the part (``object``) and its defect types. Beyond name and description each
type may say how bad it is (``severity``), what it does to the part (``impact``) and what the
line should do (``action``); the report falls back to stated defaults when they are absent.

Validation happens on load, so a typo is reported before a single image is encoded:
unknown keys (``"severty"``), empty or duplicate names, reserved names (``unknown``, ``good``),
and — where a classifier needs them — missing descriptions all raise :class:`ConfigError`
naming the file and the fix.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from defectlens.errors import ConfigError
from defectlens.io.atomic import read_json_file
from defectlens.io.names import same_spelling, word_folded

UNKNOWN = "unknown"
"""Type given to a region far from every known type."""
# 'good' is the MVTec folder of normal images; 'unknown' is what the classifier says when unsure.
RESERVED_NAMES = frozenset({UNKNOWN, "good"})
MAX_NAME_LENGTH = 100
_NAME_PUNCTUATION = frozenset(" _-.")


def normal_type_name(name: str) -> str:
    """``name`` in Unicode NFC, the form type names are compared and stored in.

    macOS writes folder names decomposed ("O" + combining diaeresis), a taxonomy typed on most
    keyboards is composed ("Ö"): without one form an examples folder ``Ölfleck/`` would not match
    the taxonomy's ``Ölfleck``, though both print the same.
    """
    return same_spelling(name)


def type_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a defect type's name, or None when it can.

    Letters and digits of any script (with their combining marks), inside also space, '_', '-'
    and '.', starting with a letter or digit, at most :data:`MAX_NAME_LENGTH` characters. Names
    become folder names (examples, ``export-reviews``) and are matched as whole words in reports
    and model replies, so no slash, quote, control character or leading dot can be one.
    """
    name = normal_type_name(name)
    if not name or len(name) > MAX_NAME_LENGTH:
        return f"must be 1 to {MAX_NAME_LENGTH} characters"
    for i, ch in enumerate(name):
        kind = unicodedata.category(ch)
        if kind[0] in "LN" or (i and (kind[0] == "M" or ch in _NAME_PUNCTUATION)):
            continue
        where = "start with" if i == 0 else "contain"
        return f"must not {where} {ch!r}: letters and digits of any script, and inside also space, '_', '-' or '.'"
    if name[-1] in _NAME_PUNCTUATION:
        return f"must not end with {name[-1]!r}"
    return None


RESERVED_WHY = "'unknown' is what a region unlike every type is reported as, 'good' the normal parts"
"""Why a reserved name is no defect type's, as the notes that refuse one say it."""


def is_reserved_name(name: str) -> bool:
    """Whether ``name`` is one no defect type may have ('unknown', 'good'), in any case and in full-width letters
    (``ｕｎｋｎｏｗｎ``, as Japanese input methods type it, had passed: language probe 2026-12-06)."""
    return word_folded(name) in RESERVED_NAMES


def same_type_name(a: str, b: str) -> bool:
    """Whether two type names are one type: case and Unicode composition aside."""
    return normal_type_name(a).casefold() == normal_type_name(b).casefold()


class Severity(StrEnum):
    """How bad a defect type is for the part, in increasing order."""

    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


# Defaults used when the taxonomy does not say; deliberately conservative (hold for review)
# because an unassessed defect should not pass silently.
DEFAULT_SEVERITY = Severity.medium
DEFAULT_IMPACT = "impact not assessed for this defect type"
DEFAULT_ACTION = "hold the part for manual review"
UNKNOWN_SEVERITY = Severity.high
UNKNOWN_IMPACT = "unidentified defect: its effect on the part is unknown"
UNKNOWN_ACTION = "hold the part and have an inspector identify the defect"


class DefectSpec(BaseModel):
    """One defect type of the taxonomy."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str = Field(min_length=1)
    description: str | None = None
    severity: Severity | None = None
    impact: str | None = None
    action: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        v = normal_type_name(v)
        problem = type_name_problem(v)
        if problem:
            raise ValueError(f"defect name {v!r} {problem}")
        if is_reserved_name(v):
            raise ValueError(f"defect name {v!r} is reserved")
        return v

    @field_validator("severity", mode="before")
    @classmethod
    def _severity_as_written(cls, v: object) -> object:
        # "High", "high " or full-width "Ｈｉｇｈ" from a spreadsheet's export is high, as a type's name reads without case or
        # spaces, and an empty cell is no severity, as an empty impact is (types probe and its regression probe 2026-12-07).
        if not isinstance(v, str):
            return v
        read = unicodedata.normalize("NFKC", v).strip().lower()
        if read and read not in Severity.__members__:
            raise ValueError(f"severity {v!r} is none of {', '.join(Severity.__members__)}")
        return read or None

    @field_validator("description", "impact", "action")
    @classmethod
    def _blank_is_absent(cls, v: str | None, info: ValidationInfo) -> str | None:
        # A stop, a dash or "n/a" says nothing either: given as an action, "." had been reported as one (regression probe
        # 2026-12-06), where an absent one gets the default and is flagged as such. A description of "none" is none too; an
        # impact or action of "none" says there is none.
        said_nothing = PLACEHOLDERS | ({"none"} if info.field_name == "description" else set())
        if v is None or not any(ch.isalnum() for ch in v) or placeholder_key(v) in said_nothing:
            return None
        return v


PLACEHOLDERS = frozenset({"n/a", "na", "n.a", "tbd", "tbc", "tba", "todo", "null", "nil"})
"""What a taxonomy's text field may hold that says nothing, in any case and with a stop after it ("N/A.", "TBD."): read as
left out. Not "none": an impact or an action of "none" says there is none (it had been reported "not assessed" and turned
into a hold; regression probe 2026-12-06)."""


def placeholder_key(text: str) -> str:
    """``text`` as compared with :data:`PLACEHOLDERS`: lower case, without spaces or brackets, without its closing marks
    ("[TBD]", "n. a.", "tbd?", "To do")."""
    return "".join(text.split()).lower().strip("[](){}<>").rstrip(".!?…:;").strip("[](){}<>")


# Where an object description turns from the part to its scene: "chocolate-chip cookie lying on a
# dark baking tray" heads a report as "Chocolate-chip cookie: DEFECTIVE". A comma before a size
# ("hex nut, M8", "shaft, 12 mm") names the part, not its scene: it is kept.
_SCENE_START = re.compile(r",(?!\s*[A-Za-z]{0,3}\d)|;|\(| - | — | (?:lying|placed|seen|shown|photographed|imaged) | on (?:a|an|the) ", re.IGNORECASE)


def short_part_name(object_text: str) -> str:
    """``object_text`` up to where it starts describing the scene (a comma, "lying on", "on a", ...),
    or whole when it does not; the full text stays in the report's markdown page and the card."""
    cut = _SCENE_START.search(object_text)
    short = object_text[: cut.start()].strip() if cut else object_text.strip()
    return short or object_text.strip()


class Taxonomy(BaseModel):
    """A part's name and its defect types, in file order."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, str_strip_whitespace=True)

    object_name: str = Field(alias="object", min_length=1)
    defects: tuple[DefectSpec, ...] = Field(min_length=1)
    part: str | None = Field(default=None, min_length=1)
    """A short name for the part in report headings ("cookie"); default: the ``object`` text up to
    where it starts describing the scene (:func:`short_part_name`)."""

    @model_validator(mode="after")
    def _unique_names(self) -> Taxonomy:
        seen: set[str] = set()
        for d in self.defects:
            key = d.name.casefold()
            if key in seen:
                raise ValueError(f"defect name {d.name!r} is listed twice")
            seen.add(key)
        return self

    @property
    def part_name(self) -> str:
        """The part's name in report headings: ``part`` if the file gives one, else a short ``object``."""
        return self.part or short_part_name(self.object_name)

    @property
    def names(self) -> tuple[str, ...]:
        """Defect type names, in taxonomy order."""
        return tuple(d.name for d in self.defects)

    def get(self, name: str) -> DefectSpec | None:
        """The spec of a type (case-insensitive), or None."""
        return next((d for d in self.defects if same_type_name(d.name, name)), None)

    def reported(self, name: str) -> str:
        """``name`` as a report gives a region's type: :data:`UNKNOWN` where this taxonomy has no such type (examples of
        another part), else as this taxonomy spells it. The one rule of `inspect`'s reports and `evaluate`'s type accuracy,
        which had scored a type the part lacks under its own name where `inspect` says unknown (own-dataset probe
        2026-12-07), and an examples folder's "CRACK" apart from the taxonomy's "crack" (types probe 2026-12-07)."""
        return spec.name if name != UNKNOWN and (spec := self.get(name)) is not None else UNKNOWN

    def require_types(self, types: Iterable[str], where: str | Path | None = None) -> None:
        """Raise :class:`ConfigError` if any of ``types`` (e.g. example folders) is not in the taxonomy."""
        unknown = sorted({t for t in types if self.get(t) is None})
        if unknown:
            raise ConfigError(
                f"defect type(s) {', '.join(unknown)} are not in the taxonomy (it lists {', '.join(self.names)})",
                where,
                "add them to taxonomy.json or rename the example folders",
            )

    def require_descriptions(self, where: str | Path | None = None) -> None:
        """Raise :class:`ConfigError` unless every type has a description (text/VLM classifiers need one)."""
        missing = [d.name for d in self.defects if not d.description]
        if missing:
            raise ConfigError(
                f"no description for defect type(s) {', '.join(missing)}",
                where,
                'add "description": "<one sentence saying what it looks like>" to each',
            )

    def guidance(self, name: str) -> ResolvedGuidance:
        """Severity, impact and action for a type, with defaults filled in and flagged."""
        spec = self.get(name)
        if spec is None:
            return unknown_guidance()
        defaults = tuple(
            f for f, v in (("severity", spec.severity), ("impact", spec.impact), ("action", spec.action)) if v is None
        )
        return ResolvedGuidance(
            (spec.severity or DEFAULT_SEVERITY).value,
            spec.impact or DEFAULT_IMPACT,
            spec.action or DEFAULT_ACTION,
            defaults,
        )

    def to_json(self) -> dict:
        """The ``taxonomy.json`` form (absent optional fields omitted)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class ResolvedGuidance:
    """What the report says about a type: severity, impact, action and which were defaults."""

    severity: str
    impact: str
    action: str
    defaults_used: tuple[str, ...]


def unknown_guidance() -> ResolvedGuidance:
    """What a report says of a region of no known type: this tool's own severity, impact and action, flagged as defaults
    (no taxonomy gives them). Unflagged, "high severity" had read as assessed, and chose the action over a crack's
    (report probe 2026-12-06)."""
    return ResolvedGuidance(UNKNOWN_SEVERITY.value, UNKNOWN_IMPACT, UNKNOWN_ACTION, ("severity", "impact", "action"))


def resolve_guidance(taxonomy: Taxonomy | None, name: str) -> ResolvedGuidance:
    """Severity, impact and action for ``name``; stated defaults when there is no taxonomy at all."""
    if taxonomy is not None:
        return taxonomy.guidance(name)
    if name == UNKNOWN:
        return unknown_guidance()
    return ResolvedGuidance(DEFAULT_SEVERITY.value, DEFAULT_IMPACT, DEFAULT_ACTION, ("severity", "impact", "action"))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = f"unknown key {loc!r}"
    elif err["type"] == "enum":
        msg = f"{msg}, not {err['input']!r}"  # the value given, which the message had not shown (types probe 2026-12-07)
    return f"{msg} (at {loc})" if loc else msg


def parse_taxonomy(data: object, where: str | Path | None = None, require_descriptions: bool = False) -> Taxonomy:
    """Validate the ``taxonomy.json`` form; every problem becomes a one-line :class:`ConfigError`."""
    try:
        tax = Taxonomy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid taxonomy: {_first_error(exc)}",
            where,
            'write {"object": "<part>", "defects": [{"name": "<type>", "description": "<what it looks like>"}]} '
            "with unique, non-reserved names (optional: part, and per type severity, impact, action; the README has an example)",
        ) from None
    if require_descriptions:
        tax.require_descriptions(where)
    return tax


def load_taxonomy(path: str | Path, require_descriptions: bool = False) -> Taxonomy:
    """Read and validate a ``taxonomy.json`` file.

    ``require_descriptions`` makes a missing description an error (the VLM and text
    classifiers know a type only by its sentence; the few-shot classifier does not need one).
    """
    data = read_json_file(
        path, ConfigError, "taxonomy file not found", "write a taxonomy.json with the object and its defect types", "fix the JSON syntax"
    )
    return parse_taxonomy(data, Path(path), require_descriptions)
