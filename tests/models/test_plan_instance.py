"""coherent_plan: a fan-out/fan-in plan when it fits the schema, otherwise None for the generic path."""

from __future__ import annotations

import random
from typing import Any

from cadenza.models.simulated._plan_instance import coherent_plan
from cadenza.models.simulated._schema_instance import generate_instance


def plan_schema(step_id: dict[str, Any], **extra_props: Any) -> dict[str, Any]:
    step = {
        "type": "object",
        "properties": {
            "id": step_id,
            "agent": {"anyOf": [{"const": "a"}, {"enum": ["b", "a", "c"]}]},
            "instruction": {"type": "string", "maxLength": 12},
            "depends_on": {"type": "array", "items": {"type": "string"}},
            "priority": {"type": "integer", "minimum": 1, "maximum": 3},
        },
        "required": ["id", "agent", "instruction", "depends_on", "priority"],
    }
    return {
        "type": "object",
        "properties": {"steps": {"type": "array", "items": step, "minItems": 4}, **extra_props},
        "required": ["steps", *extra_props],
        "x-cadenza-plan": True,
    }


def test_workers_come_from_unions_and_repeat_to_reach_min_items() -> None:
    plan = coherent_plan(plan_schema({"type": "string"}), random.Random(0), "Write the report")
    assert plan is not None
    steps = plan["steps"]
    assert [s["agent"] for s in steps] == ["a", "b", "c", "a"]
    assert [s["id"] for s in steps] == ["s1", "s2", "s3", "s4"]
    assert steps[-1]["depends_on"] == ["s1", "s2", "s3"]
    assert all(len(s["instruction"]) <= 12 and 1 <= s["priority"] <= 3 for s in steps)


def test_other_required_plan_fields_are_generated() -> None:
    plan = coherent_plan(plan_schema({"type": "string"}, note={"type": "string"}), random.Random(0), "g")
    assert plan is not None and isinstance(plan["note"], str)


def test_returns_none_when_the_plan_would_not_validate() -> None:
    schema = plan_schema({"type": "string", "pattern": "^step-"})
    assert coherent_plan(schema, random.Random(0), "g") is None
    fallback = generate_instance(schema, random.Random(0), goal="g")
    assert all(s["id"].startswith("step-") for s in fallback["steps"])
