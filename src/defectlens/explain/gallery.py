"""Batch results a person can read: ``summary.csv`` and a static ``index.html`` gallery.

Both are built from the files ``inspect`` already wrote per image (``<name>.json``, the
overlay ``<name>.png`` and ``<name>.report.json``), not from objects in memory: images done in
an earlier, interrupted run (``inspect --resume``) and images done now are one list, read the
same way. Both files are written atomically, so a reader sees the old file or the new one.
The gallery needs no server: thumbnails are the overlays themselves, linked by relative path.
"""

from __future__ import annotations

import csv
import errno
import html
import io
import json
import math
import os
import stat
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from defectlens.descriptor import CAMERA_REASONS, FRAME_REASON, SIZE_NOTE, camera_reason_in, holds_model
from defectlens.detect.frame_check import drift_note
from defectlens.errors import OutputError
from defectlens.explain.template import distinct_digits, score_against, shown_type
from defectlens.io.atomic import write_text_atomic

SUMMARY_FILE = "summary.csv"
GALLERY_FILE = "index.html"
SUMMARY_COLUMNS = ("file", "verdict", "score", "regions", "types", "report", "output", "threshold", "frame_units", "view_note")
"""``output``: the stem of the image's files in the output folder (``<output>.json``, …), the key a
script joins on: ``file`` is how the image is shown, which two input folders change, and a renamed
output (``x.PNG`` beside ``x.png`` → ``x-2``) had been told only on the terminal. ``threshold``: the
image threshold the verdict was made with (a score alone is read against nothing); ``frame_units``:
how far the image as a whole lies from the normal images (a drifting line is sorted out in the
spreadsheet, not only in each JSON). Both empty where the inspection recorded none. ``view_note``: what was said of an
image of another size or shape than the training images' (:attr:`~defectlens.types.Inspection.view_note`), else empty: a
part judged good in such a view has not passed, and a script reading the verdict alone had passed it."""
EARLIER_SUMMARY_HEADERS = (SUMMARY_COLUMNS[:6], SUMMARY_COLUMNS[:7], SUMMARY_COLUMNS[:9])
"""The headers of earlier versions' summaries (before ``output``; before ``threshold`` and
``frame_units``; before ``view_note``): an earlier run's summary is still known as results."""
THUMBNAIL_SUFFIX = ".thumb.jpg"
"""Each image's overlay thumbnail (``<name>.thumb.jpg``), what the gallery's cards show; the card
links to the full overlay (``<name>.png``)."""
OVERLAY_FORMATS = {"png": ".png", "jpg": ".jpg"}
"""`inspect --overlay`: the overlay's format, by its file's suffix. PNG is exact; JPEG (quality 90)
a seventh of the size (19 against 138 kB a magnetic tile), for a line that keeps every overlay."""


NO_OVERLAY = "none"
"""`inspect --overlay none`: no full-size overlay is kept, only its thumbnail (8-14 kB against 19-160 kB), for a
line that keeps every verdict but looks at few pictures; the JSON's ``overlay`` is then null."""
OVERLAY_CHOICES = (*OVERLAY_FORMATS, NO_OVERLAY)
"""What `inspect --overlay` takes."""


def recorded_overlay_suffix(payload: dict, name: str) -> str | None:
    """The suffix of the overlay an inspection JSON names (its ``overlay``: this run's format; a file of
    the other may be an earlier run's, or a person's own); '' when the run kept none (``overlay`` null:
    `--overlay none`), None when it names none (written before the JSON named it)."""
    if "overlay" in payload and payload["overlay"] is None:
        return ""
    recorded = payload.get("overlay")
    suffixes = [s for s in OVERLAY_FORMATS.values() if recorded == f"{name}{s}"]
    return suffixes[0] if suffixes else None


