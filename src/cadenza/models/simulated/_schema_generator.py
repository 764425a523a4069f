"""Walk a JSON schema and build one value for it, making every choice from a seeded ``random.Random``.

The walk handles structure (unions, enums, objects, arrays) and hands leaves to the
string and number samplers. Recursive schemas stay finite: once a ``$ref`` recurs or
nesting gets deep, the walk turns minimal (required keys only, cheapest branches).
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from ._json_values import json_key
from ._number_sample import sample_integer, sample_number
from ._schema_check import is_valid
from ._schema_merge import inline_schema, merge_schemas
from ._string_sample import WORDS, sample_string, sample_words

__all__ = ("InstanceGenerator",)

_RECURSION_LIMIT = 1
"""How often one ``$ref`` may recur on a path before generation turns minimal."""
_SHALLOW_NESTING = 8
"""Nesting depth past which generation turns minimal whatever the refs."""
_MAX_NESTING = 64
"""Nesting depth past which a schema is taken to have no finite instance."""
_ONE_OF_DRAWS = 16
"""Values drawn from one ``oneOf`` branch before the next is tried: branches may overlap (``maximum: 5`` and
``minimum: 3``), and a value both match is no instance."""

_TYPE_COST = {"null": 0, "boolean": 1, "integer": 1, "number": 1, "string": 2, "array": 3, "object": 4}
"""Cheapest-first order of types when generation is minimal."""


class InstanceGenerator:
    """Builds values for ``root`` or any schema inside it; holds the root so refs resolve.

    Raises:
        ValueError: from ``value`` when a part of the schema cannot be satisfied; the
            message says which.
    """

    def __init__(self, root: Mapping[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def value(self, schema: Any) -> Any:
        """A value for ``schema`` (which may need the final check: cross-cutting constraints are best effort)."""
        return self._gen(schema, 0, ())

    # -- dispatch

    def _gen(self, schema: Any, nest: int, path: tuple[str, ...]) -> Any:
        if nest > _MAX_NESTING:
            raise ValueError("schema nests too deeply to have a finite instance")
        if schema is True or schema is None:
            return sample_words(self.rng, 1, 2)
        if not isinstance(schema, Mapping):
            raise ValueError("schema `false` has no instances" if schema is False else f"not a schema: {schema!r}")
        schema, path = inline_schema(self.root, schema, path)
        shallow = nest >= _SHALLOW_NESTING or any(path.count(r) > _RECURSION_LIMIT for r in set(path))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self._gen_union(schema, key, nest, path, shallow)
        if "const" in schema:
            return _copy(schema["const"])
        if "enum" in schema:
            return self._gen_enum(schema, shallow)
        types = _types(schema)
        if len(types) == 1:
            return self._gen_type(types[0], schema, nest, path, shallow)
        error: ValueError | None = None
        for t in self._order_types(types, shallow):
            try:
                return self._gen_type(t, schema, nest, path, shallow)
            except ValueError as exc:
                error = exc
        raise error or ValueError("no listed type can be generated")

    def _gen_enum(self, schema: Mapping[str, Any], shallow: bool) -> Any:
        rest = _without(schema, "enum")
        options = [v for v in schema["enum"] if is_valid(rest, v, self.root)]
        if not options:
            raise ValueError(f"no value of enum {schema['enum']!r} fits the other constraints")
        return _copy(options[0] if shallow else self.rng.choice(options))

    def _order_types(self, types: list[str], shallow: bool) -> list[str]:
        if shallow:
            return sorted(types, key=lambda t: _TYPE_COST.get(t, 5))
        order = list(types)
        self.rng.shuffle(order)
        return order

    def _gen_type(self, t: str, schema: Mapping[str, Any], nest: int, path: tuple[str, ...], shallow: bool) -> Any:
        if t == "object":
            return self._gen_object(schema, nest, path, shallow)
        if t == "array":
            return self._gen_array(schema, nest, path, shallow)
        if t == "string":
            return sample_string(schema, self.rng)
        if t == "integer":
            return sample_integer(schema, self.rng)
        if t == "number":
            return sample_number(schema, self.rng)
        if t == "boolean":
            return self.rng.random() < 0.5
        if t == "null":
            return None
        raise ValueError(f"unknown JSON schema type {t!r}")

    # -- combinators

    def _gen_union(self, schema: Mapping[str, Any], key: str, nest: int, path: tuple[str, ...], shallow: bool) -> Any:
        branches: list[Any] = list(schema[key])
        if not branches:
            raise ValueError(f"{key} must not be empty")
        rest = _without(schema, key)
        if shallow:
            order = sorted(range(len(branches)), key=lambda i: _branch_cost(branches[i]))
        else:
            order = list(range(len(branches)))
            self.rng.shuffle(order)
        error: ValueError | None = None
        draws = _ONE_OF_DRAWS if key == "oneOf" else 1
        for i in order:
            branch = branches[i]
            if branch is False:
                continue
            try:
                candidate = rest if branch is True else merge_schemas(rest, branch)
            except ValueError as exc:
                error = exc
                continue
            for _ in range(draws):
                try:
                    value = self._gen(candidate, nest, path)
                except ValueError as exc:
                    error = exc
                    break
                if key != "oneOf" or sum(1 for b in branches if is_valid(b, value, self.root)) == 1:
                    return value
        raise error or ValueError(f"no {key} branch gave a value matching exactly one branch")

    # -- objects

    def _gen_object(self, schema: Mapping[str, Any], nest: int, path: tuple[str, ...], shallow: bool) -> Any:
        props: Mapping[str, Any] = schema.get("properties", {})
        out = {name: self._property(schema, name, nest, path) for name in schema.get("required", ())}
        optional = [k for k in props if k not in out]
        if not shallow:
            max_p = schema.get("maxProperties", math.inf)
            for name in optional:
                if len(out) >= max_p:
                    break
                if self.rng.random() < 0.5:
                    try:
                        out[name] = self._property(schema, name, nest, path)
                    except ValueError:
                        continue  # an optional property may stay absent
        dependent: Mapping[str, Sequence[str]] = schema.get("dependentRequired", {})
        for name in list(out):
            for dep in dependent.get(name, ()):
                if dep not in out:
                    out[dep] = self._property(schema, dep, nest, path)
        self._fill_to_minimum(schema, out, optional, nest, path, shallow)
        ordered = {k: out[k] for k in props if k in out}
        ordered.update((k, v) for k, v in out.items() if k not in ordered)
        return ordered

    def _property(self, schema: Mapping[str, Any], name: str, nest: int, path: tuple[str, ...]) -> Any:
        props: Mapping[str, Any] = schema.get("properties", {})
        sub = props[name] if name in props else _extra_schema(schema)
        return self._gen(sub, nest + 1, path)

    def _fill_to_minimum(
        self,
        schema: Mapping[str, Any],
        out: dict[str, Any],
        optional: list[str],
        nest: int,
        path: tuple[str, ...],
        shallow: bool,
    ) -> None:
        """Meet ``minProperties`` from optional properties, then extra keys; give maps a few entries."""
        min_p: int = schema.get("minProperties", 0)
        for name in optional:
            if len(out) >= min_p:
                break
            if name not in out:
                out[name] = self._property(schema, name, nest, path)
        extra = schema.get("additionalProperties", True)
        want = min_p
        if not schema.get("properties") and isinstance(extra, Mapping) and not shallow:
            want = self.rng.randint(min_p, min_p + 2)
        want = int(min(want, schema.get("maxProperties", math.inf)))
        tries = 0
        while len(out) < want and extra is not False and tries < want * 5 + 5:
            tries += 1
            key = self._property_name(schema, nest, path)
            if key not in out and key not in schema.get("properties", {}):
                out[key] = self._gen(_extra_schema(schema), nest + 1, path)
        if len(out) < min_p:
            raise ValueError(f"cannot give an object the {min_p} properties minProperties asks for")

    def _property_name(self, schema: Mapping[str, Any], nest: int, path: tuple[str, ...]) -> str:
        names = schema.get("propertyNames")
        if isinstance(names, Mapping):
            key = self._gen({**names, "type": "string"}, nest + 1, path)
            return str(key)
        return self.rng.choice(WORDS) + ("" if self.rng.random() < 0.5 else f"_{self.rng.randint(1, 99)}")

    # -- arrays

    def _gen_array(self, schema: Mapping[str, Any], nest: int, path: tuple[str, ...], shallow: bool) -> Any:
        prefix: list[Any] = list(schema.get("prefixItems", []))
        items: Any = schema.get("items", True)
        min_i: int = schema.get("minItems", 0)
        max_i: int | None = schema.get("maxItems")
        if items is False:
            max_i = len(prefix) if max_i is None else min(max_i, len(prefix))
        if max_i is not None and max_i < min_i:
            raise ValueError(f"array needs at least {min_i} items but at most {max_i}")
        hi = min_i + 3 if max_i is None else min(max_i, min_i + 3)
        n = min_i if shallow else self.rng.randint(min_i, hi)
        contains = schema.get("contains")
        if contains is not None and n == 0:
            if max_i == 0:
                raise ValueError("array must contain an item but may have none")
            n = 1
        unique = bool(schema.get("uniqueItems"))
        out: list[Any] = []
        seen: set[str] = set()
        for i in range(n):
            sub = prefix[i] if i < len(prefix) else items
            if contains is not None and i == min(len(prefix), n - 1) and i >= len(prefix):
                sub = contains if sub is True else {"allOf": [sub, contains]}
            for _ in range(12 if unique else 1):
                item = self._gen(sub, nest + 1, path)
                key = json_key(item)
                if not unique or key not in seen:
                    seen.add(key)
                    out.append(item)
                    break
            else:
                if len(out) >= min_i:
                    break
                raise ValueError("cannot find enough distinct items for uniqueItems")
        return out


def _types(schema: Mapping[str, Any]) -> list[str]:
    """The declared types, else the one the schema's keywords imply (a string when none do)."""
    declared = schema.get("type")
    if declared is not None:
        types = [declared] if isinstance(declared, str) else list(declared)
        if not types:
            raise ValueError("schema has an empty type list")
        return types
    if any(k in schema for k in ("properties", "required", "additionalProperties", "minProperties")):
        return ["object"]
    if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems", "uniqueItems")):
        return ["array"]
    if any(k in schema for k in ("minLength", "maxLength", "pattern", "format")):
        return ["string"]
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        return ["number"]
    return ["string"]


def _branch_cost(branch: Any) -> int:
    """Cheapest-first order for unions at depth: null, then branches that do not recurse."""
    if isinstance(branch, Mapping):
        if branch.get("type") == "null":
            return 0
        return 2 if "$ref" in json.dumps(branch, default=str) else 1
    return 1


def _without(schema: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The schema minus one keyword: the constraints a chosen enum value or union branch must also meet."""
    return {k: v for k, v in schema.items() if k != key}


def _extra_schema(schema: Mapping[str, Any]) -> Any:
    """The schema for keys outside ``properties``: ``additionalProperties`` if a schema, else anything."""
    extra = schema.get("additionalProperties", True)
    return extra if isinstance(extra, Mapping) else True


def _copy(value: Any) -> Any:
    """A fresh copy of a ``const``/``enum`` value, so callers cannot mutate the schema through it."""
    return copy.deepcopy(value) if isinstance(value, (dict, list)) else value
