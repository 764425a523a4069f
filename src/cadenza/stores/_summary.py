"""A stored run as people and programs read it: the summary that ``cadenza runs`` and the web viewer show, and the
readers of a row's JSON columns both use (a damaged column is a `StoreError` that names it)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from .._errors import StoreError
from .._usage import Usage
from .base import RunRow

__all__ = ("decode", "duration", "loads", "run_summary", "seconds", "usage_of", "when")

ModelT = TypeVar("ModelT", bound=BaseModel)


def decode(model: type[ModelT], text: str, what: str) -> ModelT:
    """``text`` read as ``model``; ``what`` names the column in the error when it cannot be."""
    try:
        return model.model_validate_json(text)
    except ValueError as exc:
        raise StoreError(f"{what} cannot be read ({type(exc).__name__}); the store may be damaged") from None


def loads(text: str | None, what: str) -> Any:
    """A JSON column read as plain data (None stays None); ``what`` names the column in the error."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise StoreError(f"{what} is not valid JSON; the store may be damaged") from None


def when(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


def duration(start: datetime | None, end: datetime | None) -> str:
    """``1.25s``, ``3m07s``, ``2h05m``; ``-`` while the run goes on."""
    took = seconds(start, end)
    if took is None:
        return "-"
    if took < 60:
        return f"{took:.2f}s"
    minutes, rest = divmod(int(took), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def usage_of(row: RunRow) -> Usage:
    """What the run has spent so far."""
    return decode(Usage, row.usage_json, f"the usage of run {row.run_id}")


def run_summary(row: RunRow) -> dict[str, Any]:
    """One run as a JSON-ready summary: what a list of runs shows of it."""
    usage = usage_of(row)
    return {
        "run_id": row.run_id,
        "workflow": row.workflow,
        "goal": row.goal,
        "status": row.status,
        "started_at": when(row.started_at),
        "finished_at": when(row.finished_at),
        "duration": seconds(row.started_at, row.finished_at),
        "total_tokens": usage.total_tokens,
        "cost_usd": usage.cost_usd,
        "source": row.source,
    }
