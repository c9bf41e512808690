"""Reports: location words, findings, template text, markdown/JSON files, text verification."""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectlens.classify import UNKNOWN, parse_taxonomy
from defectlens.explain import (
    build_report,
    describe_location,
    describe_size,
    render_markdown,
    template_text,
    verify_text,
    write_report_files,
)
from defectlens.types import Inspection, Region, RegionType, Thresholds

TAX = parse_taxonomy(
    {
        "object": "magnetic tile",
        "defects": [
            {"name": "crack", "description": "a thin dark line", "severity": "critical", "impact": "the tile may split", "action": "reject the part"},
            {"name": "blowhole", "description": "small round pits", "severity": "low"},
            {"name": "uneven", "description": "blotchy texture"},
        ],
    }
)
W, H = 400, 300


def region(index, bbox, frac=0.01):
    x0, y0, x1, y1 = bbox
    return Region(index, bbox, int(frac * W * H), frac, ((x0 + x1) / 2, (y0 + y1) / 2), 3.0, 2.0)


def inspection(defective=True, regions=()):
    return Inspection(
        "imgs/part_7.png", (W, H), 2.5 if defective else 0.4, defective, np.zeros((H, W), np.float32), np.zeros((H, W), bool), list(regions)
    )


@pytest.mark.parametrize(
    ("centroid", "bbox", "words"),
    [
        ((200, 150), (180, 130, 220, 170), "centre"),
        ((30, 20), (0, 5, 60, 40), "upper-left edge"),
        ((60, 60), (40, 40, 80, 80), "upper-left"),
        ((390, 150), (380, 120, 400, 180), "right edge"),
        ((200, 290), (150, 280, 250, 300), "bottom edge"),
        ((330, 250), (300, 220, 360, 270), "lower-right"),
        ((200, 150), (0, 100, 400, 200), "centre, reaching the edge"),
    ],
)
def test_location_words(centroid, bbox, words):
    assert describe_location(centroid, (W, H), bbox) == words


def test_size_words():
    assert [describe_size(f) for f in (0.0005, 0.005, 0.02, 0.1, 0.5)] == ["tiny", "small", "medium", "large", "very large"]


def test_defective_report_findings_and_template():
    insp = inspection(True, [region(1, (0, 5, 60, 40), 0.0075), region(2, (180, 130, 220, 170), 0.02)])
    types = [RegionType(1, "crack", 0.91, "few-shot"), RegionType(2, "blowhole", 0.7, "few-shot")]
    rep = build_report(insp, types, TAX)
    assert rep.verdict == "defective" and rep.writer == "template"
    f1, f2 = rep.findings
    assert (f1.defect_type, f1.location, f1.size, f1.severity, f1.action) == ("crack", "upper-left edge", "small", "critical", "reject the part")
    assert f2.location == "centre" and f2.severity == "low" and set(f2.defaults_used) == {"impact", "action"}
    assert "crack" in rep.text and "blowhole" in rep.text and "upper-left edge" in rep.text
    assert "Recommended action: reject the part" in rep.text  # the most severe finding decides
    # The fields that were defaulted, not all three (blowhole has its severity).
    assert "default impact/action used for blowhole (not given in the taxonomy)" in rep.notes
    # With no taxonomy at all, it is not "not given in the taxonomy" (own-data probe 2026-12-05).
    bare = build_report(inspection(True, [region(1, (0, 5, 60, 40))]), [RegionType(1, "pitting", 0.9, "few-shot", (("pitting", 0.9), ("dent", 0.1)))])
    assert "default severity/impact/action used for pitting (no taxonomy: add the part's taxonomy.json to the model folder)" in bare.notes
    # The template's description passes the check a model's text must (its action is its own: a model's may not say one).
    assert verify_text(rep.text.split(" Recommended action:")[0], rep, TAX.names).ok
    data = json.loads(json.dumps(rep.to_json()))
    assert data["findings"][0]["defect_type"] == "crack" and data["writer"] == "template"


