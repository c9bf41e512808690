"""Taxonomy validation: every bad file is a one-line ConfigError naming the file and the fix."""

from __future__ import annotations

import json
import unicodedata

import pytest

from defectlens.errors import ConfigError
from defectlens.taxonomy import (
    DEFAULT_ACTION,
    UNKNOWN,
    UNKNOWN_ACTION,
    load_taxonomy,
    parse_taxonomy,
    resolve_guidance,
)


def write(tmp_path, data) -> str:
    p = tmp_path / "taxonomy.json"
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(p)


GOOD = {
    "object": "magnetic tile",
    "defects": [
        {"name": "crack", "description": "a thin dark line", "severity": "critical", "impact": "tile may split", "action": "reject"},
        {"name": "blowhole", "description": "small round pits"},
    ],
}


def test_valid_taxonomy_with_optional_fields(tmp_path):
    tax = load_taxonomy(write(tmp_path, GOOD))
    assert tax.object_name == "magnetic tile"
    assert tax.names == ("crack", "blowhole")
    g = tax.guidance("crack")
    assert (g.severity, g.impact, g.action, g.defaults_used) == ("critical", "tile may split", "reject", ())
    d = tax.guidance("blowhole")
    assert d.severity == "medium" and d.action == DEFAULT_ACTION
    assert set(d.defaults_used) == {"severity", "impact", "action"}
    assert tax.guidance(UNKNOWN).action == UNKNOWN_ACTION
    assert tax.to_json()["defects"][1] == {"name": "blowhole", "description": "small round pits"}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"object": "tile", "defects": [{"name": "crack", "description": "x"}, {"name": "Crack", "description": "y"}]}, "twice"),
        ({"object": "tile", "defects": [{"name": "", "description": "x"}]}, "defects.0.name"),
        ({"object": "tile", "defects": [{"name": "unknown", "description": "x"}]}, "reserved"),
        ({"object": "tile", "defects": [{"name": "crack", "description": "x", "severty": "high"}]}, "unknown key"),
        ({"object": "tile", "defects": [{"name": "crack", "severity": "fatal"}]}, "severity 'fatal' is none of low, medium, high, critical"),
        ({"object": "tile", "defects": []}, "defects"),
        ({"defects": [{"name": "crack"}]}, "object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_invalid_taxonomies_name_file_and_fix(tmp_path, data, fragment):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_taxonomy(path)
    msg = str(err.value)
    assert fragment in msg and path in msg and "fix:" in msg
    assert "\n" not in msg


def test_a_severity_is_read_without_case_or_spaces(tmp_path):
    # Types probe 2026-12-07: "High" and "high " from a spreadsheet were refused, where type names read without case or spaces.
    data = {"object": "tile", "defects": [{"name": "crack", "severity": "High "}, {"name": "pit", "severity": " LOW"},
                                          {"name": "dent", "severity": "\uff28\uff49\uff47\uff48"}, {"name": "scratch", "severity": ""}]}
    assert [d.severity for d in load_taxonomy(write(tmp_path, data)).defects] == ["high", "low", "high", None]  # an empty cell: none


def test_missing_description_only_when_required(tmp_path):
    data = {"object": "tile", "defects": [{"name": "crack"}]}
    assert load_taxonomy(write(tmp_path, data)).names == ("crack",)
    with pytest.raises(ConfigError, match="no description for defect type"):
        load_taxonomy(write(tmp_path, data), require_descriptions=True)


def test_missing_file_and_unknown_types(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_taxonomy(tmp_path / "nope.json")
    tax = parse_taxonomy(GOOD)
    with pytest.raises(ConfigError, match="scratch are not in the taxonomy"):
        tax.require_types(["crack", "scratch"], "examples/")
    tax.require_types(["crack", "blowhole"])


def test_guidance_without_taxonomy_is_flagged_default():
    g = resolve_guidance(None, "crack")
    assert g.defaults_used == ("severity", "impact", "action")
    assert resolve_guidance(None, UNKNOWN).severity == "high"


def test_a_taxonomy_saved_with_a_byte_order_mark_reads_the_same(tmp_path):
    # Windows editors start UTF-8 files with one; it was refused as bad JSON ("fix the JSON syntax").
    text = json.dumps({"object": "tile", "defects": [{"name": "crack", "description": "a thin dark line"}]})
    plain, marked = tmp_path / "plain.json", tmp_path / "marked.json"
    plain.write_text(text, encoding="utf-8")
    marked.write_text(text, encoding="utf-8-sig")
    assert load_taxonomy(marked) == load_taxonomy(plain)


@pytest.mark.parametrize("name", ["Ölfleck", "Riß am Rand", "裂纹", "दरार", "trhlina-2", "scratch.v2", "pit_1"])
def test_type_names_in_any_script_are_accepted(tmp_path, name):
    tax = load_taxonomy(write(tmp_path, {"object": "tile", "defects": [{"name": name, "description": "x"}]}))
    assert tax.names == (name,)
    # The same name decomposed (as macOS writes folder names) or in other case is the same type.
    assert tax.get(unicodedata.normalize("NFD", name.upper())) is tax.defects[0]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("a/b", "'/'"), (".hidden", "start with '.'"), ("crack.", "end with '.'"), ("zero\u200bwidth", "'\\u200b'"),
     ("tab\there", "'\\t'"), ("x" * 101, "1 to 100")],
)
def test_type_names_that_cannot_be_folder_names_or_words_are_refused(tmp_path, name, fragment):
    path = write(tmp_path, {"object": "tile", "defects": [{"name": name, "description": "x"}]})
    with pytest.raises(ConfigError) as err:
        load_taxonomy(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("obj", "part"),
    [
        ("chocolate-chip cookie lying on a dark baking tray", "chocolate-chip cookie"),
        ("magnetic tile", "magnetic tile"),
        ("shiny metal running surface of a ball screw drive spindle", "shiny metal running surface of a ball screw drive spindle"),
        ("gear, photographed from above", "gear"),
        ("bottle (top view)", "bottle"),
        ("hex nut, M8, on a conveyor", "hex nut, M8"),
        ("shaft, 12 mm, photographed from above", "shaft, 12 mm"),
    ],
)
def test_report_headings_name_the_part_not_its_scene(obj, part):
    assert parse_taxonomy({"object": obj, "defects": [{"name": "crack"}]}).part_name == part


