"""OpenTelemetry spans of a run: the tree, its GenAI attributes, failures, and trace context across processes.

The SDK's in-memory exporter collects the spans. A tracer provider can be set once per process,
so this module sets one for the rest of the session (later tests then run with tracing on, which
is a useful check in itself that nothing depends on tracing being off).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from cadenza import Agent, FunctionModel, ModelRequest, Plan, Supervisor, tool
from cadenza._messages import Task
from cadenza._usage import Usage
from cadenza.models.base import ModelResponse, ToolCall, ToolResultMessage
from cadenza.models.simulated import SimulatedModel
from cadenza.observability._tracing import carrier, enabled
from cadenza.security._security import RunSecurity

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider() -> None:
    if not enabled():
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@tool(scopes={"read"})
def lookup(topic: str) -> str:
    """Look a topic up."""
    return f"facts about {topic}"


@tool(scopes={"write"})
def publish(text: str) -> str:
    """Publish."""
    return "done"


def researcher_model() -> FunctionModel:
    def reply(request: ModelRequest) -> ModelResponse | list[ToolCall]:
        if not any(isinstance(m, ToolResultMessage) for m in request.messages):
            return [ToolCall(id="call_1", name="lookup", arguments={"topic": "x"}),
                    ToolCall(id="call_2", name="publish", arguments={"text": "y"})]
        return ModelResponse(text="found it", model="fn-2026",
                             usage=Usage(input_tokens=30, output_tokens=10, model_calls=1, cost_usd=0.001))

    return FunctionModel(reply, name="researcher")


def team() -> Supervisor[str]:
    researcher = Agent("researcher", "Research.", model=researcher_model(), tools=[lookup, publish], scopes={"read"})
    inner = Supervisor("inner", workers=[researcher], model=SimulatedModel("inner"), synthesize="always",
                       plan=Plan.of({"id": "find", "agent": "researcher", "instruction": "Find it"}))
    return Supervisor("lead", workers=[inner], model=SimulatedModel("lead"), synthesize="always",
                      plan=Plan.of({"id": "delegate", "agent": "inner", "instruction": "Delegate"}))


def children(of: ReadableSpan, everything: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    assert of.context is not None
    return [s for s in everything if s.parent is not None and s.parent.span_id == of.context.span_id]


def named(prefix: str, among: list[ReadableSpan]) -> ReadableSpan:
    found = [s for s in among if s.name.startswith(prefix)]
    assert len(found) == 1, [s.name for s in among]
    return found[0]


async def test_the_span_tree_of_a_run_with_a_nested_team(spans: InMemorySpanExporter) -> None:
    result = await team().run("Find it")

    everything = spans.get_finished_spans()
    assert len({s.context.trace_id for s in everything if s.context}) == 1  # one trace
    [root] = [s for s in everything if s.parent is None]
    assert root.name == "invoke_agent lead" and root.attributes is not None
    assert root.attributes["cadenza.run_id"] == result.run_id and root.attributes["cadenza.kind"] == "team"

    step = named("cadenza.step delegate", children(root, everything))
    synthesis = named("cadenza.synthesize", children(root, everything))
    assert [s.name for s in children(synthesis, everything)] == ["invoke_agent lead"]  # the synthesiser agent
    nested = named("invoke_agent inner", children(step, everything))
    inner_step = named("cadenza.step find", children(nested, everything))
    agent = named("invoke_agent researcher", children(inner_step, everything))
    chats = [s for s in children(agent, everything) if s.name.startswith("chat ")]
    assert len(chats) == 2
    tools = {s.attributes["gen_ai.tool.name"]: s for s in everything  # type: ignore[index]
             if s.name.startswith("execute_tool")}
    assert set(tools) == {"lookup", "publish"}
    assert all(t.parent is not None and t.parent.span_id == agent.context.span_id for t in tools.values())  # type: ignore[union-attr]

    chat = chats[-1].attributes or {}
    assert chat["gen_ai.operation.name"] == "chat"
    assert chat["gen_ai.provider.name"] == "function"
    assert chat["gen_ai.request.model"] == "function:researcher"
    assert chat["gen_ai.response.model"] == "fn-2026"
    assert (chat["gen_ai.usage.input_tokens"], chat["gen_ai.usage.output_tokens"]) == (30, 10)
    assert inner_step.attributes is not None and inner_step.attributes["cadenza.team"] == "lead/delegate"
    assert agent.attributes is not None and agent.attributes["gen_ai.agent.name"] == "researcher"
    assert tools["publish"].status.status_code == StatusCode.ERROR  # denied: the agent holds read only
    assert tools["lookup"].status.status_code == StatusCode.UNSET
    assert all("facts about" not in json.dumps(dict(s.attributes or {})) for s in everything)  # no content


async def test_a_failed_step_is_an_error_span(spans: InMemorySpanExporter) -> None:
    def broken(request: ModelRequest) -> str:
        from cadenza import ModelError

        raise ModelError("401 bad key")

    worker = Agent("w", "Work.", model=FunctionModel(broken))
    lead = Supervisor("lead", workers=[worker], model=SimulatedModel("o"),
                      plan=Plan.of({"id": "s1", "agent": "w", "instruction": "Go"}))

    await lead.run("Go")

    step = named("cadenza.step s1", list(spans.get_finished_spans()))
    assert step.status.status_code == StatusCode.ERROR
    assert step.attributes is not None and step.attributes["error.type"] == "ModelError"


_CHILD = """
import json, sys
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.sdk.trace import TracerProvider
provider = TracerProvider()
trace.set_tracer_provider(provider)
envelope = json.loads(sys.stdin.read())
context = extract(envelope["trace"])
with trace.get_tracer("child").start_as_current_span("worker", context=context) as span:
    made = span.get_span_context()
    print(json.dumps({"trace_id": made.trace_id, "parent": span.parent.span_id if span.parent else None}))
