"""Workflow files: valid files build runnable teams; every kind of mistake is named by file and key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cadenza import ConfigError, Supervisor, WorkflowError, load_workflow
from cadenza.patterns._workflow import parse_workflow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

BASE = """\
name: t
agents:
  - {name: researcher, description: finds things}
  - {name: writer, description: writes}
supervisor:
  name: lead
  workers: [researcher, writer]
"""


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str, *, model: str | None = None) -> WorkflowError:
    path = write(tmp_path, text)
    with pytest.raises(WorkflowError) as info:
        load_workflow(path, model=model)
    assert str(info.value).startswith(f"{path}: "), "every message starts with the file"
    assert info.value.path == str(path)
    return info.value


def test_research_example_loads() -> None:
    workflow = load_workflow(EXAMPLES / "research.yaml")
    assert workflow.name == "research"
    assert list(workflow.agents) == [f"researcher_{i}" for i in range(1, 6)] + ["writer"]
    assert workflow.teams == {}
    assert workflow.entry.name == "lead"
    assert list(workflow.entry.workers) == list(workflow.agents)
    assert workflow.plan_source == "planner"
    assert workflow.offline
    assert workflow.models_used == {"simulated:strong", "simulated:fast"}
    assert workflow.agents["writer"].model.name == "simulated:strong"
    assert workflow.agents["researcher_1"].model.name == "simulated:fast"
    assert workflow.entry.planner.model.name == "simulated:strong"


def test_teams_example_nests_teams_bottom_up() -> None:
    workflow = load_workflow(EXAMPLES / "teams.yaml")
    assert set(workflow.teams) == {"research", "engineering"}
    assert workflow.entry.workers["research"] is workflow.teams["research"]
    engineering = workflow.teams["engineering"]
    assert engineering.static_plan is not None
    assert [s.id for s in engineering.static_plan.steps] == ["design", "build", "test"]
    assert workflow.teams["research"].static_plan is None
    assert workflow.entry.workers["engineering"].description == "Designs, builds and tests the change."


async def test_loaded_workflow_runs(tmp_path: Path) -> None:
    workflow = load_workflow(write(tmp_path, BASE))
    result = await workflow.entry.run("Compare the last three papers on X")
    assert result.status == "success"
    assert [(s.step.agent, s.status) for s in result.steps] == [("researcher", "success"), ("writer", "success")]


def test_parse_workflow_takes_data() -> None:
    workflow = parse_workflow({"name": "p", "agents": [{"name": "a"}], "supervisor": {"name": "l", "workers": ["a"]}})
    assert workflow.source == "<workflow>"
    assert workflow.models_used == {"simulated:default"}


async def test_simulated_options_merge_under_entry_options(tmp_path: Path) -> None:
    workflow = load_workflow(write(tmp_path, """\
        name: t
        simulated: {input_tokens: 5, output_tokens: 6, seed: 3, replies: {writer: ["scripted report"]}}
        models:
          own: {model: "simulated:own", input_tokens: 9}
        agents:
          - {name: researcher, model: own}
          - {name: writer}
        supervisor: {name: lead, workers: [researcher, writer]}
        """))
    researched = await workflow.agents["researcher"].run("look")
    assert (researched.usage.input_tokens, researched.usage.output_tokens) == (9, 6)
    written = await workflow.agents["writer"].run("write")
    assert written.output == "scripted report"
    assert (written.usage.input_tokens, written.usage.output_tokens) == (5, 6)


def test_latency_forms_are_accepted(tmp_path: Path) -> None:
    for latency in ("0.01", "{min: 0.0, max: 0.01}", "[0.0, 0.01]"):
        load_workflow(write(tmp_path, f"simulated: {{latency: {latency}}}\n" + BASE))


def test_model_override_replaces_every_model(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        name: t
        models:
          real: {model: "nosuchprovider:big", api_key_env: X}
        default_model: real
        agents:
          - {name: a, model: "nosuchprovider:small"}
          - {name: b}
        teams:
          - {name: sub, workers: [b], planner_model: real}
        supervisor: {name: lead, workers: [a, sub], model: real, synthesizer_model: "other:x"}
        """)
    workflow = load_workflow(path, model="simulated:other")
    teams: list[Supervisor[str]] = [workflow.entry, workflow.teams["sub"]]
    names = {a.model.name for a in workflow.agents.values()}
    names |= {t.planner.model.name for t in teams} | {t.synthesizer.model.name for t in teams}
    assert names == {"simulated:other"}
    assert workflow.models_used == {"simulated:other"}
    assert workflow.offline
    with pytest.raises(WorkflowError, match=r"--model: unknown model provider 'nope'"):
        load_workflow(path, model="nope:x")