@dataclass(frozen=True)
class ResultRow:
    """One inspected image as the summary and the gallery show it."""

    file: str
    """The input image, relative to the folder it was found in (as given for a file input)."""
    name: str
    """Stem of its output files in the output folder (``<name>.png`` or ``.jpg``, ``<name>.json``, …)."""
    defective: bool
    score: float
    n_regions: int
    """Regions the report counts as defects (weaker indications apart: :attr:`n_weaker`)."""
    types: tuple[str, ...]
    """Defect type of each counted region, in region order (empty when not typed)."""
    report: str
    """The report's prose (empty when its report file is missing or unreadable)."""
    threshold: float | None = None
    """The image threshold the verdict was made with (None when the inspection did not record one)."""
    warning: str = ""
    """What qualifies the verdict (a batch-relative detector's warning about its batch; a verdict not judged against
    normal images, :attr:`~defectlens.inspector.Inspector.verdict_basis`; what reading the file said, the JSON's
    ``reading_notes``), or ''."""
    thumbnail: bool = False
    """Whether ``<name>.thumb.jpg`` is there (results written before thumbnails show the overlay)."""
    writer: str = ""
    """Who wrote the report (``Report.writer``: 'template', 'llm', 'template (llm fallback)'), or ''."""
    unlike_normal: str = ""
    """Why the whole image is unlike every normal one (the frame check), or ''."""
    n_weaker: int = 0
    """Weaker indications beside the :attr:`n_regions` counted (the report lists them apart)."""
    hot_spot: bool = False
    """A part judged good whose map still peaks above the threshold (:attr:`Inspection.hot_spot`)."""
    overlay_suffix: str = ".png"
    """The overlay's file suffix: ``.png``, ``.jpg`` for a run with `inspect --overlay jpg`, '' for `--overlay none`."""
    overlay_present: bool = True
    """Whether that overlay is in the folder (a person may remove earlier results' overlays to save space)."""
    frame_units: float | None = None
    """How far the image as a whole lies from the normal images (:attr:`~defectlens.types.Inspection.frame_units`), or None."""
    earlier: bool = False
    """An earlier run's result in the folder, which this run left as it was (its card says so)."""
    view_note: str = ""
    """The image's size or shape against the training images' (:attr:`~defectlens.types.Inspection.view_note`), or ''."""

    @property
    def verdict(self) -> str:
        """'DEFECTIVE' or 'GOOD', as the terminal table, the overlay and the report say it."""
        return "DEFECTIVE" if self.defective else "GOOD"


RESULT_READ_LIMIT = 16 * 2**20
"""Largest result file read back (an inspection JSON is a few kB, a summary a few MB)."""


def result_text(path: Path) -> str | None:
    """The text of a result file in an output folder, or None when it is not a regular file of at most
    :data:`RESULT_READ_LIMIT` bytes (links followed) or cannot be read. A named pipe planted under a
    result's name had held `inspect` for ever, and a link to /dev/zero had filled the memory."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > RESULT_READ_LIMIT:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _json_number(value: object) -> float | None:
    """A number read from JSON (an int or a float, not a bool), or None."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def read_inspection_json(path: Path) -> dict | None:
    """The inspection JSON ``inspect`` wrote at ``path``; None when it is missing, unreadable or
    not one (not an object with a numeric ``score`` and a verdict): that image counts as not inspected."""
    try:
        payload = json.loads(text) if (text := result_text(path)) is not None else None
    except json.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("is_defective"), bool):
        return None  # not an inspection (a report JSON has a score and a source too, not a verdict flag)
    return payload if _json_number(payload.get("score")) is not None else None


def recorded_thresholds(payload: dict) -> tuple[float, float]:
    """(image, pixel) thresholds an inspection JSON was decided with; NaN for one not recorded."""
    t = payload.get("thresholds")
    t = t if isinstance(t, dict) else {}
    return tuple(math.nan if (n := _json_number(v)) is None else n for v in (t.get("image"), t.get("pixel")))  # type: ignore[return-value]  # two items


