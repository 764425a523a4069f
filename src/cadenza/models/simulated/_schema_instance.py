"""Build a value that fits a JSON schema, so the offline simulated model can answer anything.

Structured output and tool arguments must pass the runtime's validation even when
no real model is involved; this makes seeded, readable instances of the JSON
schema subset pydantic emits. Plan schemas (``"x-cadenza-plan": true``) get a
coherent plan instead of noise, so simulated supervisors produce runnable DAGs.

The work is split by job: ``_schema_generator`` walks the schema, ``_string_sample``,
``_regex_sample`` and ``_number_sample`` fill in leaves, ``_schema_merge`` inlines refs,
``_schema_check`` confirms the result and ``_plan_instance`` builds plans.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from ._plan_instance import coherent_plan
from ._schema_check import is_valid
from ._schema_generator import InstanceGenerator

__all__ = ("generate_instance",)

_ATTEMPTS = 8
"""Whole-value retries when a generated value misses a cross-cutting constraint."""


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
        plan = coherent_plan(schema, rng, goal)
        if plan is not None:
            return plan
    gen = InstanceGenerator(schema, rng)
    for _ in range(_ATTEMPTS):
        value = gen.value(schema)
        if is_valid(schema, value, schema):
            return value
    raise ValueError("could not generate a value satisfying every constraint of the schema")