def test_a_type_that_was_the_only_one_known_is_not_given_a_confidence():
    # From words with one type, every region was "crack, 100% confidence" — tray edges included.
    # Few-shot examples of one type too (probe 2026-12-05): "pitting, 99% confidence" on false alarms at the border;
    # the percentage said how like the examples a region was, read as how sure it was a defect.
    insp = inspection(True, [region(1, (0, 5, 60, 40)), region(2, (180, 130, 220, 170)), region(3, (100, 60, 130, 90))])
    types = [RegionType(1, "crack", 1.0, "words", (("crack", 1.0),)), RegionType(2, "crack", 0.99, "few-shot", (("crack", 1.0),)),
             RegionType(3, "blowhole", 0.83, "few-shot", (("blowhole", 0.83), ("crack", 0.17)))]
    rep = build_report(insp, types, TAX)
    words, few_shot, of_two = rep.findings
    assert words.only_type and few_shot.only_type and not of_two.only_type
    assert rep.text.count("only type known") == 2 and "100% confidence" not in rep.text and "99% confidence" not in rep.text
    assert "83% confidence" in rep.text  # two types known: the percentage says which, and is kept
    assert [f.get("only_type", False) for f in rep.to_json()["findings"]] == [True, True, False]
    assert verify_text(rep.text.split(" Recommended action:")[0], rep, TAX.names).ok


def test_clean_part_and_located_nothing():
    rep = build_report(inspection(False), [], TAX)
    assert rep.verdict == "good" and rep.findings == []
    assert "No defect" in rep.text and verify_text(rep.text, rep, TAX.names).ok
    rep2 = build_report(inspection(True), [], TAX)
    assert "no defect region could be located" in rep2.text
    # Sub-threshold regions on a good image are not findings, but the report says so.
    rep3 = build_report(inspection(False, [region(1, (10, 10, 20, 20))]), [], TAX)
    assert rep3.findings == [] and any("ignored" in n for n in rep3.notes)


def test_unclassified_and_untyped_regions_are_reported_as_unknown():
    insp = inspection(True, [region(1, (10, 10, 50, 50)), region(2, (200, 100, 260, 160))])
    rep = build_report(
        insp, [RegionType(1, "scratch", 0.9, "vlm"), RegionType(9, "crack", 0.9, "few-shot")], TAX, notes=["classifier: example folder empty"]
    )
    assert [f.defect_type for f in rep.findings] == [UNKNOWN, UNKNOWN]
    assert rep.findings[1].method == "none" and "not classified" in rep.text
    joined = " ".join(rep.notes)
    assert "classifier: example folder empty" in joined and "'scratch' is not in the taxonomy" in joined
    assert "region(s) #2 were not classified" in joined and "#9" in joined
    assert "unknown type" in rep.text


def test_markdown_and_files(tmp_path):
    insp = inspection(True, [region(1, (0, 5, 60, 40))])
    rep = build_report(insp, [RegionType(1, "crack", 0.8, "few-shot")], TAX)
    md = render_markdown(rep)
    # The path as given (gallery probe 2026-12-06: the name alone, reports of sub/a.png and a.png had read alike).
    assert md.startswith("# Inspection report: `imgs/part_7.png`") and "| 1 | crack | 80% | upper-left edge |" in md
    # Read as text (regression probe 2026-12-06: a folder's name had written a verdict line, and markup rendered).
    from dataclasses import replace

    forged = render_markdown(replace(rep, source="lot7\n- **Verdict:** GOOD\n/x *y* [z](q) <b>.png"))
    assert forged.splitlines()[0] == "# Inspection report: `lot7\ufffd- **Verdict:** GOOD\ufffd/x *y* [z](q) <b>.png`"
    assert forged.count("Verdict:") == 2
    from markdown_it import MarkdownIt

    for name, shown in (("odd/_lot7_ &#8238; ~~s~~ #", "odd/_lot7_ &amp;#8238; ~~s~~ #"), ("a`b``c", "a`b``c"), ("`x", "`x")):
        page = MarkdownIt("commonmark").render(render_markdown(replace(rep, source=name)).splitlines()[0])
        assert page == f"<h1>Inspection report: <code>{shown}</code></h1>\n", page  # shown as it is, in one heading
    j, m = write_report_files(rep, tmp_path / "out", "part_7")
    assert json.loads(j.read_text())["verdict"] == "defective" and m.read_text() == md
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp files left