def read_result(out_dir: Path, name: str, file: str) -> ResultRow | None:
    """The row of one image from its files in ``out_dir``; None when its inspection JSON is
    missing or unreadable (the image was not inspected)."""
    payload = read_inspection_json(out_dir / f"{name}.json")
    if payload is None:
        return None
    text = writer = ""
    weaker: set[object] = set()
    try:
        report_text = result_text(out_dir / f"{name}.report.json")
        report = json.loads(report_text) if report_text is not None else None
        if isinstance(report, dict):
            text, writer = str(report.get("text", "")), str(report.get("writer", ""))
            # "weak" in reports written before the inspection JSON and the service's "weaker" (2026-12-05), read on --resume.
            weaker = {f.get("region_index") for f in report.get("findings") or []
                      if isinstance(f, dict) and (f.get("weaker") or f.get("weak"))}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        # A missing report only empties one cell: the verdict and score still stand.
        pass
    # The regions the report counts as defects, as its text says them ("1 defect found"); weaker
    # indications are in the report, and said apart on the gallery's card.
    types = tuple(shown_type(str(t.get("defect_type", "?")), str(t.get("method", "")), len(c) if isinstance(c := t.get("candidates"), list) else 0)
                  for t in payload.get("region_types") or []
                  if isinstance(t, dict) and t.get("region_index") not in weaker)
    n_regions = sum(1 for r in payload.get("regions") or [] if not (isinstance(r, dict) and r.get("index") in weaker))
    image_threshold = recorded_thresholds(payload)[0]
    # What reading the file said (its other pages, pixels clipped) qualifies its verdict as a batch's warning does.
    read = [str(n) for n in notes if n] if isinstance(notes := payload.get("reading_notes"), list) else []
    warning = "; ".join(str(w) for w in (payload.get("verdict_basis"), payload.get("batch_warning"), *read) if w)
    thumbnail = (out_dir / f"{name}{THUMBNAIL_SUFFIX}").is_file()
    overlay_suffix = recorded_overlay_suffix(payload, name)
    if overlay_suffix is None:
        overlay_suffix = ".jpg" if not (out_dir / f"{name}.png").is_file() and (out_dir / f"{name}.jpg").is_file() else ".png"
    frame = _json_number(payload.get("frame_units"))
    return ResultRow(
        file, name, bool(payload.get("is_defective")), float(payload["score"]), n_regions, types, text,
        None if math.isnan(image_threshold) else image_threshold, warning, thumbnail, writer, str(payload.get("unlike_normal") or ""),
        len(weaker), bool(payload.get("hot_spot")), overlay_suffix, bool(overlay_suffix) and (out_dir / f"{name}{overlay_suffix}").is_file(),
        frame if frame is not None and math.isfinite(frame) else None, view_note=str(payload.get("view_note") or ""),
    )


def view_summary(rows: Sequence[ResultRow]) -> str | None:
    """Once over a run, the images whose size or shape is far from the training images' (each card says its own), or None."""
    noted = [r for r in rows if r.view_note]
    if not noted:
        return None
    return (f"{len(noted)} image(s) of another size or shape than the training images (e.g. {noted[0].file}): rotated, cropped or "
            "another view? Their verdicts may be the view's, not the part's: check the camera, or fit on images of this view")


def unlike_summary(rows: Sequence[ResultRow]) -> str | None:
    """Once over a run, the images judged unlike every normal one (their cards and reports say why), or None."""
    unlike = [r for r in rows if r.unlike_normal]
    if not unlike:
        return None
    return (f"{len(unlike)} image(s) judged unlike every normal image, whatever their score, their regions not typed (e.g. "
            f"{unlike[0].file}: {unlike_words(unlike[0].unlike_normal)})")


def rows_drift(rows: Sequence[ResultRow]) -> str | None:
    """What :func:`~defectlens.detect.frame_check.drift_note` says of a run's results (the terminal and the gallery alike)."""
    return drift_note([r.frame_units for r in rows], [bool(r.unlike_normal) for r in rows])


def unlike_words(reason: str) -> str:
    """A card's line for an image judged unlike every normal one: a grey image's own cause (regression probe:
    it read as a frame check's), the frame check's possibilities, and the image's size beside the training images',
    each that the reason holds (a grey image of another part had read only "is the camera set to colour?", and an
    engineer set the camera to colour with the wrong part still under it: drift probe)."""
    camera = camera_reason_in(reason)
    said = [": ".join(CAMERA_REASONS[camera])] if camera is not None else []
    if FRAME_REASON in reason or not said:
        said.append("the whole image is unlike every normal one: a large defect, another part or a faulty frame")
    if SIZE_NOTE in reason:
        size = reason[reason.index(SIZE_NOTE):]
        size = " ".join((size.replace(camera, " ") if camera is not None else size).split())
        said.append(size[:1].lower() + size[1:])  # after a "; ": "…colour?; This image is…" (regression probe 2026-12-06)
    return "; ".join(said)


