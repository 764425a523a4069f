"""A run on a two-node Ray cluster, for the node-loss test to watch: ``python two_node_child.py ADDRESS DB STEPS``.

A fan-out of STEPS steps, four at a time, each on an agent of its own that calls the tool ``where`` (recorded by
the run: its result is the process id it ran in) and then answers, 0.3 s per model call. Four actors, two on each
node: their options name the custom resource each node was started with (``head``, ``node2``).

Stdout, one flushed line each: ``STARTED <step> <attempt>``, ``RETRY <step> <error type> <model calls spent>``,
``FINISHED <step> <status> <attempts> <model calls of the last attempt>`` as they happen, then ``RESULT <json>`` (status, model calls, steps).
"""

from __future__ import annotations

import asyncio
import json
import sys

from cadenza import Agent, ExecutionPolicy, Plan, RayBackend, RetryPolicy, Supervisor
from cadenza._events import Event, StepFinished, StepRetrying, StepStarted
from cadenza._worker_spec import ModelSource
from cadenza.models import resolve_model
from cadenza.stores.sqlite import SQLiteStore
from process.worker_tools import where

NODES = [{"resources": {"node2": 1}}, {"resources": {"head": 1}}]
"""The second node first: the first actor, on which the first steps run while the others start, is on the node
that will be lost."""


def team(steps: int) -> Supervisor[str]:
    source = ModelSource(spec="simulated:nodes", options={"latency": 0.3})
    model = resolve_model(source.spec, dict(source.options))
    agents = [Agent(f"w{i}", "Say where you are.", model=model, model_source=[source], tools=[where])
              for i in range(steps)]
    plan = Plan.of(*({"id": f"s{i}", "agent": f"w{i}", "instruction": "Where?"} for i in range(steps)))
    policy = ExecutionPolicy(max_concurrency=4, retry=RetryPolicy(max_attempts=4, initial_delay=0.05))
    return Supervisor("lead", workers=agents, model="simulated:lead", plan=plan, policy=policy,
                      max_plan_steps=max(steps, 50))


def say(event: Event) -> None:
    if isinstance(event, StepStarted):
        print(f"STARTED {event.step_id} {event.attempt}", flush=True)
    elif isinstance(event, StepRetrying):
        print(f"RETRY {event.step_id} {event.error.type} {event.usage.model_calls}", flush=True)
    elif isinstance(event, StepFinished) and event.team == "lead":
        print(f"FINISHED {event.step_id} {event.status} {event.attempt} {event.usage.model_calls}", flush=True)


async def main(address: str, db: str, steps: int) -> None:
    async with RayBackend(4, address=address, actor_options=NODES) as actors, SQLiteStore(db) as store:
        lead = team(steps)
        lead.use_backend(actors)
        result = await lead.run("Where is everyone?", store=store, run_id="run_nodes", events=say)
    body = {"status": result.status, "model_calls": result.usage.model_calls,
            "steps": {r.step.id: [r.status, r.attempts] for r in result.steps}}
    print("RESULT " + json.dumps(body), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