def test_a_real_provider_is_not_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cadenza import FunctionModel
    from cadenza.models import registry

    monkeypatch.setitem(registry._factories, "remote", lambda name, options: FunctionModel(lambda r: "ok", name=name))
    unused = "models: {spare: {model: 'remote:spare'}}\n"
    assert load_workflow(write(tmp_path, unused + BASE)).offline, "an entry nobody uses does not count"
    workflow = load_workflow(write(tmp_path, unused + BASE + "  model: 'remote:x'\n"))
    assert not workflow.offline
    assert workflow.models_used == {"simulated:default", "function:x"}


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("name: t\nagents:\n  - name: a\n   instructions: b\n",
                 "invalid YAML at line 3, column 3: while parsing a block collection, expected <block end>, but found "
                 "'<block mapping start>' (noticed at line 4, column 4)", id="yaml-syntax"),
    pytest.param("name: t\nagents:\n  - name: a\n    instructions: \"never closed\n  - name: b\n",
                 "invalid YAML at line 4, column 19: while scanning a quoted scalar, found unexpected end of stream "
                 "(noticed at line 6, column 1)", id="yaml-unclosed-quote"),
    pytest.param("name: t\nagents:\n  - {name: a, tools: [x, y\n  - name: b\n",
                 "invalid YAML at line 3, column 22: while parsing a flow sequence, expected ',' or ']', but got ':' "
                 "(noticed at line 4, column 9)", id="yaml-unclosed-bracket"),
    pytest.param("name: t\nname: u\n", "line 2, column 1: duplicate key 'name' (first given on line 1)", id="duplicate-key"),
    pytest.param("- a\n- b\n", "expected a mapping with name, agents and supervisor at the top level, got a list", id="not-a-mapping"),
    pytest.param("", "the file is empty", id="empty"),
    pytest.param("name: t\nagents: [{name: a}]\n", "supervisor: required key is missing", id="missing-key"),
    pytest.param(BASE + "extra: 1\n", "extra: unknown key (allowed: name, description,", id="unknown-top-key"),
    pytest.param(BASE.replace("description: finds things", "instruction: x"),
                 "agents[0].instruction: unknown key (did you mean 'instructions'?)", id="near-miss-key"),
    pytest.param(BASE.replace("description: writes", "max_turns: ten"),
                 "agents[1].max_turns: expected an integer (got 'ten')",
                 id="wrong-type"),
    pytest.param(BASE.replace("name: writer", "name: 'has space'"), "agents[1].name: 'has space' is not a valid name", id="bad-name"),
    pytest.param(BASE + "  policy: {failure_policy: stop}\n",
                 "supervisor.policy.failure_policy: input should be 'continue' or 'fail_fast' (got 'stop')", id="bad-enum"),
    pytest.param("simulated: {latency: [1]}\n" + BASE, "simulated.latency: latency as a list needs two values", id="bad-latency"),
    pytest.param("simulated: {latency: {min: 2, max: 1}}\n" + BASE, "simulated: latency min 2.0 is larger than max 1.0", id="latency-order"),
    pytest.param("simulated: {replies: {wrtier: [x]}}\n" + BASE,
                 "simulated.replies.wrtier: no agent or team named 'wrtier' (did you mean 'writer'?)", id="replies-unknown-agent"),
    pytest.param(BASE.replace("name: writer", "name: researcher"),
                 "agents[1].name: duplicate name 'researcher' (also agents[0].name)", id="duplicate-agent"),
    pytest.param(BASE + "teams: [{name: writer, workers: [researcher]}]\n",
                 "teams[0].name: duplicate name 'writer' (also agents[1].name)", id="team-clashes-with-agent"),
    pytest.param(BASE.replace("[researcher, writer]", "[researcher, writter]"),
                 "supervisor.workers[1]: unknown worker 'writter' (did you mean 'writer'?) (known: researcher, writer)",
                 id="unknown-worker"),
    pytest.param(BASE.replace("[researcher, writer]", "[researcher, writer, writer]"),
                 "supervisor.workers[2]: worker 'writer' is listed twice", id="worker-twice"),
    pytest.param(BASE.replace("[researcher, writer]", "[a, b]") + "teams: [{name: a, workers: [writer]}, {name: b, workers: [a]}]\n",
                 "supervisor.workers[0]: team 'a' is already a worker of teams[1] ('b'); a team can belong to one team only",
                 id="team-in-two-places"),
    pytest.param(BASE.replace("[researcher, writer]", "[a]") + "teams: [{name: a, workers: [b]}, {name: b, workers: [a]}]\n",
                 "teams[0].workers: teams form a cycle: a -> b -> a", id="team-cycle"),
    pytest.param(BASE.replace("[researcher, writer]", "[researcher, lead]"),
                 "supervisor.workers[1]: team 'lead' cannot be its own worker", id="self-worker"),
    pytest.param("models: {strong: {model: 'simulated:s'}}\n" + BASE.replace("{name: writer,", "{name: writer, model: stron,"),
                 "agents[1].model: unknown model 'stron' (did you mean 'strong'?): not an entry of models (known: strong)",
                 id="unknown-models-entry"),
    pytest.param(BASE.replace("{name: writer,", "{name: writer, model: 'foo:bar',"),
                 "agents[1].model: unknown model provider 'foo' in model 'foo:bar'", id="unknown-provider"),
    pytest.param("models: {strong: {model: 'simulated:s', latncy: 1}}\n" + BASE,
                 "models.strong: unknown option 'latncy' for model 'simulated:s'", id="bad-model-option"),
    pytest.param(BASE + "  default_model: nope\n", "unknown key", id="default-model-is-top-level"),
    pytest.param("default_model: nope\n" + BASE, "default_model: unknown model 'nope'", id="bad-default-model"),
    pytest.param(BASE + "  plan:\n    - {id: r1, agent: researcher, instruction: go, depends_on: [r9]}\n",
                 "supervisor.plan[0].depends_on: step 'r1' depends on unknown step 'r9'", id="plan-dangling-dep"),
    pytest.param(BASE + "  plan:\n    - {id: r1, agent: reseacher, instruction: go}\n",
                 "supervisor.plan[0].agent: step 'r1' is assigned to unknown agent 'reseacher'", id="plan-unknown-agent"),
    pytest.param(BASE + "  plan:\n    - {id: a, agent: writer, instruction: go, depends_on: [b]}\n"
                        "    - {id: b, agent: writer, instruction: go, depends_on: [a]}\n",
                 "supervisor.plan: dependency cycle: ", id="plan-cycle"),
    pytest.param(BASE + "  plan:\n    - {id: a, agent: writer, instruction: go}\n    - {id: a, agent: writer, instruction: go}\n",
                 "supervisor.plan[1].id: duplicate step id 'a'", id="plan-duplicate-id"),
    pytest.param(BASE + "  plan: []\n", "supervisor.plan: the plan has no steps", id="plan-empty"),
    pytest.param(BASE + "  plan: [{id: a, agent: writer}]\n", "supervisor.plan[0].instruction: required key is missing",
                 id="plan-step-schema"),
    pytest.param(BASE.replace("[researcher, writer]", "[sub]") + "  max_depth: 1\nteams: [{name: sub, workers: [writer]}]\n",
                 "supervisor: teams nest 2 levels deep here, more than max_depth 1", id="too-deep"),
    pytest.param(BASE.replace("[researcher, writer]", "[sub]") + "teams: [{name: sub, workers: [writer], max_depth: 1, "
                 "teams_x: 1}]\n", "teams[0].teams_x: unknown key", id="nested-unknown-key"),
    pytest.param(BASE + "  policy: {per_agent_concurrency: {wrter: 2}}\n",
                 "supervisor.policy.per_agent_concurrency.wrter: 'wrter' is not a worker of this team (did you mean 'writer'?)",
                 id="per-agent-unknown"),
    pytest.param(BASE + "  policy: {per_agent_concurrency: 0}\n", "supervisor.policy.per_agent_concurrency: expected a number",
                 id="per-agent-bad"),
    pytest.param(BASE + "  spawn: {tiers: {cheap: 'foo:x'}}\n", "supervisor.spawn.tiers.cheap: unknown model provider 'foo'",
                 id="spawn-tier"),
])
def test_each_mistake_is_named_by_key_path(tmp_path: Path, text: str, expected: str) -> None:
    error = error_of(tmp_path, text)
    assert expected in str(error), str(error)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    error = error_of(tmp_path, """\
        name: t
        agents:
          - {name: researcher}
          - {name: writer, model: "foo:bar"}
        supervisor:
          name: lead
          workers: [researcher, writter]
          plan:
            - {id: r1, agent: researcher, instruction: go, depends_on: [nope]}
        """)
    assert str(error).splitlines()[0].endswith(": 3 problems:")
    assert [p.split(":")[0] for p in error.problems] == [
        "agents[1].model", "supervisor.workers[1]", "supervisor.plan[0].depends_on"]
    assert all(f"  - {p}" in str(error) for p in error.problems)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match=r"nope\.yaml: no such file"):
        load_workflow(tmp_path / "nope.yaml")
    with pytest.raises(WorkflowError, match="is a directory"):
        load_workflow(tmp_path)


