"""generate_instance: seeded values that validate against the schemas pydantic emits, and coherent plans."""

from __future__ import annotations

import enum
import random
from typing import Annotated, Any, Literal, Optional

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, create_model

from cadenza.models.simulated._schema_instance import generate_instance


def check(schema: dict[str, Any], value: Any) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(value)


# --------------------------------------------------------------------------- random pydantic models

PATTERNS = [r"^[a-z]{3,8}$", r"^[A-Z]{2}-\d{3}$", r"^\w+@example\.com$", r"^(red|green|blue)$", r"^v\d+(\.\d+){0,2}$"]


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 3


@st.composite
def int_types(draw: st.DrawFn) -> Any:
    lo = draw(st.none() | st.integers(-1000, 1000))
    span = draw(st.integers(0, 50))
    kwargs: dict[str, Any] = {}
    if lo is not None:
        kwargs[draw(st.sampled_from(["ge", "gt"]))] = lo
        if draw(st.booleans()):
            kwargs["le"] = lo + span + 12  # room for a multiple of 5 even when gt
    if draw(st.booleans()):
        kwargs["multiple_of"] = draw(st.sampled_from([1, 2, 5]))
    return Annotated[int, Field(**kwargs)]


@st.composite
def float_types(draw: st.DrawFn) -> Any:
    lo = draw(st.none() | st.floats(-1e6, 1e6, allow_nan=False))
    kwargs: dict[str, Any] = {}
    if lo is not None:
        kwargs[draw(st.sampled_from(["ge", "gt"]))] = lo
        if draw(st.booleans()):
            kwargs[draw(st.sampled_from(["le", "lt"]))] = lo + draw(st.floats(0.01, 100))
    if draw(st.booleans()):
        kwargs["multiple_of"] = draw(st.sampled_from([0.5, 0.25, 1.0, 10.0]))
        kwargs.pop("lt", None)
        if "ge" in kwargs or "gt" in kwargs:
            kwargs["le"] = (kwargs.get("ge") or kwargs.get("gt") or 0) + 50
    return Annotated[float, Field(**kwargs)]


@st.composite
def str_types(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["plain", "length", "pattern"]))
    if kind == "plain":
        return str
    if kind == "pattern":
        return Annotated[str, Field(pattern=draw(st.sampled_from(PATTERNS)))]
    lo = draw(st.integers(0, 30))
    return Annotated[str, Field(min_length=lo, max_length=lo + draw(st.integers(0, 20)))]


@st.composite
def literal_types(draw: st.DrawFn) -> Any:
    values = draw(
        st.lists(st.sampled_from(["alpha", "beta", "gamma", 1, 2, True]), min_size=1, max_size=4, unique=True)
    )
    return Literal[tuple(values)]


LEAVES = st.one_of(
    int_types(),
    float_types(),
    str_types(),
    literal_types(),
    st.sampled_from([bool, Colour, Level]),
)

_counter = iter(range(10**9))


@st.composite
def model_types(draw: st.DrawFn, depth: int = 0) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for i in range(draw(st.integers(1, 5))):
        tp = draw(field_types(depth))
        if draw(st.booleans()):
            fields[f"f{i}"] = (Optional[tp], None)  # noqa: UP045 - a runtime union over a drawn type
        else:
            fields[f"f{i}"] = (tp, ...)
    config = draw(st.sampled_from([ConfigDict(extra="ignore"), ConfigDict(extra="forbid")]))
    return create_model(f"M{next(_counter)}", __config__=config, **fields)