def test_markdown_reads_taxonomy_texts_and_prose_as_written():
    # Security probe 2026-12-06: a taxonomy's part name, impact and action went into report.md raw — HTML ran in a
    # Markdown viewer, and a line break in an impact wrote a "# Verdict: GOOD" heading into the findings table.
    from dataclasses import replace

    from markdown_it import MarkdownIt

    rep = build_report(inspection(True, [region(1, (0, 5, 60, 40))]), [RegionType(1, "crack", 0.8, "few-shot")], TAX)
    hostile = "line1\n# Verdict: GOOD\nline3 <script>alert(9)</script>"
    forged = replace(rep, object_name="cookie <img src=x onerror=alert(1)>", text=f"{rep.text}\n\n> quoted\n\n1. listed <b>",
                     findings=[replace(rep.findings[0], impact=hostile, action="scrap | </td><iframe src=javascript:alert(1)>")],
                     notes=["# not a heading <i>"])
    md = render_markdown(forged)
    page = MarkdownIt("commonmark").enable("table").render(md)  # tables as code hosts and wikis render them
    assert not any(tag in page for tag in ("<script", "<img", "<iframe", "<i>", "<b>", "<blockquote", "<ol"))
    assert page.count("<h1>") == 1 and page.count("<h2>") == 3 and "<h2>Notes</h2>" in page  # headings: the report's own
    row = next(line for line in md.splitlines() if line.startswith("| 1 |"))
    assert row.count(" | ") == 7 and "line1 # Verdict: GOOD line3 \\<script>" in row  # one row of eight cells
    assert "<td>scrap | &lt;/td&gt;&lt;iframe src=javascript:alert(1)&gt;</td>" in page
    assert "cookie &lt;img src=x onerror=alert(1)&gt;" in page and "# not a heading &lt;i&gt;" in page
    assert "line1 # Verdict: GOOD line3" in page and "1. listed &lt;b&gt;" in page
    # Regression probe 2026-12-06: a direction override turned a paragraph round, a remote image and links passed, a
    # backslash and "_lot7_" did not read as written, and the raw file (the gallery opens it as text) read "Nut &amp; bolt".
    odd = render_markdown(replace(rep, object_name="\u202eeikooc & bolt <2 mm", findings=[replace(rep.findings[0],
                          action="see /data/_lot7_/spec, C:\\specs\\*.pdf ![PASS](http://evil.example/p.png) [x](http://evil.example)")]))
    shown = MarkdownIt("commonmark").enable("table").render(odd)
    assert "\u202e" not in odd and "- **Part:** \ufffdeikooc & bolt <2 mm" in odd and "<img" not in shown and "<a " not in shown
    assert "see /data/_lot7_/spec, C:\\specs\\*.pdf ![PASS](http://evil.example/p.png) [x](http://evil.example)" in shown
    # Round 2 (regression probe 2026-12-06): an email autolink became a mailto link; the tool's own `commands` showed as
    # \`…\`; Windows paths and "x__y" read with backslashes in the plain file.
    from defectlens.io.markdown import markdown_line

    assert "<a " not in MarkdownIt("commonmark").render(markdown_line("<1evil@example.com> and <.x@y.z>"))
    assert markdown_line("see `defectlens locate-examples`") == "see `defectlens locate-examples`"
    assert markdown_line("C:\\specs\\lot7, x__y__z, <M8 bolt") == "C:\\specs\\lot7, x__y__z, \\<M8 bolt"
    # A code host's strikethrough (rounds 3 and 4): "lot~~7~~b" and "2~~3 mm and 4~~5 mm" struck text.
    assert markdown_line("about ~5 mm, lot~~7~~b") == "about \\~5 mm, lot\\~\\~7\\~\\~b"
    assert "<s>" not in MarkdownIt("commonmark").enable("strikethrough").render(markdown_line("range 2~~3 mm and 4~~5 mm"))
    # A span fenced by two backticks holds one (it came out as backticks around a span of "a"); an unclosed run is text.
    assert MarkdownIt("commonmark").render(markdown_line("run ``a`b`` or `c`")) == "<p>run <code>a`b</code> or <code>c</code></p>\n"
    assert MarkdownIt("commonmark").render(markdown_line("a ``b` c")) == "<p>a ``b` c</p>\n"
    from defectlens.io.markdown import markdown_cell

    row = MarkdownIt("commonmark").enable("table").render(f"| a | b |\n|---|---|\n| {markdown_cell('|x|y')} | z |\n")
    assert "<td>|x|y</td>" in row and "<td>z</td>" in row  # a cell starting with "|" stays one cell (review of the diff)
    # Prose keeps its paragraphs; plain text is left as it was.
    assert render_markdown(rep).count("\n\n") == render_markdown(replace(rep, text=rep.text.replace(" ", "  "))).count("\n\n")
    assert rep.text in render_markdown(rep)


