"""Sample strings that match a regex ``pattern``, for the regex subset schemas actually use.

Schemas constrain ids, codes and emails with patterns; a generator that ignored them
would fail validation. This parses literals, classes, groups, alternation and
quantifiers into a small tree and emits seeded text from it; anything else
(lookaround, backreferences) is refused with a clear message rather than guessed.
"""

from __future__ import annotations

import random
import re
from typing import Any

__all__ = ("sample_pattern",)

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"
_POOL = _LETTERS + _LETTERS.upper() + _DIGITS + " -_.,:;!?/@#"
"""Characters a negated class draws from: readable ones, so values stay easy to read in traces."""
_ATTEMPTS = 20
"""Emitted strings tried before giving up on a pattern and length combination."""


def sample_pattern(pattern: str, rng: random.Random, min_length: int = 0, max_length: int | None = None) -> str:
    """Return a string ``re.search(pattern, ...)`` accepts, with a length in the given range.

    Raises:
        ValueError: the pattern is invalid, uses an unsupported construct, or no emitted
            string fitted the length range; the message names the pattern.
    """
    try:
        compiled = re.compile(pattern)
        tree = _RegexParser(pattern).parse()
    except (re.error, _Unsupported) as exc:
        raise ValueError(f"cannot generate a string matching pattern {pattern!r}: {exc}") from None
    spans = [max(3, min_length), 3, 1, 0, max(3, min_length) * 2]
    for attempt in range(_ATTEMPTS):
        text = _emit(tree, rng, spans[attempt % len(spans)])
        if len(text) < min_length or (max_length is not None and len(text) > max_length):
            continue
        if compiled.search(text):
            return text
    raise ValueError(f"cannot generate a string matching pattern {pattern!r} with length {min_length}..{max_length}")


class _Unsupported(Exception):
    """A regex construct the pattern generator cannot produce strings for."""


# Node shapes: ("alt", [seq, ...]); seq = [(atom, min, max|None), ...];
# atom = ("chars", str) | ("neg", str) | ("group", alt) | ("empty",)
_Node = tuple[Any, ...]

_CLASS_ESCAPES = {
    "d": _DIGITS,
    "w": _LETTERS + _LETTERS.upper() + _DIGITS + "_",
    "s": " ",
}
_LITERAL_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "0": "\0"}


