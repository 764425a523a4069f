"""What a user gets back from ``agent.run`` or ``supervisor.run``."""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from ._ids import RunId
from ._messages import ErrorInfo, PeerMessage
from ._outcomes import StepRecord
from ._plan import Plan
from ._status import Outcome
from ._usage import Usage

__all__ = ("RunResult",)

OutputT = TypeVar("OutputT")


@dataclass(slots=True)
class RunResult(Generic[OutputT]):
    """The outcome of a run: the typed output, what it cost, and what each step did."""

    run_id: RunId
    status: Outcome
    output: OutputT | None
    usage: Usage
    started_at: datetime
    finished_at: datetime
    error: ErrorInfo | None = None
    """Why the run failed or is partial."""
    plan: Plan | None = None
    """The plan a team ran; ``None`` for a single agent."""
    steps: list[StepRecord] = field(default_factory=list)
    """Every step's record, in plan order."""
    spawned: list[str] = field(default_factory=list)
    """Names of agents spawned for this run (already cleaned up)."""
    messages: list[PeerMessage] = field(default_factory=list)
    """What the agents of a peer group said to each other, in the order it was sent (the goal first)."""
    stop_reason: str | None = None
    """Why a peer group's conversation ended, for a run that is one (see `Result.stop_reason`)."""

    def __repr__(self) -> str:
        # Short on purpose: asyncio.run() reprs its main task's result (Python 3.11 signal handling),
        # and a full repr of thousands of step records costs real time and reads as noise.
        return (f"RunResult(run_id={self.run_id!r}, status={self.status!r}, output={reprlib.repr(self.output)}, "
                f"steps={len(self.steps)}, model_calls={self.usage.model_calls}, cost_usd={self.usage.cost_usd})")

    @property
    def ok(self) -> bool:
        """True when every step and the synthesis succeeded."""
        return self.status == "success"

    @property
    def duration(self) -> float:
        """Wall time in seconds."""
        return (self.finished_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary: run id, status, output, usage and every step with its output (the CLI's
        ``--json``)."""
        from pydantic_core import to_jsonable_python

        return {
            "run_id": self.run_id,
            "status": self.status,
            "output": to_jsonable_python(self.output, fallback=str),
            "error": self.error.model_dump() if self.error else None,
            "stop_reason": self.stop_reason,
            "usage": self.usage.model_dump(),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "spawned": list(self.spawned),
            "steps": [
                {
                    "id": r.step.id,
                    "agent": r.step.agent,
                    "status": r.status,
                    "attempts": r.attempts,
                    "depends_on": list(r.step.depends_on),
                    "started_at": r.started_at.isoformat() if r.started_at else None,
                    "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                    "output": to_jsonable_python(r.output, fallback=str),
                    "error": r.error.model_dump() if r.error else None,
                    "skip_reason": r.skip_reason,
                    "stop_reason": r.result.stop_reason if r.result is not None else None,
                    "transcript": r.result.transcript if r.result is not None else None,
                }
                for r in self.steps
            ],
        }
