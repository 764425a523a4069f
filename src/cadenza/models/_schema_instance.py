"""Build a value that fits a JSON schema, so the offline simulated model can answer anything.

Structured output and tool arguments must pass the runtime's validation even when
no real model is involved; this makes seeded, readable instances of the JSON
schema subset pydantic emits. Plan schemas (``"x-cadenza-plan": true``) get a
coherent plan instead of noise, so simulated supervisors produce runnable DAGs.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any
from urllib.parse import unquote

__all__ = ("generate_instance",)

WORDS = (
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit",
    "sed", "eiusmod", "tempor", "incididunt", "labore", "dolore", "magna", "aliqua",
    "enim", "minim", "veniam", "quis", "nostrud", "ullamco", "laboris", "nisi",
    "aliquip", "commodo", "consequat", "aute", "irure", "velit", "esse", "cillum",
)  # fmt: skip

_RECURSION_LIMIT = 1
"""How often one ``$ref`` may recur on a path before generation turns minimal."""
_SHALLOW_NESTING = 8
"""Nesting depth past which generation turns minimal whatever the refs."""
_MAX_NESTING = 64
"""Nesting depth past which a schema is taken to have no finite instance."""
_ATTEMPTS = 8
"""Whole-value retries when a generated value misses a cross-cutting constraint."""
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly", "$comment"}
)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_POOL = _LETTERS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.,:;!?/@#"
_DIGITS = "0123456789"


def generate_instance(schema: Mapping[str, Any], rng: random.Random, *, goal: str = "") -> Any:
    """Return a value valid against ``schema``, chosen deterministically from ``rng``.

    Args:
        schema: a JSON schema (draft 2020-12 subset, as pydantic emits it).
        rng: source of every choice; the same state gives the same value.
        goal: for plan schemas, the task the plan's instructions refer to.

    Raises:
        ValueError: the schema cannot be satisfied by this generator (for example an
            unsupported ``pattern``); the message says which part.
    """
    if schema.get("x-cadenza-plan") is True:
        plan = _coherent_plan(schema, rng, goal)
        if plan is not None:
            return plan
    gen = _Generator(schema, rng)
    for _ in range(_ATTEMPTS):
        value = gen.value(schema)
        if _valid(schema, value, schema):
            return value
    raise ValueError("could not generate a value satisfying every constraint of the schema")


# --------------------------------------------------------------------------- refs and merging


def _resolve_ref(root: Any, ref: str) -> Any:
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


def _as_types(value: Any) -> set[str]:
    return {value} if isinstance(value, str) else set(value)


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Combine two schemas a value must satisfy both of (best effort; the final check catches gaps)."""
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
    at, bt = _as_types(a), _as_types(b)
    both = at & bt
    if ("integer" in at and "number" in bt) or ("number" in at and "integer" in bt):
        both.add("integer")
    if not both:
        raise ValueError(f"schemas require incompatible types {sorted(at)} and {sorted(bt)}")
    return sorted(both)


def _merge_enums(a: list[Any], b: list[Any]) -> list[Any]:
    common = [x for x in a if any(_json_eq(x, y) for y in b)]
    if not common:
        raise ValueError("schemas allow no common enum value")
    return common


def _merge_consts(a: Any, b: Any) -> Any:
    if not _json_eq(a, b):
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


# --------------------------------------------------------------------------- generation