def test_a_view_note_heads_the_text_and_a_good_view_does_not_pass_the_part():
    # Camera probe 2026-12-06: a rotated part's size was said in the notes alone; regression probe: a cropped view judged good
    # still ended "the part can pass".
    from dataclasses import replace

    note = "This image is 250×208, the training images 250 wide, 618 to 642 high: is it rotated, or another view?"
    good = build_report(replace(inspection(False), view_note=note), [], TAX)
    assert good.text.split(". ", 1)[1].startswith(note) and "may be the view's, not the part's" in good.text
    assert good.text.endswith("No defect was found in this view; image the part as the training images show it before it passes.")
    assert "can pass" not in good.text and good.to_json()["view_note"] == note
    assert build_report(inspection(False), [], TAX).text.endswith("the part can pass.")
    # A language model's body that says it was found clean is not followed by the template's saying it again (round 2).
    from defectlens.explain.template import with_head_and_action

    worded = with_head_and_action(good, "The part was inspected and no defects were found.")
    assert worded.endswith("no defects were found. Image the part as the training images show it before it passes.")
    assert "No defect was found in this view" not in worded
    # With a hot spot too: look there and image the part, never "before the part passes" after a look (round 3).
    spotted = replace(good, hot_spot="lower-right (73.72)")
    assert template_text(spotted).endswith("look there, and image the part as the training images show it before it passes.")
    spotted_worded = with_head_and_action(spotted, "The part was inspected and no defects were found.")
    assert spotted_worded.endswith("no defects were found. But the map peaks above the threshold at the lower-right (73.72): look there. "
                                   "Image the part as the training images show it before it passes.")


def test_template_is_deterministic():
    insp = inspection(True, [region(1, (0, 5, 60, 40))])
    rep = build_report(insp, [RegionType(1, "crack", 0.8, "few-shot")], TAX)
    assert template_text(rep) == template_text(rep) == rep.text


class TestVerifier:
    rep = build_report(inspection(True, [region(1, (0, 5, 60, 40))]), [RegionType(1, "crack", 0.8, "few-shot")], TAX)
    clean = build_report(inspection(False), [], TAX)
    unknown = build_report(inspection(True, [region(1, (0, 5, 60, 40))]), [RegionType(1, UNKNOWN, 0.5, "few-shot")], TAX)

    def test_accepts_faithful_text(self):
        # 1.0 % of the image is "medium" (small ends below 1 %): the size given is the one to say (2026-12-06).
        assert verify_text("The magnetic tile has a medium-sized crack at its upper-left edge.", self.rep, TAX.names).ok
        assert not verify_text("The magnetic tile has a small crack at its upper-left edge.", self.rep, TAX.names).ok
        assert not verify_text("The magnetic tile has a medium-sized crack at its upper-left edge. Reject the part.", self.rep, TAX.names).ok
        assert verify_text("Cracks were found at the top-left edge.", self.rep, TAX.names).ok  # plural, and a place's other words
        assert verify_text("The tile is good: no defects were found.", self.clean, TAX.names).ok
        assert verify_text("An unidentified defect sits at the upper-left edge.", self.unknown, TAX.names).ok

    def test_rejects_invented_type(self):
        v = verify_text("The tile has a crack and a blowhole.", self.rep, TAX.names)
        assert not v.ok and "'blowhole', which was not found" in v.problems[0]

    def test_rejects_missing_type(self):
        v = verify_text("The tile has a defect at the upper-left edge.", self.rep, TAX.names)
        assert not v.ok and "does not name the found type 'crack'" in v.problems[0]

    def test_rejects_defect_on_clean_part(self):
        assert not verify_text("The tile is good but shows damage near the edge.", self.clean, TAX.names).ok
        assert not verify_text("The tile passes, with an uneven patch.", self.clean, TAX.names).ok
        assert not verify_text("A magnetic tile is a kind of tile.", self.clean, TAX.names).ok  # no verdict

    def test_rejects_empty_clean_claims_and_silent_unknown(self):
        assert verify_text("  ", self.rep, TAX.names).problems == ["the text is empty"]
        assert not verify_text("The crack is fine; no defects found.", self.rep, TAX.names).ok
        assert not verify_text("There is a defect at the upper-left edge.", self.unknown, TAX.names).ok


