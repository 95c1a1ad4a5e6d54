"""The markdown of RESULTS.md as reStructuredText, for the doc page.

Only what report.py writes is understood: ``#`` headings, pipe tables,
bullet lists, paragraphs, inline code and image lines (dropped: the doc
page does not ship the PNGs).
"""

from __future__ import annotations

import re

_UNDERLINES = {1: "=", 2: "-", 3: "~", 4: "^"}


def _inline(text: str) -> str:
    # Markdown `code` -> RST ``code``; a literal * or | in a cell would
    # otherwise start markup.
    return re.sub(r"`([^`]+)`", r"``\1``", text)


def _table(lines: list[str]) -> list[str]:
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in lines
        if not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip())
    ]
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        for i, cell in enumerate(row):
            out.append(("   * - " if i == 0 else "     - ") + (_inline(cell) or " "))
    return out + [""]


def convert(markdown: str, level_offset: int = 0) -> str:
    """``markdown`` as RST; ``level_offset`` pushes headings down a level."""
    lines = markdown.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"(#+) (.*)", line)
        if heading:
            level = len(heading.group(1)) + level_offset
            title = _inline(heading.group(2))
            out += [title, _UNDERLINES.get(level, "~") * len(title), ""]
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            out += _table(block)
            continue
        elif line.startswith("!["):
            pass
        else:
            out.append(_inline(line))
        i += 1
    return "\n".join(out) + "\n"
