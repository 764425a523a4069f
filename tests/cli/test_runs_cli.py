"""``cadenza runs``, ``show`` and ``export`` over runs written into a SQLite store row by row."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest
from click.testing import CliRunner, Result

from cadenza._messages import ErrorInfo
from cadenza._messages import Result as StepResult
from cadenza._plan import Plan
from cadenza._usage import Usage
from cadenza.cli import app
from cadenza.stores import open_store
from cadenza.stores.base import (
    AddMessage,
    AddSpawn,
    ApprovalRow,
    MessageRow,
    PlanRow,
    PutApproval,
    PutPlan,
    PutRun,
    PutStep,
    PutToolCall,
    PutUsage,
    RunRow,
    SpawnRow,
    StepRow,
    ToolCallRow,
    UsageRow,
    Write,
)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LONG_OUTPUT = "Three papers compare well. " + "More detail follows here. " * 20


def invoke(store: Path, *args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, ["--store", str(store), *args])


def seed(store: Path, *writes: Write, workspace: tuple[tuple[str, str, str], ...] = ()) -> None:
    """Write rows (and workspace values: run id, key, JSON value) into the store at ``store``."""
    async def go() -> None:
        async with open_store(str(store)) as s:
            await s.apply(list(writes))
            for run_id, key, value in workspace:
                current = await s.workspace_get(run_id, key)
                await s.workspace_put(run_id, key, value, expected_version=current.version if current else 0,
                                      writer="writer")

    asyncio.run(go())


def usage(tokens: int, cost: float = 0.0) -> str:
    return Usage(input_tokens=tokens - tokens // 4, output_tokens=tokens // 4, model_calls=2,
                 cost_usd=cost).model_dump_json()


def run_row(run_id: str, *, workflow: str = "research", status: str = "success", start: datetime = T0,
            took: float | None = 12.5, tokens: int = 1000, cost: float = 0.0123) -> RunRow:
    return RunRow(run_id=run_id, workflow=workflow, goal=f"goal of {run_id}", status=status,  # type: ignore[arg-type]
                  started_at=start, finished_at=start + timedelta(seconds=took) if took is not None else None,
                  source=f"/work/{workflow}.yaml", usage_json=usage(tokens, cost),
                  output_json=json.dumps("the final report") if status == "success" else None,
                  fingerprint_json=json.dumps({"options": {"model": None}}), cadenza_version="0.1.0")


def step_row(run_id: str, scope: str, step_id: str, agent: str, status: str, *, output: str | None = None,
             error: str | None = None, skip: str | None = None, attempts: int = 1) -> StepRow:
    result = None
    if output is not None or error is not None:
        result = StepResult(task_id=f"task_{step_id}", run_id=run_id, agent=agent,  # type: ignore[arg-type]
                            status="success" if error is None else "failure", output=output,
                            error=ErrorInfo(type="ModelError", message=error) if error else None,
                            usage=Usage(input_tokens=30, output_tokens=12, model_calls=1),
                            started_at=T0, finished_at=T0 + timedelta(seconds=2)).model_dump_json()
    ran = skip is None and status != "pending"
    return StepRow(run_id=run_id, scope=scope, step_id=step_id, agent=agent, status=status, attempts=attempts,
                   started_at=T0 if ran else None, finished_at=T0 + timedelta(seconds=2) if ran else None,
                   result_json=result, skip_reason=skip,
                   error_json=ErrorInfo(type="ModelError", message=error).model_dump_json() if error else None,
                   usage_json=usage(42) if ran else "{}")


def plan_row(run_id: str, scope: str, *steps: dict[str, object], source: Literal["planner", "static"] = "planner") -> PlanRow:
    return PlanRow(run_id, scope, Plan.of(*steps).model_dump_json(), "hash", source)


def partial_run(run_id: str = "run_partial", *, start: datetime = T0 + timedelta(days=1)) -> list[Write]:
    """A lead whose research step succeeded, build (a nested team) half failed, and report was skipped."""
    return [
        PutRun(run_row(run_id, workflow="product", status="partial", start=start, tokens=2345, cost=0.5)),
        PutPlan(plan_row(run_id, "lead",
                         {"id": "research", "agent": "researcher", "instruction": "Find sources"},
                         {"id": "build", "agent": "engineering", "instruction": "Build it", "depends_on": ["research"]},
                         {"id": "report", "agent": "writer", "instruction": "Write it", "depends_on": ["build"]})),
        PutPlan(plan_row(run_id, "lead/build",
                         {"id": "design", "agent": "architect", "instruction": "Design"},
                         {"id": "code", "agent": "developer", "instruction": "Code", "depends_on": ["design"]},
                         source="static")),
        PutStep(step_row(run_id, "lead", "research", "researcher", "success", output=LONG_OUTPUT)),
        PutStep(step_row(run_id, "lead/build", "design", "architect", "success", output="a design doc")),
        PutStep(step_row(run_id, "lead/build", "code", "developer", "failed", error="provider overloaded",
                         attempts=3)),
        PutStep(step_row(run_id, "lead", "build", "engineering", "partial", output="half built")),
        PutStep(step_row(run_id, "lead", "report", "writer", "skipped", skip="dependency 'build' did not succeed")),
        AddMessage(MessageRow(run_id, "lead", "research", "task", json.dumps({"kind": "task", "n": 1}), T0)),
        AddMessage(MessageRow(run_id, "lead", "research", "result", json.dumps({"kind": "result", "n": 2}), T0)),
        AddMessage(MessageRow(run_id, "lead", "build", "task", json.dumps({"kind": "task", "n": 3}), T0)),
        AddSpawn(SpawnRow(run_id, "lead", "fact_checker", json.dumps({"name": "fact_checker", "role": "checks"}))),
        PutUsage(UsageRow(run_id, "lead", "planner", usage(300))),
        PutToolCall(ToolCallRow(run_id, "k1", "lead", "research", "researcher", "search", "idempotent", "d1",
                                "finished", T0, json.dumps(["a", "b"]))),
    ]


def waiting_run(run_id: str = "run_waiting") -> list[Write]:
    return [
        PutRun(run_row(run_id, workflow="mailer", status="waiting", start=T0 + timedelta(days=2), took=None)),
        PutPlan(plan_row(run_id, "lead", {"id": "send", "agent": "mailer", "instruction": "Send the report"})),
        PutStep(step_row(run_id, "lead", "send", "mailer", "waiting")),
        PutApproval(ApprovalRow(run_id, "appr_1", "lead/send", "send", "mailer", "send_email", "d2",
                                json.dumps({"to": "boss@example.com"}), "approval required", "pending",
                                T0 + timedelta(days=2))),
    ]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with three runs: an old success, a newer partial one, the newest waiting for an approval."""
    path = tmp_path / "runs.db"
    seed(path, PutRun(run_row("run_old")), *partial_run(), *waiting_run(),
         workspace=(("run_partial", "notes", '"first"'), ("run_partial", "notes", '"second"'),
                    ("run_partial", "draft", '{"v": 1}')))
    return path