class _RegexParser:
    """Parses the regex subset seen in schemas: literals, classes, groups, alternation, quantifiers."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0

    def parse(self) -> _Node:
        node = self._alt()
        if self.i != len(self.p):
            raise _Unsupported(f"unexpected {self.p[self.i]!r} at position {self.i}")
        return node

    def _peek(self) -> str | None:
        return self.p[self.i] if self.i < len(self.p) else None

    def _alt(self) -> _Node:
        seqs = [self._seq()]
        while self._peek() == "|":
            self.i += 1
            seqs.append(self._seq())
        return ("alt", seqs)

    def _seq(self) -> list[tuple[_Node, int, int | None]]:
        seq: list[tuple[_Node, int, int | None]] = []
        while (c := self._peek()) is not None and c not in "|)":
            atom = self._atom()
            lo, hi = self._quantifier()
            seq.append((atom, lo, hi))
        return seq

    def _atom(self) -> _Node:
        c = self.p[self.i]
        self.i += 1
        if c in "^$":
            return ("empty",)
        if c == ".":
            return ("chars", _LETTERS)  # any letter matches `.`; letters read best
        if c == "[":
            return self._class()
        if c == "(":
            if self.p.startswith("?:", self.i):
                self.i += 2
            elif self.p.startswith("?P<", self.i):
                self.i = self.p.index(">", self.i) + 1
            elif self._peek() == "?":
                raise _Unsupported("lookaround and inline flags are not supported")
            inner = self._alt()
            if self._peek() != ")":
                raise _Unsupported("unbalanced parenthesis")
            self.i += 1
            return ("group", inner)
        if c == "\\":
            return self._escape(in_class=False)
        if c in "*+?":
            raise _Unsupported(f"nothing to repeat at position {self.i - 1}")
        return ("chars", c)

    def _escape(self, *, in_class: bool) -> _Node:
        if self.i >= len(self.p):
            raise _Unsupported("trailing backslash")
        c = self.p[self.i]
        self.i += 1
        if c.lower() in _CLASS_ESCAPES:
            chars = _CLASS_ESCAPES[c.lower()]
            return ("chars", chars) if c.islower() else ("neg", chars + ("\n" if c == "S" else ""))
        if c in _LITERAL_ESCAPES:
            return ("chars", _LITERAL_ESCAPES[c])
        if c in "AZzbB" and not in_class:
            return ("empty",)  # anchors and boundaries; the final match check enforces them
        if c == "b":
            return ("chars", "\b")
        if c in "xu":
            width = 2 if c == "x" else 4
            code = self.p[self.i : self.i + width]
            if len(code) != width:
                raise _Unsupported(f"bad \\{c} escape")
            self.i += width
            return ("chars", chr(int(code, 16)))
        if c.isalnum():
            raise _Unsupported(f"escape \\{c} is not supported")
        return ("chars", c)

    def _class(self) -> _Node:
        negate = self._peek() == "^"
        if negate:
            self.i += 1
        chars: list[str] = []
        first = True
        while True:
            c = self._peek()
            if c is None:
                raise _Unsupported("unterminated character class")
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            start = self._class_item()
            if not isinstance(start, str):
                chars.extend(start)
                continue
            if self._peek() == "-" and self.p[self.i + 1 : self.i + 2] not in ("]", ""):
                self.i += 1
                end = self._class_item()
                if not isinstance(end, str):
                    raise _Unsupported("bad range in character class")
                lo, hi = ord(start), ord(end)
                if hi - lo > 512:
                    hi = lo + 512  # enough variety; keep generation cheap
                chars.extend(chr(x) for x in range(lo, hi + 1))
            else:
                chars.append(start)
        text = "".join(dict.fromkeys(chars))
        return ("neg", text) if negate else ("chars", text)

    def _class_item(self) -> str | list[str]:
        """One character of a class, or the characters a shorthand like ``\\w`` stands for."""
        c = self.p[self.i]
        self.i += 1
        if c != "\\":
            return c
        kind, chars = self._escape(in_class=True)
        if kind == "chars":
            return str(chars) if len(chars) == 1 else list(chars)
        return [x for x in _POOL if x not in chars]

    def _quantifier(self) -> tuple[int, int | None]:
        c = self._peek()
        lo: int
        hi: int | None
        if c == "*":
            lo, hi = 0, None
        elif c == "+":
            lo, hi = 1, None
        elif c == "?":
            lo, hi = 0, 1
        elif c == "{":
            m = re.match(r"\{(\d*)(,?)(\d*)\}", self.p[self.i :])
            if not m or not (m.group(1) or m.group(3)):
                return 1, 1  # a literal brace, as Python reads it
            lo = int(m.group(1) or 0)
            hi = (int(m.group(3)) if m.group(3) else None) if m.group(2) else lo
            self.i += m.end() - 1
        else:
            return 1, 1
        self.i += 1
        if self._peek() in ("?", "+"):
            self.i += 1  # lazy / possessive: same language
        return lo, hi


def _emit(node: _Node, rng: random.Random, span: int) -> str:
    """Seeded text for a parsed node; unbounded repeats run to at most ``span`` extra copies."""
    kind = node[0]
    if kind == "alt":
        seq = rng.choice(node[1])
        parts: list[str] = []
        for atom, lo, hi in seq:
            count = rng.randint(lo, lo + span if hi is None else hi)
            parts.extend(_emit(atom, rng, span) for _ in range(count))
        return "".join(parts)
    if kind == "chars":
        return rng.choice(node[1]) if node[1] else ""
    if kind == "neg":
        pool = [c for c in _POOL if c not in node[1]]
        if not pool:
            raise ValueError("negated character class excludes every character the generator uses")
        return rng.choice(pool)
    if kind == "group":
        return _emit(node[1], rng, span)
    return ""