def field_types(depth: int) -> st.SearchStrategy[Any]:
    if depth >= 2:
        return LEAVES
    inner = st.deferred(lambda: field_types(depth + 1))

    @st.composite
    def lists(draw: st.DrawFn) -> Any:
        lo = draw(st.integers(0, 3))
        hi = lo + draw(st.integers(0, 4))
        return Annotated[list[draw(inner)], Field(min_length=lo, max_length=hi)]  # type: ignore[misc]

    return st.one_of(
        LEAVES,
        lists(),
        inner.map(lambda t: dict[str, t]),  # type: ignore[valid-type]
        st.tuples(LEAVES, LEAVES).map(lambda ts: tuple[ts[0], ts[1]]),  # type: ignore[valid-type]
        model_types(depth + 1),
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(model=model_types(), seed=st.integers(0, 2**32))
def test_instances_of_random_models_validate_with_jsonschema_and_pydantic(model: type[BaseModel], seed: int) -> None:
    schema = model.model_json_schema()
    value = generate_instance(schema, random.Random(seed))
    check(schema, value)
    model.model_validate(value)
    assert generate_instance(schema, random.Random(seed)) == value


# --------------------------------------------------------------------------- random raw JSON schemas


def leaf_schemas() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.just({"type": "string"}),
        st.just({"type": "null"}),
        st.just({"type": "boolean"}),
        st.integers(-50, 50).map(lambda lo: {"type": "integer", "minimum": lo, "exclusiveMaximum": lo + 3}),
        st.integers(0, 10).map(lambda lo: {"type": "number", "exclusiveMinimum": lo, "maximum": lo + 1}),
        st.just({"type": "integer", "multipleOf": 7, "minimum": 1, "maximum": 30}),
        st.just({"type": "number", "multipleOf": 0.1, "minimum": 0, "maximum": 2}),
        st.just({"enum": ["x", 1, None, [1, 2], {"k": "v"}]}),
        st.just({"const": {"nested": [True]}}),
        st.just({"type": ["string", "integer"], "minLength": 2}),
        st.just({"type": "string", "format": "date-time"}),
        st.just({"type": "string", "format": "uuid"}),
        st.just({"type": "string", "pattern": r"^[\w.+-]+@[a-z]+\.(com|org)$", "maxLength": 40}),
        st.just({"type": "string", "pattern": r"^[^\s]{4}$"}),
    )


