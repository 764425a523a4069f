"""Many runs submitted together to one Ray cluster, for the many-runs test and ``bench/bench_ray_cluster.py``.

Two ways to submit them: one orchestrator process running every run on one shared backend
(`many_runs_child.py`), or one ``cadenza run`` process per run, each a Ray driver with actors of its own. Either
way every run records into one PostgreSQL store, whose timeline (`timeline`) says how fairly they were served.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cadenza.stores import RunSnapshot
from on_ray.nodes import Cluster

CHILD = Path(__file__).with_name("many_runs_child.py")
CHAINS = 10
"""A plan of ``steps`` steps is ``CHAINS`` chains of ``steps / CHAINS`` steps, run side by side."""


@dataclass(frozen=True)
class Exit:
    """How one process ended."""

    code: int
    out: str
    err: str


def write_workflow(path: Path, steps: int, latency: float) -> str:
    """A team with a written plan of ``steps`` steps in `CHAINS` chains, one agent per chain, ``latency`` seconds
    per model call."""
    agents = [f"a{i}" for i in range(CHAINS)]
    lines = ["name: many", f"simulated: {{latency: {latency}, seed: 3}}", "default_model: 'simulated:fast'",
             "agents:"]
    lines += [f"  - {{name: {a}, instructions: Work on your part.}}" for a in agents]
    lines += ["supervisor:", "  name: lead", "  model: 'simulated:lead'", f"  workers: [{', '.join(agents)}]",
              f"  max_plan_steps: {steps}", f"  policy: {{max_concurrency: {CHAINS}}}", "  plan:"]
    for i in range(steps):
        after = f", depends_on: [s{i - CHAINS}]" if i >= CHAINS else ""
        lines.append(f"    - {{id: s{i}, agent: a{i % CHAINS}, instruction: part {i}{after}}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def orchestrate(cluster: Cluster, store_url: str, workflow: str, runs: int, deadline: float) -> Exit:
    """Run ``runs`` runs at once in one orchestrator process, on four actors they share."""
    done = subprocess.run([sys.executable, str(CHILD), cluster.address, store_url, workflow, str(runs)],
                          env=cluster.env, capture_output=True, text=True, timeout=deadline)
    return Exit(done.returncode, done.stdout, done.stderr[-3000:])


def submit_together(cluster: Cluster, store_url: str, workflow: str, runs: int, deadline: float) -> list[Exit]:
    """Start ``runs`` runs at once, each a ``cadenza run --json`` of its own with one actor; all are killed at
    ``deadline`` seconds."""
    command = [sys.executable, "-m", "cadenza.cli", "--store", store_url, "run", workflow]
    options = ["--json", "--backend", "ray", "--ray-address", cluster.address, "--workers", "1"]
    children = [subprocess.Popen([*command, f"goal {i}", *options], env=cluster.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for i in range(runs)]
    ends = time.monotonic() + deadline
    try:
        outs = [child.communicate(timeout=max(ends - time.monotonic(), 1)) for child in children]
    finally:
        for child in children:
            child.kill()
            child.communicate()
    return [Exit(child.returncode, out, err[-2000:]) for child, (out, err) in zip(children, outs, strict=True)]


@dataclass(frozen=True)
class Served:
    """How one run was served, in seconds from the first run's start."""

    run_id: str
    started: float
    first_step_started: float
    first_step_done: float
    finished: float


def served(snapshots: dict[str, RunSnapshot]) -> list[Served]:
    """Each run's timeline as the store holds it, in the order the runs started."""
    zero = min(s.run.started_at for s in snapshots.values())

    def at(moment: datetime | None) -> float:
        return (moment - zero).total_seconds() if moment is not None else float("nan")

    return sorted((Served(run_id, at(s.run.started_at), at(min(x.started_at for x in s.steps if x.started_at)),
                          at(min(x.finished_at for x in s.steps if x.finished_at)), at(s.run.finished_at))
                   for run_id, s in snapshots.items()), key=lambda x: x.started)


def timeline(snapshots: dict[str, RunSnapshot]) -> str:
    """`served`, one line per run: started, first step started, first step done, finished."""
    return "\n".join(f"{s.run_id} {s.started:6.2f} {s.first_step_started:6.2f} {s.first_step_done:6.2f} "
                     f"{s.finished:6.2f}" for s in served(snapshots))
