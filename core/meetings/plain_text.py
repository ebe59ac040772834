"""Minutes Markdown as plain text, for search and for chat sources.

Answers quote the passages they cite and the chat shows them as text: a "- [ ]" tick box or
"**Alice**" from the minutes would turn into a checkbox or bold text there, so the indexed
minutes and every minutes excerpt are plain text. Headings stay (they give chunks their
context); the "[h:mm:ss]" stamps stay (they link a passage to its moment).
"""

from __future__ import annotations

import re

_TICK_BOX = re.compile(r"^(\s*[-*+]\s+)\[[ xX]\]\s+", re.MULTILINE)
_BOLD = re.compile(r"(\*\*|__)(\S(?:.*?\S)?)\1")
_ITALIC = re.compile(r"(?<![\w*])([*_])(\S(?:[^*_\n]*?\S)?)\1(?![\w*])")
_CODE = re.compile(r"`([^`\n]+)`")


def plain_minutes_text(markdown: str) -> str:
    """`markdown` without tick boxes, bold, italic and code marks; everything else as it is. Pure."""
    text = _TICK_BOX.sub(r"\1", markdown)
    text = _BOLD.sub(r"\2", text)
    text = _ITALIC.sub(r"\2", text)
    return _CODE.sub(r"\1", text)
