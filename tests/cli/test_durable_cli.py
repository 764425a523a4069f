"""``cadenza run`` records the run; ``show``, ``export``, ``resume``, ``approve`` and ``reject`` act on it."""

from __future__ import annotations

import getpass
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cadenza.cli import app
from processes import default_sigint

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TEAMS = str(EXAMPLES / "teams.yaml")
FAST = ["--model", "simulated:fast"]

GATED = str(EXAMPLES / "release.yaml")
"""A written plan whose second step waits for a human's approval before it starts."""


def invoke(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args))


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def run_id_of(result: Result) -> str:
    banner = next(line for line in result.stderr.splitlines() if line.startswith("run run_"))
    run_id = banner.split()[1]
    assert banner == f"run {run_id} (resume with: cadenza resume {run_id})"
    return run_id


def test_the_resume_hint_repeats_the_store_given_on_the_command_line(tmp_path: Path) -> None:
    store = tmp_path / "my runs.db"
    ran = invoke("run", TEAMS, "Add offline mode", *FAST, "--store", str(store))
    assert ran.exit_code == 0, ran.output
    banner = next(line for line in ran.stderr.splitlines() if line.startswith("run run_"))
    run_id = banner.split()[1]
    assert banner == f"run {run_id} (resume with: cadenza resume {run_id} --store '{store}')"
    url = "postgresql://cadenza:s3cret@db.example:5432/runs"
    from cadenza.cli._resume import resume_hint

    with click.Context(app) as ctx:  # how the CLI's root context holds a --store given on the command line
        ctx.set_parameter_source("store", click.core.ParameterSource.COMMANDLINE)
        assert resume_hint("run_x", url) == "cadenza resume run_x --store postgresql://cadenza@db.example:5432/runs"


def test_run_is_recorded_then_shown_and_exported(store_path: Path) -> None:
    ran = invoke("run", TEAMS, "Add offline mode", *FAST)
    assert ran.exit_code == 0, ran.output
    run_id = run_id_of(ran)
    assert store_path.exists()

    listed = json.loads(invoke("runs", "--json").stdout)
    assert [(r["run_id"], r["status"]) for r in listed] == [(run_id, "success")]
    assert listed[0]["source"] == str(Path(TEAMS).resolve())

    shown = invoke("show", run_id)
    assert shown.exit_code == 0, shown.output
    assert f"{run_id}  product  ✓ success" in shown.stdout and "Add offline mode" in shown.stdout
    assert "lead · planner plan, 2 steps, 2 done" in shown.stdout
    assert "static plan, 3 steps, 3 done" in shown.stdout  # the engineering team's own plan, nested
    assert "✓ build developer success" in shown.stdout and "→ [developer] Implement the design" in shown.stdout

    doc = json.loads(invoke("export", run_id).stdout)
    assert doc["run"]["run_id"] == run_id and doc["run"]["status"] == "success"
    assert doc["run"]["fingerprint"]["options"] == {"model": "simulated:fast"}
    assert len(doc["plans"]) == 3
    assert {s["step_id"] for s in doc["steps"]} >= {"design", "build", "test"}
    assert all(s["result"]["status"] == "success" for s in doc["steps"])
    kinds = [m["kind"] for m in doc["messages"]]
    assert kinds.count("task") == kinds.count("result") == len(doc["steps"])
    assert doc["messages"][0]["body"]["kind"] == "task"


def test_run_json_keeps_stdout_for_the_result() -> None:
    ran = invoke("run", TEAMS, "Add offline mode", "--json", *FAST)
    assert ran.exit_code == 0, ran.output
    doc = json.loads(ran.stdout)
    assert run_id_of(ran) == doc["run_id"]
    assert json.loads(invoke("show", doc["run_id"], "--json").stdout)["output"] == doc["output"]


def test_no_store_records_nothing(store_path: Path) -> None:
    ran = invoke("run", TEAMS, "Add offline mode", "--no-store", "--json", *FAST)
    assert ran.exit_code == 0, ran.output
    assert f"run {json.loads(ran.stdout)['run_id']}\n" in ran.stderr and "resume with" not in ran.stderr
    assert not store_path.exists()


def test_run_refuses_a_corrupt_store_before_running(store_path: Path) -> None:
    store_path.parent.mkdir(parents=True)
    store_path.write_text("not a database\n" * 100, encoding="utf-8")
    ran = invoke("run", TEAMS, "Add offline mode", *FAST)
    assert ran.exit_code == 2
    assert ran.stdout == ""
    assert f"error: {store_path} is not a cadenza store or is corrupt" in ran.stderr
    assert invoke("run", TEAMS, "Add offline mode", "--no-store", *FAST).exit_code == 0


