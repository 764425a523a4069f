"""A remote worker gets an agent's spec with every step sent before it is known to hold it: a Ray actor running
many steps at once may start them in another order than they were sent, and a step must never start before its
agent's spec (seen once in CI: ``no agent was sent for spec ...``, twenty runs on four new actors)."""

from __future__ import annotations

from typing import Any

from cadenza import Agent
from cadenza.backends._remote import RemoteWorker, Shipment
from cadenza.patterns._worker_host import WorkerHost


class Nowhere:
    """An outbox that keeps what the host sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def drain(self) -> None:
        return None


def test_every_step_carries_the_spec_until_the_worker_holds_it() -> None:
    shipment = Shipment.of(Agent("w", "Work.", model="simulated:w").describe(), "a worker process")
    worker = RemoteWorker(pid=1)

    first, second = worker.unsent(shipment), worker.unsent(shipment)  # two steps sent before either started
    worker.holds(shipment)  # one of them started there
    third = worker.unsent(shipment)

    assert first == second == {"op": "spec", "sid": shipment.sid, "spec": shipment.spec}
    assert third is None


def test_a_spec_received_again_is_built_once() -> None:
    shipment = Shipment.of(Agent("w", "Work.", model="simulated:w").describe(), "a worker process")
    host = WorkerHost(Nowhere())
    spec = {"op": "spec", "sid": shipment.sid, "spec": shipment.spec}

    host.handle(spec)
    built = host.agents[shipment.sid]
    host.handle(spec)

    assert host.agents[shipment.sid] is built  # the steps already running on it keep the same agent
