"""A run's events, and the log lines they become: what a sink passed as ``events=`` receives.

``await team.run(goal, events=sink)`` calls ``sink(event)`` once for every change of the run's state, in the order
they happen: the run, its plans and its steps (`Event`). A sink with a true ``wants_reports`` attribute also gets
what happens inside each step: every message sent, model called and tool called (`Report`), and what the run keeps
of them (`Kept`); with a true ``wants_progress``, the progress of each step as it happens: its model's answer piece
by piece and each tool call as it starts (`Progress`). A sink must be quick and must not raise; one that raises is logged once and detached, and the run
goes on. Every event names where it happened by its path in the run (``lead``, ``lead/t1``).

``async for event in team.stream(goal)`` (and ``agent.stream``) yields every one of these events as it happens and
then the run's `FinalResult` (`StreamEvent`).

`EventLog` is a sink that writes the events as log lines under the ``cadenza`` logger; `configure_logging` gives that
logger a handler (readable text, or JSON lines for machines) in a program that has none; `fan_out` hands each event to
several sinks.
"""

from __future__ import annotations

from ._deltas import OutputDelta, OutputReset, TextDelta, ToolCallDelta
from ._events import (
    AgentSpawned,
    ApprovalRequested,
    BudgetReserved,
    BudgetSettled,
    Detail,
    Event,
    EventSink,
    FinalResult,
    Kept,
    MessageRejected,
    MessageSent,
    ModelCalled,
    ModelDelta,
    PeerMessageHandled,
    PeerMessageSent,
    PlanReady,
    Progress,
    Report,
    RunFinished,
    RunStarted,
    StepCancelled,
    StepFailed,
    StepFinished,
    StepRestored,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepWaiting,
    StreamEvent,
    ToolCalled,
    ToolCallRecorded,
    ToolOutcome,
    ToolStarted,
    UsageRecorded,
)
from .observability._logging import EventLog, fan_out
from .observability._logging import configure as configure_logging

__all__ = (
    "AgentSpawned",
    "ApprovalRequested",
    "BudgetReserved",
    "BudgetSettled",
    "Detail",
    "Event",
    "EventLog",
    "EventSink",
    "FinalResult",
    "Kept",
    "MessageRejected",
    "MessageSent",
    "ModelCalled",
    "ModelDelta",
    "OutputDelta",
    "OutputReset",
    "PeerMessageHandled",
    "PeerMessageSent",
    "PlanReady",
    "Progress",
    "Report",
    "RunFinished",
    "RunStarted",
    "StepCancelled",
    "StepFailed",
    "StepFinished",
    "StepRestored",
    "StepRetrying",
    "StepSkipped",
    "StepStarted",
    "StepWaiting",
    "StreamEvent",
    "TextDelta",
    "ToolCallRecorded",
    "ToolCallDelta",
    "ToolCalled",
    "ToolOutcome",
    "ToolStarted",
    "UsageRecorded",
    "configure_logging",
    "fan_out",
)
