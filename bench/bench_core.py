"""Core runtime figures on the simulated model: per-step overhead, fan-out, DAG scheduling, import time.

Run:  python bench/bench_core.py            (all workloads, about a minute)
      python bench/bench_core.py --quick    (smaller sizes, for a smoke check)

Each workload runs in a fresh subprocess so peak RSS belongs to it alone.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LATENCY = 0.05


def _agents(names: list[str], latency: float | dict[str, float]) -> dict[str, Any]:
    from cadenza import Agent, SimulatedModel

    def lat(name: str) -> float:
        return latency if isinstance(latency, float) else latency[name]

    return {n: Agent(n, "work", model=SimulatedModel(n, latency=lat(n))) for n in names}


async def _execute(plan: Any, workers: dict[str, Any]) -> tuple[float, float, Any]:
    from cadenza import Executor
    from cadenza._ids import RunId

    counted = [0]

    def sink(event: object) -> None:  # the CLI's display is a sink like this one
        counted[0] += 1

    executor = Executor()
    cpu0, t0 = time.process_time(), time.perf_counter()
    outcome = await executor.run(plan, workers, run_id=RunId("run_bench"), team="bench", events=sink)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return wall, cpu, outcome


def _measured_critical_path(plan: Any, outcome: Any) -> float:
    """The critical path over the step durations actually observed (model latency plus timer slack).

    ``wall - this`` is the time the scheduler itself added between steps on that path.
    """
    spans = {sid: (r.finished_at - r.started_at).total_seconds() for sid, r in outcome.records.items()}
    return float(plan.critical_path(spans)[1])


def _plan(steps: list[tuple[str, str, list[str]]]) -> Any:
    from cadenza import Plan, Step

    return Plan(steps=tuple(Step(id=i, agent=a, instruction=f"task {i}", depends_on=tuple(d)) for i, a, d in steps))


CONFIGS = {
    "runtime": "runtime alone",
    "python": "Python default (signed)",
    "cli": "CLI default (signed, SQLite, audit)",
    "streamed": "Python default, read by team.stream",
}


# 1 -> 14 -> 14 -> 1 (30 steps) with cross-layer edges, 50 ms each: critical path 200 ms.
DIAMOND: list[tuple[str, str, list[str]]] = [
    ("root", "w", []),
    *((f"a{i}", "w", ["root"]) for i in range(14)),
    *((f"b{i}", "w", [f"a{i}", f"a{(i + 1) % 14}"] + (["root"] if i % 3 == 0 else [])) for i in range(14)),
    ("sink", "w", [*(f"b{i}" for i in range(14)), "a0", "a7"]),
]
# A chain of five 10 ms steps beside one 100 ms step, joined by a 10 ms step: critical path 110 ms.
UNEVEN: list[tuple[str, str, list[str]]] = [
    *((f"c{i}", "fast", [f"c{i - 1}"] if i else []) for i in range(5)), ("slow", "slow", []), ("join", "fast", ["c4", "slow"]),
]
UNEVEN_LATENCY = {"fast": 0.01, "slow": 0.1}


def _shape(shape: str, n: int, latency: float) -> tuple[list[tuple[str, str, list[str]]], dict[str, float]]:
    """The steps and each agent's latency of a workload: ``fanout`` is n parallel steps on n agents joined by one
    step (a team's answer), ``chain`` n steps one after another on one agent, ``diamond`` and ``uneven`` the DAGs."""
    if shape == "fanout":
        names = [f"w{i}" for i in range(n)]
        return ([*((f"s{i}", names[i], []) for i in range(n)), ("join", "join", [f"s{i}" for i in range(n)])],
                {**dict.fromkeys(names, latency), "join": 0.0})
    if shape == "chain":
        return [(f"s{i}", "w", [f"s{i - 1}"] if i else []) for i in range(n)], {"w": latency}
    if shape == "diamond":
        return DIAMOND, {"w": LATENCY}
    return UNEVEN, UNEVEN_LATENCY


async def _configured(config: str, plan: Any, workers: dict[str, Any]) -> tuple[float, float, float, str]:
    """Runs ``plan`` as ``config`` does; (wall, CPU, first step start to last step end, status).

    ``runtime`` is the executor alone; ``python`` is ``team.run(goal)`` with nothing set (messages signed);
    ``cli`` is what ``cadenza run`` does: signed, with a SQLite store recording the journal and the audit log. The
    store exists already, as a user's ``.cadenza/runs.db`` does after the first run (creating its tables once costs
    about 30 ms, not a cost per step). ``streamed`` is ``python`` read through ``team.stream``: every event, the
    reports and each model answer's pieces (a word each) queued for the loop that reads them.
    """
    import tempfile

    from cadenza import Executor, Supervisor, open_store
    from cadenza._events import FinalResult, StepFinished, StepStarted
    from cadenza._ids import RunId

    steps: list[float] = []

    def sink(event: object) -> None:  # the CLI's display is a sink like this one
        if (type(event) is StepStarted and not steps) or type(event) is StepFinished:
            steps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        if config == "cli":
            async with open_store(f"{tmp}/runs.db"):
                pass
        cpu0, t0 = time.process_time(), time.perf_counter()
        if config == "runtime":
            status = (await Executor().run(plan, workers, run_id=RunId("run_bench"), team="bench", events=sink)).status
        elif config == "streamed":
            status = "no result"
            async for told in Supervisor("bench", workers=list(workers.values()), plan=plan).stream("bench"):
                sink(told)
                if isinstance(told, FinalResult):
                    status = told.result.status
        else:
            team = Supervisor("bench", workers=list(workers.values()), plan=plan)
            store = f"{tmp}/runs.db" if config == "cli" else None
            status = (await team.run("bench", events=sink, store=store)).status
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return wall, cpu, steps[-1] - steps[0], status


def configured(config: str, shape: str, n: int = 0, latency_ms: int = 0) -> dict[str, Any]:
    """One workload in one configuration: CPU per step at zero latency, or wall time against the critical path."""
    steps, latencies = _shape(shape, n, latency_ms / 1e3)
    plan = _plan(steps)
    wall, cpu, span, status = asyncio.run(_configured(config, plan, _agents(list(latencies), latencies)))
    counted = len(steps) - (shape == "fanout")  # the join is the fan-out's answer, not one of its n
    ideal = plan.critical_path({sid: latencies[agent] for sid, agent, _ in steps})[1]
    return {"workload": f"{config}-{shape}", "n": counted, "wall_ms": wall * 1e3, "steps_ms": span * 1e3,
            "ideal_ms": ideal * 1e3, "cpu_us_per_step": cpu / counted * 1e6, "status": status}


def asyncio_floor(n: int) -> dict[str, Any]:
    """What one bare asyncio task costs here: the floor under any per-step figure of an asyncio scheduler."""

    async def empty() -> None:
        return None

    async def spawn_all() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(asyncio.create_task(empty()) for _ in range(n)))
        return time.perf_counter() - t0

    return {"workload": "asyncio-floor", "n": n, "us_per_task": asyncio.run(spawn_all()) / n * 1e6}


