"""What each tool call did is stored and shown: ``show``, ``trace`` and ``export`` carry its error or its result."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner

from cadenza import Agent, Plan, Supervisor, tool
from cadenza.cli import app
from cadenza.models.base import ModelRequest, ToolCall, ToolResultMessage
from cadenza.models.function import FunctionModel


@tool
async def lookup(query: str) -> str:
    """Look something up.

    Args:
        query: what to look for.
    """
    if query == "broken":
        raise ValueError("the index is offline")
    return f"found {query} " * 30


def reply(request: ModelRequest) -> str | list[ToolCall]:
    told = [m for m in request.messages if isinstance(m, ToolResultMessage)]
    if request.agent == "finder" and not told:
        return [ToolCall(id="1", name="lookup", arguments={"query": "cats"}),
                ToolCall(id="2", name="lookup", arguments={"query": "broken"})]
    return "done"


async def recorded_run(db: Path) -> str:
    model = FunctionModel(reply)
    lead = Supervisor("lead", workers=[Agent("finder", "Find things.", model=model, tools=[lookup])], model=model,
                      plan=Plan.of({"id": "find", "agent": "finder", "instruction": "Find cats"}))
    result = await lead.run("find cats", store=db)
    assert result.status == "success"  # the model was told of the error and went on: the step succeeded
    return result.run_id


def test_show_trace_and_export_carry_each_tool_calls_outcome(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    run_id = asyncio.run(recorded_run(db))
    runner = CliRunner(env={"COLUMNS": "200"})

    shown = json.loads(runner.invoke(app, ["--store", str(db), "show", run_id, "--json"]).stdout)
    [step] = shown["teams"][0]["steps"]
    ok, failed = step["tool_calls"]
    assert (ok["tool"], ok["outcome"], ok["error"]) == ("lookup", "ok", None)
    assert ok["result_preview"] == ("found cats " * 30)[:200] and ok["result_chars"] == len("found cats " * 30)
    assert ok["result_digest"].startswith("sha256:")
    assert (failed["outcome"], failed["error"]) == ("error", "tool 'lookup' failed: ValueError: the index is offline")

    view = runner.invoke(app, ["--store", str(db), "show", run_id]).stdout
    assert "↳ lookup error tool 'lookup' failed: ValueError: the index is offline" in view
    assert "↳ lookup ok → found cats found cats" in view

    traced = runner.invoke(app, ["--store", str(db), "trace", run_id]).stdout
    assert "error: tool 'lookup' failed: ValueError: the index is offline" in traced
    assert "ok → found cats" in traced

    exported = json.loads(runner.invoke(app, ["--store", str(db), "export", run_id]).stdout)
    assert [(c["step"], c["outcome"]) for c in exported["tool_calls"]] == [("lead/find", "ok"), ("lead/find", "error")]
    assert exported["tool_calls"][1]["error"].endswith("the index is offline")
