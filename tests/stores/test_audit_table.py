"""Conformance: the audit table keeps what is written byte for byte, in seq order, and refuses a second write of a seq."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, timedelta, timezone

import pytest

from cadenza._errors import StoreError
from cadenza.stores import (
    AddAudit,
    AddMessage,
    AuditHead,
    AuditRecord,
    PutAuditHead,
    PutRun,
    PutStep,
    Store,
    Write,
)
from stores.backends import Backend
from stores.rows import T0, at, message, run_row, step_row


def record(seq: int, run_id: str = "run-1", **changes: object) -> AuditRecord:
    """A record whose fields name its seq; the hashes are placeholders (the store does not check them)."""
    row = AuditRecord(run_id, seq, at(seq), "tool.called", "lead/writer", f"tool-{seq}",
                      f'{{"n":{seq},"text":"ünïcode — {seq}"}}', f"prev-{seq}", f"hash-{seq}")
    return replace(row, **changes)  # type: ignore[arg-type]


def appended(*seqs: int, run_id: str = "run-1") -> list[Write]:
    """The writes an `AuditLog` makes for ``seqs``: each record with the head moved to it."""
    writes: list[Write] = []
    for seq in seqs:
        writes += [AddAudit(record(seq, run_id)), PutAuditHead(AuditHead(run_id, seq, f"hash-{seq}"))]
    return writes


async def test_records_come_back_with_every_field_in_seq_order(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    odd = record(1, at=T0.astimezone(plus_two), detail_json='{ "spaced" : [1, 2.50, "\\u00e9"] }')
    await store.apply([PutRun(run_row()), AddAudit(record(2)), AddAudit(odd), AddAudit(record(0))])

    got = await store.audit("run-1")

    assert [r.seq for r in got] == [0, 1, 2]
    assert got[0] == record(0) and got[2] == record(2)
    assert got[1].detail_json == '{ "spaced" : [1, 2.50, "\\u00e9"] }'  # JSON text is kept as written
    assert got[1].at == T0 and got[1].at.utcoffset() == timedelta(0) and got[1].at.tzinfo is not None
    assert got[1] == replace(odd, at=T0.astimezone(UTC))


async def test_a_run_without_records_has_an_empty_log_and_no_head(store: Store) -> None:
    await store.apply([PutRun(run_row())])

    assert await store.audit("run-1") == []
    assert await store.audit_head("run-1") is None
    assert await store.audit("no-such-run") == []
    assert await store.audit_head("no-such-run") is None


async def test_each_run_reads_only_its_own_log_and_head(store: Store) -> None:
    await store.apply([*appended(0, 1, 2, run_id="run-1"), *appended(0, 1, run_id="run-2")])

    assert [(r.run_id, r.seq) for r in await store.audit("run-2")] == [("run-2", 0), ("run-2", 1)]
    assert await store.audit_head("run-1") == AuditHead("run-1", 2, "hash-2")
    assert await store.audit_head("run-2") == AuditHead("run-2", 1, "hash-1")


async def test_the_head_moves_with_each_batch_and_the_last_one_of_a_batch_wins(store: Store) -> None:
    await store.apply(appended(0, 1, 2))
    assert await store.audit_head("run-1") == AuditHead("run-1", 2, "hash-2")

    await store.apply(appended(3))

    assert await store.audit_head("run-1") == AuditHead("run-1", 3, "hash-3")
    assert [r.seq for r in await store.audit("run-1")] == [0, 1, 2, 3]


async def test_a_second_record_at_a_stored_seq_fails_the_batch_and_changes_nothing(store: Store) -> None:
    await store.apply([PutRun(run_row()), *appended(0, 1)])
    forged = record(1, kind="tool.denied", hash="forged")

    with pytest.raises(StoreError, match="append-only") as caught:
        await store.apply([
            PutRun(run_row(status="failure")), PutStep(step_row("a")), AddMessage(message("lost")),
            AddAudit(record(2)), AddAudit(forged), PutAuditHead(AuditHead("run-1", 2, "forged")),
        ])

    assert "cadenza audit verify" in str(caught.value)
    assert await store.audit("run-1") == [record(0), record(1)]
    assert await store.audit_head("run-1") == AuditHead("run-1", 1, "hash-1")
    assert (await store.get_run("run-1")).status == "running"
    assert (await store.snapshot("run-1")).steps == []
    assert await store.messages("run-1") == []
    await store.apply(appended(2))  # the store is still usable
    assert [r.seq for r in await store.audit("run-1")] == [0, 1, 2]


async def test_a_seq_written_twice_in_one_batch_fails_it_too(store: Store) -> None:
    with pytest.raises(StoreError, match="append-only"):
        await store.apply([AddAudit(record(0)), AddAudit(record(0, kind="tool.denied"))])

    assert await store.audit("run-1") == []


async def test_a_large_batch_of_records_round_trips(store: Store) -> None:
    seqs = range(2000)

    await store.apply(appended(*seqs))

    assert await store.audit("run-1") == [record(s) for s in seqs]
    assert await store.audit_head("run-1") == AuditHead("run-1", 1999, "hash-1999")


async def test_the_audit_log_survives_reopening(backend: Backend) -> None:
    async with backend.store() as first:
        await first.apply(appended(0, 1))
    async with backend.store() as second:
        assert await second.audit("run-1") == [record(0), record(1)]
        assert await second.audit_head("run-1") == AuditHead("run-1", 1, "hash-1")
    assert await backend.scalar("SELECT count(*) FROM audit") == 2