def fanout(n: int, gc_threshold: int = 0) -> dict[str, Any]:
    """N distinct workers in parallel at 50 ms each, then a zero-latency join: ideal wall time is 50 ms.

    ``gc_threshold`` > 0 raises the collector's first threshold, an application's choice (cadenza never
    changes global GC settings): with 10,000 steps in flight, full collections are much of the cost.
    """
    if gc_threshold:
        gc.set_threshold(gc_threshold, 50, 100)
    steps, latencies = _shape("fanout", n, LATENCY)
    wall, cpu, outcome = asyncio.run(_execute(_plan(steps), _agents(list(latencies), latencies)))
    return {"workload": "fanout", "n": n, "wall_ms": wall * 1e3, "ideal_ms": LATENCY * 1e3, "ratio": wall / LATENCY, "cpu_ms": cpu * 1e3, "status": outcome.status}


def diamond() -> dict[str, Any]:
    """The diamond DAG on the executor alone, and the gaps its scheduler adds on the critical path."""
    steps = DIAMOND
    plan = _plan(steps)
    workers = _agents(["w"], LATENCY)
    wall, _cpu, outcome = asyncio.run(_execute(plan, workers))
    ideal = plan.critical_path({s[0]: LATENCY for s in steps})[1]
    measured = _measured_critical_path(plan, outcome)
    return {"workload": "diamond-30", "wall_ms": wall * 1e3, "ideal_ms": ideal * 1e3, "ratio": wall / ideal,
            "measured_cp_ms": measured * 1e3, "status": outcome.status}