SKIPPED_VERDICT = "skipped"
"""The verdict column of an input that was not inspected (its reason in the report column)."""


def spreadsheet_text(text: str) -> str:
    """``text`` as a spreadsheet shows it rather than runs it: a file named ``=HYPERLINK(…).png``
    written raw into ``summary.csv`` is a formula to the program most people open it with (OWASP's
    CSV injection); a leading apostrophe makes it text."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def summary_csv(rows: Sequence[ResultRow], skipped: Sequence[tuple[str, str]] = ()) -> str:
    """The rows as CSV text (header first; rows in the order given), then one row per input that
    was not inspected: verdict ``skipped``, the reason where the report goes. Text cells go through
    :func:`spreadsheet_text`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    t = spreadsheet_text
    for r in rows:
        # The warning heads the report cell: a verdict it qualifies must not be read without it.
        # The view note once: the report's text carries it when it is there (regression probe 2026-12-06: said twice a cell).
        qualifiers = "; ".join(w for w in (r.warning, r.view_note if r.view_note not in r.report else "") if w)
        report = f"WARNING: {qualifiers} | {r.report}" if qualifiers else r.report
        digits = distinct_digits(r.score, r.threshold, 4)  # a score and its threshold that differ read differently
        threshold = "" if r.threshold is None else f"{r.threshold:.{digits}f}"
        frame_units = "" if r.frame_units is None else f"{r.frame_units:.3f}"
        writer.writerow([t(r.file), r.verdict, f"{r.score:.{digits}f}", r.n_regions, t("; ".join(r.types)), t(report), t(r.name), threshold,
                         frame_units, t(r.view_note)])
    for file, reason in skipped:
        writer.writerow([t(file), SKIPPED_VERDICT, "", "", "", t(reason), "", "", "", ""])
    return buf.getvalue()


