"""sample_string: readable words within the length limits, known formats, and patterns."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadenza.models.simulated._string_sample import WORDS, sample_string, sample_words


@given(lo=st.integers(0, 40), extra=st.integers(0, 20), seed=st.integers(0, 2**32))
def test_plain_strings_fit_the_length_limits(lo: int, extra: int, seed: int) -> None:
    text = sample_string({"minLength": lo, "maxLength": lo + extra}, random.Random(seed))
    assert lo <= len(text) <= lo + extra
    assert not text.endswith(" ") or lo + extra == 0


def test_plain_strings_are_words() -> None:
    rng = random.Random(0)
    assert set(sample_string({}, rng).split()) <= set(WORDS)
    assert 2 <= len(sample_words(rng, 2, 4).split()) <= 4
    assert sample_string({"maxLength": 0}, rng) == ""


@pytest.mark.parametrize(
    ("fmt", "shape"),
    [
        ("date-time", r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"),
        ("email", r"^\w+\.\w+@example\.com$"),
        ("uri", r"^https://example\.com/\w+/\w+$"),
        ("iri-reference", r"^https://example\.com/\w+$"),
        ("hostname", r"^\w+\.example\.com$"),
        ("uuid", r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"),
    ],
)
def test_formats_look_like_what_they_name(fmt: str, shape: str) -> None:
    assert re.match(shape, sample_string({"format": fmt}, random.Random(0)))


def test_pattern_wins_over_format() -> None:
    assert sample_string({"pattern": "^x{3}$", "format": "email"}, random.Random(0)) == "xxx"


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"minLength": 5, "maxLength": 2}, "at least 5 characters but at most 2"),
        ({"format": "uuid", "maxLength": 10}, "no uuid string fits length 0..10"),
        ({"pattern": "(?=x)"}, "not supported"),
    ],
)
def test_impossible_strings_raise_value_error(schema: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_string(schema, random.Random(0))