class TestVerifierPlacesAndEnds:
    # A probe's accepted texts (2026-12-05) put a crack at the upper-right edge where none was, named
    # two of three regions, and stopped mid-phrase ("... and a crack at the top of").
    two = build_report(
        inspection(True, [region(1, (0, 5, 60, 40)), region(2, (150, 280, 250, 300))]),
        [RegionType(1, "crack", 0.8, "few-shot"), RegionType(2, "crack", 0.7, "few-shot")], TAX,
    )

    def test_every_place_named_and_no_other(self):
        assert verify_text("Two cracks: one at the upper-left edge, one at the bottom edge.", self.two, TAX.names).ok
        v = verify_text("A crack at the upper-left edge.", self.two, TAX.names)
        assert not v.ok and v.problems == ["does not say where: no finding's place 'bottom' is named"]
        v = verify_text("Cracks at the upper-left edge, the bottom and the upper-right edge.", self.two, TAX.names)
        assert not v.ok and v.problems == ["names place(s) upper-right where nothing was found"]

    def test_types_and_places_are_paired_as_found(self):
        mixed = build_report(
            inspection(True, [region(1, (0, 5, 60, 40)), region(2, (150, 280, 250, 300))]),
            [RegionType(1, "crack", 0.8, "few-shot"), RegionType(2, "blowhole", 0.7, "few-shot")], TAX,
        )
        assert verify_text("A crack at the upper-left edge and a blowhole at the bottom.", mixed, TAX.names).ok
        v = verify_text("A crack at the bottom and a blowhole at the upper-left edge.", mixed, TAX.names)
        assert not v.ok and "puts a crack at the bottom, where none was found" in v.problems

    def test_a_cut_off_sentence_is_refused(self):
        v = verify_text("A crack at the upper-left edge and a crack at the bottom of", self.two, TAX.names)
        assert not v.ok and "the text stops mid-sentence" in v.problems
        assert "the text stops mid-sentence" in verify_text("Cracks at the upper-left edge and the bottom...", self.two, TAX.names).problems


def test_weaker_regions_are_set_apart_and_do_not_decide_the_action():
    # "8 defects found" for one crack: regions whose peak stays under the image threshold are listed apart.
    strong = Region(1, (0, 5, 60, 40), 900, 0.0075, (30.0, 20.0), 3.0, 2.0)
    weak = Region(2, (180, 130, 220, 170), 400, 0.003, (200.0, 150.0), 2.2, 2.1)
    insp = Inspection("p.png", (W, H), 2.5, True, np.zeros((H, W), np.float32), np.zeros((H, W), bool), [strong, weak],
                      thresholds=Thresholds(image=2.4, pixel=2.0))
    rep = build_report(insp, [RegionType(1, "blowhole", 0.9, "few-shot"), RegionType(2, "crack", 0.6, "few-shot")], TAX)
    assert [f.weak for f in rep.findings] == [False, True] and rep.to_json()["findings"][1]["weaker"] is True
    # The threshold beside the score: how near the line the verdict was.
    assert rep.text.startswith("Magnetic tile: DEFECTIVE (score 2.50, threshold 2.40).") and rep.to_json()["image_threshold"] == 2.4
    assert "(score 2.500, threshold 2.400)" in render_markdown(rep)
    # Never shown equal when they differ (report probe 2026-12-06: "score 50.44, threshold 50.44").
    from dataclasses import replace

    from defectlens.explain.template import report_head

    assert "(score 50.4400, threshold 50.4399)" in report_head(
        replace(rep, score=50.44, image_threshold=50.4399))
    # On every surface (regression probe: the Markdown's verdict line and the gallery still read 64.135 twice), and a score
    # at its threshold is said to be at it, not over it.
    close = replace(rep, score=64.13478088, image_threshold=64.13478)
    assert "(score 64.134781, threshold 64.134780)" in render_markdown(close)
    assert "(score 64.13, at the threshold, not over it)" in report_head(replace(rep, score=64.13, image_threshold=64.13))
    # Apart by one unit in the last place: which side, in words (regression probe 2026-12-06).
    assert report_head(replace(rep, score=94.38866424560547, image_threshold=94.38866424560548)).endswith(": just under it).")
    assert "1 defect found: #1 blowhole at the upper-left edge" in rep.text
    assert "Also 1 weaker indication(s), each alone under the image threshold: #2 centre." in rep.text
    # The blowhole (low severity, default action) decides, not the weaker crack (critical: reject).
    assert "reject the part" not in rep.text and "(default)" not in rep.text  # the blowhole's severity is the taxonomy's
    assert "(weaker indication)" in render_markdown(rep)
    # Its row acts on nothing (report probe 2026-12-06: the weaker crack's "reject the part" read as a second instruction).
    (weaker_row,) = [line for line in render_markdown(rep).splitlines() if line.startswith("| 2 |")]
    assert weaker_row.endswith("| — | — (weaker indication, not acted on) |") and "reject the part" not in weaker_row
    # The language model states the counted finding; a weaker one may be named, need not be.
    assert verify_text("A blowhole sits at the upper-left edge.", rep, TAX.names).ok
    assert verify_text("A blowhole at the upper-left edge and a faint crack at the centre.", rep, TAX.names).ok
    # On a frame unlike every normal one too (report probe 2026-12-06: the regions under the threshold read as full defects).
    from dataclasses import replace

    unlike = build_report(replace(insp, unlike_normal="unlike every normal image"), [RegionType(1, "blowhole", 0.9, "few-shot"),
                                                                                   RegionType(2, "crack", 0.6, "few-shot")], TAX)
    assert [f.weak for f in unlike.findings] == [False, True]