def gallery_html(rows: Sequence[ResultRow], title: str, skipped: Sequence[tuple[str, str]] = ()) -> str:
    """A self-contained HTML page: one card per image, highest score first, then the inputs
    that were not inspected, each with its reason.

    Every string that comes from a file name or a report is escaped (``html.escape``): an image
    called ``<script>.png`` shows as text, and a quote cannot end an attribute early; in links the
    name is percent-encoded first (``a#1.png`` must not link to ``a``)."""
    e = html.escape
    ordered = sorted(rows, key=lambda r: (-r.score, r.file))
    n_bad = sum(r.defective for r in rows)
    warnings = list(dict.fromkeys(r.warning for r in rows if r.warning))
    drift = rows_drift(rows)
    cards = []
    for r in ordered:
        # A relative URL: '#', '?' and '%' in a file name would end or re-read it, so the name is percent-encoded,
        # as the bytes on disk (a name that is not UTF-8 links to its own file instead of crashing the gallery).
        href = e(urllib.parse.quote(os.fsencode(r.name)))
        cls = "bad" if r.defective else "ok"
        # Said as what it shows: the file's name alone repeated the card's heading (a11y probe 2026-12-07).
        picture = (f'<img src="{href}{THUMBNAIL_SUFFIX if r.thumbnail else r.overlay_suffix}" alt="anomaly heat map of {e(r.file)}" '
                   'loading="lazy">')
        if r.overlay_present:
            picture = f'<a href="{href}{r.overlay_suffix}" aria-label="overlay of {e(r.file)}">{picture}</a>'
        elif not r.overlay_suffix:
            picture = picture if r.thumbnail else ""  # --overlay none: the thumbnail alone, by choice
        else:
            # Removed after the run (to save space): a broken link and, without a thumbnail, a broken picture had shown.
            picture = (picture if r.thumbnail else "") + f'<div class="warn">overlay {e(r.name + r.overlay_suffix)} is no longer in the folder</div>'
        # A card is an article headed by its file, and its links are named for it: a screen reader heard 300 links called
        # "report" and could not go from card to card (gallery probe 2026-12-06).
        named = e(r.file)
        # What the page's filter reads (a JSON list, escaped for the attribute): a type's name may hold any character.
        shown_types = e(json.dumps(sorted({type_family(t) for t in r.types})), quote=True)
        cards.append(
            f'<article class="card {cls}" data-verdict="{cls}" data-types="{shown_types}"><h2 class="file">{named}</h2>{picture}'
            f'<div><b class="{cls}">{e(r.verdict)}</b> {e(score_against(r.score, r.threshold, 3))} · {r.n_regions} region(s)'
            f'{f" (+{r.n_weaker} weaker)" if r.n_weaker else ""}</div>'
            f'<div class="types">{e(", ".join(r.types)) or "&nbsp;"}</div>'
            + ('<div class="note">an earlier run\'s result</div>' if r.earlier else "")
            + (f'<div class="warn">warning: {e(r.warning)}</div>' if r.warning else "")
            # A rotated or half-cropped part read as a confident "crack", its size said in the report's notes alone (camera probe).
            + (f'<div class="warn">{e(r.view_note)}</div>' if r.view_note else "")
            # Its regions are not typed: without this line the card read like an ordinary defective part.
            + (f'<div class="warn">{e(unlike_words(r.unlike_normal))}</div>' if r.unlike_normal else "")
            # A good card looked like any other: the report's "look there" was one click away (regression probe).
            + ('<div class="warn">the map peaks above the threshold: look at the ringed spot</div>' if r.hot_spot else "")
            + f'<div><a href="{href}.report.md" aria-label="report of {named}">report</a> · '
            f'<a href="{href}.json" aria-label="JSON of {named}">json</a></div></article>'
        )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            # The viewport: on a phone the page had been laid out 981 px wide, its text shrunk to 5 px (gallery probe).
            '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">',
            f"<title>{e(title)}</title>",
            "<style>body{font-family:sans-serif;margin:1em}.grid{display:flex;flex-wrap:wrap;gap:12px}"
            # Contrast to WCAG AA: the good verdict's green (#383) and the good card's border (#ccc) had been under it.
            ".card{width:220px;border:2px solid #888;padding:6px;font-size:13px}.card.bad{border-color:#c33}"
            ".card img{max-width:100%;max-height:260px;display:block;margin:auto}"
            ".file{word-break:break-all;font-family:monospace;font-size:13px;font-weight:normal;margin:0 0 4px}"
            "b.bad{color:#c33}b.ok{color:#2a6e2a}.types{color:#555}.note{color:#555;font-style:italic}"
            ".warn{color:#a60;font-weight:bold}.filter fieldset{border:1px solid #888;margin:0 0 .5em}.filter label{margin-right:1em}"
            "[hidden]{display:none!important}</style></head><body>",
            # A landmark a screen reader's user jumps to past the page's head (gallery probe 2026-12-06).
            f"<main><h1>{e(title)}</h1>",
            f"<p>{len(rows)} image(s), {n_bad} defective; sorted by score, highest first. "
            f'Table: <a href="{SUMMARY_FILE}">{SUMMARY_FILE}</a>.'
            + (f' <a href="#not-inspected">{len(skipped)} input(s) not inspected</a>, listed below.' if skipped else "") + "</p>",
            *(['<p class="note">A type ending in "?" was guessed from the taxonomy\'s descriptions, with no example of this part: '
               "confirm it by eye.</p>"] if any(t.endswith("?") for r in rows for t in r.types) else []),
            *[f'<p class="warn">warning, {sum(r.warning == w for r in rows)} image(s): {e(w)}</p>' for w in warnings],
            *([f'<p class="warn">warning: {e(drift)}</p>'] if drift else []),
            *([f'<p class="warn">warning: {e(views)}</p>'] if (views := view_summary(rows)) else []),
            *_filter_form(rows),
            '<div class="grid">',
            *cards,
            "</div>",
            *_skipped_section(skipped),
            "</main>",
            *([FILTER_SCRIPT] if len(rows) > 1 else []),
            "</body></html>",
            "",
        ]
    )


def type_family(shown: str) -> str:
    """A card's type as the gallery's filter groups it: a guessed ``crack?`` with the ``crack`` an example named."""
    return shown.removesuffix("?")


