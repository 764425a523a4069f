"""One orchestrator running many runs at once on a Ray cluster, for the many-runs test:
``python many_runs_child.py ADDRESS STORE_URL WORKFLOW RUNS``.

The runs share one `RayBackend` (four actors, two on each node, by the custom resource each node was started
with) and one store, as a service that takes runs would. Stdout: one JSON line per run once all ended
(``run_id``, ``status``, ``output``, ``error``).
"""

from __future__ import annotations

import asyncio
import json
import sys

from cadenza import RayBackend, load_workflow
from cadenza.stores import open_store

NODES = [{"resources": {"head": 1}}, {"resources": {"node2": 1}}]


async def main(address: str, store_url: str, workflow_path: str, runs: int) -> None:
    workflow = load_workflow(workflow_path)
    team = workflow.entry
    async with RayBackend(4, address=address, actor_options=NODES) as actors, open_store(store_url) as store:
        team.use_backend(actors)
        results = await asyncio.gather(*(team.run(f"goal {i}", store=store) for i in range(runs)))
    for result in results:
        print(json.dumps({"run_id": result.run_id, "status": result.status, "output": result.output,
                          "error": result.error.message if result.error else None}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
