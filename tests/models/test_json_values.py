"""JSON equality: 1 equals 1.0, true does not equal 1, and json_key agrees with json_equal."""

from __future__ import annotations

from typing import Any

import pytest

from cadenza.models.simulated._json_values import is_number, json_equal, json_key

PAIRS: list[tuple[Any, Any, bool]] = [
    (1, 1.0, True),
    (True, 1, False),
    (False, 0, False),
    (True, True, True),
    (None, None, True),
    ("1", 1, False),
    ([1, {"a": 2.0}], (1.0, {"a": 2}), True),
    ([1, 2], [2, 1], False),
    ({"a": 1}, {"a": 1, "b": 2}, False),
]


@pytest.mark.parametrize(("a", "b", "equal"), PAIRS)
def test_json_equal_and_json_key_agree(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal
    assert (json_key(a) == json_key(b)) is equal


def test_json_key_ignores_key_order() -> None:
    assert json_key({"a": 1, "b": 2}) == json_key({"b": 2, "a": 1})


def test_booleans_are_not_numbers() -> None:
    assert is_number(1) and is_number(1.5)
    assert not is_number(True) and not is_number("1") and not is_number(None)