FILTER_SCRIPT = """<script>
(function () {
  // Cards hidden by verdict and type; the form stays hidden where scripts do not run, so no control is dead there.
  var form = document.getElementById("filter"), status = document.getElementById("shown");
  var cards = Array.prototype.slice.call(document.querySelectorAll("article.card"));
  function matches(card, verdict, type) {
    return (verdict === "all" || card.dataset.verdict === verdict) && (type === "" || JSON.parse(card.dataset.types).indexOf(type) >= 0);
  }
  function count(verdict, type) {
    return cards.filter(function (card) { return matches(card, verdict, type); }).length;
  }
  function apply() {
    var verdict = form.elements.verdict.value, type = form.elements.type ? form.elements.type.value : "", shown = 0;
    cards.forEach(function (card) {
      var keep = matches(card, verdict, type);
      card.hidden = !keep;
      if (keep) shown += 1;
    });
    status.textContent = shown + " of " + cards.length + " image(s) shown";
    // Each control's count follows the other control: "crack (12)" under "good" had promised cracks among good parts.
    Array.prototype.forEach.call(form.querySelectorAll("input[name=verdict]"), function (radio) {
      radio.parentNode.querySelector(".n").textContent = count(radio.value, type);
    });
    if (form.elements.type) {
      Array.prototype.forEach.call(form.elements.type.options, function (option) {
        if (option.value !== "") option.textContent = option.value + " (" + count(verdict, option.value) + ")";
      });
    }
  }
  form.addEventListener("change", apply);
  form.addEventListener("submit", function (event) { event.preventDefault(); });
  // Back from an overlay: the browser puts the controls back as they were after this script ran, and the cards had all
  // shown under "defective / crack" (regression probe 2026-12-06); read them again once the page is shown.
  window.addEventListener("pageshow", apply);
  form.hidden = false;
  apply();
})();
</script>"""
"""The gallery's filter, inline: the page is opened from disk, with no server and nothing fetched."""


def _filter_form(rows: Sequence[ResultRow]) -> list[str]:
    """The controls that narrow a batch's cards to one verdict or one type (an inspector with 300 cards looked for the
    cracks by scrolling); hidden until the script shows them."""
    if len(rows) < 2:
        return []
    e = html.escape
    n_bad = sum(r.defective for r in rows)
    verdicts = (("all", "all", len(rows)), ("bad", "defective", n_bad), ("ok", "good", len(rows) - n_bad))
    # The counts as the page opens (no filter); the script keeps each in step with the other control.
    radios = "".join(f'<label><input type="radio" name="verdict" value="{value}"{" checked" if value == "all" else ""}> {words} '
                     f'(<span class="n">{n}</span>)</label> ' for value, words, n in verdicts)
    families = Counter(family for r in rows for family in {type_family(t) for t in r.types})  # cards of each type
    select = ""
    if families:
        options = "".join(f'<option value="{e(name, quote=True)}">{e(name)} ({n})</option>' for name, n in sorted(families.items()))
        select = f'<label>type <select name="type"><option value="">any</option>{options}</select></label>'
    return [
        '<form id="filter" class="filter" hidden><fieldset><legend>Show</legend>' + radios + select + "</fieldset></form>",
        '<p id="shown" role="status"></p>',
    ]


def _skipped_section(skipped: Sequence[tuple[str, str]]) -> list[str]:
    if not skipped:
        return []
    e = html.escape
    items = [f'<li><span class="file">{e(file)}</span>: {e(reason)}</li>' for file, reason in skipped]
    return [f'<h2 id="not-inspected">{len(skipped)} input(s) not inspected</h2>', "<ul>", *items, "</ul>"]


