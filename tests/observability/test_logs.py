"""Structured logs: every line of a run carries its ids, at levels that fit what happened."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cadenza import Agent, ExecutionPolicy, FunctionModel, ModelError, ModelRequest, Plan, RetryPolicy, Supervisor, tool
from cadenza.cli import app
from cadenza.models.base import ToolCall, ToolResultMessage
from cadenza.models.simulated import SimulatedModel
from cadenza.observability._logging import EventLog, configure, logger


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure("json", level=logging.DEBUG, stream=stream)
    yield stream
    configure("text", level=logging.WARNING)
    logger.propagate = True


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@tool(scopes={"write"})
def publish(text: str) -> str:
    """Publish."""
    return "ok"


def flaky_then_denied() -> FunctionModel:
    calls = {"n": 0}

    def reply(request: ModelRequest) -> str | list[ToolCall]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ModelError("503 overloaded", retryable=True)
        if not any(isinstance(m, ToolResultMessage) for m in request.messages):
            return [ToolCall(id="1", name="publish", arguments={"text": "x"})]
        return "gave up"

    return FunctionModel(reply)


async def test_every_line_of_a_run_carries_its_ids_and_a_fitting_level(lines: io.StringIO) -> None:
    writer = Agent("writer", "Write.", model=flaky_then_denied(), tools=[publish], scopes={"read"})
    inner = Supervisor("inner", workers=[writer], model=SimulatedModel("i"),
                       plan=Plan.of({"id": "w1", "agent": "writer", "instruction": "Write it"}),
                       policy=ExecutionPolicy(retry=RetryPolicy(max_attempts=2, initial_delay=0.0, jitter=0.0)))
    outer = Supervisor("lead", workers=[inner], model=SimulatedModel("o"),
                       plan=Plan.of({"id": "t1", "agent": "inner", "instruction": "Delegate"}))

    result = await outer.run("Ship it", events=EventLog())

    records = parsed(lines)
    assert records and all(r["run_id"] == result.run_id for r in records)
    retry = [r for r in records if r.get("event") == "StepRetrying"]
    assert [(r["level"], r["team"], r["step"], r["agent"]) for r in retry] == [("warning", "lead/t1", "w1", "writer")]
    denied = [r for r in records if r["logger"] == "cadenza.security"]
    assert len(denied) == 1 and denied[0]["level"] == "warning"
    assert (denied[0]["agent"], denied[0]["tool"], denied[0]["step"]) == ("writer", "publish", "w1")
    assert denied[0]["task_id"].startswith("task_")  # the Task of the attempt that made the call
    assert "permission denied" in denied[0]["message"]
    finished = [r for r in records if r.get("event") == "RunFinished"]
    assert {r["team"] for r in finished} == {"lead", "lead/t1"}


async def test_a_failed_run_is_an_error(lines: io.StringIO) -> None:
    def broken(request: ModelRequest) -> str:
        raise ModelError("401 bad key")

    worker = Agent("w", "Work.", model=FunctionModel(broken))
    team = Supervisor("lead", workers=[worker], model=SimulatedModel("o"),
                      plan=Plan.of({"id": "s1", "agent": "w", "instruction": "Go"}))

    await team.run("Go", events=EventLog())

    levels = {r.get("event"): r["level"] for r in parsed(lines)}
    assert levels["StepFailed"] == "warning"
    assert levels["RunFinished"] == "error"


def test_the_text_form_is_for_people() -> None:
    stream = io.StringIO()
    configure("text", level=logging.INFO, stream=stream)
    try:
        logging.getLogger("cadenza.run").warning("step failed, retrying", extra={
            "run_id": "run_1", "team": "lead", "step": "s2", "agent": "writer"})
    finally:
        configure("text", level=logging.WARNING)
        logger.propagate = True
    line = stream.getvalue().strip()
    assert line.endswith("WARNING lead/s2 (writer): step failed, retrying  [run_1]")


def test_the_cli_writes_json_lines_with_the_run_id(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    result = CliRunner().invoke(app, ["--store", str(tmp_path / "runs.db"), "--log-format", "json", "--log-level",
                                      "info", "run", str(examples / "research.yaml"), "X", "--model",
                                      "simulated:fast", "--json"])
    try:
        assert result.exit_code == 0, result.output
        run_id = json.loads(result.stdout)["run_id"]
        logged = [json.loads(line) for line in result.stderr.splitlines()]  # every line: the CLI's notices too
        assert logged[0]["message"].startswith("no model provider configured")  # said before the run has an id
        assert len(logged) >= 8 and all(r["run_id"] == run_id for r in logged[1:])
    finally:
        configure("text", level=logging.WARNING)
        logger.propagate = True
