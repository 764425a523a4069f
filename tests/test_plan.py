"""Plan validation names every problem at once; layers and the critical path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadenza import Plan, PlanError, Step


def make(*steps: tuple[str, str, list[str]]) -> Plan:
    return Plan(steps=tuple(Step(id=i, agent=a, instruction=i, depends_on=tuple(d)) for i, a, d in steps))


def test_every_problem_is_named_at_once() -> None:
    plan = make(("a", "x", ["ghost"]), ("a", "x", []), ("b", "mystery", ["b"]), ("c", "x", ["d"]), ("d", "x", ["c"]))
    with pytest.raises(PlanError) as info:
        plan.check({"x"})
    problems = info.value.problems
    assert "duplicate step id 'a'" in problems
    assert "step 'a' depends on unknown step 'ghost'" in problems
    assert "step 'b' is assigned to unknown agent 'mystery' (known: x)" in problems
    assert "step 'b' depends on itself" in problems
    assert any(p.startswith("dependency cycle: ") and "c" in p and "d" in p for p in problems)
    assert len(problems) == 5
    assert "5 problems" in str(info.value)


def test_the_cycle_is_printed_as_a_path() -> None:
    plan = make(("a", "x", ["c"]), ("b", "x", ["a"]), ("c", "x", ["b"]), ("d", "x", []))
    assert plan.problems() == ["dependency cycle: a -> b -> c -> a"]


def test_empty_and_oversized_plans_are_rejected() -> None:
    assert Plan(steps=()).problems() == ["the plan has no steps"]
    big = make(*[(f"s{i}", "x", []) for i in range(4)])
    assert big.problems(max_steps=3) == ["the plan has 4 steps, more than the limit of 3"]


def test_forward_references_are_fine() -> None:
    assert make(("b", "x", ["a"]), ("a", "x", [])).check({"x"}).topological_order() == ["a", "b"]


def test_layers_and_critical_path() -> None:
    plan = make(("a", "x", []), ("b", "x", ["a"]), ("c", "x", ["a"]), ("d", "x", ["b", "c"]), ("e", "x", []))
    assert plan.layers() == [["a", "e"], ["b", "c"], ["d"]]
    assert plan.critical_path() == (["a", "b", "d"], 3.0)
    assert plan.critical_path({"a": 1, "b": 1, "c": 5, "d": 1, "e": 2}) == (["a", "c", "d"], 7.0)


def test_uneven_dag_critical_path() -> None:
    chain = [(f"c{i}", "x", [f"c{i - 1}"] if i else []) for i in range(5)]
    plan = make(*chain, ("slow", "x", []), ("join", "x", ["c4", "slow"]))
    durations = {**{f"c{i}": 0.01 for i in range(5)}, "slow": 0.1, "join": 0.01}
    path, total = plan.critical_path(durations)
    assert path == ["slow", "join"] and total == pytest.approx(0.11)


def test_yaml_like_mappings_build_plans() -> None:
    plan = Plan.of({"id": "a", "agent": "x", "instruction": "go"}, {"id": "b", "agent": "x", "instruction": "go", "depends_on": ["a"]})
    assert plan.step("b").depends_on == ("a",)
    with pytest.raises(PlanError, match="no step 'zzz'"):
        plan.step("zzz")


@given(st.integers(1, 40), st.data())
def test_random_acyclic_plans_validate_and_order_respects_dependencies(n: int, data: st.DataObject) -> None:
    steps = []
    for i in range(n):
        deps = data.draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
        steps.append((f"s{i}", "x", [f"s{d}" for d in deps]))
    plan = make(*data.draw(st.permutations(steps)))
    assert plan.problems({"x"}) == []
    position = {sid: k for k, sid in enumerate(plan.topological_order())}
    for step in plan.steps:
        assert all(position[d] < position[step.id] for d in step.depends_on)
    layers = plan.layers()
    assert sorted(sid for layer in layers for sid in layer) == sorted(s.id for s in plan.steps)
    assert len(plan.critical_path()[0]) == len(layers)


@given(st.integers(2, 20), st.data())
def test_any_back_edge_is_reported_as_a_cycle(n: int, data: st.DataObject) -> None:
    steps = [(f"s{i}", "x", [f"s{i - 1}"] if i else []) for i in range(n)]
    j = data.draw(st.integers(0, n - 2))
    steps[j] = (steps[j][0], "x", [*steps[j][2], f"s{n - 1}"])
    problems = make(*steps).problems()
    assert len(problems) == 1 and problems[0].startswith("dependency cycle: ")
    path = problems[0].removeprefix("dependency cycle: ").split(" -> ")
    assert path[0] == path[-1] and len(path) == n - j + 1


def test_checking_is_remembered_per_agent_set_and_does_not_change_equality() -> None:
    plan, same = (make(("a", "x", []), ("b", "x", ["a"])) for _ in range(2))
    assert plan.check({"x"}) is plan and plan == same and hash(plan) == hash(same)
    plan.step("a")
    assert plan == same
    assert plan.problems({"y"}) == [
        "step 'a' is assigned to unknown agent 'x' (known: y)", "step 'b' is assigned to unknown agent 'x' (known: y)"]
    assert plan.problems({"x"}) == [] and plan.problems({"x"}, max_steps=1) == ["the plan has 2 steps, more than the limit of 1"]


def test_order_helpers_give_plan_errors_not_key_errors() -> None:
    with pytest.raises(PlanError, match="depends on unknown step 'zz'"):
        make(("a", "x", ["zz"])).topological_order()
    with pytest.raises(PlanError, match="duplicate step ids"):
        make(("a", "x", []), ("a", "x", [])).layers()