def holds_results(out_dir: Path) -> bool:
    """True when ``out_dir`` holds something `inspect` wrote: an inspection JSON, a report JSON (an
    image interrupted before its JSON), or a ``summary.csv`` with this tool's header."""
    for path in out_dir.glob("*.json"):
        if path.name.endswith(".report.json"):
            try:
                report = json.loads(text) if (text := result_text(path)) is not None else None
            except json.JSONDecodeError:
                continue
            if isinstance(report, dict) and {"verdict", "findings", "writer"} <= report.keys():
                return True
        elif read_inspection_json(path) is not None:
            return True
    if (summary := result_text(out_dir / SUMMARY_FILE)) is None:
        return False
    try:
        return next(csv.reader(io.StringIO(summary)), None) in [list(h) for h in (SUMMARY_COLUMNS, *EARLIER_SUMMARY_HEADERS)]
    except csv.Error:
        return False


def require_batch_results_writable(out_dir: Path, resume: bool = False) -> None:
    """Refuse, before any image is decoded, an output folder where ``summary.csv`` or
    ``index.html`` is taken by a folder (the files could not be written at the end), and one that
    holds files but no earlier results (:func:`holds_results`): a model, a dataset's folder, a
    person's own files. Its overlays, masks, summary and gallery would have replaced them without a
    word (a probe's `-o` over another model left it unloadable, and over `test/good` replaced an image).
    Empty files are nobody's work to lose (what a power cut leaves of unflushed results). ``resume`` does
    not change that: an interrupted run leaves results (a report JSON is written before any picture), and
    a folder of a person's own pictures taken over with --resume had them overwritten by outputs of the
    same names (regression probe 2026-12-05; the refusal had pointed to --resume)."""
    for name in (SUMMARY_FILE, GALLERY_FILE):
        if (out_dir / name).is_dir():
            raise OutputError(f"a folder stands where the batch {name} goes", out_dir / name, "move it away or pass another -o")
    if not out_dir.is_dir():
        return
    if holds_model(out_dir):
        raise OutputError("holds a defectlens model, which the results could overwrite", out_dir, "pass another folder with -o")
    if holds_results(out_dir):
        return
    # Hidden files (an interrupted run's temporaries, a desktop's .DS_Store) are nobody's results to lose.
    entries = sorted(p.name for p in out_dir.iterdir() if not p.name.startswith(".") and not _empty_file(p))
    if entries:
        raise OutputError(f"holds {len(entries)} item(s) that are not inspection results (e.g. {entries[0]}), which the results could "
                          "overwrite", out_dir, "pass a new or empty folder with -o" + (" (it holds no earlier run to resume)" if resume else ""))


def _empty_file(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size == 0
    except OSError:
        return False


def write_batch_results(
    out_dir: Path, rows: Sequence[ResultRow], title: str, skipped: Sequence[tuple[str, str]] = (), unwritten: int = 0
) -> tuple[Path, Path]:
    """Write ``summary.csv`` and ``index.html`` into ``out_dir`` (each atomically); returns both
    paths. ``skipped``: (input, reason) of each input not inspected, listed in both files;
    ``unwritten``: how many inputs have no results on disk (said if the files fail too).

    A file that cannot be replaced (open and locked elsewhere, a read-only folder, a full disk)
    raises :class:`~defectlens.errors.OutputError`; the previous file stays as it was, never half-written."""
    csv_path, html_path = out_dir / SUMMARY_FILE, out_dir / GALLERY_FILE
    for path, text in ((csv_path, summary_csv(rows, skipped)), (html_path, gallery_html(rows, title, skipped))):
        try:
            write_text_atomic(path, text)
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            done = f"{unwritten} image(s) have no results either" if unwritten else "the per-image results are complete"
            raise OutputError(
                f"could not be written ({exc.strerror or exc}); {done}",
                path,
                ("free space on its disk" if full else "close the file where it is open (or make the folder writable)")
                + ", then run again with --resume",
            ) from None
    return csv_path, html_path


__all__ = [
    "GALLERY_FILE",
    "NO_OVERLAY",
    "OVERLAY_CHOICES",
    "OVERLAY_FORMATS",
    "SKIPPED_VERDICT",
    "SUMMARY_COLUMNS",
    "SUMMARY_FILE",
    "THUMBNAIL_SUFFIX",
    "ResultRow",
    "gallery_html",
    "read_inspection_json",
    "read_result",
    "recorded_overlay_suffix",
    "recorded_thresholds",
    "require_batch_results_writable",
    "rows_drift",
    "summary_csv",
    "write_batch_results",
]