class _Generator:
    """Walks a schema, making seeded choices; holds the root so refs resolve."""

    def __init__(self, root: Mapping[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    # -- entry points

    def value(self, schema: Any) -> Any:
        return self._gen(schema, 0, ())

    def normalize(self, schema: Any, path: tuple[str, ...] = ()) -> tuple[Any, tuple[str, ...]]:
        """Inline ``$ref`` and ``allOf`` so the rest of the walk sees plain keywords."""
        while isinstance(schema, Mapping) and ("$ref" in schema or "allOf" in schema):
            if "$ref" in schema:
                ref = schema["$ref"]
                target = _resolve_ref(self.root, ref)
                rest = {k: v for k, v in schema.items() if k != "$ref" and k not in _ANNOTATIONS}
                if target is False:
                    raise ValueError(f"$ref {ref!r} points to a schema nothing satisfies")
                target = {} if target is True else target
                schema = _merge(target, rest) if rest else target
                path = (*path, ref)
            else:
                branches = schema["allOf"]
                merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
                for branch in branches:
                    if branch is False:
                        raise ValueError("allOf contains a schema nothing satisfies")
                    if branch is True:
                        continue
                    resolved, path = self.normalize(branch, path)
                    merged = _merge(merged, resolved)
                schema = merged
        return schema, path

    # -- dispatch

    def _gen(self, schema: Any, nest: int, path: tuple[str, ...]) -> Any:
        if nest > _MAX_NESTING:
            raise ValueError("schema nests too deeply to have a finite instance")
        if schema is True or schema is None:
            return self._words(1, 2)
        if not isinstance(schema, Mapping):
            raise ValueError("schema `false` has no instances" if schema is False else f"not a schema: {schema!r}")
        schema, path = self.normalize(schema, path)
        shallow = nest >= _SHALLOW_NESTING or any(path.count(r) > _RECURSION_LIMIT for r in set(path))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self._gen_union(schema, key, nest, path, shallow)
        if "const" in schema:
            return _copy(schema["const"])
        if "enum" in schema:
            return self._gen_enum(schema, shallow)
        types = self._types(schema)
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
        rest = {k: v for k, v in schema.items() if k != "enum"}
        options = [v for v in schema["enum"] if _valid(rest, v, self.root)]
        if not options:
            raise ValueError(f"no value of enum {schema['enum']!r} fits the other constraints")
        return _copy(options[0] if shallow else self.rng.choice(options))

    def _types(self, schema: Mapping[str, Any]) -> list[str]:
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

    def _order_types(self, types: list[str], shallow: bool) -> list[str]:
        if shallow:
            cost = {"null": 0, "boolean": 1, "integer": 1, "number": 1, "string": 2, "array": 3, "object": 4}
            return sorted(types, key=lambda t: cost.get(t, 5))
        order = list(types)
        self.rng.shuffle(order)
        return order

    def _gen_type(self, t: str, schema: Mapping[str, Any], nest: int, path: tuple[str, ...], shallow: bool) -> Any:
        if t == "object":
            return self._gen_object(schema, nest, path, shallow)
        if t == "array":
            return self._gen_array(schema, nest, path, shallow)
        if t == "string":
            return self._gen_string(schema)
        if t == "integer":
            return self._gen_integer(schema)
        if t == "number":
            return self._gen_number(schema)
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
        rest = {k: v for k, v in schema.items() if k != key}
        if shallow:
            order = sorted(range(len(branches)), key=lambda i: _branch_cost(branches[i]))
        else:
            order = list(range(len(branches)))
            self.rng.shuffle(order)
        error: ValueError | None = None
        for i in order:
            branch = branches[i]
            if branch is False:
                continue
            try:
                candidate = rest if branch is True else _merge(rest, branch)
                value = self._gen(candidate, nest, path)
            except ValueError as exc:
                error = exc
                continue
            if key == "oneOf" and sum(1 for b in branches if _valid(b, value, self.root)) != 1:
                continue
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
        extra = schema.get("additionalProperties", True)
        sub = props[name] if name in props else (extra if isinstance(extra, Mapping) else True)
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
                out[key] = self._gen(extra if isinstance(extra, Mapping) else True, nest + 1, path)
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
                key = _canonical(item)
                if not unique or key not in seen:
                    seen.add(key)
                    out.append(item)
                    break
            else:
                if len(out) >= min_i:
                    break
                raise ValueError("cannot find enough distinct items for uniqueItems")
        return out

    # -- strings

    def _gen_string(self, schema: Mapping[str, Any]) -> str:
        min_l: int = schema.get("minLength", 0)
        max_l: int | None = schema.get("maxLength")
        if max_l is not None and max_l < min_l:
            raise ValueError(f"string needs at least {min_l} characters but at most {max_l}")
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            return self._from_pattern(pattern, min_l, max_l)
        fmt = schema.get("format")
        maker = _FORMATS.get(fmt) if isinstance(fmt, str) else None
        if maker is not None:
            text = maker(self.rng)
            if min_l <= len(text) and (max_l is None or len(text) <= max_l):
                return text
            raise ValueError(f"no {fmt} string fits length {min_l}..{max_l}")
        if max_l == 0:
            return ""
        text = self._words(1, 3)
        while len(text) < min_l:
            text += " " + self.rng.choice(WORDS)
        if max_l is not None and len(text) > max_l:
            text = text[:max_l]
            if text.endswith(" "):
                text = text[:-1] + "a"
        return text

    def _words(self, lo: int, hi: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(lo, hi)))

    def _from_pattern(self, pattern: str, min_l: int, max_l: int | None) -> str:
        try:
            compiled = re.compile(pattern)
            tree = _RegexParser(pattern).parse()
        except (re.error, _Unsupported) as exc:
            raise ValueError(f"cannot generate a string matching pattern {pattern!r}: {exc}") from None
        spans = [max(3, min_l), 3, 1, 0, max(3, min_l) * 2]
        for attempt in range(20):
            text = _emit(tree, self.rng, spans[attempt % len(spans)])
            if len(text) < min_l or (max_l is not None and len(text) > max_l):
                continue
            if compiled.search(text):
                return text
        raise ValueError(f"cannot generate a string matching pattern {pattern!r} with length {min_l}..{max_l}")

    # -- numbers

    def _gen_integer(self, schema: Mapping[str, Any]) -> int:
        lo, hi = _int_bounds(schema)
        step = schema.get("multipleOf")
        if step is None:
            return self.rng.randint(lo, hi)
        frac = Fraction(str(step)) if isinstance(step, float) else Fraction(step)
        if frac <= 0:
            raise ValueError("multipleOf must be positive")
        unit = frac.numerator  # smallest positive integer that is a multiple of p/q (q | k*p)
        k_lo, k_hi = -((-lo) // unit), hi // unit
        if k_lo > k_hi:
            raise ValueError(f"no multiple of {step} lies between {lo} and {hi}")
        return self.rng.randint(k_lo, k_hi) * unit

    def _gen_number(self, schema: Mapping[str, Any]) -> float | int:
        lo, hi, lo_open, hi_open = _float_bounds(schema)

        def inside(v: float) -> bool:
            return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

        step = schema.get("multipleOf")
        if step is not None:
            if step <= 0:
                raise ValueError("multipleOf must be positive")
            k_lo, k_hi = math.ceil(lo / step), math.floor(hi / step)
            for _ in range(32 if k_lo <= k_hi else 0):
                v: float = self.rng.randint(k_lo, k_hi) * step
                if inside(v) and _multiple_ok(v, step):
                    return v
            if inside(0) and _multiple_ok(0, step):
                return 0
            raise ValueError(f"no multiple of {step} lies in the allowed range")
        for _ in range(8):
            v = round(self.rng.uniform(lo, hi), 2)
            if inside(v):
                return v
            v = self.rng.uniform(lo, hi)
            if inside(v):
                return v
        mid = lo / 2 + hi / 2
        if inside(mid):
            return mid
        raise ValueError(f"no number lies in the allowed range ({lo}, {hi})")


def _branch_cost(branch: Any) -> int:
    """Cheapest-first order for unions at depth: null, then branches that do not recurse."""
    if isinstance(branch, Mapping):
        if branch.get("type") == "null":
            return 0
        return 2 if "$ref" in json.dumps(branch, default=str) else 1
    return 1


def _int_bounds(schema: Mapping[str, Any]) -> tuple[int, int]:
    lo: float = -math.inf
    hi: float = math.inf
    if isinstance(schema.get("minimum"), (int, float)):
        lo = math.ceil(schema["minimum"])
    xmin = schema.get("exclusiveMinimum")
    if isinstance(xmin, (int, float)) and not isinstance(xmin, bool):
        lo = max(lo, math.floor(xmin) + 1)
    if isinstance(schema.get("maximum"), (int, float)):
        hi = math.floor(schema["maximum"])
    xmax = schema.get("exclusiveMaximum")
    if isinstance(xmax, (int, float)) and not isinstance(xmax, bool):
        hi = min(hi, math.ceil(xmax) - 1)
    if lo == -math.inf and hi == math.inf:
        lo, hi = 0, 100
    elif lo == -math.inf:
        lo = hi - 100
    elif hi == math.inf:
        hi = lo + 100
    if lo > hi:
        raise ValueError(f"no integer lies between {lo} and {hi}")
    return int(lo), int(hi)


def _float_bounds(schema: Mapping[str, Any]) -> tuple[float, float, bool, bool]:
    lo, hi, lo_open, hi_open = -math.inf, math.inf, False, False
    if isinstance(schema.get("minimum"), (int, float)):
        lo = schema["minimum"]
    xmin = schema.get("exclusiveMinimum")
    if isinstance(xmin, (int, float)) and not isinstance(xmin, bool) and xmin >= lo:
        lo, lo_open = xmin, True
    if isinstance(schema.get("maximum"), (int, float)):
        hi = schema["maximum"]
    xmax = schema.get("exclusiveMaximum")
    if isinstance(xmax, (int, float)) and not isinstance(xmax, bool) and xmax <= hi:
        hi, hi_open = xmax, True
    if lo == -math.inf and hi == math.inf:
        lo, hi = 0.0, 100.0
    elif lo == -math.inf:
        lo = hi - 100.0
    elif hi == math.inf:
        hi = lo + 100.0
    if lo > hi or (lo == hi and (lo_open or hi_open)):
        raise ValueError(f"no number lies between {lo} and {hi}")
    return float(lo), float(hi), lo_open, hi_open


def _multiple_ok(value: float, step: float) -> bool:
    """Accept only multiples both jsonschema (exact quotient) and pydantic (remainder) agree on."""
    quotient = value / step
    if int(quotient) != quotient:
        return False
    rem = value % step
    tol = abs(step) / 1e9
    return abs(rem) <= tol or abs(rem - step) <= tol


def _copy(value: Any) -> Any:
    return copy.deepcopy(value) if isinstance(value, (dict, list)) else value


def _canonical(value: Any) -> str:
    """Key for JSON equality (1 == 1.0, true != 1) used by uniqueItems."""

    def norm(v: Any) -> Any:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, Mapping):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        return v

    return json.dumps(norm(value), sort_keys=True, default=str)


# --------------------------------------------------------------------------- formats


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2020, 2026):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


