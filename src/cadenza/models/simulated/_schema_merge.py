"""Flatten ``$ref`` and ``allOf`` into one plain schema, so the generator reads keywords directly.

pydantic wraps models in ``$ref`` and constrained fields in ``allOf``; a generator that
had to look through those at every keyword would be long and error prone. Merging is
best effort: a clash it cannot see (two patterns, say) is caught by the final check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from ._json_values import json_equal

__all__ = ("as_types", "inline_schema", "merge_schemas", "resolve_ref")

_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly", "$comment"}
)
"""Keywords beside a ``$ref`` that say nothing about valid values, so need no merging."""


def resolve_ref(root: Any, ref: str) -> Any:
    """Follow a local JSON pointer (``#/$defs/X``); remote refs are out of scope."""
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref values are supported, got {ref!r}")
    node = root
    pointer = unquote(ref[1:])
    if pointer:
        for raw in pointer.lstrip("/").split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise ValueError(f"$ref {ref!r} does not resolve")
    return node


def as_types(value: Any) -> set[str]:
    """The ``type`` keyword as a set, whether it was written as one name or a list."""
    return {value} if isinstance(value, str) else set(value)


def inline_schema(root: Any, schema: Any, path: tuple[str, ...] = ()) -> tuple[Any, tuple[str, ...]]:
    """Inline ``$ref`` and ``allOf`` at the top of ``schema``; also return ``path`` plus the refs followed.

    The path lets the generator notice a ref recurring and turn minimal before it nests forever.
    """
    while isinstance(schema, Mapping) and ("$ref" in schema or "allOf" in schema):
        if "$ref" in schema:
            ref = schema["$ref"]
            target = resolve_ref(root, ref)
            rest = {k: v for k, v in schema.items() if k != "$ref" and k not in _ANNOTATIONS}
            if target is False:
                raise ValueError(f"$ref {ref!r} points to a schema nothing satisfies")
            target = {} if target is True else target
            schema = merge_schemas(target, rest) if rest else target
            path = (*path, ref)
        else:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for branch in schema["allOf"]:
                if branch is False:
                    raise ValueError("allOf contains a schema nothing satisfies")
                if branch is True:
                    continue
                resolved, path = inline_schema(root, branch, path)
                merged = merge_schemas(merged, resolved)
            schema = merged
    return schema, path


def merge_schemas(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """One schema a value satisfies only if it satisfies both ``a`` and ``b`` (best effort)."""
    out = dict(a)
    for key, bv in b.items():
        if key not in out:
            out[key] = bv
        elif key in ("anyOf", "oneOf"):
            out["allOf"] = [*out.get("allOf", []), {key: bv}]
        else:
            merger = _MERGERS.get(key)
            out[key] = merger(out[key], bv) if merger is not None else bv
    return out


def _merge_properties(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    props = dict(a)
    for name, sub in b.items():
        props[name] = {"allOf": [props[name], sub]} if name in props else sub
    return props


def _merge_types(a: Any, b: Any) -> list[str]:
    at, bt = as_types(a), as_types(b)
    both = at & bt
    if ("integer" in at and "number" in bt) or ("number" in at and "integer" in bt):
        both.add("integer")
    if not both:
        raise ValueError(f"schemas require incompatible types {sorted(at)} and {sorted(bt)}")
    return sorted(both)


def _merge_enums(a: list[Any], b: list[Any]) -> list[Any]:
    common = [x for x in a if any(json_equal(x, y) for y in b)]
    if not common:
        raise ValueError("schemas allow no common enum value")
    return common


def _merge_consts(a: Any, b: Any) -> Any:
    if not json_equal(a, b):
        raise ValueError("schemas require different const values")
    return a


def _merge_subschemas(a: Any, b: Any) -> Any:
    if a is False or b is False:
        return False
    if a is True:
        return b
    return a if b is True else {"allOf": [a, b]}


def _keep_first(a: Any, b: Any) -> Any:
    return a  # a clash (two patterns, two formats) is caught by the final validity check


_MERGERS: dict[str, Callable[[Any, Any], Any]] = {
    "properties": _merge_properties,
    "required": lambda a, b: list(dict.fromkeys([*a, *b])),
    "type": _merge_types,
    "enum": _merge_enums,
    "const": _merge_consts,
    **dict.fromkeys(("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"), max),
    **dict.fromkeys(("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"), min),
    **dict.fromkeys(("items", "additionalProperties", "propertyNames", "contains"), _merge_subschemas),
    "allOf": lambda a, b: [*a, *b],
    "uniqueItems": lambda a, b: bool(a or b),
    **dict.fromkeys(("format", "pattern", "x-cadenza-plan"), _keep_first),
}
"""How each keyword combines when both schemas have it; keywords not listed take ``b``'s value."""