def test_resume_of_a_finished_run_exits_2() -> None:
    run_id = run_id_of(invoke("run", TEAMS, "Add offline mode", *FAST))
    result = invoke("resume", run_id)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: run '{run_id}' already finished (success at ")
    assert "there is nothing to resume" in result.stderr


def test_waiting_run_exits_4_then_approve_resumes_it() -> None:
    ran = invoke("run", GATED, "Ship 1.2")
    assert ran.exit_code == 4, ran.output
    run_id = run_id_of(ran)
    assert "waiting for a decision on step publish (lead/publish): publisher waits to start: Publish them" in ran.stderr
    assert f"decide with: cadenza approve {run_id} publish  or  cadenza reject {run_id} publish" in ran.stderr

    shown = invoke("show", run_id)
    assert "⏸ waiting" in shown.stdout and "⏸ publish publisher waiting" in shown.stdout
    assert "1 pending approval" in shown.stdout

    approved = invoke("approve", run_id, "publish", "--note", "looks good")
    assert approved.exit_code == 0, approved.output
    assert approved.stdout.startswith(f"approved step publish (lead/publish) of run {run_id}: "
                                      "publisher waits to start: Publish them · note: looks good\n")
    assert "notes (writer) done (restored from the store)" in approved.stdout
    assert "publish (publisher) done in" in approved.stdout
    assert f"resuming run {run_id} (waiting, started " in approved.stderr

    after = json.loads(invoke("show", run_id, "--json").stdout)
    assert after["status"] == "success" and after["pending_approvals"] == []
    approvals = json.loads(invoke("export", run_id).stdout)["approvals"]
    assert [(a["status"], a["decided_by"], a["note"]) for a in approvals] == [("used", getpass.getuser(), "looks good")]


def test_reject_without_resuming_then_resume() -> None:
    run_id = run_id_of(invoke("run", GATED, "Ship 1.3", "--json"))
    rejected = invoke("reject", run_id, "publish", "--no-resume")
    assert rejected.exit_code == 0, rejected.output
    assert rejected.stdout.startswith(f"rejected step publish (lead/publish) of run {run_id}")
    assert rejected.stderr == f"resume with: cadenza resume {run_id}\n"
    assert json.loads(invoke("show", run_id, "--json").stdout)["status"] == "waiting"

    again = invoke("reject", run_id, "publish", "--no-resume")
    assert again.exit_code == 2
    assert again.stderr.startswith(f"error: run '{run_id}' has no pending approval for 'publish'")

    resumed = invoke("resume", run_id, "--json")
    assert resumed.exit_code == 1, resumed.output
    doc = json.loads(resumed.stdout)
    assert doc["status"] == "partial"
    publish = next(s for s in doc["steps"] if s["id"] == "publish")
    assert publish["status"] == "failed" and f"was rejected by {getpass.getuser()}" in publish["error"]["message"]


def test_resume_rebuilds_the_team_with_the_runs_own_model_override() -> None:
    path = GATED
    run_id = run_id_of(invoke("run", path, "Ship", "--json", "--model", "simulated:other"))
    changed = invoke("approve", run_id, "publish", "--no-resume")
    assert changed.exit_code == 0, changed.output
    different = invoke("resume", run_id, "--model", "simulated:fast")
    assert different.exit_code == 2
    assert f"error: run '{run_id}' was started by a different team" in different.stderr
    assert "--force" in different.stderr
    resumed = invoke("resume", run_id)  # without --model: the run's own simulated:other again
    assert resumed.exit_code == 0, resumed.output


def test_resume_of_a_python_run_names_the_way(store_path: Path) -> None:
    import asyncio

    from cadenza import Agent, Plan, Supervisor
    from cadenza.stores import open_store

    async def record() -> str:
        team = Supervisor("lead", workers=[Agent("a", requires_approval=True)],
                          plan=Plan.of({"id": "s1", "agent": "a", "instruction": "go"}))
        async with open_store(str(store_path)) as store:
            return (await team.run("go", store=store)).run_id

    run_id = asyncio.run(record())
    result = invoke("resume", run_id)
    assert result.exit_code == 2
    assert result.stderr == (f"error: run '{run_id}' was started from Python, not from a workflow file: "
                             "resume it in Python with Supervisor.resume\n")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_then_resume_runs_only_what_did_not_finish(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        name: slow
        simulated: {latency: 0.5}
        agents: [{name: a}, {name: b}]
        supervisor: {name: lead, workers: [a, b], plan: [{id: s1, agent: a, instruction: go}, {id: s2, agent: b, instruction: go, depends_on: [s1]}]}
        """)
    process = subprocess.Popen([sys.executable, "-m", "cadenza.cli", "run", path, "go"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    assert process.stdout is not None
    for line in process.stdout:  # wait for the second step to be running, not for a fixed time
        if "s2 (b) running" in line:
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    run_id = err.split("cancelled: run ")[1].split()[0]
    assert f"resume with: cadenza resume {run_id}" in err

    shown = invoke("show", run_id)
    assert "⊘ cancelled" in shown.stdout and "✓ s1 a success" in shown.stdout and "⊘ s2 b cancelled" in shown.stdout
    resumed = invoke("resume", run_id)
    assert resumed.exit_code == 0, resumed.output
    assert "s1 (a) done (restored from the store)" in resumed.stdout
    assert "s2 (b) running" in resumed.stdout and "s1 (a) running" not in resumed.stdout
    assert json.loads(invoke("show", run_id, "--json").stdout)["status"] == "success"


def test_with_json_logs_every_line_on_stderr_is_json_and_the_waiting_notice_comes_once() -> None:
    ran = invoke("--log-format", "json", "run", GATED, "Ship 1.3")
    assert ran.exit_code == 4, ran.output
    lines = [json.loads(line) for line in ran.stderr.splitlines()]
    run_id = lines[1]["run_id"]
    assert [(line["level"], line["message"].split(":")[0]) for line in lines] == [
        ("info", "no model provider configured"), ("info", f"run {run_id} (resume with"),
        ("warning", "waiting for a decision on step publish (lead/publish)"), ("info", "decide with")]
    assert (lines[2]["step"], lines[2]["team"]) == ("publish", "lead")
    text = invoke("run", GATED, "Ship 1.3")
    assert text.stderr.count("cadenza approve") == 1  # the log's warning no longer repeats it

    unknown = invoke("show", "run_nope", "--log-format", "json")
    assert unknown.exit_code == 2
    (error,) = [json.loads(line) for line in unknown.stderr.splitlines()]
    assert error["level"] == "error" and error["message"].startswith("error: ")
