"""The peer-group examples through the ``cadenza`` commands: run, validate and plan, and what they print."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result
from rich.console import Console

from cadenza._events import Event
from cadenza.cli import app
from cadenza.cli._display import LiveDisplay
from cadenza.patterns._workflow import load_workflow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEBATE = str(EXAMPLES / "debate.yaml")
REVIEW = str(EXAMPLES / "peer_review.yaml")
MOTION = "Motion: remote work makes teams more productive"
REDIS = "redis://127.0.0.1:6379/0"


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
    assert "lead: note (review) done in" in review.stdout
    assert "; stopped on answer: final answers from style and facts (quorum 2)" in review.stdout


def test_the_plain_output_shows_the_conversation_as_it_goes(tmp_path: Path) -> None:
    debate = invoke("--store", str(tmp_path / "runs.db"), "run", DEBATE, MOTION)
    assert debate.exit_code == 0, debate.output
    said = [line.split("s  ", 1)[1] for line in debate.stdout.splitlines() if line.startswith(" ") and "s  " in line]
    assert said[0] == "debate: conversation"
    assert said[1] == f"debate: debate → judge (round 0): {MOTION}"
    assert said[2].startswith("debate: judge → pro (round 1): Argue for the motion")
    assert [line.split(" (round")[0] for line in said[3:-1]] == [
        "debate: pro → con", "debate: con → pro", "debate: pro → judge", "debate: pro → con", "debate: con → judge"]
    assert said[-1].startswith("debate: judge answered: Con wins.")


class Watching:
    """A display as a run's event sink that asks for what happens inside steps, as the CLI's does."""

    wants_reports = True

    def __init__(self, display: LiveDisplay) -> None:
        self.display = display

    def __call__(self, event: Event) -> None:
        self.display.handle(event)


def frame(display: LiveDisplay) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(display._frame())
    text = console.file.getvalue()
    assert isinstance(text, str)
    return text


async def test_the_live_tree_shows_a_conversation_under_its_run_or_its_step(tmp_path: Path) -> None:
    debate = load_workflow(DEBATE)
    live = LiveDisplay("run_1", "debate", MOTION, peers="run", console=Console(file=io.StringIO()))
    async with asyncio.timeout(30):
        result = await debate.entry.run(MOTION, events=Watching(live))
    assert result.ok
    drawn = frame(live)
    assert "✓ debate success" in drawn
    assert f"{result.usage.total_tokens} tokens" in drawn and "7 model calls" in drawn
    assert "7 messages in 6 rounds, the last 6" in drawn
    assert "con → judge: Closing against" in drawn and "judge answered: Con wins." in drawn
    assert "debate → judge" not in drawn  # only the last six are shown

    review = load_workflow(REVIEW)
    live = LiveDisplay("run_2", "peer_review", "A note", peers="steps", console=Console(file=io.StringIO()))
    async with asyncio.timeout(30):
        result = await review.entry.run("A note", events=Watching(live))
    assert result.ok
    lines = frame(live).splitlines()
    step = next(i for i, line in enumerate(lines) if "note review success" in line)
    assert "7 messages in 4 rounds, the last 6" in lines[step + 1]
    assert "facts answered: Approved for facts" in lines[step + 7]


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


@pytest.mark.parametrize("bus", [[], ["--bus", REDIS]], ids=["in-process", "redis"])
def test_a_debate_stopped_mid_conversation_resumes_to_the_same_decision(tmp_path: Path, bus: list[str]) -> None:
    """SIGTERM while con answers pro, then ``cadenza resume``: the scripted debate goes on from where it was (its
    ``when`` replies answer the same in the new process) to the judge's decision, each message said once, and
    the run's usage is that of an uninterrupted debate."""
    slow = tmp_path / "debate.yaml"
    slow.write_text(Path(DEBATE).read_text(encoding="utf-8").replace("  seed: 11\n", "  seed: 11\n  latency: 0.2\n"),
                    encoding="utf-8")
    store = str(tmp_path / "runs.db")
    process = subprocess.Popen([sys.executable, "-m", "cadenza.cli", "--store", store, "run", str(slow), MOTION, *bus],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    run_id = ""
    for line in process.stdout:
        run_id = run_id or line.split()[1]
        if "con → pro (round 3)" in line:
            process.send_signal(signal.SIGTERM)
            break
    process.communicate(timeout=30)  # and close its pipes
    assert process.returncode == 143

    resumed = invoke("--store", store, "resume", run_id, "--json", *bus)
    assert resumed.exit_code == 0, resumed.output
    doc = json.loads(resumed.stdout)
    assert (doc["status"], doc["stop_reason"]) == ("success", "answer: final answer from judge")
    assert doc["output"].startswith("Con wins.")
    assert doc["usage"]["model_calls"] == 7
    shown = json.loads(invoke("--store", store, "show", run_id, "--json").stdout)
    said = [(m["sender"], m["recipient"]) for m in shown["conversations"][0]["messages"]]
    assert said == [("debate", "judge"), ("judge", "pro"), ("pro", "con"), ("con", "pro"), ("pro", "judge"),
                    ("pro", "con"), ("con", "judge")]


def streams_added() -> int:
    """How many entries the Redis server on 127.0.0.1:6379 has had added to streams since it started."""
    with redis.Redis.from_url(REDIS, socket_timeout=5) as client:
        stats = client.info("commandstats")
    return int(stats.get("cmdstat_xadd", {}).get("calls", 0))


def test_the_bus_option_and_the_files_bus_put_the_conversation_on_redis(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    before = streams_added()
    by_option = invoke("--store", store, "run", DEBATE, MOTION, "--bus", REDIS)
    assert by_option.exit_code == 0, by_option.output
    assert "stopped on answer: final answer from judge" in by_option.stdout
    assert streams_added() - before >= 7  # the seven messages went through Redis streams

    in_file = tmp_path / "debate.yaml"
    in_file.write_text(Path(DEBATE).read_text(encoding="utf-8").replace("agents:\n", f"bus: {REDIS}\nagents:\n", 1),
                       encoding="utf-8")
    before = streams_added()
    by_file = invoke("--store", store, "run", str(in_file), MOTION)
    assert by_file.exit_code == 0, by_file.output
    assert streams_added() - before >= 7
    with redis.Redis.from_url(REDIS, socket_timeout=5) as client:
        assert list(client.scan_iter(match="cadenza:run_*")) == []  # each group discarded its inboxes


def test_a_bus_that_names_no_bus_is_refused(tmp_path: Path) -> None:
    refused = invoke("--store", str(tmp_path / "runs.db"), "run", DEBATE, MOTION, "--bus", "nats://127.0.0.1")
    assert refused.exit_code == 2
    assert "error: --bus: a bus URL starts with memory:// or redis:// (or rediss://), not 'nats://127.0.0.1'" \
        in refused.stderr
    in_file = tmp_path / "debate.yaml"
    in_file.write_text(Path(DEBATE).read_text(encoding="utf-8").replace("agents:\n", "bus: kafka://x\nagents:\n", 1),
                       encoding="utf-8")
    bad = invoke("validate", str(in_file))
    assert bad.exit_code == 2 and "bus: a bus URL starts with memory://" in bad.stderr
