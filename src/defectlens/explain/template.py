"""The deterministic report writer: fixed sentences filled from the findings.

It is the default because it is instant (well under a millisecond), always faithful to the
findings, and the fallback whenever the language-model text fails verification.
"""

from __future__ import annotations

from defectlens.explain.location import format_share
from defectlens.taxonomy import UNKNOWN
from defectlens.types import Finding, Report

SEVERITY_ORDER = ("low", "medium", "high", "critical")


def severity_rank(severity: str) -> int:
    """Position of a severity word in :data:`SEVERITY_ORDER` (unrecognised words rank as 'high')."""
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else SEVERITY_ORDER.index("high")


def worst_finding(findings: list[Finding]) -> Finding | None:
    """The finding whose severity is highest (the first such one on ties)."""
    if not findings:
        return None
    return max(findings, key=lambda f: (severity_rank(f.severity), -findings.index(f)))


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def describe_finding(f: Finding) -> str:
    """One clause: 'a crack at the upper-left edge, small (0.31% of the part), high severity, 92% confidence'."""
    kind = "defect of unknown type" if f.defect_type == UNKNOWN else f.defect_type
    conf = ", the only type known" if f.only_type else f", {f.confidence:.0%} confidence" if f.method != "none" else ", not classified"
    return f"{_article(kind)} {kind} at the {f.location}, {f.size} ({format_share(f.area_fraction)} of the part), {f.severity} severity{conf}"


def template_text(report: Report) -> str:
    """The short natural-language report for ``report`` (verdict, each finding, the action)."""
    head = f"{report.object_name[:1].upper()}{report.object_name[1:]}: {report.verdict.upper()} (score {report.score:.2f})."
    if report.verdict != "defective":
        return f"{head} No defect was found; the part can pass."
    if report.unlike_normal:
        return (f"{head} The whole image is unlike every normal image this model was fitted on: a faulty frame, or "
                "another part? Check the camera and the part, and hold it for manual review.")
    if not report.findings:
        return f"{head} The image is anomalous but no defect region could be located; hold the part for manual review."
    n = len(report.findings)
    listed = "; ".join(describe_finding(f) for f in report.findings)
    worst = worst_finding(report.findings)
    action = worst.action if worst else ""
    count = "1 defect found" if n == 1 else f"{n} defects found"
    return f"{head} {count}: {listed}. Recommended action: {action}."
