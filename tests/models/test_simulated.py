"""SimulatedModel: scripted replies, seeded tool calls and structured output, latency, usage, registry."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import jsonschema
import pytest

from cadenza._errors import ConfigError, ModelError
from cadenza._ids import AgentId, RunId, TaskId
from cadenza._messages import Task
from cadenza.models import (
    AssistantMessage,
    Model,
    ModelRequest,
    OutputSchema,
    SimulatedModel,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
    available_providers,
    resolve_model,
)
from cadenza.models.simulated import _model as simulated_module
from cadenza.patterns._agent import render_task

SEARCH = ToolSpec(
    name="search",
    description="Search the web.",
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 3},
            "limit": {"type": "integer", "minimum": 1, "maximum": 10},
        },
        "required": ["query", "limit"],
        "additionalProperties": False,
    },
)
CALC = ToolSpec(
    name="calc",
    parameters={
        "type": "object",
        "properties": {"op": {"enum": ["add", "mul"]}, "args": {"type": "array", "items": {"type": "number"}}},
        "required": ["op", "args"],
    },
)
REPORT = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 40},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1},
    },
    "required": ["title", "score", "tags"],
    "additionalProperties": False,
}


def ask(content: str = "hello", *, agent: str | None = "a", **fields: Any) -> ModelRequest:
    return ModelRequest(system="You help.", messages=[UserMessage(content=content)], agent=agent, **fields)


async def test_is_a_model_with_a_provider_name() -> None:
    model = SimulatedModel("fast")
    assert isinstance(model, Model)
    assert model.name == "simulated:fast"
    assert SimulatedModel().name == "simulated:default"


async def test_plain_answer_mentions_the_agent_and_the_task() -> None:
    response = await SimulatedModel().request(ask("Summarise the report on solar panels.\nMore detail here."))
    assert response.tool_calls == []
    assert response.text == "[a] Done: Summarise the report on solar panels."
    assert response.model == "simulated:default"
    long = await SimulatedModel().request(ask("word " * 100, agent=None))
    assert long.text is not None and long.text.startswith("[model] Done: word word")
    assert len(long.text) < 120 and long.text.endswith("…")


def with_results(instruction: str, context: dict[str, Any], task_input: Any = None) -> str:
    """The user message an agent gets for a step with earlier results, exactly as the runtime renders it."""
    task = Task(
        task_id=TaskId("t"),
        run_id=RunId("r"),
        sender=AgentId("user"),
        recipient=AgentId("a"),
        instruction=instruction,
        context=context,
        input=task_input,
    )
    return render_task(task)


async def test_answer_with_earlier_results_combines_them() -> None:
    results = {
        f"s{i}": f"[w{i}] Done: part {i} of the search feature, covering indexing and ranking" for i in range(1, 7)
    }
    content = with_results("Goal: Build a search feature\n\nWrite the final answer.", results)
    response = await SimulatedModel().request(ask(content, agent="lead"))
    assert response.text is not None
    lines = response.text.split("\n")
    assert lines[0] == "[lead] Build a search feature: combined 6 results (s1, s2, s3, s4, s5, s6)."
    assert lines[1] == "- s1: [w1] Done: part 1 of the search feature, covering indexing…"
    assert [line.split(":", 1)[0] for line in lines[1:]] == [f"- s{i}" for i in range(1, 7)]
    assert all(len(line) <= len("- s1: ") + 61 for line in lines[1:])
    again = await SimulatedModel(seed=5).request(ask(content, agent="lead"))
    assert again.text == response.text


async def test_quoted_results_are_one_line_and_empty_or_structured_results_still_show() -> None:
    content = with_results("Summarise.", {"a": "first line\n\n  second line", "b": "", "c": {"k": [1, 2]}})
    response = await SimulatedModel().request(ask(content, agent=None))
    assert response.text == (
        '[model] Summarise: combined 3 results (a, b, c).\n- a: first line second line\n- b: (empty)\n- c: {"k": [1, 2]}'
    )


async def test_many_results_name_the_first_ten_steps_and_count_the_rest() -> None:
    content = with_results("Join", {f"s{i}": "ok" for i in range(1, 14)})
    text = (await SimulatedModel().request(ask(content))).text or ""
    assert text.split("\n")[0] == "[a] Join: combined 13 results (s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, and 3 more)."
    assert len(text.split("\n")) == 14


async def test_one_result_without_an_instruction() -> None:
    text = (await SimulatedModel().request(ask(with_results("", {"s1": "x"}, task_input="data")))).text
    assert text == "[a] Combined 1 result (s1).\n- s1: x"


async def test_results_quoted_inside_the_goal_are_not_this_steps_results() -> None:
    inner_goal = with_results("Review the code", {"old": "earlier team output"})
    content = with_results(f"Goal: {inner_goal}\n\nWrite the final answer.", {"s1": "new", "s2": "newer"})
    text = (await SimulatedModel().request(ask(content))).text or ""
    assert text == "[a] Review the code: combined 2 results (s1, s2).\n- s1: new\n- s2: newer"


async def test_an_output_containing_a_closing_tag_stays_one_result() -> None:
    content = with_results("Check", {"s1": "before\n</result>\n\nafter", "s2": "x"})
    text = (await SimulatedModel().request(ask(content))).text
    # the closing tag reaches the model defused (render_task), so the block cannot be closed early
    assert text == "[a] Check: combined 2 results (s1, s2).\n- s1: before &lt;/result> after\n- s2: x"


async def test_synthesis_after_tool_use_says_so_on_its_first_line() -> None:
    call = ToolCall(id="c1", name="search", arguments={})
    messages = [
        UserMessage(content=with_results("Report", {"s1": "found"})),
        AssistantMessage(tool_calls=[call]),
        ToolResultMessage(call_id="c1", name="search", content="more"),
    ]
    response = await SimulatedModel().request(ModelRequest(system="", messages=messages, agent="a", tools=[SEARCH]))
    assert response.text == "[a] Report: combined 1 result (s1). (using 1 tool result)\n- s1: found"


async def test_malformed_result_markup_falls_back_to_the_plain_answer() -> None:
    text = (await SimulatedModel().request(ask('Explain what <result step="x"> means'))).text
    assert text == '[a] Done: Explain what <result step="x"> means'


async def test_answer_without_results_skips_the_results_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    from cadenza.models.simulated import _model as simulated

    def forbidden(*args: Any) -> Any:
        raise AssertionError("the plain answer must not parse result blocks")

    monkeypatch.setattr(simulated, "_synthesis", forbidden)
    assert (await SimulatedModel().request(ask("go"))).text == "[a] Done: go"


async def test_same_request_same_answer_and_seed_matters() -> None:
    request = ask("Rate this", output_schema=OutputSchema(name="report", json_schema=REPORT))
    first = await SimulatedModel(seed=1).request(request)
    again = await SimulatedModel(seed=1).request(request)
    assert first.text == again.text
    others = {(await SimulatedModel(seed=seed).request(request)).text for seed in range(2, 12)}
    assert len(others) > 1


async def test_structured_output_fits_the_schema() -> None:
    model = SimulatedModel()
    for i in range(20):
        response = await model.request(ask(f"task {i}", output_schema=OutputSchema(name="report", json_schema=REPORT)))
        assert response.text is not None
        jsonschema.validate(json.loads(response.text), REPORT)


async def test_plan_schema_gets_a_coherent_plan_for_the_goal() -> None:
    schema = {
        "type": "object",
        "x-cadenza-plan": True,
        "properties": {
            "steps": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "agent": {"enum": ["r", "w", "c"]},
                        "instruction": {"type": "string"},
                        "depends_on": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["id", "agent", "instruction", "depends_on"],
                },
            }
        },
        "required": ["steps"],
    }
    request = ask(
        "Goal:\nCompare three papers\n\nTeam members:\n- r", output_schema=OutputSchema(name="plan", json_schema=schema)
    )
    response = await SimulatedModel().request(request)
    plan = json.loads(response.text or "")
    jsonschema.validate(plan, schema)
    assert [s["agent"] for s in plan["steps"]] == ["r", "w", "c"]
    assert plan["steps"][0]["instruction"] == "Compare three papers (part for r)"
    assert plan["steps"][2]["depends_on"] == ["s1", "s2"]


async def test_tool_call_with_valid_arguments_then_a_final_answer() -> None:
    model = SimulatedModel(seed=4)
    request = ask("find papers", tools=[SEARCH])
    first = await model.request(request)
    assert first.text is None and len(first.tool_calls) == 1
    call = first.tool_calls[0]
    assert call.name == "search" and call.id
    jsonschema.validate(call.arguments, SEARCH.parameters)

    follow_up = request.model_copy(
        update={
            "messages": [
                *request.messages,
                AssistantMessage(tool_calls=[call]),
                ToolResultMessage(call_id=call.id, name="search", content="3 papers"),
            ]
        }
    )
    final = await model.request(follow_up)
    assert final.tool_calls == [] and final.text == "[a] Done: find papers (using 1 tool result)"

    # A new user message after the results starts a new round of tool use.
    again = follow_up.model_copy(update={"messages": [*follow_up.messages, UserMessage(content="more")]})
    assert (await model.request(again)).tool_calls


async def test_tool_choice_is_seeded_across_tools() -> None:
    chosen = set()
    for seed in range(30):
        response = await SimulatedModel(seed=seed).request(ask("x", tools=[SEARCH, CALC]))
        (call,) = response.tool_calls
        spec = SEARCH if call.name == "search" else CALC
        jsonschema.validate(call.arguments, spec.parameters)
        chosen.add(call.name)
    assert chosen == {"search", "calc"}


async def test_call_tools_false_answers_directly() -> None:
    response = await SimulatedModel(call_tools=False).request(ask("x", tools=[SEARCH]))
    assert response.tool_calls == [] and response.text


async def test_tools_with_unsatisfiable_parameters_raise_model_error() -> None:
    bad = ToolSpec(
        name="bad",
        parameters={"type": "object", "properties": {"x": {"type": "string", "pattern": "(?=x)"}}, "required": ["x"]},
    )
    with pytest.raises(ModelError, match="bad"):
        await SimulatedModel().request(ask("x", tools=[bad]))


async def test_scripted_replies_per_agent_in_order_then_fallback() -> None:
    model = SimulatedModel(
        replies={
            "a": [
                "first",
                {"json": {"k": [1, 2]}},
                {"tool_calls": [{"name": "search", "arguments": {"query": "cats", "limit": 2}}, {"name": "calc"}]},
                {"text": "last"},
            ],
            "b": ["only b"],
        }
    )
    texts = []
    for _ in range(2):
        texts.append((await model.request(ask(agent="a"))).text)
    calls = (await model.request(ask(agent="a"))).tool_calls
    texts.append((await model.request(ask(agent="a"))).text)
    assert texts == ["first", '{"k": [1, 2]}', "last"]
    assert [(c.name, c.arguments) for c in calls] == [("search", {"query": "cats", "limit": 2}), ("calc", {})]
    assert len({c.id for c in calls}) == 2
    assert (await model.request(ask(agent="b"))).text == "only b"
    # Scripts exhausted: generated behaviour resumes.
    assert (await model.request(ask("go", agent="a"))).text == "[a] Done: go"
    assert (await model.request(ask("go", agent="b"))).text == "[b] Done: go"
    assert (await model.request(ask("go", agent="c"))).text == "[c] Done: go"


async def test_a_when_reply_answers_every_new_input_that_contains_its_text() -> None:
    model = SimulatedModel(replies={"a": [
        "opening",
        {"when": "Draft", "tool_calls": [{"name": "review"}]},
        {"when": "approved", "text": "done"},
    ]})
    peer_turn = "<goal>Draft a note</goal>\nEarlier: Draft 1\n<message>Looks approved to me</message>"

    assert (await model.request(ask("Draft 2, please"))).tool_calls[0].name == "review"
    assert (await model.request(ask("Draft 3, please"))).tool_calls[0].name == "review"  # not consumed
    assert (await model.request(ask(peer_turn))).text == "done"  # a peer turn: only its message counts
    assert (await model.request(ask("Hello"))).text == "opening"  # no match: the next reply in order
    after_tool = ModelRequest(system="s", agent="a", messages=[
        UserMessage(content="Draft 4"), AssistantMessage(tool_calls=[ToolCall(id="1", name="review", arguments={})]),
        ToolResultMessage(call_id="1", name="review", content="ok")])
    assert not (await model.request(after_tool)).tool_calls  # a turn's follow-up is not a new input
    assert (await model.request(ask("Hello again"))).text == "[a] Done: Hello again"


@pytest.mark.parametrize(
    ("replies", "fragment"),
    [
        ({"a": [{"when": "", "text": "x"}]}, "'when' must be a non-empty string"),
        ({"a": [{"when": "x"}]}, r"exactly one of 'text', 'json', 'tool_calls' \(and an optional 'when'\)"),
        ({"a": [42]}, "reply 0 for agent 'a'"),
        ({"a": ["ok", {"bogus": 1}]}, "reply 1 for agent 'a'"),
        ({"a": [{"text": 1}]}, "reply 0 for agent 'a'"),
        ({"a": [{"text": "x", "json": 1}]}, "reply 0 for agent 'a'"),
        ({"a": [{"json": object()}]}, "not JSON-serialisable"),
        ({"b": ["ok", {"tool_calls": [{"arguments": {}}]}]}, "reply 1 for agent 'b'"),
        ({"b": [{"tool_calls": [{"name": "t", "arguments": [1]}]}]}, "reply 0 for agent 'b'"),
        ({"b": [{"tool_calls": []}]}, "reply 0 for agent 'b'"),
        ({"b": "just text"}, "agent 'b' must be a list"),
    ],
)
def test_malformed_scripted_replies_raise_config_error(replies: Any, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        SimulatedModel(replies=replies)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []

    async def fake_sleep(delay: float, result: Any = None) -> Any:
        recorded.append(delay)
        return result

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    return recorded


async def test_zero_latency_never_sleeps(sleeps: list[float]) -> None:
    await SimulatedModel().request(ask())
    assert sleeps == []


async def test_fixed_latency_sleeps_that_long(sleeps: list[float]) -> None:
    await SimulatedModel(latency=0.25).request(ask())
    assert sleeps == [0.25]


async def test_random_latency_is_seeded_and_in_range(sleeps: list[float]) -> None:
    for i in range(20):
        await SimulatedModel(latency=(0.1, 0.3), seed=7).request(ask(f"t{i}"))
    first = list(sleeps)
    sleeps.clear()
    for i in range(20):
        await SimulatedModel(latency=(0.1, 0.3), seed=7).request(ask(f"t{i}"))
    assert sleeps == first
    assert all(0.1 <= d <= 0.3 for d in first) and len(set(first)) > 10


async def test_usage_is_estimated_or_fixed() -> None:
    request = ModelRequest(system="s" * 8, messages=[UserMessage(content="x" * 9)], agent="a")
    response = await SimulatedModel().request(request)
    assert response.usage.model_calls == 1 and response.usage.cost_usd == 0.0
    assert response.usage.input_tokens == math.ceil(17 / 4)
    assert response.usage.output_tokens == math.ceil(len(response.text or "") / 4)
    fixed = await SimulatedModel(input_tokens=100, output_tokens=7).request(request)
    assert (fixed.usage.input_tokens, fixed.usage.output_tokens, fixed.usage.model_calls) == (100, 7, 1)


async def test_usage_counts_tool_calls_and_history() -> None:
    call = ToolCall(id="1", name="search", arguments={"q": "x"})
    request = ModelRequest(
        messages=[
            UserMessage(content="abcd"),
            AssistantMessage(text="ab", tool_calls=[call]),
            ToolResultMessage(call_id="1", name="search", content="abcdefgh"),
        ],
        tools=[SEARCH],
    )
    response = await SimulatedModel().request(request)
    assert response.usage.input_tokens == math.ceil((4 + 2 + len("search") + len(str(call.arguments)) + 8) / 4)


@pytest.mark.parametrize(
    "options",
    [
        {"seed": "x"},
        {"latency": -1},
        {"latency": (0.5, 0.1)},
        {"latency": {"min": 0.1}},
        {"latency": [1, 2, 3]},
        {"input_tokens": -3},
        {"call_tools": "yes"},
        {"replies": ["a"]},
    ],
)
def test_invalid_options_raise_config_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SimulatedModel(**options)


def test_registry_resolves_simulated_models() -> None:
    assert "simulated" in available_providers()
    default = resolve_model("simulated")
    assert isinstance(default, SimulatedModel) and default.name == "simulated:default"
    named = resolve_model("simulated:x", {"seed": 3, "latency": {"min": 0.1, "max": 0.2}, "call_tools": False})
    assert isinstance(named, SimulatedModel) and named.name == "simulated:x"
    assert isinstance(resolve_model("simulated:y", {"latency": [0.0, 0.5]}), SimulatedModel)
    assert resolve_model("simulated:z", {"replies": {"a": ["hi"]}}).name == "simulated:z"


def test_registry_rejects_unknown_options_listing_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"'temperature'.*valid options: seed, latency, input_tokens"):
        resolve_model("simulated:x", {"temperature": 0.2})


async def test_requests_wait_out_their_latency_at_the_same_time(monkeypatch: pytest.MonkeyPatch) -> None:
    waiting = 0
    all_waiting = asyncio.Event()

    async def sleep_until_all_three_wait(delay: float) -> None:
        nonlocal waiting
        waiting += 1
        if waiting == 3:
            all_waiting.set()
        await all_waiting.wait()  # returns only once three requests are inside their latency together

    monkeypatch.setattr(simulated_module.asyncio, "sleep", sleep_until_all_three_wait)
    model = SimulatedModel(latency=0.05, replies={"a": ["one", "two"]})
    responses = await asyncio.wait_for(asyncio.gather(*(model.request(ask(agent="a")) for _ in range(3))), 5)
    assert sorted(r.text or "" for r in responses) == ["[a] Done: hello", "one", "two"]
