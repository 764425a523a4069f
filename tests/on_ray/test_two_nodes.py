"""Scale-out for real: a Ray cluster of two nodes on this machine, and the second node killed in the middle of a run.

The nodes are started as a user starts them (``ray start --head``, then ``ray start --address``, each with its
own custom resource and temporary directory) and stopped by killing their processes, never with ``ray stop``
(which would stop every Ray on the machine, the session's own included). The run is a process of its own
(`two_node_child.py`) that joins the cluster by address and places two actors on each node.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cadenza.stores.sqlite import SQLiteStore

CHILD = Path(__file__).with_name("two_node_child.py")
TESTS = Path(__file__).resolve().parents[1]
DEADLINE = 150.0
"""Seconds the run may take, node loss and recovery included, before the test counts it as hung."""
RAY = str(Path(sys.executable).with_name("ray"))


@dataclass(frozen=True)
class Cluster:
    address: str
    root: Path
    """Both nodes' temporary directories are under it: every process of the cluster names it or descends from one
    that does."""
    env: dict[str, str]

    def node(self, name: str) -> Path:
        return self.root / name


def processes_of(marker: str) -> set[int]:
    """The processes whose command line names ``marker``, and every process descended from one of them."""
    parents: dict[int, int] = {}
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[0] == "Z":
            continue
        parents[int(entry.name)] = int(fields[1])
        if marker.encode() in command:
            found.add(int(entry.name))
    grew = True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in found} - found
        found |= below
        grew = bool(below)
    return found


def kill(pids: set[int], deadline: float = 15.0) -> set[int]:
    """SIGKILL ``pids``; those still alive (not zombies) after ``deadline`` seconds."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    end = time.monotonic() + deadline
    alive = set(pids)
    while alive and time.monotonic() < end:
        alive = {pid for pid in alive if _alive(pid)}
        time.sleep(0.1)
    return alive


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(cluster_env: dict[str, str], *args: str) -> None:
    done = subprocess.run([RAY, "start", *args, "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                           "--disable-usage-stats"], env=cluster_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="cz", dir="/tmp"))  # short: Ray's socket paths live under it
    port = _free_port()
    env = dict(os.environ, RAY_AUTH_MODE="disabled",
               PYTHONPATH=os.pathsep.join([str(TESTS), *(p for p in sys.path if p)]))
    try:
        _start(env, "--head", "--port", str(port), "--temp-dir", str(root / "head"), "--resources",
               '{"head": 100}', "--include-dashboard", "false")
        _start(env, "--address", f"127.0.0.1:{port}", "--temp-dir", str(root / "node2"), "--resources",
               '{"node2": 100}')
        yield Cluster(f"127.0.0.1:{port}", root, env)
    finally:
        left = kill(processes_of(str(root)))
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"Ray processes outlived the test: {sorted(left)}"


@dataclass
class Watched:
    lines: list[str]
    killed: set[int]
    """The second node's processes, killed mid-run."""
    returncode: int


def run_and_kill_node2(cluster: Cluster, db: Path, steps: int, after_finished: int) -> Watched:
    """Run the child; once ``after_finished`` steps finished, kill every process of the second node."""
    lines: list[str] = []
    killed: set[int] = set()
    with (db.parent / "child.err").open("w") as errors, \
            subprocess.Popen([sys.executable, str(CHILD), cluster.address, str(db), str(steps)], env=cluster.env,
                             stdout=subprocess.PIPE, stderr=errors, text=True) as child:
        watchdog = threading.Timer(DEADLINE, child.kill)
        watchdog.start()
        try:
            assert child.stdout is not None
            for line in child.stdout:
                lines.append(line.rstrip("\n"))
                finished = sum(x.startswith("FINISHED ") for x in lines)
                if not killed and finished >= after_finished:
                    killed = processes_of(str(cluster.node("node2")))
                    assert not kill(killed), "the second node's processes did not die"
            returncode = child.wait()
        finally:
            watchdog.cancel()
    return Watched(lines, killed, returncode)


@pytest.mark.timeout(DEADLINE + 60)  # the run's deadline, and the cluster's start
async def test_a_run_survives_the_loss_of_a_node_and_counts_what_it_spent(cluster: Cluster, tmp_path: Path) -> None:
    steps = 16
    watched = run_and_kill_node2(cluster, tmp_path / "runs.db", steps, after_finished=4)
    errors = (tmp_path / "child.err").read_text()[-3000:]
    print("\n".join(watched.lines))  # shown when the test fails

    assert watched.returncode == 0, "\n".join(watched.lines[-20:]) + errors
    result = json.loads(next(x for x in watched.lines if x.startswith("RESULT ")).removeprefix("RESULT "))
    assert result["status"] == "success"
    assert all(status == "success" for status, _ in result["steps"].values())

    finished = [x.split() for x in watched.lines if x.startswith("FINISHED ")]
    retried = [x.split() for x in watched.lines if x.startswith("RETRY ")]
    started = [x.split() for x in watched.lines if x.startswith("STARTED ")]
    assert sorted(f[1] for f in finished) == sorted(f"s{i}" for i in range(steps))  # each finished exactly once
    for _, step, *_ in finished:  # nothing started again once it had finished
        done_at = next(i for i, x in enumerate(watched.lines) if x.startswith(f"FINISHED {step} "))
        assert not [x for x in watched.lines[done_at:] if x.startswith(f"STARTED {step} ")]
    assert retried and {r[2] for r in retried} == {"WorkerLost"}  # steps in flight on the lost node, retried
    assert len(started) == steps + len(retried)

    spent_by_lost = sum(int(r[3]) for r in retried)
    spent_by_finished = sum(int(f[4]) for f in finished)
    assert result["model_calls"] == spent_by_finished + spent_by_lost + 1  # and the synthesis

    async with SQLiteStore(tmp_path / "runs.db") as store:
        snapshot = await store.snapshot("run_nodes")
    ran_in = {json.loads(c.result_json or "0") for c in snapshot.tool_calls if c.status == "finished"}
    on_node2 = {pid for pid in ran_in if int(pid) in watched.killed}
    assert on_node2 and ran_in - on_node2  # steps landed on both nodes
    assert not [pid for pid in watched.killed if _alive(pid)]
