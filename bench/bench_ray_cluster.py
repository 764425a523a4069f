"""A two-node Ray cluster on this machine: fan-out across both nodes, what one orchestrator sustains, and what
losing a node costs.

Run:  python bench/bench_ray_cluster.py            (about two minutes)
      python bench/bench_ray_cluster.py --quick    (smaller sizes, for a smoke check)

The nodes are started with ``ray start`` (a head and a second node, one CPU and a custom resource each, as
``tests/on_ray/nodes.py`` starts them for the node-loss test) and killed at the end. This process is the
orchestrator: four actors, two on each node, warm before each figure. Steps are signed as in a default run;
each has an agent of its own. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_ray import _team

from on_ray.many_runs import orchestrate, served, submit_together, write_workflow
from on_ray.nodes import Cluster, kill, two_nodes
from stores.backends import PG_URL, drop_schema

NODES = [{"resources": {"head": 1}}, {"resources": {"node2": 1}}]
ACTORS = 4


async def _wall(n: int, latency: float, *, lose: Cluster | None = None, after: float = 0.0) -> tuple[float, str, str]:
    """Wall time of a fan-out of ``n`` steps; with ``lose``, the second node is killed ``after`` seconds in."""
    from cadenza import RayBackend
    from cadenza._events import StepRetrying

    retried: list[float] = []
    async with RayBackend(ACTORS, actor_options=NODES) as actors:
        await actors.start()
        warm = _team("fanout", ACTORS * 2, 0.0)
        warm.use_backend(actors)
        await warm.run("warm up")
        team = _team("fanout", n, latency)
        team.use_backend(actors)
        t0 = time.perf_counter()
        running = asyncio.create_task(team.run("bench", events=lambda e: retried.append(time.perf_counter())
                                               if isinstance(e, StepRetrying) else None))
        detail = ""
        if lose is not None:
            await asyncio.sleep(after)
            killed_at = time.perf_counter()
            kill(lose.processes("node2"))
            result = await running
            wall = time.perf_counter() - t0
            if retried:
                detail = (f"{len(retried)} steps lost in flight, retried; first retry {retried[0] - killed_at:.1f} s "
                          f"after the kill")
        else:
            result = await running
            wall = time.perf_counter() - t0
        return wall, result.status, detail


def _many_runs(cluster: Cluster, runs: int, steps: int, latency: float, *, one_process: bool) -> str:
    """``runs`` runs of ``steps`` steps submitted together, into one PostgreSQL store: in one orchestrator process
    (four actors shared), or as as many ``cadenza run`` processes (one actor each). How long they took, from the
    store."""
    from cadenza.stores import PostgresStore

    schema = f"bench_many_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        workflow = write_workflow(Path(tmp) / "many.yaml", steps, latency)
        t0 = time.perf_counter()
        if one_process:
            exits = [orchestrate(cluster, f"{PG_URL}?schema={schema}", workflow, runs, 600)]
        else:
            exits = submit_together(cluster, f"{PG_URL}?schema={schema}", workflow, runs, 600)
        wall = time.perf_counter() - t0

    async def timelines() -> list[Any]:
        async with PostgresStore(PG_URL, schema=schema) as store:
            found = {r.run_id: await store.snapshot(r.run_id) for r in await store.list_runs(limit=runs * 2)}
        await drop_schema(schema)
        return served(found)

    runs_served = asyncio.run(timelines())
    took = [s.finished - s.started for s in runs_served]
    first = [s.first_step_done - s.started for s in runs_served]
    failed = sum(e.code != 0 for e in exits)
    return (f"{wall:5.1f} s from submission to the last exit ({runs * steps / wall:,.0f} steps/s); a run took "
            f"{min(took):.1f}-{max(took):.1f} s (median {statistics.median(took):.1f}); its first step was done "
            f"{min(first):.1f}-{max(first):.1f} s after it started  [{len(runs_served)} runs recorded, "
            f"{failed} processes failed]")


def main() -> None:
    import ray

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke check")
    quick = parser.parse_args().quick

    os.environ["RAY_AUTH_MODE"] = "disabled"  # as the nodes were started
    with two_nodes() as cluster:
        ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.ERROR)
        print(f"cadenza on a two-node Ray cluster on this machine ({ACTORS} actors, two on each node)\n")

        print("fan-out at 50 ms per step, one agent per step (ideal 50 ms, plus planning and synthesis):")
        for n in (200,) if quick else (1000, 10000):
            wall, status, _ = asyncio.run(_wall(n, 0.05))
            print(f"  {n:>6} steps: {wall:6.2f} s   [{status}]")

        n = 500 if quick else 5000
        wall, status, _ = asyncio.run(_wall(n, 0.0))
        print(f"\nsustained by one orchestrator, zero latency: {n / wall:,.0f} steps/s ({n} steps in {wall:.2f} s) "
              f"[{status}]")

        runs, steps = (5, 20) if quick else (20, 100)
        print(f"\n{runs} runs of {steps} steps (10 chains, 50 ms per model call) submitted together, into one "
              "PostgreSQL store:")
        print(f"  one orchestrator, 4 actors shared:  {_many_runs(cluster, runs, steps, 0.05, one_process=True)}")
        print(f"  a cadenza run each, 1 actor each:   {_many_runs(cluster, runs, steps, 0.05, one_process=False)}")

        n, latency = (40, 1.0) if quick else (200, 1.0)
        base, status, _ = asyncio.run(_wall(n, latency))
        lost, status_lost, detail = asyncio.run(_wall(n, latency, lose=cluster, after=0.5 * latency))
        print(f"\nlosing the second node half way through {n} steps of {latency:g} s: {lost:.2f} s against "
              f"{base:.2f} s without loss (+{lost - base:.2f} s to recover); {detail}  [{status}, {status_lost}]")
        ray.shutdown()


if __name__ == "__main__":
    main()