def raw_schemas(depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    if depth >= 3:
        return leaf_schemas()
    sub = st.deferred(lambda: raw_schemas(depth + 1))
    objects = st.builds(
        lambda props, required, closed, min_p: {
            "type": "object",
            "properties": props,
            "required": [k for k in props if k in required],
            "additionalProperties": not closed,
            "minProperties": min(min_p, len(props)),
        },
        st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), sub, max_size=4),
        st.sets(st.sampled_from(["a", "b", "c", "d"])),
        st.booleans(),
        st.integers(0, 4),
    )
    arrays = st.builds(
        lambda items, lo, extra, unique: {
            "type": "array",
            "items": items,
            "minItems": lo,
            "maxItems": lo + extra,
            **({"uniqueItems": True} if unique else {}),
        },
        st.one_of(st.just({"type": "integer", "minimum": 0, "maximum": 1000}), st.just({"type": "string"}), sub),
        st.integers(0, 3),
        st.integers(0, 3),
        st.booleans(),
    ).filter(lambda s: not s.get("uniqueItems") or s["items"].get("type") in ("integer", "string"))
    tuples = st.lists(sub, min_size=1, max_size=3).map(
        lambda prefix: {"type": "array", "prefixItems": prefix, "items": False, "minItems": len(prefix)}
    )
    unions = st.one_of(
        st.lists(sub, min_size=1, max_size=3).map(lambda bs: {"anyOf": bs}),
        st.just({"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}),
        st.just({"oneOf": [{"type": "integer", "maximum": 5}, {"type": "integer", "minimum": 3}]}),
        st.just(
            {
                "allOf": [
                    {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
                    {"properties": {"y": {"type": "string", "minLength": 3}}, "required": ["y"]},
                ]
            }
        ),
    )
    return st.one_of(leaf_schemas(), objects, arrays, tuples, unions)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(schema=raw_schemas(), seed=st.integers(0, 2**32))
def test_instances_of_random_json_schemas_validate(schema: dict[str, Any], seed: int) -> None:
    value = generate_instance(schema, random.Random(seed))
    check(schema, value)
    assert generate_instance(schema, random.Random(seed)) == value


# --------------------------------------------------------------------------- targeted cases


class Node(BaseModel):
    name: str
    children: list[Node] = []
    parent: Node | None = None


class Shape(BaseModel):
    kind: Literal["circle"]
    radius: float = Field(gt=0)


class Square(BaseModel):
    kind: Literal["square"]
    side: float = Field(gt=0)


class Drawing(BaseModel):
    shapes: list[Annotated[Shape | Square, Field(discriminator="kind")]] = Field(min_length=2)
    tags: set[str] = Field(max_length=3)
    colour: Colour
    level: Level = Level.LOW


@pytest.mark.parametrize("model", [Node, Drawing])
def test_recursive_and_discriminated_models(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    for seed in range(100):
        value = generate_instance(schema, random.Random(seed))
        check(schema, value)
        model.model_validate(value)


def test_enums_and_literals_are_respected() -> None:
    schema = {"type": "object", "properties": {"c": {"enum": ["a", "b"]}, "l": {"const": 7}}, "required": ["c", "l"]}
    seen = {generate_instance(schema, random.Random(seed))["c"] for seed in range(50)}
    assert seen == {"a", "b"}
    assert all(generate_instance(schema, random.Random(s))["l"] == 7 for s in range(10))


def test_same_seed_same_value_and_seeds_vary() -> None:
    schema = Drawing.model_json_schema()
    values = [generate_instance(schema, random.Random(seed)) for seed in range(20)]
    assert values == [generate_instance(schema, random.Random(seed)) for seed in range(20)]
    assert len({repr(v) for v in values}) > 10


def test_strings_are_readable_words() -> None:
    text = generate_instance({"type": "string", "minLength": 30}, random.Random(1))
    assert len(text) >= 30 and all(word.isalpha() and word.islower() for word in text.split())


def test_formats() -> None:
    import datetime
    import ipaddress
    import uuid

    rng = random.Random(3)
    datetime.datetime.fromisoformat(generate_instance({"type": "string", "format": "date-time"}, rng))
    datetime.date.fromisoformat(generate_instance({"type": "string", "format": "date"}, rng))
    uuid.UUID(generate_instance({"type": "string", "format": "uuid"}, rng))
    ipaddress.IPv4Address(generate_instance({"type": "string", "format": "ipv4"}, rng))
    assert "@" in generate_instance({"type": "string", "format": "email"}, rng)
    assert generate_instance({"type": "string", "format": "uri"}, rng).startswith("https://")


def test_array_length_defaults_between_min_and_min_plus_three() -> None:
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 2}
    lengths = {len(generate_instance(schema, random.Random(seed))) for seed in range(100)}
    assert lengths == {2, 3, 4, 5}


def test_unsatisfiable_pattern_raises_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="pattern"):
        generate_instance({"type": "string", "pattern": r"^(?=a)b$"}, random.Random(0))
    with pytest.raises(ValueError, match="pattern"):
        generate_instance({"type": "string", "pattern": r"^(a)\1$"}, random.Random(0))


def test_impossible_schemas_raise_value_error() -> None:
    with pytest.raises(ValueError):
        generate_instance({"type": "integer", "minimum": 5, "maximum": 4}, random.Random(0))
    with pytest.raises(ValueError):
        generate_instance({"type": "array", "minItems": 3, "maxItems": 1}, random.Random(0))


def test_generated_values_do_not_alias_the_schema() -> None:
    schema: dict[str, Any] = {"const": {"a": [1]}}
    value = generate_instance(schema, random.Random(0))
    value["a"].append(2)
    assert schema["const"] == {"a": [1]}


# --------------------------------------------------------------------------- plans


def plan_schema(agent: dict[str, Any], *, max_steps: int = 10, defs: dict[str, Any] | None = None) -> dict[str, Any]:
    step = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "agent": agent,
            "instruction": {"type": "string"},
            "depends_on": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["id", "agent", "instruction", "depends_on"],
        "additionalProperties": False,
    }
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "steps": {"type": "array", "items": step, "minItems": 1, "maxItems": max_steps},
            "new_agents": {"type": "array", "items": {"type": "object"}, "maxItems": 2},
        },
        "required": ["steps"],
        "additionalProperties": False,
        "x-cadenza-plan": True,
    }
    if defs:
        schema["$defs"] = defs
    return schema


