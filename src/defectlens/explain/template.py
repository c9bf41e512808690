"""The deterministic report writer: fixed sentences filled from the findings.

It is the default because it is instant (well under a millisecond), always faithful to the
findings, and the fallback whenever the language-model text fails verification.
"""

from __future__ import annotations

import re

from defectlens.descriptor import FRAME_REASON, camera_reason_in
from defectlens.explain.location import format_share
from defectlens.taxonomy import UNKNOWN
from defectlens.types import Finding, Report

SEVERITY_ORDER = ("low", "medium", "high", "critical")


def severity_rank(severity: str) -> int:
    """Position of a severity word in :data:`SEVERITY_ORDER` (unrecognised words rank as 'high')."""
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else SEVERITY_ORDER.index("high")


def counted_findings(findings: list[Finding]) -> list[Finding]:
    """The findings a report's text counts as defects: weaker indications (:attr:`Finding.weak`) aside."""
    return [f for f in findings if not f.weak]


def worst_finding(findings: list[Finding]) -> Finding | None:
    """The finding whose severity is highest (the first such one on ties), weaker indications
    (:attr:`Finding.weak`) aside while there is any other."""
    counted = counted_findings(findings) or findings
    if not counted:
        return None
    return max(counted, key=lambda f: (severity_rank(f.severity), -counted.index(f)))


GUESSED_TYPE_SOURCES = {
    "words": "types guessed from the words of the taxonomy's descriptions and the regions' shapes, with no example of this part: "
             "confirm them by eye, or type them from labelled examples of each type",
    "text": "types from the grounding model's maps of the descriptions, with no example of this part: confirm them by eye",
}
"""Region-type methods that name a type without a labelled example of the part, with what a report says of them."""


def shown_type(defect_type: str, method: str, candidates: int = 0) -> str:
    """A region's type as the overlay and the gallery show it: 'break?' when guessed without an example of the part
    (:data:`GUESSED_TYPE_SOURCES`), but not where the taxonomy knows one type (``candidates`` == 1: "only type known",
    nothing guessed). The doubt had been in the report's notes only, and the gallery read "break" for blowholes (report
    probe 2026-12-06: 3 of 8 regions on a true defect typed right)."""
    guessed = method in GUESSED_TYPE_SOURCES and defect_type != UNKNOWN and candidates != 1
    return f"{defect_type}?" if guessed else defect_type


def confidence_words(f: Finding) -> str | None:
    """What stands for a finding's confidence when a percentage would mislead, else None: one type
    known (100 % by construction), not classified, or unknown (a few-shot 'unknown' is sure only
    that the region is unlike every example; "100% confidence" read as sure it is a defect)."""
    if f.only_type:
        return "only type known"
    if f.method == "none":
        return "not classified"
    if f.defect_type == UNKNOWN:
        return "unlike every known type"
    if f.method in GUESSED_TYPE_SOURCES:
        # Said where it is read, not only in the notes (report probe 2026-12-06: blowholes read "break, 40% confidence").
        return f"type guessed from the descriptions, {f.confidence:.0%}"
    return None


def describe_finding(f: Finding) -> str:
    """One clause: 'crack at the upper-left edge, small marked area (0.31% of the image), high severity, 92% confidence'.

    No article: a type name is not always a countable noun ("an uneven", "a pitting"). The size is the marked area's,
    said so: the map marks a region often many times a small defect's own (a 0.05 % blowhole read "medium (3.1% of the
    image)", as if the blowhole were that big; report probe 2026-12-06)."""
    kind = "defect of unknown type" if f.defect_type == UNKNOWN else f.defect_type
    conf = confidence_words(f) or f"{f.confidence:.0%} confidence"
    severity = f"{f.severity} severity" + (" (default)" if "severity" in f.defaults_used else "")
    return f"{kind} at the {f.location}, {marked_area_words(f)}, {severity}, {conf}"


