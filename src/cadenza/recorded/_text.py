"""Outputs as text, and text cut to fit one line of a view, the same way in the terminal and the browser."""

from __future__ import annotations

import json

__all__ = ("as_text", "shorten")

LINE_CHARS = 72
"""How long a line of a plan or a trace may be before it is cut."""


def shorten(text: str, limit: int = LINE_CHARS) -> str:
    """The first line of ``text``, cut at a word boundary to at most ``limit`` characters."""
    line = " ".join(text.strip().split("\n", 1)[0].split())
    if len(line) <= limit:
        return line
    cut = line.rfind(" ", 0, limit - 1)
    return line[: cut if cut > limit // 2 else limit - 1].rstrip() + "…"


def as_text(value: object) -> str:
    """An output as people read it: text as it is, anything else as indented JSON."""
    if isinstance(value, str):
        return value
    from pydantic_core import to_jsonable_python

    return json.dumps(to_jsonable_python(value, fallback=str), indent=2, ensure_ascii=False)
