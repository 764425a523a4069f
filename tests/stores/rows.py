"""Rows for the store tests: every field set to something recognisable."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from cadenza.stores import (
    ApprovalRow,
    MessageRow,
    PlanRow,
    RunRow,
    SpawnRow,
    StepRow,
    ToolCallRow,
    UsageRow,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
"""A fixed instant with microseconds, so a round trip that drops them shows."""


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def run_row(run_id: str = "run-1", **changes: Any) -> RunRow:
    """A running run with only the required fields."""
    return replace(RunRow(run_id, "research", "compare the last three papers", "running", T0), **changes)


def full_run_row(run_id: str = "run-1") -> RunRow:
    """A finished run with every field set; the datetimes are not in UTC, to check they come back in it."""
    plus_two = timezone(timedelta(hours=2))
    return RunRow(
        run_id=run_id,
        workflow="research",
        goal="Compare the last three papers on X — ünïcode too",
        status="partial",
        started_at=datetime(2024, 5, 1, 14, 0, 0, 1, tzinfo=plus_two),
        finished_at=datetime(2024, 5, 1, 14, 5, 30, 999999, tzinfo=plus_two),
        source="examples/research.yaml",
        input_json='{"topic": "X"}',
        fingerprint_json='{"agents": ["lead", "reader"]}',
        fingerprint_hash="sha256:abc",
        usage_json='{"input_tokens": 10, "output_tokens": 20}',
        output_json='"a summary"',
        error_json='{"kind": "step_failed"}',
        cadenza_version="0.1.0",
    )


def plan_row(run_id: str = "run-1", scope: str = "lead", **changes: Any) -> PlanRow:
    """A planner's plan for ``scope``."""
    return replace(PlanRow(run_id, scope, '{"steps": []}', "hash-1", "planner"), **changes)


def step_row(step_id: str, run_id: str = "run-1", **changes: Any) -> StepRow:
    """A pending step of the ``lead`` team."""
    return replace(StepRow(run_id, "lead", step_id, "reader", "pending"), **changes)


def finished_step(step_id: str, run_id: str = "run-1") -> StepRow:
    """A successful step with every field set."""
    return StepRow(
        run_id,
        "lead",
        step_id,
        "reader",
        "success",
        attempts=2,
        started_at=at(1),
        finished_at=at(2),
        result_json='{"output": "done"}',
        error_json='{"retried": true}',
        skip_reason="not skipped",
        usage_json='{"input_tokens": 3}',
    )


def message(
    body: str, run_id: str = "run-1", *, kind: Literal["task", "result"] = "task", step_id: str | None = "a"
) -> MessageRow:
    """A message whose body names it, for checking order."""
    return MessageRow(run_id, "lead", step_id, kind, f'{{"n": "{body}"}}', T0)


def spawn_row(name: str, run_id: str = "run-1", proposal: str = "{}") -> SpawnRow:
    """A spawned agent of the ``lead`` team."""
    return SpawnRow(run_id, "lead", name, proposal)


def usage_row(source: str, usage: str, run_id: str = "run-1") -> UsageRow:
    """What the ``lead`` team's ``source`` spent."""
    return UsageRow(run_id, "lead", source, usage)


def tool_call_row(key: str, run_id: str = "run-1", **changes: Any) -> ToolCallRow:
    """A started call of a side-effecting tool."""
    row = ToolCallRow(run_id, key, "lead", "a", "reader", "send_mail", "write", "digest-1", "started", at(3))
    return replace(row, **changes)


def approval_row(approval_id: str = "ap-1", run_id: str = "run-1", **changes: Any) -> ApprovalRow:
    """A pending approval for a call of ``send_mail``."""
    row = ApprovalRow(
        run_id,
        approval_id,
        "lead",
        "a",
        "reader",
        "send_mail",
        "digest-1",
        '{"to": "someone"}',
        "approval required",
        "pending",
        at(4),
    )
    return replace(row, **changes)
