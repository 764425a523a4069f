"""JSON's notion of equal values, which Python's ``==`` gets wrong for booleans.

JSON schema says ``1`` and ``1.0`` are the same value but ``true`` and ``1`` are not;
Python says both pairs are equal. Generation and validation both need JSON's answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeGuard

__all__ = ("is_number", "json_equal", "json_key")


def is_number(value: object) -> TypeGuard[int | float]:
    """True for JSON numbers: ints and floats, but not booleans (which Python counts as ints)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_equal(a: Any, b: Any) -> bool:
    """Compare two values as JSON does, for ``const``, ``enum`` and merged enums."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def json_key(value: Any) -> str:
    """A string equal for JSON-equal values, so ``uniqueItems`` can use a set."""
    return json.dumps(_normalised(value), sort_keys=True, default=str)


def _normalised(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _normalised(x) for k, x in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalised(x) for x in value]
    return value
