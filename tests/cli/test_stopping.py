"""``cadenza run`` stopped from outside: SIGTERM is a clean cancel (exit 143); a closed stdout stops quietly (141).

Both leave the run recorded as cancelled, and ``cadenza resume`` finishes it without redoing finished steps.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadenza.cli import app

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="signals and pipes to a child process are POSIX")

SLOW = """\
    name: slow
    simulated: {latency: 0.4}
    agents: [{name: a}, {name: b}]
    supervisor:
      name: lead
      workers: [a, b]
      plan:
        - {id: s1, agent: a, instruction: go}
        - {id: s2, agent: b, instruction: go, depends_on: [s1]}
        - {id: s3, agent: a, instruction: go, depends_on: [s2]}
    """


def slow_workflow(tmp_path: Path) -> str:
    path = tmp_path / "slow.yaml"
    path.write_text(textwrap.dedent(SLOW), encoding="utf-8")
    return str(path)


@contextmanager
def started(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``cadenza ARGS`` as a child process, killed if a test leaves it running (a failed one would hang)."""
    process = subprocess.Popen([sys.executable, "-m", "cadenza.cli", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def wait_for_line(process: subprocess.Popen[str], text: str) -> None:
    """Read stdout until a line holding ``text`` (the run has reached that point), not for a fixed time."""
    assert process.stdout is not None
    for line in process.stdout:
        if text in line:
            return
    raise AssertionError(f"the run ended before printing {text!r}")


def show(run_id: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["show", run_id, "--json"])
    assert result.exit_code == 0, result.output
    shown: dict[str, object] = json.loads(result.stdout)
    return shown


def resume_finishes(run_id: str) -> None:
    resumed = CliRunner().invoke(app, ["resume", run_id])
    assert resumed.exit_code == 0, resumed.output
    assert "s1 (a) done (restored from the store)" in resumed.stdout
    assert "s1 (a) running" not in resumed.stdout
    assert show(run_id)["status"] == "success"


def run_id_in(stderr: str) -> str:
    return stderr.split("(resume with: cadenza resume ")[1].split(")")[0]


def test_sigterm_cancels_the_run_records_it_and_exits_143(tmp_path: Path) -> None:
    with started("run", slow_workflow(tmp_path), "go") as process:
        wait_for_line(process, "s2 (b) running")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 143, err
    assert "Traceback" not in err
    run_id = run_id_in(err)
    assert f"terminated: run {run_id} was stopped; running steps were cancelled; resume with: cadenza resume {run_id}" in err
    assert show(run_id)["status"] == "cancelled"
    resume_finishes(run_id)


def test_a_closed_stdout_stops_the_run_quietly_and_records_it_cancelled(tmp_path: Path) -> None:
    with started("run", slow_workflow(tmp_path), "go") as process:
        wait_for_line(process, "s1 (a) running")
        assert process.stdout is not None
        process.stdout.close()  # what `| head -3` does once it has its lines
        _, err = process.communicate(timeout=20)
    assert process.returncode == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err and "internal error" not in err
    run_id = run_id_in(err)
    assert show(run_id)["status"] == "cancelled"
    resume_finishes(run_id)


def test_a_closed_stdout_ends_an_unrecorded_run_too(tmp_path: Path) -> None:
    shell = f"{sys.executable} -m cadenza.cli run {slow_workflow(tmp_path)} go --no-store | head -2"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, timeout=20)
    assert done.returncode == 141, done.stderr
    assert len(done.stdout.splitlines()) == 2
    assert "Traceback" not in done.stderr