def marked_area_words(f: Finding) -> str:
    """The region's size as the report states it: 'small marked area (0.31% of the image)'."""
    return f"{f.size} marked area ({format_share(f.area_fraction)} of the image)"


def report_head(report: Report) -> str:
    """The first sentence of every report text, whoever writes the rest: 'Magnetic tile: DEFECTIVE (score 2.31,
    threshold 2.05).' With the threshold, a reader sees how near the line a verdict was (a probe's good
    commutator at 52.93 read "the part can pass" as surely as one at 40, against a threshold of 53.91)."""
    part = report.part_name or report.object_name
    head = f"{part[:1].upper()}{part[1:]}: {report.verdict.upper()} ({score_against(report.score, report.image_threshold)})."
    # Beside the verdict it qualifies: a rotated cookie's "1 defect found: #1 crack" had it in the notes alone (camera probe).
    return f"{head} {report.view_note} The verdict may be the view's, not the part's." if report.view_note else head


def distinct_digits(score: float, threshold: float | None, fewest: int = 2) -> int:
    """Decimal places, at least ``fewest``, that show ``score`` and ``threshold`` apart when they differ ("score 50.44,
    threshold 50.44" had been a part flagged at 50.4400 against 50.4399; report probe 2026-12-06)."""
    digits = fewest
    if threshold is not None and score != threshold:
        while digits < 12 and f"{score:.{digits}f}" == f"{threshold:.{digits}f}":
            digits += 1
    return digits


def score_against(score: float, threshold: float | None, fewest: int = 2) -> str:
    """'score 2.31, threshold 2.05' with :func:`distinct_digits`; a score equal to its threshold is said to be at it, not
    over it (a part there is not flagged by its score: it must exceed the threshold)."""
    if threshold is None:
        return f"score {score:.{fewest}f}"
    if score == threshold:
        return f"score {score:.{fewest}f}, at the threshold, not over it"
    digits = distinct_digits(score, threshold, fewest)
    shown = f"score {score:.{digits}f}, threshold {threshold:.{digits}f}"
    if f"{score:.{digits}f}" == f"{threshold:.{digits}f}":
        # Apart by less than any printed digit (one unit in the last place): which side is said in words.
        return shown + (": just over it" if score > threshold else ": just under it")
    return shown


VIEW_ACTION = "image the part as the training images show it before it passes."
"""What a part judged good in a view unlike the training images' (:attr:`Report.view_note`) needs before it passes."""


def good_part_words(report: Report) -> str:
    """What the report says of a part judged good: that it can pass, or, when its map still peaks
    above the threshold somewhere (:attr:`Report.hot_spot`), where to look before it does."""
    if report.hot_spot and report.view_note:
        # Not "before the part passes" after a look: the view passes nothing (regression probe 2026-12-06).
        return f"No defect was counted, but the map peaks above the threshold at the {report.hot_spot}: look there, and {VIEW_ACTION}"
    if report.hot_spot:
        return (f"No defect was counted, but the map peaks above the threshold at the {report.hot_spot}: "
                "look there before the part passes.")
    if report.view_note:
        # Not "can pass": a view that does not show the part as the training images did passes nothing (regression probe).
        return f"No defect was found in this view; {VIEW_ACTION}"
    return "No defect was found; the part can pass."


NO_REGION_ACTION = "hold the part for manual review"
"""The action for a part judged defective where no region could be located."""


def action_words(worst: Finding | None, defective: bool) -> str:
    """The recommended action of a report: the deciding finding's, on the condition first when the taxonomy's action rests
    on a type guessed without an example of the part ("if #2 at the right edge is confirmed by eye as break (its type is
    guessed): scrap the tile. If the type is not confirmed, hold the part for manual review"): said flatly, a false alarm's guessed "break" had
    told an operator to scrap a tile whose blowhole lay elsewhere (report probe 2026-12-06), and with the condition after
    it, an action of two sentences still began "scrap the tile." (regression probe). A default action (a hold, a review) is
    never conditional: "hold…, if the break is confirmed" had read as "pass it otherwise"."""
    if worst is None:
        return NO_REGION_ACTION if defective else ""
    action = bare_action(worst.action)
    if not action:
        return NO_REGION_ACTION
    if guessed_action(worst):
        return on_condition(f"#{worst.region_index} at the {worst.location} is confirmed by eye as {worst.defect_type} (its type is guessed)",
                            action)
    return action  # the report closes it (as_sentence), keeping its own "?" ("Ask QA?" had read "Ask QA.": regression probe)