@pytest.mark.parametrize("text", [
    "name: t\nagents: [1, x]\nsupervisor: []\n",
    "name: t\nagents: {a: 1}\nsupervisor: {name: l, workers: x}\n",
    "name: [t]\nagents: [{name: a}]\nsupervisor: {name: l, workers: [a], plan: {id: 1}}\n",
    "name: t\nmodels: [x]\nagents: [{name: a, model: 3}]\nsupervisor: {name: l, workers: [a], policy: 7}\n",
    "name: t\nsimulated: 1\nagents: [{name: a}]\nsupervisor: {name: l, workers: [[a]], spawn: {tiers: {}}}\n",
    "? [a]\n: 1\n",
    "name: t\nagents: [{name: a}]\nsupervisor: {name: l, workers: [a], plan: [{id: s, agent: a, instruction: x, "
    "depends_on: s}]}\n",
    "name: t\nmodels: {m: {}}\nagents: [{name: a, model: m}]\nsupervisor: {name: l, workers: [a]}\n",
])
def test_odd_input_is_always_a_workflow_error(tmp_path: Path, text: str) -> None:
    error = error_of(tmp_path, text)
    assert error.problems


DEEP_LIST = "name: t\nagents: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_MAP = "name: t\nagents:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(2000)) + "  " * 2001 + "v\n"