def _word(rng: random.Random) -> str:
    return rng.choice(WORDS)


_FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date-time": lambda r: f"{_date(r)}T{_time(r)}",
    "date": _date,
    "time": _time,
    "email": lambda r: f"{_word(r)}.{_word(r)}@example.com",
    "idn-email": lambda r: f"{_word(r)}@example.com",
    "uri": lambda r: f"https://example.com/{_word(r)}/{_word(r)}",
    "iri": lambda r: f"https://example.com/{_word(r)}",
    "uri-reference": lambda r: f"https://example.com/{_word(r)}",
    "iri-reference": lambda r: f"https://example.com/{_word(r)}",
    "uri-template": lambda r: f"https://example.com/{_word(r)}/{{id}}",
    "uuid": lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4)),
    "ipv4": lambda r: f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
    "ipv6": lambda r: f"fd00::{r.getrandbits(16):x}:{r.getrandbits(16):x}",
    "hostname": lambda r: f"{_word(r)}.example.com",
    "idn-hostname": lambda r: f"{_word(r)}.example.com",
    "duration": lambda r: f"PT{r.randint(1, 59)}M",
    "json-pointer": lambda r: f"/{_word(r)}",
    "relative-json-pointer": lambda r: f"{r.randint(0, 3)}",
    "regex": lambda r: f"^{_word(r)}$",
}