"""


def test_trace_context_in_a_signed_envelope_joins_a_worker_in_another_process() -> None:
    security = RunSecurity("run_trace")
    task = Task(task_id="task_1", run_id="run_trace", sender="lead", recipient="worker", instruction="Go")
    with trace.get_tracer("test").start_as_current_span("send") as sending:
        envelope = security.keyring.seal(security.identity("lead"), "lead/worker", task, trace=carrier())
    sent = sending.get_span_context()

    child = subprocess.run([sys.executable, "-c", _CHILD], input=envelope.model_dump_json(), capture_output=True,
                           text=True, check=True, timeout=60)

    joined = json.loads(child.stdout)
    assert joined == {"trace_id": sent.trace_id, "parent": sent.span_id}
    assert envelope.trace is not None and envelope.trace["traceparent"].startswith("00-")
    assert security.receive(envelope).task_id == "task_1"  # the trace context is signed with the rest


async def test_prompts_and_completions_are_recorded_only_when_opted_in(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = Agent("a", "Be secret.", model=FunctionModel(lambda r: "the answer", name="m"))
    await agent.run("the question")
    [chat] = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    assert "gen_ai.input.messages" not in (chat.attributes or {})

    spans.clear()
    monkeypatch.setenv("CADENZA_TRACE_CONTENT", "1")
    await agent.run("the question")
    [chat] = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    attributes = chat.attributes or {}
    assert attributes["gen_ai.system_instructions"] == "Be secret."
    assert "the question" in str(attributes["gen_ai.input.messages"])
    assert "the answer" in str(attributes["gen_ai.output.messages"])


async def test_metrics_count_model_calls_tokens_and_tool_outcomes() -> None:
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    # A meter provider can be set once per process, and only this test sets one.
    assert type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider"
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    await team().run("Find it")

    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    calls = {p.attributes["gen_ai.request.model"]: p.value for p in points["cadenza.model.calls"]}
    assert calls["function:researcher"] == 2
    tokens = {(p.attributes["gen_ai.request.model"], p.attributes["gen_ai.token.type"]): p.value
              for p in points["gen_ai.client.token.usage.total"]}
    assert tokens[("function:researcher", "input")] >= 30 and tokens[("function:researcher", "output")] >= 10
    tools = {(p.attributes["gen_ai.tool.name"], p.attributes["cadenza.outcome"]): p.value
             for p in points["cadenza.tool.calls"]}
    assert tools == {("lookup", "ok"): 1, ("publish", "denied"): 1}
    assert sum(p.count for p in points["gen_ai.client.operation.duration"]) >= 2
