"""Trusted construction gives the same objects as validated construction."""

from __future__ import annotations

from cadenza import Result, Task, Usage
from cadenza._messages import utcnow
from cadenza._trusted import TrustedBuilder
from cadenza.models.base import ModelRequest, UserMessage


def test_trusted_instances_equal_validated_ones_and_round_trip() -> None:
    now = utcnow()
    values = {"task_id": "t", "run_id": "r", "sender": "lead", "recipient": "a", "instruction": "go", "step_id": "s1", "context": {"s0": [1, 2]}}
    trusted = TrustedBuilder(Task)(**values)
    assert trusted == Task(**values)  # type: ignore[arg-type]
    assert Task.model_validate_json(trusted.model_dump_json()) == trusted
    result = TrustedBuilder(Result)(task_id="t", run_id="r", agent="a", status="success", output={"x": 1}, started_at=now, finished_at=now)
    assert result.usage == Usage() and result.error is None
    assert Result.model_validate_json(result.model_dump_json()) == result


def test_default_factories_are_fresh_per_instance() -> None:
    build = TrustedBuilder(ModelRequest)
    a, b = build(system="s"), build(system="s")
    assert a.messages == [] and a.messages is not b.messages
    assert build(messages=[UserMessage(content="hi")]).model_dump()["messages"] == [{"kind": "user", "content": "hi"}]
