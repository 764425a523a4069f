"""What one open run page costs the viewer: each live page reads its run and renders it every 0.5 s.

    python bench/bench_ui.py [--steps 100 1000]

A fan-out of N steps (N agents in parallel, joined by one step) is run on the simulated model into a SQLite store,
then the run page's read of the store (snapshot, messages, audit log), its rendering (graphs, timeline, steps, audit
verification) and a poll that finds nothing new (a read and a comparison) are timed apart, best of five, with the
page's size.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def _recorded(store: str, n: int) -> str:
    from cadenza import Agent, Plan, SimulatedModel, Step, Supervisor

    workers = [Agent(f"w{i}", "work", model=SimulatedModel(f"w{i}")) for i in range(n)] + [
        Agent("join", "join", model=SimulatedModel("join"))]
    plan = Plan(steps=(*(Step(id=f"s{i}", agent=f"w{i}", instruction=f"task {i}") for i in range(n)),
                       Step(id="join", agent="join", instruction="join", depends_on=tuple(f"s{i}" for i in range(n)))))
    result = await Supervisor("bench", workers=workers, plan=plan).run("bench", store=store)
    return str(result.run_id)


async def _best(work: Callable[[], Awaitable[Any]], times: int = 5) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(times):
        t0 = time.perf_counter()
        value = await work()
        best = min(best, time.perf_counter() - t0)
    return best, value


async def measure(n: int) -> dict[str, float]:
    from cadenza.stores import open_store
    from cadenza.ui._run_page import read_run, run_body

    with tempfile.TemporaryDirectory() as tmp:
        url = f"{tmp}/runs.db"
        run_id = await _recorded(url, n)
        async with open_store(url) as store:
            read, run = await _best(lambda: read_run(store, run_id))

            async def render() -> str:
                return run_body(run)

            drawn, body = await _best(render)

            async def unchanged() -> bool:  # what a live page does when nothing changed: read, compare, no drawing
                return await read_run(store, run_id) == run

            idle, same = await _best(unchanged)
            assert same, "two reads of a finished run differ"
    return {"steps": n + 1, "audit records": len(run.trail.records), "read ms": read * 1e3,
            "render ms": drawn * 1e3, "idle poll ms": idle * 1e3, "page kB": len(body.encode()) / 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 1000], help="parallel steps of the run")
    sizes = parser.parse_args().steps
    print(f"{'steps':>6} {'audit':>6} {'read ms':>8} {'render ms':>10} {'idle poll ms':>13} {'page kB':>8}")
    for n in sizes:
        row = asyncio.run(measure(n))
        print(f"{row['steps']:>6.0f} {row['audit records']:>6.0f} {row['read ms']:>8.1f} {row['render ms']:>10.1f} "
              f"{row['idle poll ms']:>13.1f} {row['page kB']:>8.0f}")
    print("each open run page reads its run every 0.5 s; it is drawn again (and sent) only when it changed")


if __name__ == "__main__":
    main()