@pytest.mark.parametrize("text", [DEEP_LIST, DEEP_MAP], ids=["5000 nested lists", "2000 nested maps"])
def test_deeply_nested_yaml_is_a_workflow_error(tmp_path: Path, text: str) -> None:
    error = error_of(tmp_path, text)
    assert error.problems == ["nested too deeply: lists or mappings inside each other thousands of levels down "
                              "(a workflow file needs only a few levels)"]
    assert isinstance(error, ConfigError)


def test_deeply_nested_data_from_python_is_a_workflow_error() -> None:
    deep: list[object] = []
    inner = deep
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]
    with pytest.raises(WorkflowError, match="<workflow>"):
        parse_workflow({"name": "t", "agents": [{"name": "a", "tools": deep}], "supervisor": {"name": "l", "workers": ["a"]}})


def test_schema_errors_and_unknown_workers_are_reported_together(tmp_path: Path) -> None:
    error = error_of(tmp_path, """
        name: bad
        agents:
          - name: researcher
          - name: writer
            max_turns: ten
        supervisor:
          name: lead
          workers: [researcher, writter]
        """)
    assert error.problems == [
        "agents[1].max_turns: expected an integer (got 'ten')",
        "supervisor.workers[1]: unknown worker 'writter' (did you mean 'writer'?) (known: researcher, writer)",
    ]


def test_a_file_with_five_mistakes_reports_five(tmp_path: Path) -> None:
    """The schema's mistakes and those only the whole file shows (names, models, workers), in one report."""
    text = textwrap.dedent("""\
        name: five
        agents:
          - {name: a, instruction: a typo}
          - {name: b, max_turns: ten}
          - {name: c, model: "simulatd:fast"}
          - {name: a}
        supervisor:
          name: lead
          workers: [a, b, c, ghost]
        """)
    error = error_of(tmp_path, text)
    assert error.problems == [
        "agents[0].instruction: unknown key (did you mean 'instructions'?)",
        "agents[1].max_turns: expected an integer (got 'ten')",
        "agents[2].model: unknown model provider 'simulatd' in model 'simulatd:fast' (did you mean 'simulated:fast'?); "
        "known providers: anthropic, openai, openai-compatible, simulated (a model string is provider:model)",
        "agents[3].name: duplicate name 'a' (also agents[0].name); agents, teams and peer groups share one namespace",
        "supervisor.workers[3]: unknown worker 'ghost' (known: a, b, c)",
    ]
    assert str(error).startswith(f"{tmp_path / 'wf.yaml'}: 5 problems:")


def test_a_missing_required_key_still_reports_what_the_schema_found(tmp_path: Path) -> None:
    error = error_of(tmp_path, "name: t\nagents: [{instructions: no name}, {name: b, max_turns: ten}]\n"
                               "supervisor: {name: lead, workers: [b, ghost]}\n")
    assert error.problems == ["agents[0].name: required key is missing",
                              "agents[1].max_turns: expected an integer (got 'ten')",
                              "supervisor.workers[1]: unknown worker 'ghost' (known: b)"]


def test_a_key_the_schema_refused_is_not_reported_again_as_missing(tmp_path: Path) -> None:
    error = error_of(tmp_path, "name: t\nagents: [{name: a, model: 'simulatd:x'}]\nsupervisor: 5\n")
    assert error.problems == [
        "agents[0].model: unknown model provider 'simulatd' in model 'simulatd:x' (did you mean 'simulated:x'?); "
        "known providers: anthropic, openai, openai-compatible, simulated (a model string is provider:model)",
        "supervisor: expected a mapping (got 5)",
    ]
