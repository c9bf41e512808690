"""Text put into the Markdown files defectlens writes (reports, the model card) so that it reads as written.

What goes in comes from people and files the tool does not control: a taxonomy's part name, impact and action, a
folder's name, a language model's prose. Rendered by a Markdown viewer (a wiki, a code host, an IDE's preview), raw HTML in
them ran as script, and a line break followed by "# Verdict: GOOD" wrote a heading (security probe 2026-12-06).

The same files are read as plain text too (the gallery's "report" link opens one in the browser as it is), so only what a
viewer would read as markup is escaped: "Nut & bolt" and "<2 mm" stay as they are.
"""

from __future__ import annotations

import re

from defectlens.io.atomic import plain_label

_BLOCK_START = re.compile(r"(?P<mark>#{1,6}(?=\s|$)|>|[-+*](?=\s|$)|`{3}|~{3}|(?P<rule>[-*_=])(?:\s*(?P=rule))*\s*$)"
                          r"|(?P<number>\d{1,9})[.)](?=\s|$)")
"""What opens a Markdown block at a line's start: a heading, quote, list item, fence, rule or setext underline
(CommonMark's rules: "7.25" and "-0.5" open none, and are left as they are). A table needs a delimiter row below, which a
line of prose never has: in a cell, :func:`markdown_cell` escapes every ``|``."""
_INLINE = re.compile(r"\\(?=[!-/:-@\[-`{-~]|$)|`|\*|\[|<(?=[A-Za-z/!?]|[\w.!#$%&'*+/=?^`{|}~-]+@)|&(?=#?\w+;)|_+|~+")
"""What a viewer reads as markup inside a line: a backslash before punctuation or at the end (where it escapes what
follows: "C:\\specs\\*.pdf" lost one; "C:\\specs\\lot7" is left as it is), a code span's backtick, emphasis (``*``; runs
of ``_`` at a word's edge, checked in :func:`_escaped`), a code host's strikethrough (every ``~``: inside words too,
"2~~3 mm" had struck text), a link or image's ``[``, an HTML tag, comment, autolink or email
autolink (``<1x@y.z>`` had become a mailto link), an entity ("&#8238;" is a direction override)."""
_CODE_SPAN = re.compile(r"(?<!`)(?P<fence>`+)(?!`)(?P<code>.+?)(?<!`)(?P=fence)(?!`)")
"""A code span written in a text (the tool's own notes name commands so): kept as one, shown as it is. Its fence is a run
of backticks closed by a run as long (CommonMark): "``a`b``" is one span of "a`b" (it had come out as backticks around
a span of "a")."""


def _escaped(found: re.Match[str]) -> str:
    """One :data:`_INLINE` match, backslash-escaped; a run of ``_`` only at a word's edge ("x__y" is no emphasis)."""
    mark, text, start, end = found.group(), found.string, found.start(), found.end()
    if mark[0] == "_" and start > 0 and end < len(text) and text[start - 1].isalnum() and text[end].isalnum():
        return mark
    return "".join("\\" + c for c in mark)


def markdown_code(text: str) -> str:
    """``text`` as a Markdown code span, shown as it is: no emphasis ("_lot7_"), link, HTML, entity ("&#8238;" had brought
    back a direction mark) or heading's closing "#" is read in it (regression probes 2026-12-06); its fence longer than
    any run of backticks in it. Line breaks and unshowable characters (:func:`~defectlens.io.atomic.plain_label`) are
    U+FFFD: a span cannot hold a line break, and one had ended the heading it was in."""
    text = plain_label(text) or " "
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def markdown_line(text: str) -> str:
    """``text`` as one line of Markdown prose that reads as written, rendered or not: its line breaks and runs of space
    made one space, control and direction characters U+FFFD (a part name holding U+202E had turned its paragraph's
    "DEFECTIVE" round), what a viewer reads as markup inside a line backslash-escaped (:data:`_INLINE`; a pair of
    backticks stays a code span), and a start that would open a block (``#``, ``>``, ``- ``, ``1.``) escaped."""
    flat = plain_label(" ".join(text.split()))
    pieces, at = [], 0
    for span in _CODE_SPAN.finditer(flat):
        code = span.group("code")
        if len(code) > 2 and code[0] == code[-1] == " " and code.strip():
            code = code[1:-1]  # the space that keeps a fence off a backtick is no part of the code
        pieces += [_INLINE.sub(_escaped, flat[at:span.start()]), markdown_code(code)]
        at = span.end()
    flat = "".join([*pieces, _INLINE.sub(_escaped, flat[at:])])
    found = _BLOCK_START.match(flat)
    if found is None:
        return flat
    if found.group("mark"):
        return "\\" + flat
    return found.group("number") + "\\" + flat[found.end("number"):]


def markdown_paragraphs(text: str) -> str:
    """``text``'s paragraphs (apart where it has an empty line), each as :func:`markdown_line`."""
    paragraphs = [markdown_line(p) for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(p for p in paragraphs if p)


def markdown_cell(text: str) -> str:
    """``text`` as a Markdown table cell: :func:`markdown_line`, and its ``|`` escaped (it had split the row)."""
    return markdown_line(text).replace("|", "\\|")


def markdown_code_cell(text: str) -> str:
    """``text`` as a code span in a table cell (:func:`markdown_code`; a ``|`` even inside one ends a cell unless escaped)."""
    return markdown_code(text).replace("|", "\\|")
