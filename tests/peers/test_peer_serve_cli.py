"""``cadenza peer serve``: members of the debate example in processes of their own, on the Redis server on
127.0.0.1:6379 (database 9, which no other test uses, so no other test's run sends these workers a turn).

Every process is started with a deadline and stopped (or killed) before its test ends; the workers' stderr goes
to files the tests read.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from processes import kill, processes_of

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEBATE = str(EXAMPLES / "debate.yaml")
MOTION = "Motion: remote work makes teams more productive"
BUS = "redis://127.0.0.1:6379/9"
DEADLINE = 30.0
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


class Worker:
    """One ``cadenza peer serve`` process, its stderr in a file."""

    def __init__(self, tmp_path: Path, agents: str, workflow: str = DEBATE, bus: str = BUS) -> None:
        """``agents``: the members to serve, comma-separated."""
        self.log = tmp_path / f"{agents}-{time.monotonic_ns()}.log"
        self._file = self.log.open("w")
        serves = [arg for agent in agents.split(",") for arg in ("--agent", agent)]
        self.process = subprocess.Popen([sys.executable, "-m", "cadenza.cli", "peer", "serve", workflow, *serves,
                                         "--bus", bus], stdout=subprocess.DEVNULL, stderr=self._file, env=ENV)

    @property
    def said(self) -> str:
        return self.log.read_text()

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while text not in self.said:
            assert self.process.poll() is None, f"the worker exited: {self.said}"
            assert time.monotonic() < deadline, f"no {text!r} within {DEADLINE}s: {self.said}"
            time.sleep(0.02)

    def stop(self, signum: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=DEADLINE)
        self._file.close()
        return code


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop(signal.SIGKILL)
    kill(processes_of(str(tmp_path)))  # a run the test gave up on must not write to the bus after the flush
    with redis.Redis.from_url(BUS, socket_timeout=5) as client:
        client.flushdb()


def cadenza(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cadenza.cli", "--store", str(tmp_path / "runs.db"), *args],
                          capture_output=True, text=True, timeout=DEADLINE * 2, env=ENV)


def started_run(tmp_path: Path, workflow: Path, bus: str, *options: str) -> subprocess.Popen[str]:
    """``cadenza run WORKFLOW MOTION --bus BUS`` started, its output piped (read it with ``communicate``)."""
    return subprocess.Popen([sys.executable, "-m", "cadenza.cli", "--store", str(tmp_path / "runs.db"), "run",
                             str(workflow), MOTION, "--bus", bus, *options], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def turns(worker: Worker) -> list[str]:
    """The deliveries the worker took a turn on, as it logged them: ``message ID, delivery N``."""
    return [line.split("takes a turn: ")[1] for line in worker.said.splitlines() if "takes a turn: " in line]


@pytest.mark.parametrize("served", [["pro", "con"], ["pro,con"]], ids=["three-processes", "two-processes"])
def test_processes_hold_the_debate_to_the_judges_decision(tmp_path: Path, workers: list[Worker],
                                                          served: list[str]) -> None:
    """pro and con in worker processes (one each, or one for both), the judge in the run's: the same debate as in
    one process."""
    workers += [Worker(tmp_path, agents) for agents in served]
    for worker in workers:
        worker.wait_for("serving")

    ran = cadenza(tmp_path, "run", DEBATE, MOTION, "--bus", BUS, "--json")

    assert ran.returncode == 0, ran.stderr
    doc = json.loads(ran.stdout)
    assert (doc["status"], doc["stop_reason"]) == ("success", "answer: final answer from judge")
    assert doc["output"].startswith("Con wins.")
    assert doc["usage"]["model_calls"] == 7  # the workers' calls are the run's
    assert [len(turns(w)) for w in workers] == [2] * len(workers) if len(workers) == 2 else [4]
    shown = json.loads(cadenza(tmp_path, "show", doc["run_id"], "--json").stdout)
    said = [(m["sender"], m["recipient"], m["handled_by"]) for m in shown["conversations"][0]["messages"]]
    assert said == [("debate", "judge", "judge"), ("judge", "pro", "pro"), ("pro", "con", "con"),
                    ("con", "pro", "pro"), ("pro", "judge", "judge"), ("pro", "con", "con"),
                    ("con", "judge", "judge")]
    for worker in workers:
        assert worker.stop() == 0, worker.said
        assert f"stopped after {len(turns(worker))} turns" in worker.said
    with redis.Redis.from_url(BUS, socket_timeout=5) as client:
        assert list(client.scan_iter()) == []  # the conversation and the workers dropped what they wrote


def test_a_worker_killed_mid_turn_has_its_message_taken_by_another_and_handled_once(
        tmp_path: Path, workers: list[Worker]) -> None:
    """Two workers serve pro; the one that takes pro's first turn is killed (SIGKILL) in the middle of it. The run
    sends pro to the other once the dead one's entry on the roll runs out, which takes the same message (its
    second delivery) once Redis gives it up as unacknowledged: the debate ends as if nothing happened."""
    slow = tmp_path / "debate.yaml"
    slow.write_text(Path(DEBATE).read_text().replace("  seed: 11\n", "  seed: 11\n  latency: 0.5\n"))
    quick = f"{BUS}?claim_after=1"  # the receiver's claim_after decides when it takes a message given up
    workers += [Worker(tmp_path, "pro", str(slow), quick), Worker(tmp_path, "pro", str(slow), quick),
                Worker(tmp_path, "con", str(slow), quick)]
    for worker in workers:
        worker.wait_for("serving")
    run = started_run(tmp_path, slow, quick, "--json")
    deadline = time.monotonic() + DEADLINE
    while not any(turns(w) for w in workers[:2]):
        assert time.monotonic() < deadline and run.poll() is None, "no worker took pro's turn"
        time.sleep(0.02)
    killed, other = (workers[0], workers[1]) if turns(workers[0]) else (workers[1], workers[0])
    first = turns(killed)[0]
    killed.stop(signal.SIGKILL)

    out, err = run.communicate(timeout=DEADLINE * 2)

    assert run.returncode == 0, err
    doc = json.loads(out)
    assert (doc["status"], doc["stop_reason"]) == ("success", "answer: final answer from judge")
    assert turns(other)[0] == first.replace("delivery 1", "delivery 2")  # the same message, delivered again
    assert len(turns(other)) == 2 and len(turns(killed)) == 1
    shown = json.loads(cadenza(tmp_path, "show", doc["run_id"], "--json").stdout)
    messages = shown["conversations"][0]["messages"]
    assert [(m["sender"], m["recipient"]) for m in messages] == [
        ("debate", "judge"), ("judge", "pro"), ("pro", "con"), ("con", "pro"), ("pro", "judge"), ("pro", "con"),
        ("con", "judge")]  # each said once
    assert all(m["handled_by"] for m in messages)


def test_serve_says_what_is_wrong_with_its_input(tmp_path: Path) -> None:
    no_bus = cadenza(tmp_path, "peer", "serve", DEBATE, "--agent", "pro")
    assert no_bus.returncode == 2
    assert "peer serve needs a bus the run's process shares: --bus redis://host:port/db" in no_bus.stderr
    memory = cadenza(tmp_path, "peer", "serve", DEBATE, "--agent", "pro", "--bus", "memory://")
    assert memory.returncode == 2 and "peer serve needs a bus" in memory.stderr
    stranger = cadenza(tmp_path, "peer", "serve", DEBATE, "--agent", "pro", "--agent", "jury", "--bus", BUS)
    assert stranger.returncode == 2
    assert "'jury' is not a member of any one peer group of the workflow" in stranger.stderr
    group = cadenza(tmp_path, "peer", "serve", DEBATE, "--agent", "pro", "--group", "panel", "--bus", BUS)
    assert group.returncode == 2 and "no peer group named 'panel' (peer groups: debate)" in group.stderr


def test_serve_with_redis_unreachable_fails_with_a_clear_error_in_time(tmp_path: Path) -> None:
    started = time.monotonic()
    down = cadenza(tmp_path, "peer", "serve", DEBATE, "--agent", "pro", "--bus", "redis://127.0.0.1:1/0")
    assert down.returncode == 2
    assert "error: could not enrol" in down.stderr and "redis://127.0.0.1:1/0" in down.stderr
    assert time.monotonic() - started < DEADLINE


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start (and start again) a Redis server of this test's own, which the test may kill."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
        started.append(server)
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                with redis.Redis(port=port, socket_timeout=1) as client:
                    client.ping()
                return server
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the test's Redis did not start"
                time.sleep(0.05)

    start.port = port  # type: ignore[attr-defined]
    yield start
    for server in started:
        server.kill()
        server.wait(timeout=DEADLINE)


def test_redis_lost_mid_conversation_stops_the_run_with_a_clear_error_and_resume_finishes_it(
        tmp_path: Path, workers: list[Worker], private_redis: Callable[[], subprocess.Popen[bytes]]) -> None:
    """The Redis server dies (SIGKILL) while pro's worker holds the debate's turns: the run and the worker stop
    within a deadline, each with an error naming the bus; once Redis is back, ``cadenza resume`` finishes the
    debate from the store (pro's turns now taken in the run's process), each message said once."""
    redis_server = private_redis()
    bus = f"redis://127.0.0.1:{private_redis.port}/0"  # type: ignore[attr-defined]
    slow = tmp_path / "debate.yaml"
    slow.write_text(Path(DEBATE).read_text().replace("  seed: 11\n", "  seed: 11\n  latency: 0.3\n"))
    pro = Worker(tmp_path, "pro", str(slow), bus)
    workers.append(pro)
    pro.wait_for("serving")
    run = started_run(tmp_path, slow, bus)
    pro.wait_for("turn recorded")
    redis_server.kill()
    started = time.monotonic()

    out, err = run.communicate(timeout=DEADLINE)
    assert run.returncode == 2, err
    assert f"on the bus {bus}" in err and "error: could not" in err
    assert pro.process.wait(timeout=DEADLINE) == 2
    assert f"on the bus {bus}" in pro.said
    assert time.monotonic() - started < 15  # bounded by the client's timeouts, not a hang
    run_id = out.split()[1]

    private_redis()
    resumed = cadenza(tmp_path, "resume", run_id, "--bus", bus, "--json")
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads(resumed.stdout)
    assert (doc["status"], doc["stop_reason"]) == ("success", "answer: final answer from judge")
    shown = json.loads(cadenza(tmp_path, "show", run_id, "--json").stdout)
    assert [(m["sender"], m["recipient"]) for m in shown["conversations"][0]["messages"]] == [
        ("debate", "judge"), ("judge", "pro"), ("pro", "con"), ("con", "pro"), ("pro", "judge"), ("pro", "con"),
        ("con", "judge")]


def test_a_deadlock_across_processes_is_caught(tmp_path: Path, workers: list[Worker]) -> None:
    """con, in its own process, answers pro's opening with nothing: every agent is idle and nothing is in flight
    on the bus, so the run stops with a deadlock at once, saying who waited on whom."""
    silent = tmp_path / "debate.yaml"
    text = Path(DEBATE).read_text()
    start = text.index('      - when: "For:"')
    end = text.index("      - when: \"I rest my case\"")
    silent.write_text(text[:start] + '      - when: "For:"\n        text: "I have nothing to add."\n' + text[end:])
    workers += [Worker(tmp_path, "pro", str(silent)), Worker(tmp_path, "con", str(silent))]
    for worker in workers:
        worker.wait_for("serving")

    ran = cadenza(tmp_path, "run", str(silent), MOTION, "--bus", BUS, "--json")

    assert ran.returncode == 1, ran.stderr
    doc = json.loads(ran.stdout)
    assert doc["error"]["code"] == "peer_deadlock"
    assert "con handled pro's message of round 2 and sent nothing" in doc["error"]["message"]
    assert [len(turns(w)) for w in workers] == [1, 1]


def test_a_run_killed_mid_conversation_resumes_with_its_workers(tmp_path: Path, workers: list[Worker]) -> None:
    """The run's process is killed (SIGKILL) while pro's worker takes a turn; the worker notices its conversation's
    process is gone, and takes pro's turns again for ``cadenza resume``, which ends the debate as it would have."""
    slow = tmp_path / "debate.yaml"
    slow.write_text(Path(DEBATE).read_text().replace("  seed: 11\n", "  seed: 11\n  latency: 0.3\n"))
    bus = f"{BUS}?claim_after=5"  # a delivery the killed run left unacknowledged is claimed again within 5 s, not 30
    pro = Worker(tmp_path, "pro", str(slow), bus=bus)
    workers.append(pro)
    pro.wait_for("serving")
    run = started_run(tmp_path, slow, bus)
    pro.wait_for("takes a turn")
    run.kill()
    out, _ = run.communicate(timeout=DEADLINE)
    run_id = out.split()[1]

    try:  # within the test's own deadline, so that a resume that hangs shows what it and the worker said
        resumed = subprocess.run([sys.executable, "-m", "cadenza.cli", "--store", str(tmp_path / "runs.db"), "resume",
                                  run_id, "--bus", bus, "--json"], capture_output=True, text=True, timeout=45, env=ENV)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"resume did not end within 45 s\nits stderr: {exc.stderr!r}\npro's worker said:\n{pro.said}")

    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads(resumed.stdout)
    assert (doc["status"], doc["stop_reason"]) == ("success", "answer: final answer from judge")
    assert len([line for line in pro.said.splitlines() if f"[{run_id}]" in line and "turn recorded" in line]) >= 2, \
        pro.said + resumed.stderr
    shown = json.loads(cadenza(tmp_path, "show", run_id, "--json").stdout)
    assert [(m["sender"], m["recipient"]) for m in shown["conversations"][0]["messages"]] == [
        ("debate", "judge"), ("judge", "pro"), ("pro", "con"), ("con", "pro"), ("pro", "judge"), ("pro", "con"),
        ("con", "judge")]
    assert pro.stop() == 0
