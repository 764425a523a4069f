"""One path names a place in a run: events, the store and the identities of signed messages agree on it."""

from __future__ import annotations

from pathlib import Path

from cadenza import Agent, Plan, Supervisor
from cadenza._events import Event, RunStarted, StepStarted
from cadenza._ids import ScopePath, child_path, split_path
from cadenza._port import RunPort
from cadenza._step_context import StepContext
from cadenza._worker import Worker
from cadenza.backends.local import LocalBackend
from cadenza.models.simulated import SimulatedModel
from cadenza.security._identity import Envelope, WorkerKey
from cadenza.security._security import TaskOpener
from cadenza.stores import open_store


class Carrier(LocalBackend):
    """Runs in this process, noting who sealed each envelope it carries and for whom."""

    def __init__(self, seen: list[tuple[str, str]]) -> None:
        self.seen = seen

    async def deliver(self, worker: Worker, envelope: Envelope, opener: TaskOpener, key: WorkerKey,
                      ctx: StepContext, port: RunPort) -> Envelope:
        self.seen.append((envelope.sender, envelope.recipient))
        return await super().deliver(worker, envelope, opener, key, ctx, port)


def test_a_path_is_split_at_its_last_segment() -> None:
    path = child_path(child_path(ScopePath("lead"), "build"), "review")
    assert path == "lead/build/review"
    assert split_path(path) == ("lead/build", "review")
    assert split_path(ScopePath("lead")) == ("", "lead")


async def test_events_the_store_and_identities_name_a_nested_team_by_the_path_of_its_step(tmp_path: Path) -> None:
    model = SimulatedModel("paths", seed=3)
    envelopes: list[tuple[str, str]] = []
    inner = Supervisor("eng", workers=[Agent("dev", "Build.", model=model)], model=model, backend=Carrier(envelopes),
                       plan=Plan.of({"id": "code", "agent": "dev", "instruction": "Write it"}))
    outer = Supervisor("lead", workers=[inner, Agent("qa", "Check.", model=model)], model=model,
                       backend=Carrier(envelopes),
                       plan=Plan.of({"id": "build", "agent": "eng", "instruction": "Build it"},
                                    {"id": "check", "agent": "qa", "instruction": "Check it", "depends_on": ["build"]}))
    events: list[Event] = []
    store = open_store(tmp_path / "runs.db")
    async with store:
        result = await outer.run("Ship it", events=events.append, store=store)
        snapshot = await store.snapshot(result.run_id)
    assert result.status == "success", result.error

    teams = [e.team for e in events if isinstance(e, RunStarted)]
    assert teams == ["lead", "lead/build"]  # not lead/eng: a name may run two steps, a step id is one place
    assert sorted(p.scope for p in snapshot.plans) == sorted(teams)
    started = {(e.team, e.step_id) for e in events if isinstance(e, StepStarted)}
    assert started == {(r.scope, r.step_id) for r in snapshot.steps}
    assert started == {("lead", "build"), ("lead", "check"), ("lead/build", "code")}
    assert all(e.scope == child_path(e.team, e.step_id) for e in events if isinstance(e, StepStarted))
    # A team seals as its path; each worker is addressed under it by its name.
    assert sorted(envelopes) == [("lead", "lead/eng"), ("lead", "lead/qa"), ("lead/build", "lead/build/dev")]