def on_condition(condition: str, action: str) -> str:
    """``action`` on ``condition``, the condition first and the hold if the type is not confirmed: how the text and the Findings
    table say a guessed type's action (without its closing stop, which the sentence around it gives). Not "Otherwise …": a
    taxonomy's action that has its own ("scrap it. Otherwise rework it") had read "Otherwise … Otherwise …"."""
    return f"if {condition}: {as_sentence(action)} {UNCONFIRMED_HOLD}"


UNCONFIRMED_HOLD = f"If the type is not confirmed, {NO_REGION_ACTION}"
"""What a guessed type's conditional action says of the other case."""


_BULLET = re.compile(r"^\s*(?:[-*•‣–]|\d{1,2}[.)])\s+")
"""A list item's mark at the start of an action's line ("- scrap the tile", "2) log the lot")."""


def bare_action(action: str) -> str:
    """An action on one line without its closing stop, to be set in a sentence: a taxonomy's "scrap the tile." had read
    "scrap the tile., if…", and a blank line in one had set its second sentence apart from the condition (regression probes
    2026-12-06). A question or a closing quote or bracket keeps its mark; a list's items are joined by semicolons (their
    marks had read "- scrap the tile - log the lot")."""
    lines = [line for line in action.splitlines() if line.strip()]
    if len(lines) > 1 and all(_BULLET.match(line) for line in lines):
        action = "; ".join(_BULLET.sub("", line).strip().rstrip(".;:,。…") for line in lines)
    return " ".join(action.split()).rstrip(".;:,。…").rstrip()


_CLOSERS = ('"', "'", ")", "]", "”", "’", "»")
"""Marks that close a quote or an aside, after which a sentence's own stop may still be wanted."""


def as_sentence(action: str) -> str:
    """:func:`bare_action` closed as a sentence: with a stop unless it ends in a mark of its own ("?", "!"), or in a quote or
    bracket closed after one ('"REJECT."'). 'Label it "REJECT".' keeps its stop (it had lost it before "Otherwise":
    regression probe 2026-12-06)."""
    core = bare_action(action)
    if core and core.rstrip("".join(_CLOSERS)).endswith(("?", "!", ".", "…", "？", "！", "。")):
        return core
    return f"{core}{'。' if action.rstrip().endswith('。') else '.'}"  # a Japanese action keeps its own full stop


def guessed_type(f: Finding) -> bool:
    """Whether ``f``'s type was guessed without an example of the part (:data:`GUESSED_TYPE_SOURCES`), not the only type
    known nor unknown: what the report says is to be confirmed by eye."""
    return f.method in GUESSED_TYPE_SOURCES and not f.only_type and f.defect_type != UNKNOWN


def guessed_action(f: Finding) -> bool:
    """Whether ``f``'s action is the taxonomy's for a type guessed without an example of the part (so said only on the
    condition that the type is confirmed)."""
    return guessed_type(f) and "action" not in f.defaults_used