def uneven() -> dict[str, Any]:
    """The uneven DAG on the executor alone, against a layer-barrier scheduler.

    A layer-barrier scheduler (LangGraph's superstep) waits for the 100 ms step in layer 1
    before chain step 2, so it takes 100 + 4 x 10 + 10 = 150 ms.
    """
    steps = UNEVEN
    plan = _plan(steps)
    workers = _agents(["fast", "slow"], UNEVEN_LATENCY)
    wall, _cpu, outcome = asyncio.run(_execute(plan, workers))
    barrier = asyncio.run(_barrier_baseline(plan, workers))
    return {"workload": "uneven", "wall_ms": wall * 1e3, "ideal_ms": 110.0, "ratio": wall / 0.11,
            "measured_cp_ms": _measured_critical_path(plan, outcome) * 1e3,
            "barrier_ms": barrier * 1e3, "barrier_ratio": barrier / 0.11, "status": outcome.status}


async def _barrier_baseline(plan: Any, workers: dict[str, Any]) -> float:
    """The same plan run layer by layer, each layer waiting for its slowest step (for comparison only)."""
    from cadenza import Task
    from cadenza._step_context import StepContext
    from cadenza.engine._run_state import RunState

    port = RunState("b").port()

    def ctx(sid: str) -> StepContext:
        return StepContext(run_id="b", scope=f"b/{sid}", step_id=sid, agent=plan.step(sid).agent, attempt=1,
                           task_id=sid, ceiling=None, budgets=(), prior_calls=(), trace=(), turn=None)

    t0 = time.perf_counter()
    for layer in plan.layers():
        await asyncio.gather(*(
            workers[plan.step(sid).agent].execute(Task(task_id=sid, run_id="b", sender="b", recipient="w", instruction="x"),
                                                  ctx(sid), port)
            for sid in layer
        ))
    return time.perf_counter() - t0


def import_time() -> dict[str, Any]:
    """Import times with bytecode caches written and warm, as after any ``pip install``.

    (PYTHONDONTWRITEBYTECODE, set on some machines, would otherwise recompile every module each time.)
    """

    def best(code: str) -> float:
        times = []
        subprocess.run([sys.executable, "-c", code], env=_CACHED, check=True)  # write the caches
        for _ in range(7):
            out = subprocess.run([sys.executable, "-c", f"import time; t=time.perf_counter(); {code}; print(time.perf_counter()-t)"],
                                 capture_output=True, text=True, check=True, env=_CACHED)
            times.append(float(out.stdout))
        return statistics.median(times) * 1e3

    return {"workload": "import", "import_cadenza_ms": best("import cadenza"),
            "from_cadenza_import_agent_supervisor_ms": best("from cadenza import Agent, Supervisor"),
            "cli_import_ms": best("import cadenza.cli")}


def research_tokens(synthesize: str) -> dict[str, Any]:
    """The research example (a plan, five researchers, a writer) on the simulated model: the calls and tokens it
    sends with ``synthesize`` set to ``auto`` (the writer's report is the answer) or ``always``."""
    from cadenza import load_workflow

    workflow = load_workflow(Path(__file__).resolve().parents[1] / "examples" / "research.yaml", model="simulated:fast")
    team = workflow.entry
    team.synthesize = synthesize  # type: ignore[union-attr]
    result = team.run_sync("Compare the last three papers on X")
    return {"workload": "tokens", "status": result.status, "model_calls": result.usage.model_calls,
            "input_tokens": result.usage.input_tokens, "output_tokens": result.usage.output_tokens}


WORKLOADS = {"floor": asyncio_floor, "configured": configured, "fanout": fanout, "diamond": diamond, "uneven": uneven, "import": import_time,
             "tokens": research_tokens}


def _child(name: str, args: list[str]) -> None:
    result = WORKLOADS[name](*[a if not a.isdigit() else int(a) for a in args])
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


_CACHED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
"""The children's environment: bytecode caches read (and written), as after any ``pip install``. PYTHONDONTWRITEBYTECODE,
set on some machines, would otherwise recompile each module a run imports lazily inside the timed part of that run."""


def _compile_all() -> None:
    """Write the bytecode of every cadenza module once, as ``pip install`` does."""
    import importlib.util

    spec = importlib.util.find_spec("cadenza")
    assert spec is not None and spec.submodule_search_locations is not None
    subprocess.run([sys.executable, "-m", "compileall", "-q", *spec.submodule_search_locations], env=_CACHED, check=True)


