"""inline_schema and merge_schemas: refs and allOf flatten into one schema; contradictions raise."""

from __future__ import annotations

from typing import Any

import pytest

from cadenza.models.simulated._schema_merge import as_types, inline_schema, merge_schemas, resolve_ref

ROOT: dict[str, Any] = {
    "$defs": {
        "Name": {"type": "string", "minLength": 1, "title": "Name"},
        "a/b": {"type": "integer"},
        "Never": False,
        "Any": True,
    },
    "items": [{"type": "null"}],
}


def test_resolve_ref_follows_local_pointers_with_escapes_and_indexes() -> None:
    assert resolve_ref(ROOT, "#/$defs/Name")["type"] == "string"
    assert resolve_ref(ROOT, "#/$defs/a~1b") == {"type": "integer"}
    assert resolve_ref(ROOT, "#/items/0") == {"type": "null"}
    assert resolve_ref(ROOT, "#") is ROOT


@pytest.mark.parametrize(("ref", "message"), [("other.json#/x", "only local"), ("#/$defs/Missing", "does not resolve")])
def test_resolve_ref_rejects_remote_and_dangling_refs(ref: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_ref(ROOT, ref)


def test_inline_merges_siblings_of_a_ref_and_records_the_path() -> None:
    schema, path = inline_schema(ROOT, {"$ref": "#/$defs/Name", "maxLength": 5, "description": "ignored"})
    assert schema == {"type": "string", "minLength": 1, "title": "Name", "maxLength": 5}
    assert path == ("#/$defs/Name",)


def test_inline_flattens_nested_all_of_and_skips_true_branches() -> None:
    schema, _ = inline_schema(
        ROOT, {"allOf": [{"$ref": "#/$defs/Name"}, True, {"allOf": [{"minLength": 3}, {"maxLength": 9}]}]}
    )
    assert schema["minLength"] == 3 and schema["maxLength"] == 9 and schema["type"] == "string"
    assert inline_schema(ROOT, {"$ref": "#/$defs/Any"})[0] == {}


@pytest.mark.parametrize("schema", [{"$ref": "#/$defs/Never"}, {"allOf": [{"type": "string"}, False]}])
def test_inline_rejects_schemas_nothing_satisfies(schema: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="nothing satisfies"):
        inline_schema(ROOT, schema)


def test_merge_tightens_bounds_and_unions_required() -> None:
    merged = merge_schemas(
        {"minimum": 1, "maximum": 10, "required": ["a"], "properties": {"a": {"type": "string"}}},
        {"minimum": 3, "maximum": 20, "required": ["b", "a"], "properties": {"a": {"minLength": 2}, "b": {}}},
    )
    assert merged["minimum"] == 3 and merged["maximum"] == 10
    assert merged["required"] == ["a", "b"]
    assert merged["properties"] == {"a": {"allOf": [{"type": "string"}, {"minLength": 2}]}, "b": {}}


def test_merge_keeps_both_unions_as_all_of() -> None:
    merged = merge_schemas({"anyOf": [{"type": "string"}]}, {"anyOf": [{"type": "null"}]})
    assert merged == {"anyOf": [{"type": "string"}], "allOf": [{"anyOf": [{"type": "null"}]}]}


def test_merge_types_treats_integer_as_a_number() -> None:
    assert merge_schemas({"type": "number"}, {"type": ["integer", "null"]})["type"] == ["integer"]
    assert as_types("string") == {"string"} and as_types(["a", "b"]) == {"a", "b"}


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ({"type": "string"}, {"type": "integer"}, "incompatible types"),
        ({"enum": [1, 2]}, {"enum": [True, "1"]}, "no common enum value"),
        ({"const": 1}, {"const": True}, "different const values"),
    ],
)
def test_merge_contradictions_raise(a: dict[str, Any], b: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        merge_schemas(a, b)