def test_language_model_text_gets_the_head_and_the_action(monkeypatch):
    from defectlens.explain import llm as llm_module
    from defectlens.explain.llm import LMText

    monkeypatch.setattr(llm_module.LMWriter, "write", lambda self, report: LMText("A crack runs along the upper-left edge.", 0.01, ""))
    rep = build_report(inspection(True, [region(1, (0, 5, 60, 40))]), [RegionType(1, "crack", 0.8, "few-shot")], TAX, writer="llm")
    assert rep.writer == "llm"
    assert rep.text == "Magnetic tile: DEFECTIVE (score 2.50). A crack runs along the upper-left edge. Recommended action: reject the part."
    # A type guessed from the words is said to be one after the model's words, which state it as fact (regression probe
    # 2026-12-06); the model is given the marked area's size, as the template says it.
    guessed = build_report(inspection(True, [region(1, (0, 5, 60, 40))]), [RegionType(1, "crack", 0.5, "words")], TAX, writer="llm")
    assert guessed.writer == "llm" and ("A crack runs along the upper-left edge. Type(s) guessed from the descriptions, with no example of "
                                        "this part: crack — confirm by eye. Recommended action") in guessed.text
    # Whose size the model's words give is said after them (the template says "marked area").
    monkeypatch.setattr(llm_module.LMWriter, "write", lambda self, report: LMText("A crack at the upper-left edge, 1.0% of the image.", 0.01, ""))
    sized = build_report(inspection(True, [region(1, (0, 5, 60, 40))]), [RegionType(1, "crack", 0.8, "few-shot")], TAX, writer="llm")
    assert sized.writer == "llm" and "1.0% of the image. Sizes are of the areas the map marks, often larger than the defect." in sized.text


def test_defaults_and_unknowns_say_what_they_are():
    insp = inspection(True, [region(1, (0, 5, 60, 40)), region(2, (180, 130, 220, 170))])
    rep = build_report(insp, [RegionType(1, "uneven", 0.9, "few-shot"), RegionType(2, UNKNOWN, 0.998, "few-shot")], TAX)
    # An assumed severity is not stated as assessed, and an unknown region is not "100% confidence".
    assert "uneven at the upper-left edge, medium marked area (1.0% of the image), medium severity (default), 90% confidence" in rep.text
    # This tool's severity for a region of no known type is a default too (report probe 2026-12-06: read as assessed).
    assert ("defect of unknown type at the centre, medium marked area (1.0% of the image), high severity (default), unlike every known type"
            in rep.text)
    assert "% of the part" not in rep.text and "an uneven" not in rep.text


