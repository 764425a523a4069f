"""A recorded run's budget reservations in its store: what keeps a budget whole across kill -9 and resume.

A provider bills a model call once it has the request, whether or not the process that sent it
lives to read the reply. Counting only what finished steps recorded would let a resumed run spend
again what the killed process had in flight. So, in a recorded run with a budget, each call's
worst case is committed before the call starts (``open``), and replaced by what it really cost
when it ends (``settled``, batched with the run's other writes). A resumed run counts every
settled reservation at its cost and every open one at its worst case.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from ._journal import RunJournal
from ._messages import Usage
from .stores.base import PutReservation, ReservationRow

__all__ = ("StoreLedger", "reserved_total")


class StoreLedger:
    """The `ReservationLedger` of a recorded run: reservations go to the run's journal."""

    __slots__ = ("journal",)

    def __init__(self, journal: RunJournal) -> None:
        self.journal = journal

    async def reserve(self, agent: str, tokens: int, usd: float) -> str:
        """Commit an open reservation; returns once it is durable."""
        reservation_id = "rsv_" + secrets.token_hex(8)
        await self.journal.commit(PutReservation(
            ReservationRow(self.journal.run_id, reservation_id, agent, tokens, usd, "open")))
        return reservation_id

    def settle(self, reservation_id: str, agent: str, worst: tuple[int, float], usage: Usage) -> None:
        """Record the call's real cost with the next batch (until then a restart counts its worst case)."""
        tokens, usd = worst
        self.journal.record(PutReservation(ReservationRow(
            self.journal.run_id, reservation_id, agent, tokens, usd, "settled", usage.total_tokens, usage.cost_usd)))


def reserved_total(rows: Sequence[ReservationRow]) -> tuple[int, float]:
    """Tokens and USD the reservations stand for: settled ones at their cost, open ones at their worst case."""
    tokens = sum(r.tokens if r.status == "settled" else r.worst_tokens for r in rows)
    usd = sum(r.usd if r.status == "settled" else r.worst_usd for r in rows)
    return tokens, usd
