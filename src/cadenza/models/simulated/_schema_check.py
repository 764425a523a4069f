"""A small JSON schema validator, so the generator can confirm its own values without a dependency.

Generation is best effort where constraints interact (``oneOf``, ``not``, merged
patterns); checking the finished value and retrying is simpler than proving each
choice right. Covers the keywords the generator reads; ``format`` is an annotation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._json_values import is_number, json_equal, json_key
from ._schema_merge import as_types, resolve_ref

__all__ = ("is_multiple_of", "is_valid")


def is_valid(schema: Any, value: Any, root: Any) -> bool:
    """Whether ``value`` satisfies ``schema``; ``root`` is the document its ``$ref`` values point into."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, Mapping):
        return True
    if not (_valid_shape(schema, value, root) and _valid_combinators(schema, value, root)):
        return False
    if isinstance(value, str):
        return _valid_string(schema, value)
    if is_number(value):
        return _valid_number(schema, value)
    if isinstance(value, list):
        return _valid_array(schema, value, root)
    if isinstance(value, dict):
        return _valid_object(schema, value, root)
    return True


def is_multiple_of(value: float, step: float) -> bool:
    """Accept only multiples both jsonschema (exact quotient) and pydantic (remainder) agree on."""
    quotient = value / step
    if int(quotient) != quotient:
        return False
    rem = value % step
    tol = abs(step) / 1e9
    return abs(rem) <= tol or abs(rem - step) <= tol


def _is_type(value: Any, t: str) -> bool:
    if t == "null":
        return value is None
    if t == "boolean":
        return isinstance(value, bool)
    if t == "integer":
        return is_number(value) and (isinstance(value, int) or value.is_integer())
    if t == "number":
        return is_number(value)
    if t == "string":
        return isinstance(value, str)
    if t == "array":
        return isinstance(value, list)
    if t == "object":
        return isinstance(value, dict)
    return False


def _valid_shape(schema: Mapping[str, Any], value: Any, root: Any) -> bool:
    if "$ref" in schema and not is_valid(resolve_ref(root, schema["$ref"]), value, root):
        return False
    if "type" in schema and not any(_is_type(value, t) for t in as_types(schema["type"])):
        return False
    if "const" in schema and not json_equal(schema["const"], value):
        return False
    return "enum" not in schema or any(json_equal(e, value) for e in schema["enum"])


def _valid_combinators(schema: Mapping[str, Any], value: Any, root: Any) -> bool:
    if "allOf" in schema and not all(is_valid(s, value, root) for s in schema["allOf"]):
        return False
    if "anyOf" in schema and not any(is_valid(s, value, root) for s in schema["anyOf"]):
        return False
    if "oneOf" in schema and sum(1 for s in schema["oneOf"] if is_valid(s, value, root)) != 1:
        return False
    if "not" in schema and is_valid(schema["not"], value, root):
        return False
    if "if" in schema:
        branch = schema.get("then", True) if is_valid(schema["if"], value, root) else schema.get("else", True)
        return is_valid(branch, value, root)
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
    if is_number(xmin) and value <= xmin:
        return False
    if is_number(xmax) and value >= xmax:
        return False
    step = schema.get("multipleOf")
    if step is not None:
        if isinstance(step, int) and isinstance(value, int):
            return value % step == 0
        return is_multiple_of(value, step)
    return True


def _valid_array(schema: Mapping[str, Any], value: list[Any], root: Any) -> bool:
    if len(value) < schema.get("minItems", 0):
        return False
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return False
    prefix = schema.get("prefixItems", [])
    for item, sub in zip(value, prefix, strict=False):
        if not is_valid(sub, item, root):
            return False
    items = schema.get("items", True)
    if not all(is_valid(items, item, root) for item in value[len(prefix) :]):
        return False
    if schema.get("uniqueItems") and len({json_key(v) for v in value}) != len(value):
        return False
    if "contains" in schema:
        hits = sum(1 for v in value if is_valid(schema["contains"], v, root))
        if hits < schema.get("minContains", 1) or hits > schema.get("maxContains", math.inf):
            return False
    return True


def _valid_object(schema: Mapping[str, Any], value: dict[str, Any], root: Any) -> bool:
    if any(name not in value for name in schema.get("required", ())):
        return False
    if len(value) < schema.get("minProperties", 0) or len(value) > schema.get("maxProperties", math.inf):
        return False
    names = schema.get("propertyNames")
    if names is not None and not all(is_valid(names, key, root) for key in value):
        return False
    if not all(_valid_entry(schema, key, item, root) for key, item in value.items()):
        return False
    dependent: Mapping[str, Sequence[str]] = schema.get("dependentRequired", {})
    return all(d in value for name, deps in dependent.items() if name in value for d in deps)


def _valid_entry(schema: Mapping[str, Any], key: str, item: Any, root: Any) -> bool:
    """One property against ``properties``, ``patternProperties``, else ``additionalProperties``."""
    props: Mapping[str, Any] = schema.get("properties", {})
    matched = key in props
    if matched and not is_valid(props[key], item, root):
        return False
    for pattern, sub in schema.get("patternProperties", {}).items():
        if re.search(pattern, key):
            matched = True
            if not is_valid(sub, item, root):
                return False
    return matched or is_valid(schema.get("additionalProperties", True), item, root)
