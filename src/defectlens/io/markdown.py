"""Text put into the Markdown files defectlens writes (reports, the model card) so that it reads as written.

What goes in comes from people and files the tool does not control: a taxonomy's part name, impact and action, a
folder's name, a language model's prose. Rendered by a Markdown viewer (a wiki, a code host, an IDE's preview), raw HTML in
them ran as script, and a line break followed by "# Verdict: GOOD" wrote a heading (security probe 2026-12-06).
"""

from __future__ import annotations

import re

_BLOCK_START = re.compile(r"(?P<mark>#{1,6}(?=\s|$)|>|[-+*](?=\s|$)|`{3}|~{3}|\||(?P<rule>[-*_=])(?:\s*(?P=rule))*\s*$)"
                          r"|(?P<number>\d{1,9})[.)](?=\s|$)")
"""What opens a Markdown block at a line's start: a heading, quote, list item, fence, table row, rule or setext underline
(CommonMark's rules: "7.25" and "-0.5" open none, and are left as they are)."""


def markdown_code(text: str) -> str:
    """``text`` as a Markdown code span, shown as it is: no emphasis ("_lot7_"), link, HTML, entity ("&#8238;" had brought
    back a direction mark) or heading's closing "#" is read in it (regression probes 2026-12-06); its fence longer than
    any run of backticks in it."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def markdown_line(text: str) -> str:
    """``text`` as one line of Markdown prose: its line breaks and runs of space made one space, ``<`` and ``&`` as
    entities (no HTML tag, comment or entity of its own is read), and a start that would open a block (``#``, ``>``,
    ``- ``, ``1.``) escaped. Emphasis and links are left to the viewer: they change how a text looks, not what it says."""
    flat = " ".join(text.split()).replace("&", "&amp;").replace("<", "&lt;")
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
