"""The command line: run, plan and validate, their output on pipes, JSON mode, and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import cadenza.patterns._workflow
from cadenza import __version__
from cadenza.cli import app
from cadenza.cli._resume import OFFLINE_NOTICE
from processes import default_sigint

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RESEARCH = str(EXAMPLES / "research.yaml")
TEAMS = str(EXAMPLES / "teams.yaml")
GOAL = "Compare the last three papers on X"
FAST = ["--model", "simulated:fast"]
"""Replaces the examples' simulated latency, so the suite stays quick."""


def invoke(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args))


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def cli(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "cadenza.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def test_run_json_research_plan_shape() -> None:
    result = invoke("run", RESEARCH, GOAL, "--json", *FAST)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # exactly one JSON document, nothing else on stdout
    assert doc["status"] == "success"
    assert doc["run_id"].startswith("run_")
    assert doc["output"]
    assert doc["usage"]["model_calls"] > 0
    steps = doc["steps"]
    assert all(s["status"] == "success" and s["attempts"] == 1 for s in steps)
    assert all(s["started_at"] and s["finished_at"] for s in steps)
    researchers = [s for s in steps if s["agent"].startswith("researcher_")]
    assert sorted(s["agent"] for s in researchers) == [f"researcher_{i}" for i in range(1, 6)]
    assert all(s["depends_on"] == [] for s in researchers)
    (writer,) = [s for s in steps if s["agent"] == "writer"]
    assert sorted(writer["depends_on"]) == sorted(s["id"] for s in researchers)
    assert OFFLINE_NOTICE in result.stderr
    assert f"run {doc['run_id']}" in result.stderr


@pytest.mark.parametrize(("workflow", "agents"), [
    (RESEARCH, {f"researcher_{i}" for i in range(1, 6)} | {"writer"}),
    (TEAMS, {"research", "engineering"}),
])
def test_examples_run_offline_in_a_real_process(workflow: str, agents: set[str]) -> None:
    """The examples as shipped (their own latency and models), through ``python -m cadenza.cli``."""
    process = cli("run", workflow, GOAL, "--json")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    doc = json.loads(out)
    assert doc["status"] == "success"
    assert {s["agent"] for s in doc["steps"]} == agents
    assert all(s["status"] == "success" for s in doc["steps"])
    assert OFFLINE_NOTICE in err


def test_plain_output_when_stdout_is_not_a_terminal() -> None:
    result = invoke("run", TEAMS, "Add offline mode", *FAST)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    run_id = lines[0].split()[1]
    assert lines[0].startswith(f"run {run_id}")
    assert any("lead: plan ready (planner)" in line for line in lines)
    assert any("lead/s2: plan ready (static): 3 steps" in line for line in lines)
    assert any("lead/s2: build (developer) done in" in line for line in lines)
    assert "--- output ---" in lines
    assert lines[-1].startswith("success in ") and lines[-1].endswith(f"run {run_id}")
    assert "\x1b[" not in result.stdout  # no escape codes in a pipe


def test_model_override(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[cadenza.patterns._workflow.Workflow] = []
    original = cadenza.patterns._workflow.load_workflow

    def spy(path: str, *, model: str | None = None) -> cadenza.patterns._workflow.Workflow:
        loaded.append(original(path, model=model))
        return loaded[-1]

    monkeypatch.setattr(cadenza.patterns._workflow, "load_workflow", spy)
    result = invoke("run", RESEARCH, GOAL, "--json", "--model", "simulated:other")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "success"
    assert loaded[0].models_used == {"simulated:other"}

    bad = invoke("run", RESEARCH, GOAL, "--model", "nope:x")
    assert bad.exit_code == 2
    assert "error: " in bad.stderr and "--model: unknown model provider 'nope'" in bad.stderr


def test_partial_run_exits_1(tmp_path: Path) -> None:
    # One agent may take one turn but is scripted to call a tool: it fails, the other succeeds.
    path = write(tmp_path, """\
        name: t
        simulated: {replies: {a: [{tool_calls: [{name: missing}]}]}}
        agents: [{name: a, max_turns: 1}, {name: b}]
        supervisor: {name: lead, workers: [a, b]}
        """)
    result = invoke("run", path, "go", "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "partial"
    assert {s["agent"]: s["status"] for s in doc["steps"]} == {"a": "failed", "b": "success"}


def test_plan_error_during_run_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        name: t
        simulated: {replies: {lead: ["not a plan"]}}
        agents: [{name: a}]
        supervisor: {name: lead, workers: [a], planner_repairs: 0}
        """)
    result = invoke("run", path, "go", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(OFFLINE_NOTICE) and "error: the planner gave no valid plan" in result.stderr


def test_plan_prints_a_tree() -> None:
    result = invoke("plan", RESEARCH, GOAL, *FAST)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "lead plan (planner): 6 steps in 2 layers, critical path 2 steps" in out
    assert "layer 1: 5 steps in parallel" in out
    assert "s6 → writer" in out and "(after s1, s2, s3, s4, s5)" in out

    teams = invoke("plan", TEAMS, "Add offline mode", *FAST)
    assert teams.exit_code == 0, teams.output
    assert "team of user_researcher, market_analyst: plans its own steps at run time" in teams.stdout
    assert "engineering plan (static): 3 steps in 3 layers" in teams.stdout
    assert "build → developer: Implement the design. (after design)" in teams.stdout


def test_plan_json() -> None:
    result = invoke("plan", TEAMS, "Add offline mode", "--json", *FAST)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["team"] == "lead" and doc["source"] == "planner"
    engineering = next(s for s in doc["steps"] if s["agent"] == "engineering")
    assert engineering["worker"] == "team"
    assert [s["id"] for s in engineering["plan"]["steps"]] == ["design", "build", "test"]
    assert engineering["plan"]["critical_path"] == ["design", "build", "test"]


def test_validate() -> None:
    assert invoke("validate", RESEARCH).stdout == "ok: research: 6 agents, 0 teams, plan: planner\n"
    assert invoke("validate", TEAMS).stdout == "ok: product: 5 agents, 2 teams, plan: planner\n"


def test_validate_bad_file(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        name: t
        agents: [{name: writer}]
        supervisor: {name: lead, workers: [writter]}
        """)
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}: supervisor.workers[0]: unknown worker 'writter'")
    assert "Traceback" not in result.stderr

    missing = invoke("validate", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "nope.yaml: no such file" in missing.stderr


def test_validate_a_deeply_nested_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("name: t\nagents: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}: nested too deeply")
    assert "RecursionError" not in result.stderr and "internal error" not in result.stderr


def test_debug_shows_tracebacks(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    assert "Traceback" in invoke("--debug", "validate", path).stderr
    result = invoke("validate", path, "--debug")
    assert result.exit_code == 2 and "Traceback" in result.stderr and "error: " in result.stderr


def test_internal_error_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: str, *, model: str | None = None) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cadenza.patterns._workflow, "load_workflow", broken)
    result = invoke("validate", RESEARCH)
    assert result.exit_code == 3
    assert "internal error: RuntimeError: boom" in result.stderr and "--debug" in result.stderr
    assert "Traceback" in invoke("--debug", "validate", RESEARCH).stderr


def test_usage_errors_exit_2() -> None:
    result = invoke("run", RESEARCH)
    assert result.exit_code == 2
    assert "Missing argument 'GOAL'" in result.stderr


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_cancels_the_run_and_exits_130(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        name: slow
        simulated: {latency: 30}
        agents: [{name: a}, {name: b}]
        supervisor: {name: lead, workers: [a, b], plan: [{id: s1, agent: a, instruction: go}, {id: s2, agent: b, instruction: go, depends_on: [s1]}]}
        """)
    process = cli("run", path, "go", preexec_fn=default_sigint)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # wait for the step to be running, not for a fixed time
        seen.append(line)
        if "s1 (a) running" in line:
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    assert seen[0].startswith("run run_")
    assert "s1 (a) cancelled" in out and "s2 (b) skipped" in out
    assert "cancelled: run run_" in err and "Traceback" not in err


def test_importing_the_cli_does_not_load_rich_or_the_runtime() -> None:
    code = "import sys, cadenza.cli; print(sorted(m for m in ('rich', 'cadenza.patterns._supervisor', 'yaml') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
