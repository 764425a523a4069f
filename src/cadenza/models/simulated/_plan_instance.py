"""A coherent plan for plan schemas (``"x-cadenza-plan": true``), so simulated supervisors plan runnable DAGs.

A random instance of a plan schema would name steps at random and depend on ids
that do not exist. This builds a fan-out over the workers the schema allows, plus a
fan-in step when there are three or more, with instructions that mention the goal.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from ._schema_check import is_valid
from ._schema_generator import InstanceGenerator
from ._schema_merge import inline_schema

__all__ = ("coherent_plan",)


def coherent_plan(schema: Mapping[str, Any], rng: random.Random, goal: str) -> dict[str, Any] | None:
    """A fan-out/fan-in plan over the workers the schema allows, or ``None`` if it cannot fit the schema."""
    gen = InstanceGenerator(schema, rng)
    try:
        root = _plain(schema, schema)
        props: Mapping[str, Any] = root.get("properties", {})
        steps_schema = _plain(schema, props.get("steps"))
        item_schema = _plain(schema, steps_schema.get("items"))
        item_props: Mapping[str, Any] = item_schema.get("properties", {})
        item_required = set(item_schema.get("required", ()))
        workers = _agent_names(schema, item_props.get("agent", {})) or ["worker"]
        max_steps = steps_schema.get("maxItems")
        if isinstance(max_steps, int):
            workers = workers[:max_steps]
        min_steps = max(1, steps_schema.get("minItems", 1))
        names = [workers[i % len(workers)] for i in range(max(min_steps, len(workers)))]
        max_instruction = _plain(schema, item_props.get("instruction")).get("maxLength")
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
            elif key == "new_agents" and _plain(schema, sub).get("minItems", 0) == 0:
                plan[key] = []
            elif key in required:
                plan[key] = gen.value(sub)
    except ValueError:
        return None
    return plan if is_valid(schema, plan, schema) else None


def _plain(root: Mapping[str, Any], schema: Any) -> Mapping[str, Any]:
    """The schema with refs inlined, or an empty one when it is absent or boolean."""
    resolved = inline_schema(root, schema)[0] if isinstance(schema, Mapping) else None
    return resolved if isinstance(resolved, Mapping) else {}


def _agent_names(root: Mapping[str, Any], schema: Any) -> list[str]:
    """Worker names from an ``enum``/``const`` agent field, looking through refs and unions."""
    resolved = _plain(root, schema)
    if "enum" in resolved:
        return [v for v in resolved["enum"] if isinstance(v, str)]
    if isinstance(resolved.get("const"), str):
        return [resolved["const"]]
    names: list[str] = []
    for key in ("anyOf", "oneOf"):
        for branch in resolved.get(key, ()):
            names.extend(n for n in _agent_names(root, branch) if n not in names)
    return names
