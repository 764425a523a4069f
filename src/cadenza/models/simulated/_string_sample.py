"""Seeded strings for a string schema: readable words, a known ``format``, or a ``pattern`` match.

Simulated answers end up in traces and terminals, so free text is lorem-ipsum words
rather than random characters, and formatted strings look like what they name.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ._regex_sample import sample_pattern

__all__ = ("WORDS", "sample_string", "sample_words")

WORDS = (
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit",
    "sed", "eiusmod", "tempor", "incididunt", "labore", "dolore", "magna", "aliqua",
    "enim", "minim", "veniam", "quis", "nostrud", "ullamco", "laboris", "nisi",
    "aliquip", "commodo", "consequat", "aute", "irure", "velit", "esse", "cillum",
)  # fmt: skip


def sample_words(rng: random.Random, lo: int, hi: int) -> str:
    """Between ``lo`` and ``hi`` words separated by spaces."""
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def sample_string(schema: Mapping[str, Any], rng: random.Random) -> str:
    """A string meeting the schema's ``minLength``, ``maxLength``, ``pattern`` and known ``format``.

    Raises:
        ValueError: the lengths contradict, or the pattern or format cannot fit them.
    """
    min_l: int = schema.get("minLength", 0)
    max_l: int | None = schema.get("maxLength")
    if max_l is not None and max_l < min_l:
        raise ValueError(f"string needs at least {min_l} characters but at most {max_l}")
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        return sample_pattern(pattern, rng, min_l, max_l)
    fmt = schema.get("format")
    maker = _FORMATS.get(fmt) if isinstance(fmt, str) else None
    if maker is not None:
        text = maker(rng)
        if min_l <= len(text) and (max_l is None or len(text) <= max_l):
            return text
        raise ValueError(f"no {fmt} string fits length {min_l}..{max_l}")
    if max_l == 0:
        return ""
    text = sample_words(rng, 1, 3)
    while len(text) < min_l:
        text += " " + rng.choice(WORDS)
    if max_l is not None and len(text) > max_l:
        text = text[:max_l]
        if text.endswith(" "):
            text = text[:-1] + "a"
    return text


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2020, 2026):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


def _word(rng: random.Random) -> str:
    return rng.choice(WORDS)


def _url(rng: random.Random) -> str:
    return f"https://example.com/{_word(rng)}"


def _host(rng: random.Random) -> str:
    return f"{_word(rng)}.example.com"


_FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date-time": lambda r: f"{_date(r)}T{_time(r)}",
    "date": _date,
    "time": _time,
    "email": lambda r: f"{_word(r)}.{_word(r)}@example.com",
    "idn-email": lambda r: f"{_word(r)}@example.com",
    "uri": lambda r: f"{_url(r)}/{_word(r)}",
    "iri": _url,
    "uri-reference": _url,
    "iri-reference": _url,
    "uri-template": lambda r: f"{_url(r)}/{{id}}",
    "uuid": lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4)),
    "ipv4": lambda r: f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
    "ipv6": lambda r: f"fd00::{r.getrandbits(16):x}:{r.getrandbits(16):x}",
    "hostname": _host,
    "idn-hostname": _host,
    "duration": lambda r: f"PT{r.randint(1, 59)}M",
    "json-pointer": lambda r: f"/{_word(r)}",
    "relative-json-pointer": lambda r: f"{r.randint(0, 3)}",
    "regex": lambda r: f"^{_word(r)}$",
}
"""Makers for the string formats pydantic emits, each giving a plausible value of that format."""