def test_bad_writer_name():
    with pytest.raises(ValueError, match="writer must be one of"):
        build_report(inspection(False), [], TAX, writer="poet")


def test_the_report_heads_with_the_part_and_keeps_the_whole_object_on_its_page():
    tax = parse_taxonomy({"object": "chocolate-chip cookie lying on a dark baking tray", "defects": [{"name": "crack"}]})
    rep = build_report(inspection(True, [region(1, (10, 10, 50, 50))]), [RegionType(1, "crack", 0.9, "few-shot")], tax)
    assert rep.text.startswith("Chocolate-chip cookie: DEFECTIVE")
    assert rep.to_json()["part"] == "chocolate-chip cookie"
    assert "**Part:** chocolate-chip cookie lying on a dark baking tray" in render_markdown(rep)


def test_types_named_without_an_example_of_the_part_are_said_to_be_guesses():
    insp = inspection(True, [region(1, (10, 10, 50, 50)), region(2, (200, 100, 260, 160))])
    guessed = build_report(insp, [RegionType(1, "crack", 0.5, "words"), RegionType(2, "blowhole", 0.6, "words")], TAX)
    assert sum("types guessed from the words of the taxonomy's descriptions" in n for n in guessed.notes) == 1
    # Said where it is read too (report probe 2026-12-06: the text, the gallery and the overlay read "break" for blowholes).
    from defectlens.explain import shown_type

    assert "#1 crack at" in guessed.text and "type guessed from the descriptions, 50%" in guessed.text
    assert [shown_type(t, m) for t, m in (("crack", "words"), ("crack", "text"), ("crack", "few-shot"), ("unknown", "words"))] == [
        "crack?", "crack?", "crack", "unknown"]
    assert shown_type("crack", "words", candidates=1) == "crack"  # the only type known: nothing guessed (regression probe)
    # The action a guessed type decides is conditional on it (report probe 2026-12-06: "scrap the tile" said flatly of a false
    # alarm guessed a break, whose blowhole lay elsewhere), by the template and around a language model's text alike.
    said = ("Recommended action: if #1 at the upper-left edge is confirmed by eye as crack (its type is guessed): reject the part. "
            "If the type is not confirmed, hold the part for manual review.")
    assert guessed.text.endswith(said), guessed.text
    from defectlens.explain.template import with_head_and_action

    assert with_head_and_action(guessed, "A crack was found.").endswith(said)
    # ... and so in the Findings table, the type shown as a guess (regression probe 2026-12-06: flat there, against the text).
    (first_row,) = [line for line in render_markdown(guessed).splitlines() if line.startswith("| 1 |")]
    assert first_row.startswith("| 1 | crack? |"), first_row
    assert first_row.endswith("| if confirmed as crack: reject the part. If the type is not confirmed, hold the part for manual review. |"), first_row
    # The condition first: an action of two sentences had still begun "scrap the tile." (regression probe 2026-12-06).
    dotted = parse_taxonomy({"object": "magnetic tile", "defects": [
        {"name": "crack", "description": "a thin dark line", "severity": "high", "action": "scrap the tile. Log it in the NCR book."},
        {"name": "chip", "description": "a missing corner", "severity": "low", "action": "."}]})
    two = build_report(inspection(True, [region(1, (10, 10, 50, 50))]), [RegionType(1, "crack", 0.5, "words")], dotted).text
    assert two.endswith("Recommended action: if #1 at the upper-left edge is confirmed by eye as crack (its type is guessed): scrap the tile. "
                        "Log it in the NCR book. If the type is not confirmed, hold the part for manual review."), two
    stop = build_report(inspection(True, [region(1, (10, 10, 50, 50))]), [RegionType(1, "chip", 0.5, "words")], dotted)
    # An action of a stop alone is none: the default, flagged so everywhere (regression probe 2026-12-06: "." in the table).
    assert "action" in stop.findings[0].defaults_used and ": . If the type" not in render_markdown(stop), render_markdown(stop)
    # A blank line in an action is no new paragraph, and a question keeps its mark without a second stop.
    spaced = parse_taxonomy({"object": "magnetic tile", "defects": [
        {"name": "crack", "description": "a thin dark line", "action": "scrap the tile.\n\nLog it in the NCR book."},
        {"name": "chip", "description": "a missing corner", "action": "Scrap the tile?"},
        {"name": "dent", "description": "a hollow", "action": "scrap it. Otherwise rework it."}]})
    for kind, ending in (("crack", "scrap the tile. Log it in the NCR book. If the type is not confirmed, hold"),
                         ("chip", "Scrap the tile? If the type is not confirmed, hold"),
                         ("dent", "scrap it. Otherwise rework it. If the type is not confirmed, hold")):
        text = build_report(inspection(True, [region(1, (10, 10, 50, 50))]), [RegionType(1, kind, 0.5, "words")], spaced).text
        # An action's own "Otherwise" is not followed by a second (regression probe 2026-12-06: "Otherwise … Otherwise …").
        assert ending in text and "\n" not in text and "?." not in text and text.count("therwise") <= 1, text
    # A quote or bracket at the action's end keeps the stop after it, a question its mark where no condition is said, a list
    # its items apart (regression probe 2026-12-06: 'Label it "REJECT" Otherwise…', "Ask QA?" read "Ask QA.", "- a - b").
    from defectlens.explain.template import as_sentence

    assert [as_sentence(a) for a in ('Label it "REJECT".', 'Label it "REJECT."', "Scrap it (see SOP 12).", "Ask QA?", "- scrap it\n- log the lot.")] \
        == ['Label it "REJECT".', 'Label it "REJECT."', "Scrap it (see SOP 12).", "Ask QA?", "scrap it; log the lot."]
    # Full-width marks are a sentence's own end, and a Japanese action keeps its full stop ("確認する？." had been said).
    assert [as_sentence(a) for a in ("確認する？", "廃棄！", "廃棄。")] == ["確認する？", "廃棄！", "廃棄。"]
    listed = parse_taxonomy({"object": "magnetic tile", "defects": [
        {"name": "crack", "description": "a thin dark line", "action": "- scrap the tile\n- log the lot"},
        {"name": "chip", "description": "a missing corner"}]})
    table = render_markdown(build_report(inspection(True, [region(1, (10, 10, 50, 50))]), [RegionType(1, "crack", 0.9, "few-shot")], listed))
    # The Findings table joins a list's items as the text does (regression probe 2026-12-06: "- scrap the tile - log the lot").
    assert "| scrap the tile; log the lot |" in table, table
    quoted = parse_taxonomy({"object": "magnetic tile", "defects": [
        {"name": "crack", "description": "a thin dark line", "action": 'Label it "REJECT".'}]})
    text = build_report(inspection(True, [region(1, (10, 10, 50, 50))]), [RegionType(1, "crack", 0.5, "words")], quoted).text
    assert 'Label it "REJECT". If the type is not confirmed' in text, text
    asked = parse_taxonomy({"object": "magnetic tile", "defects": [
        {"name": "crack", "description": "a thin dark line", "action": "Can it be reworked? Ask QA?"}]})
    text = build_report(inspection(True, [region(1, (10, 10, 50, 50))]), [RegionType(1, "crack", 0.9, "few-shot")], asked).text
    assert text.endswith("Recommended action: Can it be reworked? Ask QA?"), text
    # A default action (a hold) is never conditional: "hold …, if the break is confirmed" read as "pass it otherwise".
    bare = build_report(insp, [RegionType(1, "crack", 0.5, "words"), RegionType(2, "blowhole", 0.6, "words")], None)
    assert "confirmed" not in bare.text and bare.text.endswith(f"Recommended action: {bare.findings[0].action.rstrip('.')}."), bare.text
    from_examples = build_report(insp, [RegionType(1, "crack", 0.9, "few-shot"), RegionType(2, "blowhole", 0.8, "few-shot")], TAX)
    assert not [n for n in from_examples.notes if "guessed" in n]
    assert from_examples.text.endswith("Recommended action: reject the part.")
    # A taxonomy of one type: nothing was guessed ("only type known"; regression probe).
    one = parse_taxonomy({"object": "commutator", "defects": [{"name": "crack", "description": "a thin dark line"}]})
    only = build_report(insp, [RegionType(1, "crack", 1.0, "words", candidates=(("crack", 1.0),))], one)
    assert only.findings[0].only_type and not [n for n in only.notes if "guessed" in n]
