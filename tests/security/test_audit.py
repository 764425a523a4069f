"""The audit log is tamper-evident: a log written through `AuditLog` into a real store verifies, and every
change made to the stored rows behind the store's back is caught, naming the first record it touched.

Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import get_args

import pytest

from cadenza._errors import StoreError
from cadenza.engine._journal import RunJournal
from cadenza.security._audit import (
    AuditKind,
    AuditLog,
    AuditProblem,
    genesis_hash,
    record_hash,
    verify,
    verify_run,
)
from cadenza.stores import AuditHead, AuditRecord, PutRun, Store, Write
from cadenza.stores._batch import timestamp_text
from stores.backends import Backend
from stores.rows import T0, run_row

RUN = "run-audited"
KINDS: tuple[AuditKind, ...] = get_args(AuditKind)
COUNT = 300
AGENTS = 6




def detail(agent: int, i: int) -> dict[str, object]:
    return {"arguments_digest": f"{agent:02d}{i:04d}" * 8, "outcome": ("ok", "error", "denied")[i % 3],
            "note": f"agent {agent} — step {i} \u2018quoted\u2019", "nested": {"z": [1, 2.5, None, True], "a": "x"}}


async def build(store: Store, count: int = COUNT) -> list[AuditRecord]:
    """``count`` records of every kind, appended by concurrent tasks through a real `RunJournal`."""
    journal = RunJournal(store, RUN)
    await journal.commit(PutRun(run_row(RUN)))
    log = AuditLog(RUN, write=journal.record)
    made: list[AuditRecord] = []
    plus_two = timezone(timedelta(hours=2))

    async def agent(n: int) -> None:
        for i in range(count // AGENTS):
            when = (T0 + timedelta(seconds=i)).astimezone(plus_two) if i % 5 == 0 else None
            made.append(log.append(KINDS[(n + i) % len(KINDS)], f"lead/agent-{n}", f"subject-{n}-{i}",
                                   detail(n, i), at=when))
            if i % 7 == 0:
                await journal.commit()  # like a step that waits until its records are durable
            else:
                await asyncio.sleep(0)

    await asyncio.gather(*(agent(n) for n in range(AGENTS)))
    await journal.flush()
    return made


# --------------------------------------------------------------------------- tampering with raw SQL


def lit(value: object) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def insert(backend: Backend, r: AuditRecord) -> None:
    values = (r.run_id, r.seq, timestamp_text(r.at), r.kind, r.actor, r.subject, r.detail_json, r.prev_hash, r.hash)
    await backend.execute("INSERT INTO audit (run_id, seq, at, kind, actor, subject, detail_json, prev_hash, hash) "
                          f"VALUES ({', '.join(map(lit, values))})")


async def update(backend: Backend, row: int, /, **columns: object) -> None:
    """Set ``columns`` of the record at seq ``row``."""
    sets = ", ".join(f"{name} = {lit(value)}" for name, value in columns.items())
    await backend.execute(f"UPDATE audit SET {sets} WHERE run_id = '{RUN}' AND seq = {row}")


async def delete(backend: Backend, where: str) -> None:
    await backend.execute(f"DELETE FROM audit WHERE run_id = '{RUN}' AND {where}")


async def renumber(backend: Backend, first: int, by: int) -> None:
    """Add ``by`` to the seq of every record from ``first`` on (in two steps: the primary key holds throughout)."""
    await backend.execute(f"UPDATE audit SET seq = -seq - 1 WHERE run_id = '{RUN}' AND seq >= {first}")
    await backend.execute(f"UPDATE audit SET seq = -seq - 1 + {by} WHERE run_id = '{RUN}' AND seq < 0")


def forged(after: AuditRecord, seq: int, **changes: object) -> AuditRecord:
    """A record as a careful forger makes it: chained to ``after``, with a correct hash of its own."""
    row = AuditRecord(RUN, seq, after.at, "approval.decided", "user", "ap-forged", '{"approved":true}',
                      after.hash, "")
    row = replace(row, **changes)  # type: ignore[arg-type]
    return replace(row, hash=record_hash(row))


Tamper = Callable[[Backend, list[AuditRecord]], Awaitable[int | None]]
"""Changes the stored rows; returns the seq verify must name."""


async def change_detail(backend: Backend, records: list[AuditRecord]) -> int:
    await update(backend, 117, detail_json='{"outcome":"ok"}')
    return 117


async def change_kind(backend: Backend, records: list[AuditRecord]) -> int:
    denied = next(r for r in records[40:] if r.kind == "tool.denied")
    await update(backend, denied.seq, kind="tool.called")
    return denied.seq


async def change_actor(backend: Backend, records: list[AuditRecord]) -> int:
    await update(backend, 3, actor="lead/someone-else")
    return 3


async def change_time(backend: Backend, records: list[AuditRecord]) -> int:
    await update(backend, 222, at=timestamp_text(records[222].at + timedelta(microseconds=1)))
    return 222


async def change_prev_hash(backend: Backend, records: list[AuditRecord]) -> int:
    await update(backend, 33, prev_hash=records[31].hash)
    return 33


async def delete_middle(backend: Backend, records: list[AuditRecord]) -> int:
    await delete(backend, "seq = 150")
    return 150


async def delete_first(backend: Backend, records: list[AuditRecord]) -> int:
    await delete(backend, "seq = 0")
    return 0


async def delete_last(backend: Backend, records: list[AuditRecord]) -> int:
    await delete(backend, f"seq = {COUNT - 1}")
    return COUNT - 1


async def delete_tail(backend: Backend, records: list[AuditRecord]) -> int:
    await delete(backend, f"seq >= {COUNT - 3}")
    return COUNT - 3


async def delete_everything(backend: Backend, records: list[AuditRecord]) -> int:
    await delete(backend, "seq >= 0")
    return 0


async def delete_and_renumber(backend: Backend, records: list[AuditRecord]) -> int:
    await delete(backend, "seq = 80")
    await renumber(backend, 81, -1)
    return 80


async def append_forged(backend: Backend, records: list[AuditRecord]) -> int:
    await insert(backend, forged(records[-1], COUNT))
    return COUNT


async def insert_and_renumber(backend: Backend, records: list[AuditRecord]) -> int:
    await renumber(backend, 100, 1)
    await insert(backend, forged(records[99], 100))
    return 100


async def insert_carelessly(backend: Backend, records: list[AuditRecord]) -> int:
    await renumber(backend, 100, 1)
    await insert(backend, replace(forged(records[99], 100), hash="0" * 64))
    return 100


async def swap_neighbours(backend: Backend, records: list[AuditRecord]) -> int:
    await update(backend, 60, seq=-1)
    await update(backend, 61, seq=60)
    await update(backend, -1, seq=61)
    return 60


async def swap_distant(backend: Backend, records: list[AuditRecord]) -> int:
    await update(backend, 10, seq=-1)
    await update(backend, 250, seq=10)
    await update(backend, -1, seq=250)
    return 10


async def rewrite_one_with_its_hash(backend: Backend, records: list[AuditRecord]) -> int:
    changed = replace(records[200], detail_json='{"outcome":"ok"}')
    await update(backend, 200, detail_json=changed.detail_json, hash=record_hash(changed))
    return 200


async def move_to_another_run(backend: Backend, records: list[AuditRecord]) -> int:
    await update(backend, 5, run_id="another-run")
    return 5


async def rewrite_the_tail(backend: Backend, records: list[AuditRecord]) -> int:
    """Every hash from seq 250 on recomputed: only the stored head shows it, at the last record."""
    prev = records[249].hash
    for r in records[250:]:
        again = replace(r, prev_hash=prev, subject="rewritten" if r.seq == 250 else r.subject, hash="")
        again = replace(again, hash=record_hash(again))
        await update(backend, r.seq, subject=again.subject, prev_hash=again.prev_hash, hash=again.hash)
        prev = again.hash
    return COUNT - 1


async def delete_the_head(backend: Backend, records: list[AuditRecord]) -> None:
    await backend.execute(f"DELETE FROM audit_heads WHERE run_id = '{RUN}'")


TAMPERING: dict[str, tuple[Tamper, AuditProblem]] = {
    "a detail changed": (change_detail, "altered"),
    "a kind changed": (change_kind, "altered"),
    "an actor changed": (change_actor, "altered"),
    "a time changed by a microsecond": (change_time, "altered"),
    "a prev_hash changed": (change_prev_hash, "altered"),
    "a record deleted in the middle": (delete_middle, "removed"),
    "the first record deleted": (delete_first, "removed"),
    "the last record deleted": (delete_last, "removed"),
    "the last three records deleted": (delete_tail, "removed"),
    "every record deleted": (delete_everything, "removed"),
    "a record deleted and the rest renumbered": (delete_and_renumber, "removed"),
    "a forged record appended": (append_forged, "inserted"),
    "a forged record inserted and the rest renumbered": (insert_and_renumber, "inserted"),
    "a badly forged record inserted": (insert_carelessly, "inserted"),
    "two neighbours' seqs swapped": (swap_neighbours, "reordered"),
    "two distant records' seqs swapped": (swap_distant, "reordered"),
    "a record altered with a recomputed hash": (rewrite_one_with_its_hash, "altered"),
    "a record moved to another run": (move_to_another_run, "removed"),
    "the tail rewritten with recomputed hashes": (rewrite_the_tail, "altered"),
    "the head deleted": (delete_the_head, "unanchored"),
}


# --------------------------------------------------------------------------- the log as written


async def test_a_log_written_by_concurrent_tasks_is_stored_in_call_order_and_verifies(store: Store) -> None:
    made = await build(store)

    stored = await store.audit(RUN)

    assert stored == made  # every field, byte for byte, times back in UTC
    assert [r.seq for r in made] == list(range(COUNT))  # seq follows the order of the append calls
    assert {r.kind for r in stored} == set(KINDS)
    assert len({r.actor for r in stored}) == AGENTS
    assert stored[0].prev_hash == genesis_hash(RUN)
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(stored))
    assert all(r.at.tzinfo is not None and r.at.utcoffset() == timedelta(0) for r in stored)
    assert await store.audit_head(RUN) == AuditHead(RUN, COUNT - 1, made[-1].hash)
    verdict = await verify_run(store, RUN)
    assert verdict.ok and verdict.problem is None and verdict.seq is None
    assert verdict.records == COUNT and verdict.head == AuditHead(RUN, COUNT - 1, made[-1].hash)
    assert verdict.message == f"audit log of {RUN}: {COUNT} records, chain intact"


@pytest.mark.parametrize("case", list(TAMPERING), ids=list(TAMPERING))
async def test_tampering_with_the_stored_rows_is_caught_at_the_first_bad_record(
    backend: Backend, store: Store, case: str
) -> None:
    tamper, problem = TAMPERING[case]
    made = await build(store)

    seq = await tamper(backend, made)
    verdict = await verify_run(store, RUN)

    assert not verdict.ok, case
    assert (verdict.problem, verdict.seq) == (problem, seq), verdict.message
    assert verdict.head is None
    assert "chain broken" in verdict.message and verdict.reason in verdict.message
    if seq is not None:
        assert f"at seq {seq}:" in verdict.message and f"seq {seq}" in verdict.reason


async def test_a_rewrite_that_also_moves_the_head_back_needs_the_head_kept_elsewhere(
    backend: Backend, store: Store
) -> None:
    """The documented limit: cut the tail and roll the head back, and the store alone holds a valid log."""
    made = await build(store)
    printed = (await verify_run(store, RUN)).head  # what `cadenza audit verify` printed earlier

    await delete(backend, f"seq >= {COUNT - 2}")
    await backend.execute(f"UPDATE audit_heads SET seq = {COUNT - 3}, hash = '{made[COUNT - 3].hash}' "
                          f"WHERE run_id = '{RUN}'")
    verdict = await verify_run(store, RUN)

    assert verdict.ok
    assert verdict.head != printed  # compared with the head kept outside the store, the cut shows


# --------------------------------------------------------------------------- resuming


async def test_a_resumed_log_continues_the_chain_from_the_stored_head(store: Store) -> None:
    made = await build(store)
    journal = RunJournal(store, RUN)

    log = await AuditLog.resume(store, RUN, write=journal.record)
    assert log.head == AuditHead(RUN, COUNT - 1, made[-1].hash)
    more = [log.append("run.resumed", "cadenza", RUN, {"process": 2}),
            *(log.append("tool.called", "lead/agent-0", "search", {"n": n}) for n in range(4))]
    await journal.flush()

    assert [r.seq for r in more] == list(range(COUNT, COUNT + 5))
    assert more[0].prev_hash == made[-1].hash
    assert await store.audit(RUN) == made + more
    verdict = await verify_run(store, RUN)
    assert verdict.ok and verdict.records == COUNT + 5, verdict.message
    assert verdict.head == AuditHead(RUN, COUNT + 4, more[-1].hash) == log.head


async def test_resuming_a_truncated_log_does_not_hide_the_cut(backend: Backend, store: Store) -> None:
    await build(store)
    await delete(backend, f"seq = {COUNT - 1}")
    journal = RunJournal(store, RUN)

    log = await AuditLog.resume(store, RUN, write=journal.record)
    log.append("run.resumed", "cadenza", RUN)
    await journal.flush()
    verdict = await verify_run(store, RUN)

    assert (verdict.problem, verdict.seq) == ("removed", COUNT - 1), verdict.message


async def test_a_second_writer_from_a_stale_head_is_refused_and_the_log_stays_intact(store: Store) -> None:
    made = await build(store)
    journal = RunJournal(store, RUN)
    stale = AuditLog(RUN, write=journal.record, last=AuditHead(RUN, 10, made[10].hash))

    stale.append("tool.called", "lead/intruder", "send_mail", {"outcome": "ok"})
    with pytest.raises(StoreError, match="append-only"):
        await journal.flush()

    assert journal.failure is not None
    assert await store.audit(RUN) == made
    assert (await verify_run(store, RUN)).ok


# --------------------------------------------------------------------------- the writer and the verifier alone


def written(count: int, run_id: str = RUN) -> tuple[list[AuditRecord], AuditHead]:
    writes: list[Write] = []
    log = AuditLog(run_id, write=lambda *w: writes.extend(w))
    for i in range(count):
        log.append(KINDS[i % len(KINDS)], f"lead/agent-{i % 3}", f"s{i}", {"i": i}, at=T0 + timedelta(seconds=i))
    assert log.head is not None
    return [w.row for w in writes if isinstance(w.row, AuditRecord)], log.head


def renumbered(records: list[AuditRecord], by: int) -> list[AuditRecord]:
    return [replace(r, seq=r.seq + by) for r in records]


def test_each_append_hands_on_its_record_and_the_head_in_one_call() -> None:
    calls: list[tuple[Write, ...]] = []
    log = AuditLog(RUN, write=lambda *w: calls.append(w))
    assert log.head is None

    first = log.append("agent.spawned", "lead", "critic", {"scope": "lead"})
    second = log.append("message.sent", "lead", "critic", {"digest": "d"})

    assert [[type(w).__name__ for w in call] for call in calls] == [["AddAudit", "PutAuditHead"]] * 2
    assert calls[1][1].row == AuditHead(RUN, 1, second.hash) == log.head
    assert (first.seq, first.prev_hash, second.prev_hash) == (0, genesis_hash(RUN), first.hash)
    assert first.hash == record_hash(first) and len(first.hash) == 64


def test_a_detail_that_is_not_json_appends_nothing() -> None:
    calls: list[tuple[Write, ...]] = []
    log = AuditLog(RUN, write=lambda *w: calls.append(w))

    with pytest.raises(TypeError, match="JSON object"):
        log.append("tool.called", "lead", "t", {"value": object()})
    with pytest.raises(TypeError, match="JSON object"):
        log.append("tool.called", "lead", "t", {"value": float("nan")})

    assert calls == [] and log.head is None
    assert log.append("tool.called", "lead", "t").seq == 0


def test_details_are_encoded_canonically_so_key_order_does_not_matter() -> None:
    log = AuditLog(RUN, write=lambda *w: None)
    a = log.append("tool.called", "lead", "t", {"b": 1, "a": [1, {"y": 2, "x": 1}]}, at=T0)
    b = AuditLog(RUN, write=lambda *w: None).append("tool.called", "lead", "t", {"a": [1, {"x": 1, "y": 2}], "b": 1},
                                                     at=T0.astimezone(timezone(timedelta(hours=-5))))
    assert a.detail_json == b.detail_json == '{"a":[1,{"x":1,"y":2}],"b":1}'
    assert a.at == b.at and a.at.tzinfo is UTC
    assert a.hash == b.hash


def test_the_hash_covers_every_field() -> None:
    (record,), _ = written(1)
    for f in fields(AuditRecord):
        if f.name == "hash":
            continue
        value: object = getattr(record, f.name)
        other = value + 1 if isinstance(value, int) else value + timedelta(microseconds=1) \
            if isinstance(value, datetime) else f"{value}x"
        assert record_hash(replace(record, **{f.name: other})) != record.hash, f.name  # type: ignore[arg-type]



@pytest.mark.parametrize("text", ["plain", 'quote " and \\ backslash', "line\nbreak\ttab\x00\x1f\x7f", "é ü ß 中文 😀",
                                  "\u2028\u2029", ""])
def test_the_hash_is_sha256_over_the_json_array_of_the_fields(text: str) -> None:
    """The format `cadenza-audit/1` is the JSON array of the fields (no spaces, non-ASCII kept); records written
    before the hash was assembled by hand must keep verifying."""
    at = datetime(2026, 12, 7, 21, 0, 0, tzinfo=UTC)  # a whole second: its text still carries the microseconds
    record = AuditRecord(f"run-{text}", 7, at, "tool.called", f"actor {text}", text, f'{{"k":"{text}"}}', "0" * 64, "")
    array = ["cadenza-audit/1", record.run_id, 7, "2026-12-07T21:00:00.000000+00:00", "tool.called", record.actor,
             text, record.detail_json, "0" * 64]
    encoded = json.dumps(array, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert record_hash(record) == hashlib.sha256(encoded).hexdigest()

def test_the_genesis_depends_on_the_run_and_a_log_cannot_pass_for_another_runs() -> None:
    records, head = written(5, "run-a")
    assert genesis_hash("run-a") != genesis_hash("run-b")

    verdict = verify(records, run_id="run-b")

    assert (verdict.problem, verdict.seq) == ("foreign", 0)
    with pytest.raises(ValueError, match="run-b"):
        AuditLog("run-a", write=lambda *w: None, last=AuditHead("run-b", 4, head.hash))


def test_an_empty_log_verifies_and_a_log_without_its_records_does_not() -> None:
    assert verify([], run_id=RUN, head=None).ok
    assert verify([], run_id=RUN).message == f"audit log of {RUN}: 0 records, chain intact"
    gone = verify([], run_id=RUN, head=AuditHead(RUN, 7, "h"))
    assert (gone.problem, gone.seq) == ("removed", 0)
    assert "seq 0 to 7" in gone.reason


def test_the_chain_alone_cannot_see_a_cut_tail_but_the_head_can() -> None:
    records, head = written(20)

    assert verify(records[:-3]).ok  # documented: the shorter log is a valid chain
    cut = verify(records[:-3], head=head)
    assert (cut.problem, cut.seq) == ("removed", 17)
    assert "seq 17 to 19" in cut.reason


N = 30


@pytest.mark.parametrize("k", range(N))
def test_each_kind_of_damage_is_named_at_every_position(k: int) -> None:
    records, head = written(N)

    def check(damaged: list[AuditRecord], problem: AuditProblem, seq: int) -> None:
        verdict = verify(damaged, run_id=RUN, head=head)
        assert (verdict.problem, verdict.seq) == (problem, seq), verdict.message

    check([*records[:k], replace(records[k], subject="changed"), *records[k + 1:]], "altered", k)
    check(records[:k] + records[k + 1:], "removed", k)
    check(records[:k] + renumbered(records[k + 1:], -1), "removed", k)
    inserted = replace(records[k], kind="tool.denied", hash="")
    check([*records[:k], replace(inserted, hash=record_hash(inserted)), *renumbered(records[k:], 1)], "inserted", k)
    if k + 1 < N:
        swapped = [replace(records[k + 1], seq=k), replace(records[k], seq=k + 1)]
        check([*records[:k], *swapped, *records[k + 2:]], "reordered", k)
        rewritten = replace(records[k], actor="someone", hash="")
        check([*records[:k], replace(rewritten, hash=record_hash(rewritten)), *records[k + 1:]], "altered", k)