def with_head_and_action(report: Report, body: str) -> str:
    """A language model's ``body`` between the report's head and, when the body leaves it out, the
    action the template would give: the accepted texts of a probe left out the verdict and the action.
    A good part's hot spot is added as the template says it (the model is told only that it passed)."""
    worst = worst_finding(report.findings) if report.verdict == "defective" else None
    # The model is given no action and may state none (it describes; the template prescribes): the action is always the template's.
    wanted = action_words(worst, report.verdict == "defective")
    action = f" Recommended action: {as_sentence(wanted)}" if wanted else ""  # always: the body may not say it (its act words are refused)
    if report.verdict != "defective" and report.view_note:
        # The model's body has said the part was found clean: not said twice (regression probe 2026-12-06).
        # "But": after the body's "no defects were found" a plain "The map peaks…" read as a second finding of the same.
        spot = f" But the map peaks above the threshold at the {report.hot_spot}: look there." if report.hot_spot else ""
        action = f"{spot} {VIEW_ACTION[:1].upper()}{VIEW_ACTION[1:]}"
    elif report.verdict != "defective" and report.hot_spot:
        # After the body's "no defects were found", "No defect was counted, but…" said it twice (report probe 2026-12-06).
        action = f" But the map peaks above the threshold at the {report.hot_spot}: look there before the part passes."
    # The doubt of a guessed type is said as the template says it per finding ("type guessed from the descriptions"):
    # the model's "a break at the top edge" had stated it as fact (regression probe 2026-12-06).
    guessed = list(dict.fromkeys(f.defect_type for f in counted_findings(report.findings) if guessed_type(f)))  # in the findings' order
    doubt = f" Type(s) guessed from the descriptions, with no example of this part: {', '.join(guessed)} — confirm by eye." if guessed else ""
    # Whose size the model's words give, as the template says "marked area" (regression probe 2026-12-06: "large, 5.9% of
    # the image" read as the defect's own).
    sizes = " Sizes are of the areas the map marks, often larger than the defect." if _SIZE_OR_SHARE.search(body) else ""
    return f"{report_head(report)} {body}{sizes}{doubt}{action}"


_SIZE_OR_SHARE = re.compile(r"\d\s*%|\b(?:tiny|small|large|big|huge|sizeable|extensive|covers?|covering)\b", re.I)
"""A size or a share said of a finding, in a language model's words."""


def template_text(report: Report) -> str:
    """The short natural-language report for ``report`` (verdict, each finding, the action)."""
    head = report_head(report)
    if report.verdict != "defective":
        return f"{head} {good_part_words(report)}"
    if (camera := camera_reason_in(report.unlike_normal)) is not None:
        # Its own cause (grey for colour parts, or colour for grey ones), not the frame check's "a large defect, another part,
        # or a faulty frame?" (regression probe); what else was said of the image (its size beside the training images') is kept.
        rest = " ".join(str(report.unlike_normal).replace(camera, " ").split())
        rest = rest[:1].upper() + rest[1:]  # a sentence of its own ("…theirs. the whole image is…": camera probe 2026-12-06)
        # Unlike every normal image beyond its colour too: what is under the camera may be another part.
        what = "the camera's settings and what is under it" if FRAME_REASON in rest.lower() else "the camera's settings"
        return f"{head} {camera} {rest + ' ' if rest else ''}Check {what}, and hold the part for manual review."
    if report.unlike_normal:
        # A probe's fray over a third of a tile was read as a camera fault: the part comes first. What the
        # reason says after its question (the image's size beside the training images') is kept.
        said_after = report.unlike_normal.partition("? ")[2]
        return (f"{head} The whole image is unlike every normal image this model was fitted on: a large defect, another "
                f"part, or a faulty frame? {said_after + ' ' if said_after else ''}Check the part and the camera, and hold it for manual review.")
    if not report.findings:
        return f"{head} The image is anomalous but no defect region could be located; {NO_REGION_ACTION}."
    counted = counted_findings(report.findings)
    weaker = [f for f in report.findings if f.weak]
    n = len(counted)
    listed = "; ".join(f"#{f.region_index} {describe_finding(f)}" for f in counted)
    action = action_words(worst_finding(report.findings), True)
    count = "1 defect found" if n == 1 else f"{n} defects found"
    also = ""
    if weaker:
        places = ", ".join(f"#{f.region_index} {f.location}" for f in weaker)
        also = f" Also {len(weaker)} weaker indication(s), each alone under the image threshold: {places}."
    return f"{head} {count}: {listed}.{also} Recommended action: {as_sentence(action)}"