# --------------------------------------------------------------------------- runs


def test_runs_lists_newest_first_with_totals(store: Path) -> None:
    result = invoke(store, "runs")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"runs in sqlite://{store}"
    assert lines[1].split() == ["id", "workflow", "status", "started", "duration", "tokens", "cost"]
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["run_waiting", "run_partial", "run_old"]
    waiting, partial, old = rows
    assert waiting[1:4] == ["mailer", "⏸", "waiting"] and waiting[-3:] == ["-", "1000", "$0.0123"]
    assert partial[1:4] == ["product", "◐", "partial"] and partial[-3:] == ["12.50s", "2345", "$0.5000"]
    started = T0.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert " ".join(old[4:6]) == started and old[-3:] == ["12.50s", "1000", "$0.0123"]


def test_runs_on_a_pipe_keeps_whole_lines(store: Path) -> None:
    result = CliRunner(env={"COLUMNS": "40"}).invoke(app, ["--store", str(store), "runs"])
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    assert result.stdout.splitlines()[2].split()[:3] == ["run_waiting", "mailer", "⏸"]


def test_runs_limit_and_json(store: Path) -> None:
    result = invoke(store, "runs", "--limit", "2", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [r["run_id"] for r in doc] == ["run_waiting", "run_partial"]
    assert doc[1] | {"started_at": None, "finished_at": None} == {
        "run_id": "run_partial", "workflow": "product", "goal": "goal of run_partial", "status": "partial",
        "started_at": None, "finished_at": None, "duration": 12.5, "total_tokens": 2345, "cost_usd": 0.5,
        "source": "/work/product.yaml"}
    assert datetime.fromisoformat(doc[1]["started_at"]) == T0 + timedelta(days=1)
    assert invoke(store, "runs", "--limit", "0").exit_code == 2


def test_runs_on_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "runs.db"
    result = invoke(path, "runs")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"no runs recorded in sqlite://{path} yet (cadenza run WORKFLOW GOAL records one)\n"
    assert json.loads(invoke(path, "runs", "--json").stdout) == []
    assert not path.parent.exists()


def test_runs_on_an_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    seed(path)
    result = invoke(path, "runs")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("no runs recorded in ")
    assert json.loads(invoke(path, "runs", "--json").stdout) == []


def test_default_store_is_the_stores_default() -> None:
    import cadenza.stores
    from cadenza.cli._app import DEFAULT_STORE

    assert DEFAULT_STORE == cadenza.stores.DEFAULT_STORE  # kept literal in the CLI so --help loads no store code


def test_store_from_the_environment(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADENZA_STORE", f"sqlite:{store}")
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["runs", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 3
    assert "CADENZA_STORE" in CliRunner().invoke(app, ["--help"]).stdout


# --------------------------------------------------------------------------- show


def test_show_draws_each_team_plan_with_outcomes(store: Path) -> None:
    result = invoke(store, "show", "run_partial")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "run_partial  product  ◐ partial" in out
    assert "goal of run_partial" in out and "/work/product.yaml" in out
    assert "2345 tokens (1759 in, 586 out) · $0.5000 · 2 model calls" in out
    assert "lead · planner plan, 3 steps, 2 done" in out
    assert "✓ research researcher success · 2.00s · 42 tokens" in out
    assert "→ Three papers compare well. More detail follows here." in out and "…" in out
    assert LONG_OUTPUT.strip() not in out  # outputs are shortened
    assert "◐ build engineering partial · 2.00s · 42 tokens (after research)" in out
    # the nested team sits under the step that ran it
    lines = out.splitlines()
    nested = next(i for i, line in enumerate(lines) if "lead/build · static plan, 2 steps, 1 done" in line)
    assert nested > next(i for i, line in enumerate(lines) if "build engineering partial" in line)
    assert "✗ code developer failed · 3 attempts · 2.00s · 42 tokens (after design)" in out
    assert "ModelError: provider overloaded" in out
    assert "↷ report writer skipped" in out and "skipped: dependency 'build' did not succeed" in out
    assert "pending approval" not in out
    assert out.rstrip().endswith("step outputs are cut to one line of 100 characters; whole in: cadenza show "
                                 "run_partial --json")


def test_show_prints_the_runs_whole_output_and_says_nothing_is_cut_when_nothing_is(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    report = "# Report\n\n" + "A finding that matters. " * 30 + "\n\nThe end."
    row = run_row("run_long")
    seed(store, PutRun(replace(row, output_json=json.dumps(report))),
         PutPlan(plan_row("run_long", "lead", {"id": "s1", "agent": "writer", "instruction": "Write"})),
         PutStep(step_row("run_long", "lead", "s1", "writer", "success", output="short")))
    out = invoke(store, "show", "run_long").stdout
    words = " ".join(out.split())  # the terminal wraps the header's column
    assert "A finding that matters. " * 30 in words + " " and "The end." in words
    assert "cut to one line" not in out


def test_global_options_are_read_after_the_subcommand_too(store: Path, tmp_path: Path) -> None:
    after = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["runs", "--json", "--store", str(store)])
    assert after.exit_code == 0, after.output
    assert len(json.loads(after.stdout)) == 3
    nested = CliRunner().invoke(app, ["audit", "verify", "run_partial", f"--store={store}", "--log-level", "error"])
    assert "run_partial" in nested.output
    twice = CliRunner().invoke(app, ["--store", str(tmp_path / "other.db"), "runs", "--store", str(store), "--json"])
    assert len(json.loads(twice.stdout)) == 3  # the later one wins
    missing = CliRunner().invoke(app, ["runs", "--store"])
    assert missing.exit_code == 2 and "Option '--store' requires an argument" in missing.output
    goal = CliRunner().invoke(app, ["show", "--", "--store"])  # after --, nothing is an option
    assert goal.exit_code == 2 and "'--store'" in goal.output


def test_show_pending_approvals(store: Path) -> None:
    out = invoke(store, "show", "run_waiting").stdout
    assert "⏸ waiting" in out and "not finished" in out
    assert "1 pending approval\n" in out
    assert 'send (lead/send) mailer wants to call send_email({"to": "boss@example.com"}) · approval required' in out
    assert "appr_1 · decide: cadenza approve run_waiting send  or  cadenza reject run_waiting send" in out


def test_show_names_approvals_by_id_when_a_step_waits_on_several(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    second = ApprovalRow("run_waiting", "appr_2", "lead/send", "send", "mailer", "send_email", "d3",
                         json.dumps({"to": "team@example.com"}), "approval required", "pending", T0)
    seed(path, *waiting_run(), PutApproval(second))
    out = invoke(path, "show", "run_waiting").stdout
    assert "2 pending approvals" in out
    assert "cadenza approve run_waiting appr_1  or  cadenza reject run_waiting appr_1" in out
    assert "cadenza approve run_waiting appr_2  or  cadenza reject run_waiting appr_2" in out


def test_show_json(store: Path) -> None:
    result = invoke(store, "show", "run_partial", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["run_id"], doc["status"], doc["duration"]) == ("run_partial", "partial", 12.5)
    assert doc["usage"]["model_calls"] == 2
    assert [(t["scope"], t["source"]) for t in doc["teams"]] == [("lead", "planner"), ("lead/build", "static")]
    lead = {s["id"]: s for s in doc["teams"][0]["steps"]}
    assert lead["research"]["output"] == LONG_OUTPUT  # data in full, unlike the terminal view
    assert lead["build"]["depends_on"] == ["research"] and lead["build"]["instruction"] == "Build it"
    assert lead["report"]["skip_reason"] == "dependency 'build' did not succeed"
    code = doc["teams"][1]["steps"][1]
    assert code["error"] == {"type": "ModelError", "message": "provider overloaded", "retryable": False, "code": "model"}
    assert code["attempts"] == 3
    assert doc["spawned"] == [{"scope": "lead", "name": "fact_checker"}]
    waiting = json.loads(invoke(store, "show", "run_waiting", "--json").stdout)
    assert [a["step_id"] for a in waiting["pending_approvals"]] == ["send"]
    assert waiting["pending_approvals"][0]["arguments"] == {"to": "boss@example.com"}


def test_show_a_plan_whose_steps_have_not_started(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    seed(path, PutRun(run_row("run_fresh", status="running", took=None)),
         PutPlan(plan_row("run_fresh", "lead", {"id": "a", "agent": "x", "instruction": "go"})))
    out = invoke(path, "show", "run_fresh").stdout
    assert "· a x pending" in out and "0 done" in out


def test_show_counts_what_a_run_whose_process_died_had_spent(tmp_path: Path) -> None:
    """The run row gets its totals only at the end: an unfinished run shows the sum of what is recorded."""
    path = tmp_path / "runs.db"
    run_id = "run_killed"
    seed(path, PutRun(run_row(run_id, status="running", took=None, tokens=0, cost=0.0)),
         PutPlan(plan_row(run_id, "lead",
                          {"id": "research", "agent": "researcher", "instruction": "Find sources"},
                          {"id": "build", "agent": "engineering", "instruction": "Build it"})),
         PutUsage(UsageRow(run_id, "lead", "planner", usage(300, 0.25))),
         PutStep(step_row(run_id, "lead", "research", "researcher", "success", output="sources")),
         # a nested team half done: its own records count, not the team step (which would count them twice)
         PutStep(step_row(run_id, "lead", "build", "engineering", "running")),
         PutUsage(UsageRow(run_id, "lead/build", "planner", usage(100))),
         PutStep(step_row(run_id, "lead/build", "design", "architect", "success", output="a design")),
         PutStep(step_row(run_id, "lead/build", "code", "developer", "running")))

    doc = json.loads(invoke(path, "show", run_id, "--json").stdout)
    view = invoke(path, "show", run_id).stdout

    spent = doc["usage"]
    assert spent["input_tokens"] + spent["output_tokens"] == 300 + 42 + 100 + 42 + 42  # the in-flight "code" too
    assert (spent["cost_usd"], spent["model_calls"]) == (0.25, 10)
    assert "526 tokens" in view


# --------------------------------------------------------------------------- export


def test_export_holds_the_whole_run(store: Path) -> None:
    result = invoke(store, "export", "run_partial")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["cadenza_export"] == 2
    assert doc["run"]["run_id"] == "run_partial" and doc["run"]["usage"]["cost_usd"] == 0.5
    assert doc["run"]["fingerprint"] == {"options": {"model": None}}
    assert [p["scope"] for p in doc["plans"]] == ["lead", "lead/build"]
    assert [s["id"] for s in doc["plans"][0]["plan"]["steps"]] == ["research", "build", "report"]
    steps = {(s["scope"], s["step_id"]): s for s in doc["steps"]}
    assert steps["lead", "research"]["result"]["output"] == LONG_OUTPUT
    assert steps["lead/build", "code"]["error"]["message"] == "provider overloaded"
    assert [m["body"]["n"] for m in doc["messages"]] == [1, 2, 3]
    assert [m["seq"] for m in doc["messages"]] == sorted(m["seq"] for m in doc["messages"])
    assert doc["spawned"][0]["proposal"]["role"] == "checks"
    assert doc["usage"] == [{"scope": "lead", "source": "planner", "usage": json.loads(usage(300))}]
    assert doc["recorded_calls"][0]["result"] == ["a", "b"]
    assert doc["approvals"] == []
    workspace = {w["key"]: w for w in doc["workspace"]}
    assert workspace["notes"]["value"] == "second" and workspace["notes"]["version"] == 2
    assert [v["value"] for v in workspace["notes"]["history"]] == ["first", "second"]
    assert workspace["draft"]["history"][0]["writer"] == "writer"


def test_export_to_a_file(store: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    result = invoke(store, "export", "run_waiting", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"exported run run_waiting to {target}: 1 step, 0 messages" in result.stderr
    doc = json.loads(target.read_text(encoding="utf-8"))
    assert doc["approvals"][0]["arguments"] == {"to": "boss@example.com"}
    assert doc["approvals"][0]["status"] == "pending"
    bad = invoke(store, "export", "run_waiting", "-o", str(tmp_path / "no" / "dir" / "x.json"))
    assert bad.exit_code == 2
    assert bad.stderr == f"error: cannot write {tmp_path / 'no' / 'dir' / 'x.json'}: No such file or directory\n"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("command", [["show", "run_x"], ["show", "run_x", "--json"], ["export", "run_x"],
                                     ["resume", "run_x"], ["approve", "run_x", "s1", "--no-resume"],
                                     ["reject", "run_x", "s1"]])
def test_unknown_run_exits_2(store: Path, tmp_path: Path, command: list[str]) -> None:
    result = invoke(store, *command)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: no run 'run_x' in sqlite://{store}")
    missing = tmp_path / "missing.db"
    result = invoke(missing, *command)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: no run 'run_x' in sqlite://{missing}\n"
    assert not missing.exists()


@pytest.mark.parametrize("command", [["runs"], ["show", "run_x"], ["export", "run_x"], ["resume", "run_x"]])
def test_corrupt_store_exits_2(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(b"this is not a database, just some text that happens to be here\n" * 50)
    result = invoke(path, *command)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and str(path) in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_unknown_store_url_exits_2() -> None:
    result = CliRunner().invoke(app, ["--store", "redis://localhost/0", "runs"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot open a store at 'redis://localhost/0'")
