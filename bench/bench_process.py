"""The process backend's figures: per-step overhead against the local backend, fan-out, worker start-up.

Run:  python bench/bench_process.py            (about half a minute)
      python bench/bench_process.py --quick    (smaller sizes, for a smoke check)

Every agent step on the process backend crosses two pipes as JSON (the spec once per worker process,
then the Task, the StepContext and the worker's key; the sealed Result back) and is rebuilt from
its spec once per process. Steps are signed as in a default run. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

LATENCY = 0.05


def _agents(names: list[str], latency: float) -> list[Any]:
    from cadenza import Agent
    from cadenza._worker_spec import ModelSource
    from cadenza.models import resolve_model

    source = ModelSource(spec="simulated:bench", options={"latency": latency})
    model = resolve_model(source.spec, dict(source.options))
    return [Agent(n, "work", model=model, model_source=[source]) for n in names]


def _team(shape: str, n: int, latency: float, agents: int = 50) -> Any:
    """A chain of ``n`` steps on one agent, or a fan-out of ``n`` steps over ``agents`` agents in turn."""
    from cadenza import Plan, Supervisor

    if shape == "chain":
        steps = [{"id": f"s{i}", "agent": "w", "instruction": f"task {i}", "depends_on": [f"s{i - 1}"] if i else []}
                 for i in range(n)]
        workers = _agents(["w"], latency)
    else:
        steps = [{"id": f"s{i}", "agent": f"w{i % agents}", "instruction": f"task {i}"} for i in range(n)]
        workers = _agents([f"w{i}" for i in range(min(n, agents))], latency)
    return Supervisor("bench", workers=workers, model="simulated:lead", plan=Plan.of(*steps))


async def _timed(team: Any, backend: Any) -> tuple[float, str]:
    if backend is not None:
        team.use_backend(backend)
    t0 = time.perf_counter()
    result = await team.run("bench")
    return time.perf_counter() - t0, result.status


async def _run(shape: str, n: int, latency: float, workers: int | None) -> tuple[float, str]:
    """Wall time of one run; with ``workers``, on a process backend whose processes are already started."""
    if workers is None:
        return await _timed(_team(shape, n, latency), None)
    from cadenza import ProcessBackend

    async with ProcessBackend(workers) as pool:
        await _timed(_team("fanout", 2 * workers, 0.0), pool)  # start every process and send it the spec
        return await _timed(_team(shape, n, latency), pool)


async def _start_up(backend: Any = None) -> float:
    """The first step on a new worker of ``backend`` (a backend class; the process backend by default)."""
    from cadenza import ProcessBackend

    async with (backend or ProcessBackend)(1) as pool:
        t0 = time.perf_counter()
        await _timed(_team("chain", 1, 0.0), pool)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke check")
    quick = parser.parse_args().quick
    steps = 40 if quick else 200
    workers = 2

    print("cadenza process backend benchmarks (simulated model, signed messages, warm worker processes)\n")
    print(f"per-step overhead at zero latency ({steps} steps; wall us/step, planning and synthesis included):")
    for shape in ("chain", "fanout"):
        local, _ = asyncio.run(_run(shape, steps, 0.0, None))
        pooled, status = asyncio.run(_run(shape, steps, 0.0, workers))
        print(f"  {shape:<7} local {local / steps * 1e6:8.1f} us/step   process ({workers} workers) "
              f"{pooled / steps * 1e6:8.1f} us/step   (+{(pooled - local) / steps * 1e6:.1f})  [{status}]")

    print(f"\nfan-out at {LATENCY * 1e3:.0f} ms per step (ideal {LATENCY * 1e3:.0f} ms, plus planning and synthesis):")
    for n in (100,) if quick else (100, 1000):
        local, _ = asyncio.run(_run("fanout", n, LATENCY, None))
        pooled, status = asyncio.run(_run("fanout", n, LATENCY, workers))
        print(f"  {n:>5} steps: local {local * 1e3:8.1f} ms   process ({workers} workers) {pooled * 1e3:8.1f} ms  "
              f"[{status}]")

    print(f"\nfirst step on a new worker process (start, imports, rebuild, run): {asyncio.run(_start_up()) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
