"""Scale-out for real: a Ray cluster of two nodes on this machine, and the second node killed in the middle of a run.

The nodes are started as a user starts them (``ray start --head``, then ``ray start --address``, each with its
own custom resource and temporary directory) and stopped by killing their processes, never with ``ray stop``
(which would stop every Ray on the machine, the session's own included). The run is a process of its own
(`two_node_child.py`) that joins the cluster by address and places two actors on each node.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from cadenza.stores.sqlite import SQLiteStore
from on_ray.nodes import Cluster, two_nodes
from processes import alive_pid, kill

CHILD = Path(__file__).with_name("two_node_child.py")
DEADLINE = 150.0
"""Seconds the run may take, node loss and recovery included, before the test counts it as hung."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with two_nodes() as started:
        yield started


@dataclass
class Watched:
    lines: list[str]
    killed: set[int]
    """The second node's processes, killed mid-run."""
    returncode: int


def run_and_kill_node2(cluster: Cluster, db: Path, steps: int, after_finished: int) -> Watched:
    """Run the child; once ``after_finished`` steps finished and a step is in flight on the second node (its tool
    ran there, its answer is yet to come), kill every process of that node."""
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
                finished = {x.split()[1] for x in lines if x.startswith("FINISHED ")}
                if not killed and len(finished) >= after_finished and in_flight_on(cluster.processes("node2"), db,
                                                                                   finished):
                    killed = cluster.processes("node2")
                    assert not kill(killed), "the second node's processes did not die"
            returncode = child.wait()
        finally:
            watchdog.cancel()
    return Watched(lines, killed, returncode)


def in_flight_on(node: set[int], db: Path, finished: set[str]) -> bool:
    """Whether a step that has not finished ran its tool (recorded in the store as it ran) in a process of
    ``node``."""
    if not db.exists():
        return False
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        ran = conn.execute("SELECT step_id, result_json FROM tool_calls WHERE status = 'finished'").fetchall()
    return any(int(json.loads(pid)) in node and step not in finished for step, pid in ran)


@pytest.mark.timeout(DEADLINE + 60)  # the run's deadline, and the cluster's start
async def test_a_run_survives_the_loss_of_a_node_and_counts_what_it_spent(cluster: Cluster, tmp_path: Path) -> None:
    steps = 16
    watched = run_and_kill_node2(cluster, tmp_path / "runs.db", steps, after_finished=4)
    errors = (tmp_path / "child.err").read_text()[-3000:]
    print("\n".join(watched.lines))  # shown when the test fails

    assert watched.returncode == 0, "\n".join(watched.lines[-20:]) + errors
    assert watched.killed, "no step was in flight on the second node once four had finished"
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
    assert not [pid for pid in watched.killed if alive_pid(pid)]
