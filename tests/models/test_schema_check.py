"""is_valid: the built-in checker agrees with jsonschema on the keywords the generator reads."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadenza.models.simulated._schema_check import is_multiple_of, is_valid

SCHEMAS: list[dict[str, Any]] = [
    {"type": "integer", "minimum": 0, "exclusiveMaximum": 10},
    {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    {"type": "integer", "multipleOf": 3},
    {"type": ["string", "null"], "minLength": 2, "maxLength": 4},
    {"type": "string", "pattern": "^[a-c]+$"},
    {"enum": [1, "1", True, None, [1]]},
    {"const": 1},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3, "uniqueItems": True},
    {"type": "array", "prefixItems": [{"type": "string"}], "items": False},
    {"type": "array", "contains": {"type": "string"}, "minContains": 2},
    {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 5}]},
    {"oneOf": [{"type": "integer", "maximum": 5}, {"type": "integer", "minimum": 3}]},
    {"not": {"type": "null"}},
    {"if": {"type": "integer"}, "then": {"minimum": 0}, "else": {"type": "string"}},
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "patternProperties": {"^x_": {"type": "string"}},
        "additionalProperties": False,
        "required": ["a"],
        "dependentRequired": {"b": ["a"]},
    },
    {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}, "minProperties": 1, "maxProperties": 2},
    {"$defs": {"Pos": {"type": "integer", "minimum": 1}}, "$ref": "#/$defs/Pos"},
]

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 10)
    | st.floats(-10, 10, allow_nan=False)
    | st.text("abcx_Z1", max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text("abx_1", max_size=3), inner, max_size=3),
    max_leaves=8,
)


@pytest.mark.parametrize("schema", SCHEMAS)
@given(value=JSON)
def test_agrees_with_jsonschema(schema: dict[str, Any], value: Any) -> None:
    expected = jsonschema.Draft202012Validator(schema).is_valid(value)
    assert is_valid(schema, value, schema) is expected


def test_json_equality_keeps_booleans_apart_from_numbers() -> None:
    assert is_valid({"const": 1}, 1.0, {})
    assert not is_valid({"const": 1}, True, {})
    assert not is_valid({"type": "integer"}, False, {})
    assert is_valid({"type": "integer"}, 2.0, {})


def test_boolean_schemas() -> None:
    assert is_valid(True, "anything", {})
    assert not is_valid(False, "anything", {})


def test_multiples_need_an_exact_quotient_and_a_small_remainder() -> None:
    assert is_multiple_of(0.3, 0.1) is False  # 0.3 / 0.1 is 2.9999999999999996
    assert is_multiple_of(0.5, 0.1)
    assert is_multiple_of(10, 2.5)
    assert not is_multiple_of(7, 2)