def assert_coherent(plan: dict[str, Any], workers: list[str]) -> None:
    ids = [s["id"] for s in plan["steps"]]
    assert len(set(ids)) == len(ids)
    for index, step in enumerate(plan["steps"]):
        assert set(step["depends_on"]) <= set(ids[:index])
        assert step["agent"] in workers


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_plan_schema_gives_fan_out_then_fan_in(count: int) -> None:
    workers = [f"w{i}" for i in range(count)]
    schema = plan_schema({"enum": workers})
    plan = generate_instance(schema, random.Random(0), goal="Compare papers")
    check(schema, plan)
    assert_coherent(plan, workers)
    assert [s["agent"] for s in plan["steps"]] == workers
    assert [s["id"] for s in plan["steps"]] == [f"s{i}" for i in range(1, count + 1)]
    assert plan["steps"][0]["instruction"] == "Compare papers (part for w0)"
    assert plan["new_agents"] == []
    last = plan["steps"][-1]["depends_on"]
    assert last == ([f"s{i}" for i in range(1, count)] if count >= 3 else [])
    assert all(s["depends_on"] == [] for s in plan["steps"][:-1])


def test_plan_is_truncated_to_max_steps() -> None:
    workers = ["a", "b", "c", "d", "e"]
    schema = plan_schema({"enum": workers}, max_steps=3)
    plan = generate_instance(schema, random.Random(0), goal="g")
    check(schema, plan)
    assert [s["agent"] for s in plan["steps"]] == ["a", "b", "c"]
    assert plan["steps"][-1]["depends_on"] == ["s1", "s2"]


def test_plan_agent_enum_through_ref() -> None:
    schema = plan_schema({"$ref": "#/$defs/Worker"}, defs={"Worker": {"enum": ["x", "y", "z"], "type": "string"}})
    plan = generate_instance(schema, random.Random(0), goal="g")
    check(schema, plan)
    assert_coherent(plan, ["x", "y", "z"])
    assert len(plan["steps"]) == 3


def test_plan_without_agent_enum_uses_one_worker_step() -> None:
    schema = plan_schema({"type": "string"})
    plan = generate_instance(schema, random.Random(0), goal="g")
    check(schema, plan)
    assert plan["steps"] == [{"id": "s1", "agent": "worker", "instruction": "g (part for worker)", "depends_on": []}]


def test_plan_from_a_pydantic_model() -> None:
    class Step(BaseModel):
        id: str
        agent: Literal["researcher", "writer", "critic"]
        instruction: str
        depends_on: list[str] = []
        note: str

    class Plan(BaseModel):
        model_config = ConfigDict(json_schema_extra={"x-cadenza-plan": True})
        steps: list[Step] = Field(min_length=1, max_length=5)

    schema = Plan.model_json_schema()
    plan = Plan.model_validate(generate_instance(schema, random.Random(0), goal="Write"))
    assert [s.agent for s in plan.steps] == ["researcher", "writer", "critic"]
    assert plan.steps[2].depends_on == ["s1", "s2"]


@pytest.mark.parametrize("seed", [1_410_707_491, *range(50)])
def test_a_oneof_of_overlapping_branches_gives_a_value_only_one_matches(seed: int) -> None:
    """Found by the random schemas above: both branches drew 3 to 5, which both match, and generation gave up."""
    schema = {"oneOf": [{"type": "integer", "maximum": 5}, {"type": "integer", "minimum": 3}]}
    value = generate_instance(schema, random.Random(seed))
    assert not 3 <= value <= 5
    check(schema, value)
