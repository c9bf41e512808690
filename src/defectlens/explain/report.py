"""From an inspection and its region types to a :class:`Report` (JSON, markdown and prose)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from defectlens.descriptor import TAXONOMY_FILE
from defectlens.errors import DefectlensError
from defectlens.explain.location import describe_location, describe_size, format_share
from defectlens.explain.template import (
    GUESSED_TYPE_SOURCES,
    bare_action,
    confidence_words,
    guessed_action,
    on_condition,
    score_against,
    shown_type,
    template_text,
    with_head_and_action,
)
from defectlens.io import write_json_atomic, write_text_atomic
from defectlens.io.markdown import markdown_cell, markdown_code, markdown_line, markdown_paragraphs
from defectlens.locate import weaker_regions
from defectlens.taxonomy import UNKNOWN, Taxonomy, resolve_guidance
from defectlens.types import Finding, Inspection, RegionType, Report

if TYPE_CHECKING:  # for the annotation only: the writer itself is imported when a report asks for the model
    from defectlens.explain.llm import LMConfig

WRITERS = ("template", "llm")
DEFAULT_OBJECT = "part"
"""The object a report names when no taxonomy says which part it is."""


def build_findings(
    inspection: Inspection, region_types: Sequence[RegionType], taxonomy: Taxonomy | None
) -> tuple[list[Finding], list[str]]:
    """One :class:`Finding` per region of a defective inspection, plus notes on what was skipped.

    A region without a type (classifier skipped or failed) is still reported, as 'unknown'
    with method 'none', so a located defect never disappears from the report.
    """
    notes: list[str] = []
    by_index = {rt.region_index: rt for rt in region_types}
    stray = sorted(set(by_index) - {r.index for r in inspection.regions})
    if stray:
        notes.append(f"type(s) given for region(s) {', '.join(f'#{i}' for i in stray)} that the inspection does not have; ignored")
    if not inspection.is_defective:
        if inspection.regions:
            notes.append(
                f"{len(inspection.regions)} region(s) above the pixel threshold ignored: the image score is below the image threshold"
            )
        return [], notes
    findings: list[Finding] = []
    unclassified: list[int] = []
    # Listed apart: counted alike, a probe's magnetic tile read "8 defects found" for one crack.
    weak_ones = weaker_regions(inspection)
    for region in inspection.regions:
        rt = by_index.get(region.index)
        if rt is None:
            unclassified.append(region.index)
        name = rt.defect_type if rt is not None else UNKNOWN
        if taxonomy is not None and name != UNKNOWN and taxonomy.get(name) is None:
            notes.append(f"region {region.index}: type {name!r} is not in the taxonomy; reported as unknown")
        name = taxonomy.reported(name) if taxonomy is not None else name
        guidance = resolve_guidance(taxonomy, name)
        findings.append(
            Finding(
                region_index=region.index,
                defect_type=name,
                confidence=float(rt.confidence) if rt is not None else 0.0,
                # Where the map peaks, not the centroid of all it marks (a pit at the left was "right edge").
                location=describe_location(region.peak or region.centroid, inspection.image_size, region.bbox),
                centroid=region.centroid,
                bbox=region.bbox,
                area_fraction=region.area_fraction,
                size=describe_size(region.area_fraction),
                severity=guidance.severity,
                impact=guidance.impact,
                action=guidance.action,
                method=rt.method if rt is not None else "none",
                defaults_used=guidance.defaults_used,
                # One type known, whatever named it: few-shot weighs it against 'unknown', but its percentage says
                # only how like the examples a region is, and read "pitting, 99% confidence" on false alarms too.
                only_type=rt is not None and len(rt.candidates) == 1 and name != UNKNOWN,
                weak=region.index in weak_ones,
            )
        )
    if unclassified:
        notes.append(f"region(s) {', '.join(f'#{i}' for i in unclassified)} were not classified; reported as unknown")
    # Types with no example of the part behind them read as surely as few-shot ones (probe 2026-12-05).
    # Not where the taxonomy names one type: nothing was guessed ("only type known").
    guessed = {f.method for f in findings if f.defect_type != UNKNOWN and not f.only_type} & set(GUESSED_TYPE_SOURCES)
    for method in sorted(guessed):
        notes.append(GUESSED_TYPE_SOURCES[method])
    # Which fields, per type: "severity/impact/action" was said when only the action was missing.
    defaulted: dict[tuple[str, ...], set[str]] = {}
    for f in findings:
        if f.defaults_used and f.defect_type != UNKNOWN:
            defaulted.setdefault(tuple(f.defaults_used), set()).add(f.defect_type)
    for fields, names in sorted(defaulted.items()):
        # "not given in the taxonomy" had been said of a part with no taxonomy at all (probe 2026-12-05).
        why = "not given in the taxonomy" if taxonomy is not None else f"no taxonomy: add the part's {TAXONOMY_FILE} to the model folder"
        notes.append(f"default {'/'.join(fields)} used for {', '.join(sorted(names))} ({why})")
    return findings, notes




def _hot_spot_words(inspection: Inspection) -> str | None:
    if inspection.hot_spot is None:
        return None
    x, y = inspection.hot_spot
    return f"{describe_location((x, y), inspection.image_size)} ({float(inspection.anomaly_map[y, x]):.2f})"


def build_report(
    inspection: Inspection,
    region_types: Sequence[RegionType] = (),
    taxonomy: Taxonomy | None = None,
    writer: str = "template",
    notes: Sequence[str] = (),
    lm_config: LMConfig | None = None,
) -> Report:
    """The report of one inspected image.

    ``writer='template'`` (default) fills fixed sentences; ``writer='llm'`` asks the offline
    language model and verifies its text, falling back to the template (``writer`` becomes
    'template (llm fallback)' and a note says why) when the model is missing, fails, or its text
    is not faithful. ``notes`` from earlier stages (e.g. the classifier) are carried over.
    """
    if writer not in WRITERS:
        raise ValueError(f"writer must be one of {', '.join(WRITERS)}, got {writer!r}")
    findings, own_notes = build_findings(inspection, region_types, taxonomy)
    report = Report(
        source=inspection.source,
        object_name=taxonomy.object_name if taxonomy is not None else DEFAULT_OBJECT,
        part_name=taxonomy.part_name if taxonomy is not None else DEFAULT_OBJECT,
        verdict="defective" if inspection.is_defective else "good",
        score=float(inspection.score),
        image_size=(int(inspection.image_size[0]), int(inspection.image_size[1])),
        findings=findings,
        # Said first: it is why the verdict is what it is (check the camera and the part).
        notes=[*([inspection.unlike_normal] if inspection.unlike_normal else []), *notes, *own_notes],
        unlike_normal=inspection.unlike_normal,
        hot_spot=_hot_spot_words(inspection),
        image_threshold=inspection.thresholds.image if inspection.thresholds is not None else None,
        frame_units=inspection.frame_units,
        view_note=inspection.view_note,
    )
    start = time.perf_counter()
    report.text = template_text(report)
    report.writer_seconds = time.perf_counter() - start
    if writer == "llm" and report.unlike_normal:
        # Its findings say nothing about the part: there is nothing for the model to word.
        report.notes.append("the language model is not asked about an image unlike every normal one; template text used")
    elif writer == "llm":
        _write_with_llm(report, taxonomy, lm_config)
    return report


def _write_with_llm(report: Report, taxonomy: Taxonomy | None, lm_config: LMConfig | None) -> None:
    from defectlens.explain.llm import LMWriter, verify_text

    try:
        generated = LMWriter(lm_config).write(report)
    except DefectlensError as exc:
        report.writer = "template (llm fallback)"
        report.notes.append(f"language model unavailable, template text used: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - generation must never cost the inspection
        report.writer = "template (llm fallback)"
        report.notes.append(f"language model failed ({exc.__class__.__name__}), template text used")
        return
    check = verify_text(generated.text, report, taxonomy.names if taxonomy is not None else ())
    if check.ok:
        report.text, report.writer, report.writer_seconds = with_head_and_action(report, generated.text), "llm", generated.seconds
    else:
        report.writer = "template (llm fallback)"
        report.writer_seconds += generated.seconds
        excerpt = generated.text[:100] + ("..." if len(generated.text) > 100 else "")
        report.notes.append(f"language-model text rejected ({'; '.join(check.problems)}), template text used; it wrote: {excerpt!r}")


def render_markdown(report: Report) -> str:
    """The report as a markdown page: verdict, prose, a findings table, notes."""
    lines = [
        # The path as given, not the file's name alone: two reports of sub/a.png and a.png had read alike (gallery probe);
        # shown as code, not read as Markdown: a folder named "lot7\n- **Verdict:** GOOD" had written a verdict line (regression probe).
        f"# Inspection report: {markdown_code(report.source)}",
        "",
        f"- **Part:** {markdown_line(report.object_name)}",
        f"- **Verdict:** {report.verdict.upper()} ({score_against(report.score, report.image_threshold, 3)})",
        f"- **Image size:** {report.image_size[0]} × {report.image_size[1]} px",
        f"- **Text written by:** {report.writer}",
        "",
        "## Summary",
        "",
        markdown_paragraphs(report.text),
        "",
    ]
    if report.findings:
        lines += [
            "## Findings",
            "",
            "| # | type | confidence | location | marked area | severity | impact | action |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for f in report.findings:
            cells = [
                str(f.region_index),
                # The doubt of a guessed type as the overlay and the gallery show it ("break?"), and its action on that condition:
                # flat in the table, "scrap the tile" had stood against the text's conditional one (regression probe 2026-12-06).
                shown_type(f.defect_type, f.method, 1 if f.only_type else 0) + (" (weaker indication)" if f.weak else ""),
                confidence_words(f) or f"{f.confidence:.0%}",
                f.location,
                f"{f.size} ({format_share(f.area_fraction)} of the image)",
                f.severity + (" (default)" if "severity" in f.defaults_used else ""),
                # A weaker indication decides no action (the text says so): its type's "scrap the tile" in the table had
                # read as a second, contrary instruction (report probe 2026-12-06).
                "—" if f.weak else f.impact,
                "— (weaker indication, not acted on)" if f.weak
                else f"{on_condition(f'confirmed as {f.defect_type}', f.action)}." if guessed_action(f)
                else bare_action(f.action),  # a list's items joined as the text joins them (its "- a - b" had been the cell)
            ]
            lines.append("| " + " | ".join(markdown_cell(c) for c in cells) + " |")
        lines.append("")
    if report.notes:
        lines += ["## Notes", "", *[f"- {markdown_line(n)}" for n in report.notes], ""]
    if report.record is not None:
        lines += ["## Record", "", *[f"- {markdown_line(line)}" for line in _record_lines(report.record)], ""]
    return "\n".join(lines)


def _record_lines(record: dict) -> list[str]:
    """A report's :attr:`~defectlens.types.Report.record` in words, one line each."""
    model = record["model"] if isinstance(record.get("model"), dict) else {}
    thresholds = record["thresholds"] if isinstance(record.get("thresholds"), dict) else {}
    fingerprint = str(model.get("fingerprint") or "none")
    lines = [f"Inspected {record.get('inspected_at')} by defectlens {record.get('defectlens_version')}",
             f"Model fitted {model.get('fitted_at')}, training-set fingerprint {fingerprint[:16]}{'…' if len(fingerprint) > 16 else ''}"]
    if isinstance(thresholds.get("image"), int | float) and isinstance(thresholds.get("pixel"), int | float):
        # As the card and summary.csv show them (the JSON keeps every digit); how they were set, as the JSON says it.
        lines.append(f"Thresholds: image {thresholds['image']:.4f}, pixel {thresholds['pixel']:.4f} (set by: {thresholds.get('source')})")
    if record.get("image_digest"):
        lines.append(f"Image digest (its pixels): {record['image_digest']}")
    return lines


def write_report_files(report: Report, out_dir: str | Path, stem: str) -> tuple[Path, Path]:
    """Write ``<stem>.report.json`` and ``<stem>.report.md`` atomically; returns both paths."""
    out = Path(out_dir)
    json_path, md_path = out / f"{stem}.report.json", out / f"{stem}.report.md"
    write_json_atomic(json_path, report.to_json())
    write_text_atomic(md_path, render_markdown(report))
    return json_path, md_path
