"""A recorded run's budget reservations in its store: what keeps a budget whole across kill -9 and resume.

A provider bills a model call once it has the request, whether or not the process that sent it
lives to read the reply. Counting only what finished steps recorded would let a resumed run spend
again what the killed process had in flight. So, in a recorded run with a budget, each call's
worst case is committed before the call starts (a `BudgetReserved` event that the run's port makes
durable), and replaced by what it really cost when it ends (`BudgetSettled`, batched with the run's
other writes); the journal turns both into rows. A resumed run counts every settled reservation at
its cost and every open one at its worst case.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..stores.base import ReservationRow

__all__ = ("reserved_total",)


def reserved_total(rows: Sequence[ReservationRow]) -> tuple[int, float]:
    """Tokens and USD the reservations stand for: settled ones at their cost, open ones at their worst case."""
    tokens = sum(r.tokens if r.status == "settled" else r.worst_tokens for r in rows)
    usd = sum(r.usd if r.status == "settled" else r.worst_usd for r in rows)
    return tokens, usd
