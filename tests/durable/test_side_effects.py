"""Tools with side effects and approvals across real process exits and kills (SIGKILL)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cadenza import approve
from cadenza.stores.sqlite import SQLiteStore

CHILD = Path(__file__).with_name("side_effect_child.py")


@dataclass
class Scenario:
    db: Path
    log: Path
    run_id: str = "run_sidefx"

    def start(self, action: str, side_effect: str, approval: bool | str, hang: str = "") -> subprocess.Popen[str]:
        said = approval if isinstance(approval, str) else "yes" if approval else "no"
        args = [sys.executable, str(CHILD), str(self.db), str(self.log), action, self.run_id, side_effect, said, hang]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self, action: str, side_effect: str, approval: bool | str = False) -> dict[str, Any]:
        proc = self.start(action, side_effect, approval)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        line = next(line for line in out.splitlines() if line.startswith("RESULT "))
        return json.loads(line.removeprefix("RESULT "))  # type: ignore[no-any-return]

    def kill_at(self, marker: str, action: str, side_effect: str, hang: str, approval: bool | str = False) -> None:
        proc = self.start(action, side_effect, approval, hang)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == marker:
                break
        proc.kill()  # SIGKILL: no cleanup of any kind runs
        proc.communicate(timeout=30)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    async def decide(self, step: str, approved: bool) -> str:
        async with SQLiteStore(self.db) as store:
            decided = await approve(store, self.run_id, step, approved=approved, by="tester", note="checked")
        return decided.status

    async def snapshot_approvals(self) -> list[tuple[str, str]]:
        async with SQLiteStore(self.db) as store:
            snap = await store.snapshot(self.run_id)
        return [(a.approval_id[:4], a.status) for a in snap.approvals]


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return Scenario(tmp_path / "runs.db", tmp_path / "calls.log")


async def test_approval_round_trip_across_a_process_exit(scenario: Scenario) -> None:
    first = scenario.finish("run", "pure", approval=True)
    assert first["status"] == "waiting" and "cadenza approve run_sidefx mail" in first["error"]
    assert scenario.calls() == []  # nothing ran without the approval
    assert await scenario.snapshot_approvals() == [("apr_", "pending")]

    assert await scenario.decide("mail", approved=True) == "approved"
    second = scenario.finish("resume", "pure", approval=True)
    assert second["status"] == "success" and second["step"] == "mailer saw: sent to ada@example.org"
    assert len(scenario.calls()) == 1 and scenario.calls()[0].endswith(" ada@example.org")
    assert await scenario.snapshot_approvals() == [("apr_", "used")]


async def test_a_rejected_call_never_runs_and_the_model_is_told(scenario: Scenario) -> None:
    assert scenario.finish("run", "pure", approval=True)["status"] == "waiting"
    assert await scenario.decide("mail", approved=False) == "rejected"
    result = scenario.finish("resume", "pure", approval=True)
    assert result["status"] == "success" and "rejected by tester: checked" in result["step"]
    assert scenario.calls() == []


async def test_an_at_most_once_call_in_flight_at_a_crash_waits_for_a_decision(scenario: Scenario) -> None:
    scenario.kill_at("IN_TOOL", "run", "at_most_once", hang="in-tool")
    assert len(scenario.calls()) == 1

    paused = scenario.finish("resume", "at_most_once")
    assert paused["status"] == "waiting" and "may have taken effect" in paused["error"]
    assert len(scenario.calls()) == 1  # not run again on its own
    assert await scenario.snapshot_approvals() == [("unc_", "pending")]

    assert await scenario.decide("mail", approved=False) == "rejected"
    done = scenario.finish("resume", "at_most_once")
    assert done["status"] == "success" and "was skipped by tester" in done["step"]
    assert len(scenario.calls()) == 1


async def test_an_approved_uncertain_call_runs_again_once(scenario: Scenario) -> None:
    scenario.kill_at("IN_TOOL", "run", "at_most_once", hang="in-tool")
    assert scenario.finish("resume", "at_most_once")["status"] == "waiting"
    await scenario.decide("mail", approved=True)
    done = scenario.finish("resume", "at_most_once")
    assert done["status"] == "success" and done["step"] == "mailer saw: sent to ada@example.org"
    assert len(scenario.calls()) == 2


async def test_an_idempotent_call_gets_the_same_key_when_its_step_runs_again(scenario: Scenario) -> None:
    scenario.kill_at("IN_TOOL", "run", "idempotent", hang="in-tool")
    done = scenario.finish("resume", "idempotent")
    assert done["status"] == "success"
    keys = [line.split()[1] for line in scenario.calls()]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0].startswith("idem_")


@pytest.mark.parametrize("side_effect", ["idempotent", "at_most_once"])
async def test_a_finished_call_is_answered_from_its_record_not_repeated(scenario: Scenario, side_effect: str) -> None:
    scenario.kill_at("AFTER_TOOL", "run", side_effect, hang="after-tool")  # the call finished, its step did not
    done = scenario.finish("resume", side_effect)
    assert done["status"] == "success" and done["step"] == "mailer saw: sent to ada@example.org"
    assert len(scenario.calls()) == 1


async def test_a_pure_tool_simply_runs_again(scenario: Scenario) -> None:
    scenario.kill_at("AFTER_TOOL", "run", "pure", hang="after-tool")
    assert scenario.finish("resume", "pure")["status"] == "success"
    assert len(scenario.calls()) == 2


async def test_an_approved_call_that_crashes_again_waits_for_a_new_decision(scenario: Scenario) -> None:
    scenario.kill_at("IN_TOOL", "run", "at_most_once", hang="in-tool")
    assert scenario.finish("resume", "at_most_once")["status"] == "waiting"
    await scenario.decide("mail", approved=True)
    scenario.kill_at("IN_TOOL", "resume", "at_most_once", hang="in-tool")  # the approved re-run dies after its effect
    assert len(scenario.calls()) == 2

    paused = scenario.finish("resume", "at_most_once")
    assert paused["status"] == "waiting" and "may have taken effect" in paused["error"]
    assert len(scenario.calls()) == 2  # the approval was used: no third effect without a new decision
    assert await scenario.snapshot_approvals() == [("unc_", "used"), ("unc_", "pending")]
    assert await scenario.decide("mail", approved=True) == "approved"
    done = scenario.finish("resume", "at_most_once")
    assert done["status"] == "success" and done["step"] == "mailer saw: sent to ada@example.org"
    assert len(scenario.calls()) == 3  # one effect for each approval


async def test_a_tool_approval_is_used_once_even_when_the_approved_call_crashes(scenario: Scenario) -> None:
    assert scenario.finish("run", "pure", approval=True)["status"] == "waiting"
    await scenario.decide("mail", approved=True)
    scenario.kill_at("IN_TOOL", "resume", "pure", hang="in-tool", approval=True)
    assert len(scenario.calls()) == 1

    paused = scenario.finish("resume", "pure", approval=True)
    assert paused["status"] == "waiting" and "may have taken effect" in paused["error"]
    assert len(scenario.calls()) == 1
    assert sorted(await scenario.snapshot_approvals()) == [("apr_", "used"), ("unc_", "pending")]
    await scenario.decide("mail", approved=False)
    done = scenario.finish("resume", "pure", approval=True)
    assert done["status"] == "success" and "was skipped by tester" in done["step"]
    assert len(scenario.calls()) == 1


async def test_a_step_approval_is_used_once_even_when_the_approved_step_crashes(scenario: Scenario) -> None:
    first = scenario.finish("run", "pure", approval="step")
    assert first["status"] == "waiting" and await scenario.snapshot_approvals() == [("apr_", "pending")]
    await scenario.decide("mail", approved=True)
    scenario.kill_at("IN_TOOL", "resume", "pure", hang="in-tool", approval="step")
    assert len(scenario.calls()) == 1

    paused = scenario.finish("resume", "pure", approval="step")
    assert paused["status"] == "waiting"
    assert len(scenario.calls()) == 1  # the step did not run again on the used approval
    assert sorted(await scenario.snapshot_approvals()) == [("apr_", "used"), ("unc_", "pending")]
    await scenario.decide("mail", approved=True)
    assert scenario.finish("resume", "pure", approval="step")["status"] == "success"
    assert len(scenario.calls()) == 2
