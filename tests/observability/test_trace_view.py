"""``cadenza trace``: a known stored run renders to a fixed layout, and real runs (finished, waiting, resumed) render."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from cadenza import Plan
from cadenza._usage import Usage
from cadenza.cli import app
from cadenza.cli._trace import render_trace
from cadenza.recorded import critical_steps, trace_lines
from cadenza.stores.base import AuditRecord, PlanRow, RunRow, RunSnapshot, StepRow

T0 = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def step(scope: str, sid: str, agent: str, start: float, end: float, tokens: int, status: str = "success",
         attempts: int = 1) -> StepRow:
    usage = Usage(input_tokens=tokens // 2, output_tokens=tokens - tokens // 2, model_calls=1, cost_usd=tokens / 1e5)
    return StepRow("run_t", scope, sid, agent, status, attempts, at(start), at(end), None, None, None,
                   usage.model_dump_json())


PLAN = Plan.of({"id": "a", "agent": "scout", "instruction": "Find"},
               {"id": "b", "agent": "team", "instruction": "Build", "depends_on": ["a"]},
               {"id": "c", "agent": "writer", "instruction": "Draft", "depends_on": ["a"]},
               {"id": "d", "agent": "writer", "instruction": "Edit", "depends_on": ["b", "c"]})
INNER = Plan.of({"id": "x", "agent": "dev", "instruction": "Code"})

SNAPSHOT = RunSnapshot(
    run=RunRow("run_t", "demo", "a goal", "success", T0, at(10), None, "null", "{}", "h",
               Usage(input_tokens=500, output_tokens=500, model_calls=6, cost_usd=0.01).model_dump_json(), None, None,
               "0.1.0"),
    plans=[PlanRow("run_t", "lead", PLAN.model_dump_json(), "h", "planner"),
           PlanRow("run_t", "lead/b", INNER.model_dump_json(), "h", "static")],
    steps=[step("lead", "a", "scout", 0, 2, 100), step("lead", "b", "team", 2, 8, 300, attempts=2),
           step("lead", "c", "writer", 2, 4, 100), step("lead", "d", "writer", 8, 10, 200),
           step("lead/b", "x", "dev", 3, 7, 250)],
    spawned=[], usage=[], tool_calls=[], approvals=[],
)
AUDIT = [AuditRecord("run_t", 0, at(5), "tool.called", "dev", "compile",
                     json.dumps({"step": "lead/b/x", "outcome": "ok"}), "p", "h"),
         AuditRecord("run_t", 1, at(6), "tool.denied", "dev", "deploy",
                     json.dumps({"step": "lead/b/x", "outcome": "denied"}), "h", "h2")]

EXPECTED = """\
run run_t  demo  ✓ success  10.00s · 1000 tokens · $0.0100 · 6 model calls
                   start    took  tokens     cost  0s            10.00s
* ✓ a scout        0.00s   2.00s     100  $0.0010  ████
* ✓ b team         2.00s   6.00s     300  $0.0030      ████████████      2 attempts
*   ✓ x dev        3.00s   4.00s     250  $0.0025        ████████
      ✓ ↳ compile  5.00s                                     ╵           ok
      ✗ ↳ deploy   6.00s                                       ╵         denied
  ✓ c writer       2.00s   2.00s     100  $0.0010      ▒▒▒▒
* ✓ d writer       8.00s   2.00s     200  $0.0020                  ████
* on the critical path of its team (the chain of dependencies that finished last)"""


def test_a_known_run_renders_to_a_fixed_layout() -> None:
    assert render_trace(SNAPSHOT, AUDIT, width=20) == EXPECTED


def test_the_critical_path_follows_the_dependency_that_finished_last() -> None:
    rows = {r.step_id: r for r in SNAPSHOT.steps if r.scope == "lead"}
    assert critical_steps(PLAN, rows) == {"a", "b", "d"}  # c finished before b, so d waited for b


def test_cadenza_trace_on_finished_and_waiting_runs(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    examples = Path(__file__).resolve().parents[2] / "examples"
    runner = CliRunner()
    done = runner.invoke(app, ["--store", db, "run", str(examples / "teams.yaml"), "Build search", "--json",
                               "--model", "simulated:fast"])
    run_id = json.loads(done.stdout)["run_id"]

    shown = runner.invoke(app, ["--store", db, "trace", run_id, "--width", "30"])

    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith(f"run {run_id}  product  ✓ success")
    assert "* ✓" in shown.output  # a critical path is marked
    nested = [line for line in shown.output.splitlines() if line.startswith(("*   ", "    "))]
    assert nested  # the nested teams' steps sit under their team's step
    missing = runner.invoke(app, ["--store", db, "trace", "run_nope"])
    assert missing.exit_code == 2


def test_the_top_teams_planning_and_synthesis_calls_are_shown_so_the_lines_add_up(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    examples = Path(__file__).resolve().parents[2] / "examples"
    runner = CliRunner()
    always = tmp_path / "research.yaml"  # by default the writer's report is the answer, with no synthesis
    always.write_text((examples / "research.yaml").read_text().replace(
        "  workers: [researcher_1", "  synthesize: always\n  workers: [researcher_1"))
    done = runner.invoke(app, ["--store", db, "run", str(always), "X", "--json"])
    result = json.loads(done.stdout)

    lines = trace_lines(*asyncio.run(_stored(db, result["run_id"])))

    top = [line for line in lines if line.depth == 0]
    assert [line.label.split()[0] for line in top] == ["chat", "s1", "s2", "s3", "s4", "s5", "s6", "chat"]
    assert (top[0].detail, top[-1].detail) == ("planning", "synthesis")
    assert sum(line.tokens for line in top) == result["usage"]["input_tokens"] + result["usage"]["output_tokens"]


async def _stored(db: str, run_id: str) -> tuple[RunSnapshot, list[AuditRecord]]:
    from cadenza.stores import open_store

    async with open_store(db) as store:
        return await store.snapshot(run_id), await store.audit(run_id)