def _run(name: str, *args: object) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", name, *map(str, args)], capture_output=True, text=True,
                         check=True, env=_CACHED)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1:])
        return
    _compile_all()
    sizes = [1_000] if args.quick else [1_000, 10_000]
    print(f"cadenza core benchmarks (python {sys.version.split()[0]}, simulated model)\n")
    columns = [(shape, n) for shape in ("fanout", "chain") for n in sizes]
    print("CPU per step at zero latency, by configuration (us; peak RSS in MiB):")
    print(f"  {'':<36}" + "".join(f"{f'{shape} {n:,}':>22}" for shape, n in columns))
    for config, label in CONFIGS.items():
        cells = []
        for shape, n in columns:
            r = _run("configured", config, shape, n)
            cells.append(f"{r['cpu_us_per_step']:7.1f} us {r['peak_rss_mib']:5.0f} MiB" + ("" if r["status"] == "success" else "!"))
        print(f"  {label:<36}" + "".join(f"{c:>22}" for c in cells))
    floor = _run("floor", 10_000)
    print(f"  (floor: one bare asyncio task, created and awaited, costs {floor['us_per_task']:.1f} us here)")
    n = sizes[-1]
    print(f"\n{n:,}-way fan-out at {LATENCY * 1e3:.0f} ms per worker (ideal {LATENCY * 1e3:.0f} ms), by configuration:")
    for config, label in CONFIGS.items():
        r = _run("configured", config, "fanout", n, int(LATENCY * 1e3))
        print(f"  {label:<36} {r['wall_ms']:7.1f} ms  rss {r['peak_rss_mib']:6.1f} MiB  [{r['status']}]")
    print("\nDAGs by configuration (run: the whole run's wall time; steps: from the first step's start to the last"
          "\nstep's end; each against the critical path of nominal latencies):")
    for shape in ("diamond", "uneven"):
        for config, label in CONFIGS.items():
            r = _run("configured", config, shape)
            print(f"  {shape:<8} {label:<36} run {r['wall_ms'] / r['ideal_ms']:.3f}x  steps {r['steps_ms'] / r['ideal_ms']:.3f}x"
                  f"  (critical path {r['ideal_ms']:.0f} ms)  [{r['status']}]")
    print(f"\nfan-out/fan-in at {LATENCY * 1e3:.0f} ms per worker on the executor alone (ideal {LATENCY * 1e3:.0f} ms):")
    for n in ([10, 100, 1_000] if args.quick else [10, 100, 1_000, 10_000]):
        r = _run("fanout", n)
        print(f"  {n:>6} workers: {r['wall_ms']:7.1f} ms  ({r['ratio']:.3f}x ideal)  cpu {r['cpu_ms']:7.1f} ms  rss {r['peak_rss_mib']:6.1f} MiB  [{r['status']}]")
    if not args.quick:
        r = _run("fanout", 10_000, 10_000)
        print(f"   10000 workers with gc.set_threshold(10000, 50, 100): {r['wall_ms']:7.1f} ms  ({r['ratio']:.3f}x ideal)  rss {r['peak_rss_mib']:6.1f} MiB")
    print("\nDAGs on the executor alone (wall time against the critical path of nominal latencies; 'scheduler' is wall time minus the"
          "\ncritical path of the step durations actually measured, i.e. the gaps the scheduler added on that path):")
    r = _run("diamond")
    print(f"  diamond, 30 steps at 50 ms: {r['wall_ms']:.1f} ms, critical path {r['ideal_ms']:.0f} ms ({r['ratio']:.3f}x); "
          f"scheduler {r['wall_ms'] - r['measured_cp_ms']:.2f} ms  [{r['status']}]")
    r = _run("uneven")
    print(f"  uneven DAG: {r['wall_ms']:.1f} ms, critical path 110 ms ({r['ratio']:.3f}x); "
          f"scheduler {r['wall_ms'] - r['measured_cp_ms']:.2f} ms; "
          f"layer-barrier baseline {r['barrier_ms']:.1f} ms ({r['barrier_ratio']:.2f}x)  [{r['status']}]")
    print("\ntokens of the research example (plan, five researchers, writer; simulated model):")
    for mode in ("auto", "always"):
        r = _run("tokens", mode)
        print(f"  synthesize={mode:<6} {r['model_calls']} model calls, {r['input_tokens']:,} input tokens, "
              f"{r['output_tokens']:,} output tokens  [{r['status']}]")
    r = _run("import")
    print(f"\nimport cadenza: {r['import_cadenza_ms']:.0f} ms;  from cadenza import Agent, Supervisor: "
          f"{r['from_cadenza_import_agent_supervisor_ms']:.0f} ms;  import cadenza.cli: {r['cli_import_ms']:.0f} ms (median of 7)")


if __name__ == "__main__":
    main()
