"""sample_pattern: seeded strings that match the regex subset schemas use, or a clear ValueError."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadenza.models.simulated._regex_sample import sample_pattern

SUPPORTED = [
    r"^[a-z]{3,8}$",
    r"^[A-Z]{2}-\d{3}$",
    r"^\w+@example\.com$",
    r"^(red|green|blue)$",
    r"^v\d+(\.\d+){0,2}$",
    r"^[^\s]{4}$",
    r"^\W\S\D$",
    r"a{2,}b*?c+",
    r"^(?P<x>ab)|(?:cd)$",
    r"^\x41\u0042$",
    r"^[\d_-]+$",
    r"\bword\b",
    r"^a{,3}$",  # `{,3}` is literal text in Python's re, and must stay so here
]


@pytest.mark.parametrize("pattern", SUPPORTED)
@given(seed=st.integers(0, 2**32))
def test_samples_match_the_pattern(pattern: str, seed: int) -> None:
    text = sample_pattern(pattern, random.Random(seed))
    assert re.search(pattern, text)
    assert sample_pattern(pattern, random.Random(seed)) == text


@given(seed=st.integers(0, 2**32), lo=st.integers(1, 6), width=st.integers(6, 10))
def test_samples_respect_the_length_range(seed: int, lo: int, width: int) -> None:
    text = sample_pattern(r"^[a-z]{1,12}$", random.Random(seed), lo, lo + width)
    assert lo <= len(text) <= lo + width


@given(seed=st.integers(0, 2**32), lo=st.integers(0, 8))
def test_unbounded_repeats_are_best_effort_within_a_tight_range(seed: int, lo: int) -> None:
    try:
        text = sample_pattern(r"^[a-z]+$", random.Random(seed), lo, lo + 1)
    except ValueError as exc:
        assert "with length" in str(exc)
    else:
        assert lo <= len(text) <= lo + 1


def test_dot_gives_letters_and_negated_classes_give_readable_characters() -> None:
    rng = random.Random(0)
    assert all(c.isalpha() for c in sample_pattern(r"^.{20}$", rng))
    assert all(c.isprintable() for c in sample_pattern(r"^[^a-z]{20}$", rng))


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(?=a)b", "lookaround"),
        (r"(a)\1", "not supported"),
        (r"(", "missing \\)"),
        (r"[a-", "unterminated"),
        (r"\p{L}", "bad escape"),
    ],
)
def test_unsupported_or_invalid_patterns_raise_value_error_naming_the_pattern(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        sample_pattern(pattern, random.Random(0))
    assert repr(pattern) in str(info.value)


def test_a_length_the_pattern_cannot_reach_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"with length 5\.\.None"):
        sample_pattern(r"^ab$", random.Random(0), 5)


def test_a_negated_class_excluding_every_usable_character_raises_value_error() -> None:
    with pytest.raises(ValueError, match="excludes every character"):
        sample_pattern(r"^[^\w\W]$", random.Random(0))
