"""What running a plan produced: each step's record and the plan's outcome.

Plain values below the engine: `RunResult` and the CLI read them without importing the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ._messages import ErrorInfo, Result
from ._plan import Step
from ._status import Outcome, StepStatus
from ._usage import Usage

__all__ = ("PlanOutcome", "StepRecord")


@dataclass(slots=True)
class StepRecord:
    """What happened to one step."""

    step: Step
    status: StepStatus = "pending"
    attempts: int = 0
    result: Result | None = None
    error: ErrorInfo | None = None
    skip_reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    steps: tuple[StepRecord, ...] = ()
    """The records of the steps a nested team ran for this step in this process, in its plan's order (each with its
    own ``steps``); empty for any other worker, and for a step read back from the store by a resumed run."""

    @property
    def output(self) -> object:
        """The step's output, or None if it produced none: of the worker's output type when it declares one (a typed
        agent or team), as the team's own output is."""
        return self.result.output if self.result is not None else None


@dataclass(slots=True)
class PlanOutcome:
    """Every step's record, in plan order, and the usage they spent together."""

    records: dict[str, StepRecord]
    usage: Usage
    status: Outcome
    budget_stop: ErrorInfo | None = None
    """Why the run stopped early for a budget: no new step was dispatched after it, running ones finished."""

    def __repr__(self) -> str:
        # Short on purpose, like RunResult's: a full repr walks every record.
        return f"PlanOutcome(status={self.status!r}, steps={len(self.records)}, model_calls={self.usage.model_calls})"

    def outputs(self) -> dict[str, object]:
        """Outputs of the steps that produced one, by step id."""
        return {sid: r.result.output for sid, r in self.records.items() if r.result is not None and r.status in ("success", "partial")}
