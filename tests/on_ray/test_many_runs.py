"""Many runs at once on one two-node cluster, all recording into one PostgreSQL store: twenty runs of one
orchestrator sharing its actors, and twenty ``cadenza run`` processes started together, each a Ray driver with an
actor of its own.

The store is the single source of truth: every run is checked there (its steps, its output, its usage, its audit
log), and so is fairness: no run waited for the others to finish before it made progress.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from cadenza.security._audit import verify_run
from cadenza.stores import PostgresStore, RunSnapshot
from on_ray.nodes import Cluster, two_nodes
from stores.backends import PG_URL

CHILD = Path(__file__).with_name("many_runs_child.py")
RUNS = 20
STEPS = 100
CHAINS = 10
"""The plan: ``CHAINS`` chains of ``STEPS / CHAINS`` steps, run side by side."""
LATENCY = 0.3
"""Seconds per model call: a run takes at least ``STEPS / CHAINS * LATENCY`` seconds."""
DEADLINE = 240.0
"""Seconds the twenty runs may take together before the test counts them as hung."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with two_nodes() as started:
        yield started


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """A PostgreSQL schema of its own, dropped afterwards."""
    name = f"cadenza_many_{uuid.uuid4().hex[:12]}"
    yield name
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


def write_workflow(path: Path) -> str:
    """A team with a written plan of ``STEPS`` steps in ``CHAINS`` chains, one agent per chain."""
    agents = [f"a{i}" for i in range(CHAINS)]
    lines = ["name: many", f"simulated: {{latency: {LATENCY}, seed: 3}}", "default_model: 'simulated:fast'", "agents:"]
    lines += [f"  - {{name: {a}, instructions: Work on your part.}}" for a in agents]
    lines += ["supervisor:", "  name: lead", "  model: 'simulated:lead'", f"  workers: [{', '.join(agents)}]",
              f"  max_plan_steps: {STEPS}", f"  policy: {{max_concurrency: {CHAINS}}}", "  plan:"]
    for i in range(STEPS):
        after = f", depends_on: [s{i - CHAINS}]" if i >= CHAINS else ""
        lines.append(f"    - {{id: s{i}, agent: a{i % CHAINS}, instruction: part {i}{after}}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def orchestrate(cluster: Cluster, store_url: str, workflow: str) -> tuple[int, str, str]:
    """Run ``RUNS`` runs at once in one orchestrator process; its exit code, stdout and stderr."""
    done = subprocess.run([sys.executable, str(CHILD), cluster.address, store_url, workflow, str(RUNS)],
                          env=cluster.env, capture_output=True, text=True, timeout=DEADLINE)
    return done.returncode, done.stdout, done.stderr[-3000:]


def submit_together(cluster: Cluster, store_url: str, workflow: str) -> list[tuple[int, str, str]]:
    """Start ``RUNS`` runs at once, each a ``cadenza run --json`` of its own; their exit codes, stdout and stderr."""
    command = [sys.executable, "-m", "cadenza.cli", "--store", store_url, "run", workflow]
    options = ["--json", "--backend", "ray", "--ray-address", cluster.address, "--workers", "1"]
    children = [subprocess.Popen([*command, f"goal {i}", *options], env=cluster.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for i in range(RUNS)]
    ends = time.monotonic() + DEADLINE
    try:
        outs = [child.communicate(timeout=max(ends - time.monotonic(), 1)) for child in children]
    finally:
        for child in children:
            child.kill()
            child.communicate()
    return [(child.returncode, out, err[-2000:]) for child, (out, err) in zip(children, outs, strict=True)]


@pytest.mark.timeout(DEADLINE + 90)  # the runs' deadline, and the cluster's start
async def test_twenty_runs_of_one_orchestrator_share_its_actors_and_none_is_starved(cluster: Cluster, schema: str,
                                                                                  tmp_path: Path) -> None:
    """A service that takes runs: one process, one backend of four actors for every run, one store."""
    store_url = f"{PG_URL}?schema={schema}"
    code, out, err = orchestrate(cluster, store_url, write_workflow(tmp_path / "many.yaml"))
    assert code == 0, err
    documents = [json.loads(line) for line in out.splitlines()]

    snapshots = await recorded(schema, documents)
    assert_none_starved(snapshots)


@pytest.mark.timeout(DEADLINE + 90)
async def test_twenty_cli_runs_submitted_together_all_finish_into_one_store(cluster: Cluster, schema: str,
                                                                           tmp_path: Path) -> None:
    """Twenty ``cadenza run`` processes, each a driver with an actor of its own. Each run's first step waits for
    its actor, and Ray starts a node's worker processes as many at a time as the node has CPUs (one here), so
    runs start in turn; once started, each went on to the end while the others ran."""
    store_url = f"{PG_URL}?schema={schema}"
    finished = submit_together(cluster, store_url, write_workflow(tmp_path / "many.yaml"))

    for code, _, err in finished:
        assert code == 0, err
    documents = [json.loads(out) for _, out, _ in finished]  # stdout is one JSON document, nothing else

    snapshots = await recorded(schema, documents)
    print(timeline(snapshots))  # shown when the test fails
    first_done = min(s.run.finished_at for s in snapshots.values() if s.run.finished_at is not None)
    for run_id, snapshot in snapshots.items():  # every run had been admitted, its first step waiting for its actor
        first_started = min(s.started_at for s in snapshot.steps if s.started_at is not None)
        assert first_started < first_done, f"{run_id} started its first step after the first run ended"


async def recorded(schema: str, documents: list[dict[str, Any]]) -> dict[str, RunSnapshot]:
    """Every run as the store holds it, checked against what its process printed: all of it, and nothing else."""
    assert all(d["status"] == "success" for d in documents)
    async with PostgresStore(PG_URL, schema=schema) as store:
        runs = await store.list_runs(limit=RUNS * 2)
        assert sorted(r.run_id for r in runs) == sorted(d["run_id"] for d in documents)
        snapshots = {r.run_id: await store.snapshot(r.run_id) for r in runs}
        verdicts = [await verify_run(store, r.run_id) for r in runs]

    printed = {d["run_id"]: d for d in documents}
    for run_id, snapshot in snapshots.items():
        assert snapshot.run.status == "success"
        assert json.loads(snapshot.run.output_json or "null") == printed[run_id]["output"]
        assert json.loads(snapshot.run.usage_json)["model_calls"] == STEPS + 1  # and the synthesis
        assert sorted(s.step_id for s in snapshot.steps) == sorted(f"s{i}" for i in range(STEPS))
        assert all(s.status == "success" and s.attempts == 1 for s in snapshot.steps)
    assert [v.reason for v in verdicts if not v.ok] == []
    return snapshots


def assert_none_starved(snapshots: dict[str, RunSnapshot]) -> None:
    """When the first run ended, every run had finished at least the first step of each of its chains."""
    print(timeline(snapshots))  # shown when the test fails
    first_done = min(s.run.finished_at for s in snapshots.values() if s.run.finished_at is not None)
    for run_id, snapshot in snapshots.items():
        done_by_then = [s for s in snapshot.steps if s.finished_at is not None and s.finished_at <= first_done]
        assert len(done_by_then) >= CHAINS, f"{run_id} had finished {len(done_by_then)} steps when the first ended"

def timeline(snapshots: dict[str, RunSnapshot]) -> str:
    """Each run's start, first step started and finished, and end, in seconds from the first run's start."""
    zero = min(s.run.started_at for s in snapshots.values())
    lines = []
    for run_id, snapshot in sorted(snapshots.items(), key=lambda item: item[1].run.started_at):
        first_started = min(s.started_at for s in snapshot.steps if s.started_at is not None)
        first_finished = min(s.finished_at for s in snapshot.steps if s.finished_at is not None)
        marks = (snapshot.run.started_at, first_started, first_finished, snapshot.run.finished_at or zero)
        lines.append(run_id + "".join(f" {(m - zero).total_seconds():6.2f}" for m in marks))
    return "\n".join(lines)
