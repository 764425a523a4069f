"""Seeded integers and numbers inside a schema's bounds and ``multipleOf``.

Unbounded sides are capped 100 away from the other bound so values stay small and
readable; multiples are checked the way both jsonschema and pydantic accept them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from ._json_values import is_number
from ._schema_check import is_multiple_of

__all__ = ("sample_integer", "sample_number")

_SPAN = 100
"""Distance of an unbounded side from the bounded one (or the range 0..100 when neither is bounded)."""


def sample_integer(schema: Mapping[str, Any], rng: random.Random) -> int:
    """An integer within the bounds, a multiple of ``multipleOf`` when given.

    Raises:
        ValueError: no integer (or no multiple) lies within the bounds.
    """
    lo, hi = _int_bounds(schema)
    step = schema.get("multipleOf")
    if step is None:
        return rng.randint(lo, hi)
    frac = Fraction(str(step)) if isinstance(step, float) else Fraction(step)
    if frac <= 0:
        raise ValueError("multipleOf must be positive")
    unit = frac.numerator  # smallest positive integer that is a multiple of p/q (q | k*p)
    k_lo, k_hi = -((-lo) // unit), hi // unit
    if k_lo > k_hi:
        raise ValueError(f"no multiple of {step} lies between {lo} and {hi}")
    return rng.randint(k_lo, k_hi) * unit


def sample_number(schema: Mapping[str, Any], rng: random.Random) -> float | int:
    """A number within the bounds (two decimals when that fits), a multiple of ``multipleOf`` when given.

    Raises:
        ValueError: no number (or no multiple) lies within the bounds.
    """
    lo, hi, lo_open, hi_open = _float_bounds(schema)

    def inside(v: float) -> bool:
        return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

    step = schema.get("multipleOf")
    if step is not None:
        if step <= 0:
            raise ValueError("multipleOf must be positive")
        k_lo, k_hi = math.ceil(lo / step), math.floor(hi / step)
        for _ in range(32 if k_lo <= k_hi else 0):
            v: float = rng.randint(k_lo, k_hi) * step
            if inside(v) and is_multiple_of(v, step):
                return v
        if inside(0) and is_multiple_of(0, step):
            return 0
        raise ValueError(f"no multiple of {step} lies in the allowed range")
    for _ in range(8):
        v = round(rng.uniform(lo, hi), 2)
        if inside(v):
            return v
        v = rng.uniform(lo, hi)
        if inside(v):
            return v
    mid = lo / 2 + hi / 2
    if inside(mid):
        return mid
    raise ValueError(f"no number lies in the allowed range ({lo}, {hi})")


def _declared_bounds(schema: Mapping[str, Any]) -> tuple[float, float, bool, bool]:
    """``(lo, hi, lo_open, hi_open)`` from the tighter of the inclusive and exclusive bounds; infinite if absent."""
    lo, hi, lo_open, hi_open = -math.inf, math.inf, False, False
    if isinstance(schema.get("minimum"), (int, float)):
        lo = schema["minimum"]
    xmin = schema.get("exclusiveMinimum")
    if is_number(xmin) and xmin >= lo:
        lo, lo_open = xmin, True
    if isinstance(schema.get("maximum"), (int, float)):
        hi = schema["maximum"]
    xmax = schema.get("exclusiveMaximum")
    if is_number(xmax) and xmax <= hi:
        hi, hi_open = xmax, True
    return lo, hi, lo_open, hi_open


def _capped(lo: float, hi: float) -> tuple[float, float]:
    """Replace an infinite side by one ``_SPAN`` away from the other side."""
    if lo == -math.inf and hi == math.inf:
        return 0, _SPAN
    if lo == -math.inf:
        return hi - _SPAN, hi
    if hi == math.inf:
        return lo, lo + _SPAN
    return lo, hi


def _int_bounds(schema: Mapping[str, Any]) -> tuple[int, int]:
    """Inclusive integer bounds: an exclusive or fractional bound moves inward to the next integer."""
    lo, hi, lo_open, hi_open = _declared_bounds(schema)
    if lo != -math.inf:
        lo = math.floor(lo) + 1 if lo_open else math.ceil(lo)
    if hi != math.inf:
        hi = math.ceil(hi) - 1 if hi_open else math.floor(hi)
    lo, hi = _capped(lo, hi)
    if lo > hi:
        raise ValueError(f"no integer lies between {lo} and {hi}")
    return int(lo), int(hi)


def _float_bounds(schema: Mapping[str, Any]) -> tuple[float, float, bool, bool]:
    lo, hi, lo_open, hi_open = _declared_bounds(schema)
    lo, hi = _capped(lo, hi)
    if lo > hi or (lo == hi and (lo_open or hi_open)):
        raise ValueError(f"no number lies between {lo} and {hi}")
    return float(lo), float(hi), lo_open, hi_open
