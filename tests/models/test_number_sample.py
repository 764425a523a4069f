"""sample_integer and sample_number: values inside the bounds, small when a side is unbounded."""

from __future__ import annotations

import random
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadenza.models.simulated._number_sample import sample_integer, sample_number


def assert_valid(schema: dict[str, Any], value: Any) -> None:
    jsonschema.Draft202012Validator(schema).validate(value)


@given(
    lo=st.integers(-100, 100),
    span=st.integers(2, 30),
    lo_key=st.sampled_from(["minimum", "exclusiveMinimum"]),
    hi_key=st.sampled_from(["maximum", "exclusiveMaximum"]),
    seed=st.integers(0, 2**32),
)
def test_integers_respect_inclusive_and_exclusive_bounds(
    lo: int, span: int, lo_key: str, hi_key: str, seed: int
) -> None:
    schema: dict[str, Any] = {"type": "integer", lo_key: lo, hi_key: lo + span}
    value = sample_integer(schema, random.Random(seed))
    assert isinstance(value, int)
    assert_valid(schema, value)


@given(lo=st.floats(-1e6, 1e6), span=st.floats(0.01, 100), seed=st.integers(0, 2**32))
def test_numbers_respect_exclusive_bounds(lo: float, span: float, seed: int) -> None:
    schema = {"type": "number", "exclusiveMinimum": lo, "exclusiveMaximum": lo + span}
    assert_valid(schema, sample_number(schema, random.Random(seed)))


def test_fractional_and_exclusive_integer_bounds_move_inward() -> None:
    rng = random.Random(0)
    assert {sample_integer({"minimum": 1.5, "maximum": 2.5}, rng) for _ in range(20)} == {2}
    assert {sample_integer({"exclusiveMinimum": 1, "exclusiveMaximum": 3}, rng) for _ in range(20)} == {2}


@pytest.mark.parametrize(
    ("schema", "lo", "hi"),
    [({}, 0, 100), ({"minimum": 1000}, 1000, 1100), ({"maximum": -1000}, -1100, -1000)],
)
def test_an_unbounded_side_stays_within_100_of_the_other(schema: dict[str, Any], lo: int, hi: int) -> None:
    rng = random.Random(0)
    for _ in range(50):
        assert lo <= sample_integer(schema, rng) <= hi
        assert lo <= sample_number(schema, rng) <= hi


@given(step=st.sampled_from([2, 5, 0.5, 0.1, 0.25]), seed=st.integers(0, 2**32))
def test_multiples(step: float, seed: int) -> None:
    integer = {"type": "integer", "multipleOf": step, "minimum": 1, "maximum": 40}
    number = {"type": "number", "multipleOf": step, "minimum": 0, "maximum": 3}
    assert_valid(integer, sample_integer(integer, random.Random(seed)))
    assert_valid(number, sample_number(number, random.Random(seed)))


@pytest.mark.parametrize(
    ("sample", "schema", "message"),
    [
        (sample_integer, {"minimum": 5, "maximum": 4}, "no integer lies between 5 and 4"),
        (sample_integer, {"exclusiveMinimum": 1, "exclusiveMaximum": 2}, "no integer lies between 2 and 1"),
        (sample_integer, {"multipleOf": 7, "minimum": 1, "maximum": 6}, "no multiple of 7"),
        (sample_integer, {"multipleOf": 0}, "multipleOf must be positive"),
        (sample_number, {"exclusiveMinimum": 1, "maximum": 1}, "no number lies between 1 and 1"),
        (sample_number, {"multipleOf": -1}, "multipleOf must be positive"),
    ],
)
def test_impossible_ranges_raise_value_error(sample: Any, schema: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample(schema, random.Random(0))
