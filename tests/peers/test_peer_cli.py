"""The peer-group examples through the ``cadenza`` commands: run, validate and plan, and what they print."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from cadenza.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEBATE = str(EXAMPLES / "debate.yaml")
REVIEW = str(EXAMPLES / "peer_review.yaml")
MOTION = "Motion: remote work makes teams more productive"


def invoke(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args))


def test_the_debate_example_runs_as_a_whole_workflow_in_a_real_process(tmp_path: Path) -> None:
    """The file has no supervisor: its one peer group runs the goal, and the judge's decision ends it."""
    process = subprocess.run([sys.executable, "-m", "cadenza.cli", "--store", str(tmp_path / "runs.db"), "run",
                              DEBATE, MOTION, "--json"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.returncode == 0, process.stderr
    doc = json.loads(process.stdout)
    assert (doc["status"], doc["stop_reason"], doc["steps"]) == ("success", "answer: final answer from judge", [])
    assert doc["output"].startswith("Con wins.")
    assert doc["usage"]["model_calls"] == 7


def test_the_plain_output_of_both_examples_ends_with_the_stop_reason(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    debate = invoke("--store", store, "run", DEBATE, MOTION)
    assert debate.exit_code == 0, debate.output
    assert debate.stdout.splitlines()[-1].startswith("success in ")
    assert "stopped on answer: final answer from judge" in debate.stdout

    review = invoke("--store", store, "run", REVIEW, "A short note on offline sync")
    assert review.exit_code == 0, review.output
    assert "stopped on answer: final answers from style and facts (quorum 2)" in review.stdout


def test_validate_names_the_peer_group_a_file_runs() -> None:
    assert invoke("validate", DEBATE).stdout == "ok: debate: 3 agents, 0 teams, peer group: debate\n"


def test_plan_refuses_a_workflow_that_runs_a_peer_group() -> None:
    result = invoke("plan", DEBATE, MOTION)
    assert result.exit_code == 2
    assert f"error: {DEBATE} runs the peer group 'debate', which has no plan" in result.stderr


def test_the_process_backend_is_refused_for_a_peer_group_run(tmp_path: Path) -> None:
    result = invoke("--store", str(tmp_path / "runs.db"), "run", DEBATE, MOTION, "--backend", "process",
                    "--workers", "1")
    assert result.exit_code == 2
    assert "runs the peer group 'debate', whose members run in the process of the run" in result.stderr
