"""Conformance: an approval is decided once, by one human, and used once, by one call."""

from __future__ import annotations

import asyncio

import pytest

from cadenza._errors import ApprovalError
from cadenza.stores import PutApproval, PutRun, Store
from stores.rows import approval_row, run_row


@pytest.fixture
async def pending(store: Store) -> Store:
    """The store holding the pending approval ``ap-1`` of ``run-1``."""
    await store.apply([PutRun(run_row()), PutApproval(approval_row())])
    return store


async def test_deciding_records_who_when_and_why(pending: Store) -> None:
    decided = await pending.decide_approval("run-1", "ap-1", approved=True, by="ana", note="looks fine")

    assert (decided.status, decided.decided_by, decided.note) == ("approved", "ana", "looks fine")
    assert decided.decided_at is not None and decided.decided_at.utcoffset() is not None
    assert decided.decided_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert (await pending.snapshot("run-1")).approvals == [decided]


async def test_an_approval_is_decided_only_once(pending: Store) -> None:
    await pending.decide_approval("run-1", "ap-1", approved=False, by="ana")

    with pytest.raises(ApprovalError, match="'rejected', not 'pending'"):
        await pending.decide_approval("run-1", "ap-1", approved=True, by="bob")

    (approval,) = (await pending.snapshot("run-1")).approvals
    assert (approval.status, approval.decided_by) == ("rejected", "ana")


async def test_deciding_a_missing_approval_says_there_is_none(pending: Store) -> None:
    with pytest.raises(ApprovalError, match="no such approval"):
        await pending.decide_approval("run-1", "ap-404", approved=True, by="ana")


async def test_an_approved_approval_is_used_once(pending: Store) -> None:
    assert await pending.use_approval("run-1", "ap-1") is False  # still pending
    await pending.decide_approval("run-1", "ap-1", approved=True, by="ana")

    assert await pending.use_approval("run-1", "ap-1") is True
    assert await pending.use_approval("run-1", "ap-1") is False
    assert (await pending.snapshot("run-1")).approvals[0].status == "used"
    with pytest.raises(ApprovalError, match="'used', not 'pending'"):
        await pending.decide_approval("run-1", "ap-1", approved=True, by="ana")


async def test_a_rejected_or_missing_approval_cannot_be_used(pending: Store) -> None:
    await pending.decide_approval("run-1", "ap-1", approved=False, by="ana")

    assert await pending.use_approval("run-1", "ap-1") is False
    assert await pending.use_approval("run-1", "ap-404") is False


async def test_concurrent_callers_decide_and_use_it_exactly_once(pending: Store) -> None:
    decisions = await asyncio.gather(
        *(pending.decide_approval("run-1", "ap-1", approved=True, by=f"human-{i}") for i in range(5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(d, BaseException) for d in decisions) == 1
    assert all(isinstance(d, ApprovalError) for d in decisions if isinstance(d, BaseException))

    uses = await asyncio.gather(*(pending.use_approval("run-1", "ap-1") for _ in range(10)))

    assert uses.count(True) == 1
