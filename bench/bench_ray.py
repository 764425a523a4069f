"""The Ray backend's figures: per-step overhead against the local and process backends, fan-out, actor start-up.

Run:  python bench/bench_ray.py            (about a minute and a half)
      python bench/bench_ray.py --quick    (smaller sizes, for a smoke check)

One local Ray instance serves every Ray figure (started first, its start-up timed). Every agent step on
Ray is one streaming call to an actor (the spec once per actor, then the Task, the StepContext and
the worker's key; the sealed Result back), on actors already started. The fan-out gives each step an
agent of its own (1,000 steps: 1,000 agents, each rebuilt once on the actor that runs it). Steps are
signed as in a default run. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Any

import bench_process
from bench_process import _start_up

LATENCY = 0.05
WORKERS = 2


def _team(shape: str, n: int, latency: float) -> Any:
    """A chain of ``n`` steps on one agent, or a fan-out of ``n`` steps on ``n`` agents."""
    return bench_process._team(shape, n, latency, agents=n)


def _backend(name: str) -> Any:
    from cadenza import ProcessBackend, RayBackend
    from cadenza.backends.local import LocalBackend

    return {"local": LocalBackend, "process": lambda: ProcessBackend(WORKERS),
            "ray": lambda: RayBackend(WORKERS)}[name]()


async def _wall(name: str, shape: str, n: int, latency: float) -> tuple[float, str]:
    """Wall time of one run on backend ``name``, its processes or actors started beforehand."""
    backend = _backend(name)
    try:
        if name == "ray":
            await backend.start()
        warm = _team("fanout", 2 * WORKERS, 0.0)
        warm.use_backend(backend)
        await warm.run("warm up")  # every worker started
        team = _team(shape, n, latency)
        team.use_backend(backend)
        t0 = time.perf_counter()
        result = await team.run("bench")
        return time.perf_counter() - t0, result.status
    finally:
        if name != "local":
            await backend.aclose()


def main() -> None:
    import ray

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke check")
    quick = parser.parse_args().quick
    steps = 40 if quick else 200

    t0 = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    started = time.perf_counter() - t0
    print(f"cadenza Ray backend benchmarks (simulated model, signed messages, {WORKERS} warm workers each)\n")
    print(f"a local Ray instance starts in {started:.1f} s (ray.init, once per run of the CLI without --ray-address)\n")

    print(f"per-step overhead at zero latency ({steps} steps; wall us/step, planning and synthesis included):")
    for shape in ("chain", "fanout"):
        figures = {name: asyncio.run(_wall(name, shape, steps, 0.0)) for name in ("local", "process", "ray")}
        local = figures["local"][0]
        cells = "   ".join(f"{name} {wall / steps * 1e6:7.0f} (+{(wall - local) / steps * 1e6:.0f})"
                           for name, (wall, _) in figures.items())
        print(f"  {shape:<7} {cells}  [{figures['ray'][1]}]")

    print(f"\nfan-out at {LATENCY * 1e3:.0f} ms per step, one agent per step (ideal {LATENCY * 1e3:.0f} ms, plus "
          "planning and synthesis):")
    for n in (100,) if quick else (100, 1000):
        figures = {name: asyncio.run(_wall(name, "fanout", n, LATENCY)) for name in ("local", "process", "ray")}
        cells = "   ".join(f"{name} {wall * 1e3:7.0f} ms" for name, (wall, _) in figures.items())
        print(f"  {n:>5} steps: {cells}  [{figures['ray'][1]}]")

    from cadenza import RayBackend

    print(f"\nfirst step on a new actor (placement, process start, imports, rebuild, run): "
          f"{asyncio.run(_start_up(RayBackend)) * 1e3:.0f} ms")
    ray.shutdown()


if __name__ == "__main__":
    main()
