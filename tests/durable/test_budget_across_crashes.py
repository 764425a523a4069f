"""A run's budget holds across kill -9 and resume: what the provider billed over every process stays within it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cadenza import Agent, Budget, Plan, Supervisor
from cadenza.stores.base import Store

CHILD = Path(__file__).with_name("budget_child.py")
BUDGET = 1000


def child(tmp_path: Path, action: str, hang: bool) -> subprocess.Popen[str]:
    args = [sys.executable, str(CHILD), str(tmp_path / "runs.db"), str(tmp_path / "billed.log"), action, "run_budget",
            str(BUDGET), "yes" if hang else "no"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def billed(tmp_path: Path) -> list[int]:
    log = tmp_path / "billed.log"
    return [int(line.split()[1]) for line in log.read_text().splitlines()] if log.exists() else []


def test_calls_in_flight_at_a_kill_count_against_the_resumed_runs_budget(tmp_path: Path) -> None:
    first = child(tmp_path, "run", hang=True)
    try:
        assert first.stdout is not None
        in_flight: list[int] = []
        for line in first.stdout:  # kill once no further call can start beside those in flight
            if line.startswith("IN_CALL "):
                in_flight.append(int(line.split()[1]))
                if sum(in_flight) + in_flight[-1] > BUDGET:
                    break
        assert len(in_flight) >= 2, "the budget should let several calls run at once"
    finally:
        first.kill()  # SIGKILL: the calls in flight were billed, their replies never read
        first.communicate(timeout=30)
    assert sum(billed(tmp_path)) == sum(in_flight)

    resumed = child(tmp_path, "resume", hang=False)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[len("RESULT "):])

    assert result["status"] == "partial"  # the budget stopped the resumed run
    assert sum(billed(tmp_path)) <= BUDGET, f"billed {billed(tmp_path)} over a budget of {BUDGET}"


async def test_each_call_of_a_recorded_budgeted_run_leaves_a_settled_reservation(store: Store) -> None:
    worker = Agent("w", "Work.", max_tokens=50)
    lead = Supervisor("lead", workers=[worker], plan=Plan.of({"id": "a", "agent": "w", "instruction": "go"},
                                                             {"id": "b", "agent": "w", "instruction": "go"}))
    result = await lead.run("work", store=store, budget=Budget(tokens=100_000))
    snapshot = await store.snapshot(result.run_id)
    reservations: list[Any] = snapshot.reservations
    assert len(reservations) == result.usage.model_calls == 3  # two steps and the synthesis
    assert all(r.status == "settled" and r.worst_tokens >= r.tokens > 0 for r in reservations)
    assert sum(r.tokens for r in reservations) == result.usage.total_tokens


async def test_a_run_without_a_budget_writes_no_reservations(store: Store) -> None:
    lead = Supervisor("lead", workers=[Agent("w", "Work.")], plan=Plan.of({"id": "a", "agent": "w", "instruction": "go"}))
    result = await lead.run("work", store=store)
    assert (await store.snapshot(result.run_id)).reservations == []