def test_a_taxonomy_may_name_its_part_for_headings(tmp_path):
    tax = load_taxonomy(write(tmp_path, {**GOOD, "object": "tile on a belt", "part": "tile T-7"}))
    assert (tax.part_name, tax.object_name) == ("tile T-7", "tile on a belt")
    assert tax.to_json()["part"] == "tile T-7"


@pytest.mark.parametrize("said", ["N/A.", "tbd.", "n.a.", "N.A.", "TBC", "To do", "null", "nil", " TBD ", "—", "...", "tbd?", "[TBD]", "TBA",
                                  "n/a?", "n. a."])
def test_a_placeholder_text_is_read_as_left_out(said):
    # With a stop after it or in other spellings too (regression probe 2026-12-06: "N/A." shown as the impact, "TBD." as the
    # action); the default is used and flagged as such.
    t = parse_taxonomy({"object": "tile", "defects": [{"name": "crack", "description": "a thin line", "impact": said, "action": said}]})
    assert (t.defects[0].impact, t.defects[0].action) == (None, None)


def test_none_says_there_is_none():
    # "none" is the author's word, not a placeholder: an impact of none had been reported "not assessed" (regression probe).
    t = parse_taxonomy({"object": "tile", "defects": [{"name": "stain", "description": "a faint mark", "impact": "None", "action": "none"}]})
    assert (t.defects[0].impact, t.defects[0].action) == ("None", "none")
    # ... but a description of "none" is no description (regression probe 2026-12-06).
    assert parse_taxonomy({"object": "tile", "defects": [{"name": "stain", "description": "None."}]}).defects[0].description is None


def test_a_taxonomy_saved_on_windows_is_read_or_said_to_be_in_a_code_page(tmp_path):
    # Windows-inputs probe 2026-12-06: Notepad's "Unicode" (UTF-16) had been "not valid JSON … fix the JSON syntax", and so had a
    # file in Windows-1252, whose fix is its encoding, not its syntax.
    data = {"object": "Keks", "defects": [{"name": "Riss", "description": "ein Riß bei 20 °C"}]}
    text = json.dumps(data, ensure_ascii=False, indent=1).replace("\n", "\r\n")
    for encoding in ("utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "utf-8"):
        (tmp_path / "t.json").write_bytes(text.encode(encoding))
        assert load_taxonomy(tmp_path / "t.json").defects[0].description == "ein Riß bei 20 °C", encoding
    (tmp_path / "t.json").write_bytes(text.encode("cp1252"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text: byte 0xDF at line 6, column \d+ .*fix: save it as UTF-8"):
        load_taxonomy(tmp_path / "t.json")