# --------------------------------------------------------------------------- regex patterns


class _Unsupported(Exception):
    """A regex construct the pattern generator cannot produce strings for."""


# Node shapes: ("alt", [seq, ...]); seq = [(atom, min, max|None), ...];
# atom = ("chars", str) | ("neg", str) | ("group", alt) | ("empty",)
_Node = tuple[Any, ...]

_CLASS_ESCAPES = {
    "d": _DIGITS,
    "w": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" + _DIGITS + "_",
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


# --------------------------------------------------------------------------- validation


def _json_eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_json_eq(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_json_eq(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _is_type(value: Any, t: str) -> bool:
    if t == "null":
        return value is None
    if t == "boolean":
        return isinstance(value, bool)
    if t == "integer":
        return not isinstance(value, bool) and (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        )
    if t == "number":
        return not isinstance(value, bool) and isinstance(value, (int, float))
    if t == "string":
        return isinstance(value, str)
    if t == "array":
        return isinstance(value, list)
    if t == "object":
        return isinstance(value, dict)
    return False


def _valid(schema: Any, value: Any, root: Any) -> bool:
    """Check ``value`` against the schema subset we generate for (formats are annotations)."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, Mapping):
        return True
    if not (_valid_shape(schema, value, root) and _valid_combinators(schema, value, root)):
        return False
    if isinstance(value, str):
        return _valid_string(schema, value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _valid_number(schema, value)
    if isinstance(value, list):
        return _valid_array(schema, value, root)
    if isinstance(value, dict):
        return _valid_object(schema, value, root)
    return True


def _valid_shape(schema: Mapping[str, Any], value: Any, root: Any) -> bool:
    if "$ref" in schema and not _valid(_resolve_ref(root, schema["$ref"]), value, root):
        return False
    if "type" in schema and not any(_is_type(value, t) for t in _as_types(schema["type"])):
        return False
    if "const" in schema and not _json_eq(schema["const"], value):
        return False
    return "enum" not in schema or any(_json_eq(e, value) for e in schema["enum"])


def _valid_combinators(schema: Mapping[str, Any], value: Any, root: Any) -> bool:
    if "allOf" in schema and not all(_valid(s, value, root) for s in schema["allOf"]):
        return False
    if "anyOf" in schema and not any(_valid(s, value, root) for s in schema["anyOf"]):
        return False
    if "oneOf" in schema and sum(1 for s in schema["oneOf"] if _valid(s, value, root)) != 1:
        return False
    if "not" in schema and _valid(schema["not"], value, root):
        return False
    if "if" in schema:
        branch = schema.get("then", True) if _valid(schema["if"], value, root) else schema.get("else", True)
        return _valid(branch, value, root)
    return True


def _valid_string(schema: Mapping[str, Any], value: str) -> bool:
    if len(value) < schema.get("minLength", 0):
        return False
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return False
    pattern = schema.get("pattern")
    return not isinstance(pattern, str) or re.search(pattern, value) is not None


def _valid_number(schema: Mapping[str, Any], value: float) -> bool:
    if "minimum" in schema and value < schema["minimum"]:
        return False
    if "maximum" in schema and value > schema["maximum"]:
        return False
    xmin, xmax = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(xmin, (int, float)) and not isinstance(xmin, bool) and value <= xmin:
        return False
    if isinstance(xmax, (int, float)) and not isinstance(xmax, bool) and value >= xmax:
        return False
    step = schema.get("multipleOf")
    if step is not None:
        if isinstance(step, int) and isinstance(value, int):
            return value % step == 0
        return _multiple_ok(value, step)
    return True


def _valid_array(schema: Mapping[str, Any], value: list[Any], root: Any) -> bool:
    if len(value) < schema.get("minItems", 0):
        return False
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return False
    prefix = schema.get("prefixItems", [])
    for item, sub in zip(value, prefix, strict=False):
        if not _valid(sub, item, root):
            return False
    items = schema.get("items", True)
    if not all(_valid(items, item, root) for item in value[len(prefix) :]):
        return False
    if schema.get("uniqueItems") and len({_canonical(v) for v in value}) != len(value):
        return False
    if "contains" in schema:
        hits = sum(1 for v in value if _valid(schema["contains"], v, root))
        if hits < schema.get("minContains", 1) or hits > schema.get("maxContains", math.inf):
            return False
    return True


def _valid_object(schema: Mapping[str, Any], value: dict[str, Any], root: Any) -> bool:
    if any(name not in value for name in schema.get("required", ())):
        return False
    if len(value) < schema.get("minProperties", 0) or len(value) > schema.get("maxProperties", math.inf):
        return False
    names = schema.get("propertyNames")
    if names is not None and not all(_valid(names, key, root) for key in value):
        return False
    if not all(_valid_entry(schema, key, item, root) for key, item in value.items()):
        return False
    dependent: Mapping[str, Sequence[str]] = schema.get("dependentRequired", {})
    return all(d in value for name, deps in dependent.items() if name in value for d in deps)


def _valid_entry(schema: Mapping[str, Any], key: str, item: Any, root: Any) -> bool:
    """One property against ``properties``, ``patternProperties``, else ``additionalProperties``."""
    props: Mapping[str, Any] = schema.get("properties", {})
    matched = key in props
    if matched and not _valid(props[key], item, root):
        return False
    for pattern, sub in schema.get("patternProperties", {}).items():
        if re.search(pattern, key):
            matched = True
            if not _valid(sub, item, root):
                return False
    return matched or _valid(schema.get("additionalProperties", True), item, root)


# --------------------------------------------------------------------------- plans


def _coherent_plan(schema: Mapping[str, Any], rng: random.Random, goal: str) -> dict[str, Any] | None:
    """A fan-out/fan-in plan over the workers the schema allows, or ``None`` if it cannot fit."""
    gen = _Generator(schema, rng)
    try:
        root = _plain(gen, schema)
        props: Mapping[str, Any] = root.get("properties", {})
        steps_schema = _plain(gen, props.get("steps"))
        item_schema = _plain(gen, steps_schema.get("items"))
        item_props: Mapping[str, Any] = item_schema.get("properties", {})
        item_required = set(item_schema.get("required", ()))
        workers = _agent_names(gen, item_props.get("agent", {})) or ["worker"]
        max_steps = steps_schema.get("maxItems")
        if isinstance(max_steps, int):
            workers = workers[:max_steps]
        min_steps = max(1, steps_schema.get("minItems", 1))
        names = [workers[i % len(workers)] for i in range(max(min_steps, len(workers)))]
        max_instruction = _plain(gen, item_props.get("instruction")).get("maxLength")
        steps: list[dict[str, Any]] = []
        for index, worker in enumerate(names, start=1):
            instruction = f"{goal} (part for {worker})".strip()
            if isinstance(max_instruction, int):
                instruction = instruction[:max_instruction]
            depends = [f"s{i}" for i in range(1, index)] if len(names) >= 3 and index == len(names) else []
            known = {"id": f"s{index}", "agent": worker, "instruction": instruction, "depends_on": depends}
            step: dict[str, Any] = {}
            for key, sub in item_props.items():
                if key in known:
                    step[key] = known[key]
                elif key in item_required:
                    step[key] = gen.value(sub)
            steps.append(step)
        plan: dict[str, Any] = {}
        required = set(root.get("required", ()))
        for key, sub in props.items():
            if key == "steps":
                plan[key] = steps
            elif key == "new_agents" and _plain(gen, sub).get("minItems", 0) == 0:
                plan[key] = []
            elif key in required:
                plan[key] = gen.value(sub)
    except ValueError:
        return None
    return plan if _valid(schema, plan, schema) else None


def _plain(gen: _Generator, schema: Any) -> Mapping[str, Any]:
    """The schema with refs inlined, or an empty one when it is absent or boolean."""
    resolved = gen.normalize(schema)[0] if isinstance(schema, Mapping) else None
    return resolved if isinstance(resolved, Mapping) else {}


def _agent_names(gen: _Generator, schema: Any) -> list[str]:
    """Worker names from an ``enum``/``const`` agent field, looking through refs and unions."""
    resolved = _plain(gen, schema)
    if "enum" in resolved:
        return [v for v in resolved["enum"] if isinstance(v, str)]
    if isinstance(resolved.get("const"), str):
        return [resolved["const"]]
    names: list[str] = []
    for key in ("anyOf", "oneOf"):
        for branch in resolved.get(key, ()):
            names.extend(n for n in _agent_names(gen, branch) if n not in names)
    return names
