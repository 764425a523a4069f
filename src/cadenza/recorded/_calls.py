"""The model and tool calls a run's audit log holds, each read once into a `Call`: what was called, when, how it
ended and what it cost (the log keeps no prompt, reply or arguments, so neither does a `Call`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .._ids import ScopePath
from ..stores._summary import loads
from ..stores.base import AuditRecord

__all__ = ("CALL_KINDS", "Call", "call_of", "calls_by_step", "detail_of")

CALL_KINDS = frozenset({"model.called", "tool.called", "tool.denied"})


@dataclass(frozen=True, slots=True)
class Call:
    """One model call (``model.called``) or tool call (``tool.called``, ``tool.denied``)."""

    kind: str
    name: str
    """The model, or the tool."""
    at: datetime
    seq: int
    step: str | None
    """The path of the step that made it; a team's own path (or None, in earlier runs) for its planning and
    synthesis."""
    outcome: str
    """``ok``, ``error``, ``denied``, ``uncertain``."""
    seconds: float | None = None
    """How long a model call took."""
    tokens: int | None = None
    cost: float | None = None
    error: str = ""
    """What went wrong, when it did."""
    preview: str | None = None
    """The start of what a tool returned."""

    @property
    def is_model(self) -> bool:
        return self.kind == "model.called"


def detail_of(record: AuditRecord) -> dict[str, Any]:
    """The record's detail as a dict (a damaged one is a `StoreError` that names the record)."""
    detail = loads(record.detail_json, f"audit record {record.seq}")
    return detail if isinstance(detail, dict) else {}


def call_of(record: AuditRecord) -> Call:
    """The call a ``model.called``, ``tool.called`` or ``tool.denied`` record tells of."""
    detail = detail_of(record)
    step = detail.get("step")
    seconds, tokens, cost = detail.get("seconds"), detail.get("tokens"), detail.get("cost_usd")
    preview = detail.get("result_preview")
    return Call(record.kind, record.subject, record.at, record.seq, step if isinstance(step, str) else None,
                str(detail.get("outcome", "")),
                float(seconds) if isinstance(seconds, int | float) else None,
                tokens if isinstance(tokens, int) else None,
                float(cost) if isinstance(cost, int | float) else None,
                str(detail.get("error" if record.kind == "model.called" else "detail") or ""),
                None if preview is None else str(preview))


def calls_by_step(audit: Sequence[AuditRecord], root: ScopePath | None) -> tuple[dict[str, list[Call]], list[Call]]:
    """The model and tool calls by the path of the step that made them, and the top team's own model calls
    (planning, synthesis): made outside every step, at the team's own path (earlier runs recorded no path).
    Each list is in the order the calls were made."""
    calls: dict[str, list[Call]] = {}
    top: list[Call] = []
    for record in audit:
        if record.kind in CALL_KINDS:
            call = call_of(record)
            if call.is_model and (call.step is None or call.step == root):
                top.append(call)
            elif call.step is not None:
                calls.setdefault(call.step, []).append(call)
    for made in (*calls.values(), top):
        made.sort(key=lambda c: (c.at, c.seq))
    return calls, top
