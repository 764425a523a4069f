"""Many runs at once on one two-node cluster, all recording into one PostgreSQL store: twenty runs of one
orchestrator sharing its actors, and twenty ``cadenza run`` processes started together, each a Ray driver with an
actor of its own.

The store is the single source of truth: every run is checked there (its steps, its output, its usage, its audit
log), and so is fairness.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cadenza.security._audit import verify_run
from cadenza.stores import PostgresStore, RunSnapshot
from on_ray.many_runs import CHAINS, orchestrate, served, submit_together, timeline, write_workflow
from on_ray.nodes import Cluster, two_nodes
from stores.backends import PG_URL, drop_schema

RUNS = 20
STEPS = 100
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
    await drop_schema(name)


@pytest.mark.timeout(DEADLINE + 90)  # the runs' deadline, and the cluster's start
async def test_twenty_runs_of_one_orchestrator_share_its_actors_and_none_is_starved(cluster: Cluster, schema: str,
                                                                                  tmp_path: Path) -> None:
    """A service that takes runs: one process, one backend of four actors for every run, one store."""
    workflow = write_workflow(tmp_path / "many.yaml", STEPS, LATENCY)
    done = orchestrate(cluster, f"{PG_URL}?schema={schema}", workflow, RUNS, DEADLINE)
    assert done.code == 0, done.err
    snapshots = await recorded(schema, [json.loads(line) for line in done.out.splitlines()])

    print(timeline(snapshots))  # shown when the test fails
    first_done = min(s.run.finished_at for s in snapshots.values() if s.run.finished_at is not None)
    for run_id, snapshot in snapshots.items():  # every run had finished the first step of each chain by then
        done_by_then = [s for s in snapshot.steps if s.finished_at is not None and s.finished_at <= first_done]
        assert len(done_by_then) >= CHAINS, f"{run_id} had finished {len(done_by_then)} steps when the first ended"


@pytest.mark.timeout(DEADLINE + 90)
async def test_twenty_cli_runs_submitted_together_all_finish_into_one_store(cluster: Cluster, schema: str,
                                                                           tmp_path: Path) -> None:
    """Twenty ``cadenza run`` processes, each a driver with an actor of its own. Each run's first step waits for
    its actor, and Ray starts a node's worker processes as many at a time as the node has CPUs (one here): runs
    are all admitted at once, and get going as their actors come up."""
    workflow = write_workflow(tmp_path / "many.yaml", STEPS, LATENCY)
    finished = submit_together(cluster, f"{PG_URL}?schema={schema}", workflow, RUNS, DEADLINE)
    for done in finished:
        assert done.code == 0, done.err
    snapshots = await recorded(schema, [json.loads(done.out) for done in finished])  # stdout: one JSON document

    print(timeline(snapshots))  # shown when the test fails
    runs = served(snapshots)
    first_done = min(run.finished for run in runs)
    for run in runs:  # every run had been admitted, its first step waiting for its actor
        assert run.first_step_started < first_done, f"{run.run_id} started its first step after the first run ended"


async def recorded(schema: str, documents: list[dict[str, Any]]) -> dict[str, RunSnapshot]:
    """Every run as the store holds it, checked against what its process printed: all of it, and nothing else."""
    assert [d for d in documents if d["status"] != "success"] == []
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
    assert all(v.records > STEPS for v in verdicts), [v.records for v in verdicts]  # each step's messages are in it
    return snapshots
