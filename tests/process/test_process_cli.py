"""``cadenza run --backend process`` as a user runs it, and what happens to worker processes when the run dies."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadenza.cli import app
from processes import alive_pid

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SLOW = """\
    name: slow
    simulated: {latency: 30}
    agents: [{name: a}, {name: b}]
    supervisor:
      name: lead
      workers: [a, b]
      plan:
        - {id: s1, agent: a, instruction: go}
        - {id: s2, agent: b, instruction: go}
    """


def test_the_example_gives_the_same_result_on_worker_processes(tmp_path: Path) -> None:
    runner = CliRunner()
    example = str(EXAMPLES / "research.yaml")

    local = runner.invoke(app, ["--store", str(tmp_path / "a.db"), "run", example, "Compare X", "--json"])
    pooled = runner.invoke(app, ["--store", str(tmp_path / "b.db"), "run", example, "Compare X", "--json",
                                 "--backend", "process", "--workers", "2"])

    assert local.exit_code == pooled.exit_code == 0, pooled.output
    first, second = json.loads(local.stdout), json.loads(pooled.stdout)
    assert (second["status"], second["output"], second["usage"]) == (first["status"], first["output"], first["usage"])


def test_workers_without_the_process_backend_is_a_usage_error() -> None:
    done = CliRunner().invoke(app, ["run", str(EXAMPLES / "research.yaml"), "X", "--workers", "2"])

    assert done.exit_code == 2 and "--workers applies to --backend process" in done.output


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and process groups are POSIX")
def test_worker_processes_exit_when_the_run_is_killed(tmp_path: Path) -> None:
    """No orphan: a worker process reads its instructions from the run; when the run dies, its pipe closes."""
    workflow = tmp_path / "slow.yaml"
    workflow.write_text(textwrap.dedent(SLOW), encoding="utf-8")
    run = subprocess.Popen([sys.executable, "-m", "cadenza.cli", "--store", str(tmp_path / "runs.db"), "run",
                            str(workflow), "go", "--json", "--backend", "process", "--workers", "2"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        workers = _wait_for_children(run.pid, 2, deadline=30)
    finally:
        run.kill()
        run.wait(timeout=10)

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive_pid(pid) for pid in workers):
        time.sleep(0.1)
    assert not [pid for pid in workers if alive_pid(pid)]


GATED_SLOW = """\
    name: release
    simulated: {latency: 2}
    agents:
      - {name: writer, instructions: Write release notes.}
      - {name: publisher, instructions: Publish the notes., requires_approval: true}
    supervisor:
      name: lead
      workers: [writer, publisher]
      plan:
        - {id: notes, agent: writer, instruction: Write the release notes}
        - {id: publish, agent: publisher, instruction: Publish them, depends_on: [notes]}
    """


@pytest.mark.skipif(sys.platform != "linux", reason="worker processes are found in /proc")
def test_approve_resumes_on_the_backend_it_is_given(tmp_path: Path) -> None:
    workflow = tmp_path / "release.yaml"
    workflow.write_text(textwrap.dedent(GATED_SLOW), encoding="utf-8")
    store = str(tmp_path / "runs.db")
    ran = subprocess.run([sys.executable, "-m", "cadenza.cli", "--store", store, "run", str(workflow), "Ship",
                          "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 4, ran.stderr  # waits for the publisher's approval
    run_id = json.loads(ran.stdout)["run_id"]

    approve = subprocess.Popen([sys.executable, "-m", "cadenza.cli", "--store", store, "approve", run_id, "publish",
                                "--backend", "process", "--workers", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert len(_wait_for_children(approve.pid, 1, deadline=30)) == 1  # the publisher's step on a worker process
        out, err = approve.communicate(timeout=60)
    finally:
        approve.kill()
        approve.wait(timeout=10)
    assert approve.returncode == 0, err
    assert "publish (publisher) done in" in out

    refused = CliRunner().invoke(app, ["--store", store, "reject", run_id, "publish", "--no-resume",
                                       "--backend", "process"])
    assert refused.exit_code == 2
    assert "--backend process applies to the resume, and --no-resume does not resume" in refused.output


def _wait_for_children(parent: int, count: int, *, deadline: float) -> list[int]:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = _children(parent)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"the run started {len(_children(parent))} worker processes, not {count}")


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and b"_worker_process" in (entry / "cmdline").read_bytes():
            found.append(int(entry.name))
    return found
