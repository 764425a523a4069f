"""The audit log: an append-only, hash-chained record of what the agents of a run did.

Every inter-agent message (sent, or rejected as forged, tampered or replayed), every tool
call (allowed or denied), every approval asked and decided, every spawned agent. Each
`AuditRecord` carries the sha256 of its own canonical encoding, which covers the previous
record's hash, so changing, removing, inserting or reordering a stored record breaks the
chain at that record; `verify` finds the first break and says what it is.

The chain alone cannot show that records were cut off its end: the shorter log is a valid
chain. So every batch of records also writes the log's head (last seq and hash) beside it,
in the same transaction, and `verify` compares the two. What no unkeyed chain can show is a
rewrite by someone who recomputes every hash after a change and the head too: to detect
that, keep the head's hash somewhere the store's writers cannot reach (``cadenza audit
verify`` prints it) and compare it later.

`AuditLog` is the single writer of one run's log and assigns ``seq``; it never awaits, so
appends from many asyncio tasks of one event loop are chained in the order they are made.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Literal, Protocol

from ..stores._batch import timestamp_text
from ..stores.base import AddAudit, AuditHead, AuditRecord, PutAuditHead, Write

if TYPE_CHECKING:
    from ..stores.base import Store

__all__ = (
    "AuditKind",
    "AuditLog",
    "AuditProblem",
    "AuditTrail",
    "AuditVerdict",
    "Recorder",
    "genesis_hash",
    "load_trail",
    "record_hash",
    "verify",
    "verify_run",
)

AuditKind = Literal[
    "run.started",
    "run.resumed",
    "message.sent",
    "message.rejected",
    "tool.called",
    "tool.denied",
    "approval.requested",
    "approval.decided",
    "agent.spawned",
    "model.called",
]
"""What a record says happened. Its ``subject`` and the keys its detail should hold:

``model.called``: the model; the step, seconds taken, tokens, cost and outcome (what the trace
view draws under each step; never the prompt or the reply).

``message.sent`` / ``message.rejected``: the recipient; message id, body digest, and for a
rejection the reason (forged, tampered, replayed). ``tool.called``: the tool; arguments
digest and outcome (``ok``, ``error``, ``uncertain``). ``tool.denied``: the tool; arguments
digest and why. ``approval.requested`` / ``approval.decided``: the approval id; the tool,
and the decision and who made it. ``agent.spawned``: the new agent's name; its team scope.
``run.started`` / ``run.resumed``: the run id; the process that took over.
"""

AuditProblem = Literal["altered", "removed", "inserted", "reordered", "foreign", "unanchored"]
"""How a log differs from what its run wrote; ``unanchored``: records without a stored head."""

_FORMAT = "cadenza-audit/1"
"""Leads every hashed encoding: a future encoding changes it, so old and new hashes never collide."""
_MOVED_WINDOW = 16
"""How far (in seq) `verify` looks for where a renumbered record was first written."""


class Recorder(Protocol):
    """Where `AuditLog` hands its writes: `RunJournal.record`, or anything taking Write objects."""

    def __call__(self, *writes: Write) -> object: ...


# --------------------------------------------------------------------------- hashing


_FORMAT_QUOTED = encode_basestring(_FORMAT)
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_ENCODE_SORTED = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, sort_keys=True).encode
"""The canonical encodings, made once: `json.dumps` with options builds a new encoder on every call."""


def _digest(values: list[object]) -> str:
    return hashlib.sha256(_ENCODE(values).encode("utf-8")).hexdigest()


def _instant(at: datetime) -> str:
    """UTC with microseconds, as both stores keep it: the same instant hashes the same after a round trip."""
    return timestamp_text(at)


def genesis_hash(run_id: str) -> str:
    """The ``prev_hash`` of a run's first record: derived from the run id, so a log cannot pass for another run's."""
    return _digest([_FORMAT, "genesis", run_id])


def record_hash(record: AuditRecord) -> str:
    """The hash ``record`` should carry: sha256 over a JSON array of every other field, ``prev_hash`` included."""
    return _hash_of(record.run_id, record.seq, _instant(record.at), record.kind, record.actor, record.subject,
                    record.detail_json, record.prev_hash)


def _hash_of(run_id: str, seq: int, instant: str, kind: str, actor: str, subject: str, detail_json: str,
             prev_hash: str) -> str:
    """`_digest` of the record's fields, written out as the JSON encoder writes that array (a test holds the two
    equal): each string as `encode_basestring` quotes it, the int as `int.__repr__`, a comma between, no spaces."""
    q = encode_basestring
    encoded = (f"[{_FORMAT_QUOTED},{q(run_id)},{int.__repr__(seq)},{q(instant)},{q(kind)},{q(actor)},{q(subject)},"
               f"{q(detail_json)},{q(prev_hash)}]")
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _canonical(detail: Mapping[str, object]) -> str:
    try:
        return _ENCODE_SORTED(detail if type(detail) is dict else dict(detail))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"an audit record's detail must be a JSON object: {exc}") from None


# --------------------------------------------------------------------------- writing


class AuditLog:
    """The single writer of one run's audit log: chains each record to the last and hands it on.

    Args:
        run_id: the run the log belongs to.
        write: receives each record's writes (`AddAudit` and `PutAuditHead`) in one call, so
            they reach the store in one batch; typically `RunJournal.record`.
        last: the stored head to continue from (`Store.audit_head`); None for a new log.
    """

    __slots__ = ("_next", "_prev", "_write", "run_id")

    def __init__(self, run_id: str, *, write: Recorder, last: AuditHead | None = None) -> None:
        if last is not None and last.run_id != run_id:
            raise ValueError(f"cannot continue the audit log of run {run_id!r} from the head of run {last.run_id!r}")
        self.run_id = run_id
        self._write = write
        self._next = 0 if last is None else last.seq + 1
        self._prev = genesis_hash(run_id) if last is None else last.hash

    @classmethod
    async def resume(cls, store: Store, run_id: str, *, write: Recorder) -> AuditLog:
        """The log of ``run_id`` continuing from its stored head (a new log if it has none).

        The head, not the last stored record: if records were cut off the end, the next record
        still links to the head, and the gap stays visible to `verify`.
        """
        return cls(run_id, write=write, last=await store.audit_head(run_id))

    @property
    def head(self) -> AuditHead | None:
        """The last record appended (or continued from), or None for a log still empty."""
        return None if self._next == 0 else AuditHead(self.run_id, self._next - 1, self._prev)

    def append(
        self, kind: AuditKind, actor: str, subject: str, detail: Mapping[str, object] | None = None, *,
        at: datetime | None = None,
    ) -> AuditRecord:
        """Chain a record and hand its writes on; they become durable with the caller's next batch.

        Raises:
            TypeError: ``detail`` is not JSON; nothing was appended.
        """
        detail_json = _canonical(detail or {})
        when = datetime.now(UTC) if at is None else at.astimezone(UTC)
        seq = self._next
        digest = _hash_of(self.run_id, seq, _instant(when), kind, actor, subject, detail_json, self._prev)
        record = AuditRecord(self.run_id, seq, when, kind, actor, subject, detail_json, self._prev, digest)
        self._write(AddAudit(record), PutAuditHead(AuditHead(self.run_id, seq, digest)))
        self._next, self._prev = seq + 1, digest
        return record


# --------------------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    """What `verify` found: an intact chain, or the first record that is not as its run wrote it."""

    run_id: str
    records: int
    """How many records were checked."""
    problem: AuditProblem | None = None
    seq: int | None = None
    """The first bad record: the altered, inserted or misplaced one, or the first missing seq."""
    reason: str = ""
    """What is wrong with it, in words a user can act on."""
    head: AuditHead | None = None
    """The last record, when the chain is intact: its hash can be kept elsewhere to detect rewrites."""

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def message(self) -> str:
        """One line: ``audit log of RUN: N records, chain intact`` or where and why it is broken."""
        counted = f"audit log of {self.run_id}: {self.records} record{'s' * (self.records != 1)}"
        if self.ok:
            return f"{counted}, chain intact"
        where = "" if self.seq is None else f" at seq {self.seq}"
        return f"{counted}, chain broken{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class _Break:
    problem: AuditProblem
    seq: int | None
    reason: str


def verify(
    records: Sequence[AuditRecord], *, run_id: str | None = None,
    head: AuditHead | Literal["unchecked"] | None = "unchecked",
) -> AuditVerdict:
    """Recompute the chain of ``records`` (ascending seq, as `Store.audit` returns them) and name the first break.

    Args:
        records: one run's records.
        run_id: the run they should belong to; by default the first record's.
        head: the stored head (`Store.audit_head`), None if the store has none, or ``"unchecked"``
            to check the chain alone, which cannot see records cut off its end.
    """
    rid = run_id or (records[0].run_id if records else head.run_id if isinstance(head, AuditHead) else "")
    found = _chain_break(records, rid)
    if found is None and not isinstance(head, str):
        found = _head_break(records, head)
    if found is not None:
        return AuditVerdict(rid, len(records), found.problem, found.seq, found.reason)
    last = records[-1] if records else None
    return AuditVerdict(rid, len(records), head=None if last is None else AuditHead(rid, last.seq, last.hash))


def _chain_break(records: Sequence[AuditRecord], run_id: str) -> _Break | None:
    position = {r.hash: i for i, r in enumerate(records)}
    prev = genesis_hash(run_id)
    for i, record in enumerate(records):
        found = _record_break(records, i, run_id, prev, position)
        if found is not None:
            return found
        prev = record.hash
    return None


def _record_break(
    records: Sequence[AuditRecord], i: int, run_id: str, prev: str, position: Mapping[str, int]
) -> _Break | None:
    """Why record ``i`` breaks the chain, given that the records before it are intact; None if it does not."""
    record = records[i]
    if record.run_id != run_id:
        return _Break("foreign", record.seq, f"record seq {record.seq} belongs to run {record.run_id!r}, "
                                             f"not {run_id!r}: it was moved or copied here")
    if record.seq > i:
        after = f"goes from seq {i - 1} to seq {record.seq}" if i else f"starts at seq {record.seq}"
        what = f"record seq {i} is" if record.seq == i + 1 else f"records seq {i} to {record.seq - 1} are"
        return _Break("removed", i, f"{what} missing: the log {after}")
    if record.seq < i:
        return _Break("reordered", record.seq, f"record seq {record.seq} appears again after seq {i - 1}: "
                                                "the records are out of order or duplicated")
    if record_hash(record) != record.hash:
        return _mismatch(records, i, prev, position)
    if record.prev_hash != prev:
        return _broken_link(records, i, position)
    return None


def _mismatch(records: Sequence[AuditRecord], i: int, prev: str, position: Mapping[str, int]) -> _Break:
    """Record ``i`` does not hash to its stored hash: altered, or moved from another seq."""
    record = records[i]
    later = position.get(record.prev_hash, -1)
    if later > i:
        return _Break("reordered", i, f"record seq {i} is out of place: it was written after the record now at "
                                      f"seq {records[later].seq} (records were swapped or moved)")
    written_as = _written_seq(record)
    if written_as is not None and written_as < i:
        return _Break("inserted", written_as, f"record seq {written_as} was inserted: the record now at seq {i} "
                                              f"was written as seq {written_as}, and later records were renumbered")
    if written_as is not None:
        return _Break("removed", i, f"record seq {i} was removed: the record now at seq {i} was written as "
                                    f"seq {written_as}, and later records were renumbered")
    if i + 1 < len(records) and records[i + 1].prev_hash == prev:
        return _Break("inserted", i, f"record seq {i} was inserted: the record after it was chained to the one "
                                     "before it")
    return _Break("altered", i, f"record seq {i} ({record.kind} by {record.actor!r} on {record.subject!r}) was "
                                "altered: its contents no longer match its hash")


def _broken_link(records: Sequence[AuditRecord], i: int, position: Mapping[str, int]) -> _Break:
    """Record ``i`` is intact but not chained to the record before it."""
    record = records[i]
    if i == 0:
        return _Break("altered", 0, f"record seq 0 does not start the chain of run {record.run_id!r}: "
                                    "it was replaced or taken from another log")
    if position.get(record.prev_hash, -1) > i:
        return _Break("reordered", i, f"record seq {i} is out of place: it was written after a later record")
    before = records[i - 2].hash if i >= 2 else genesis_hash(record.run_id)
    if record.prev_hash == before:
        return _Break("inserted", i - 1, f"record seq {i - 1} was inserted: record seq {i} was chained to the one "
                                         "before it")
    return _Break("altered", i - 1, f"record seq {i - 1} was altered and its hash recomputed: record seq {i} was "
                                    f"chained to a different record seq {i - 1}")


def _written_seq(record: AuditRecord) -> int | None:
    """The nearby seq the record hashes correctly under, if it was renumbered after it was written."""
    for distance in range(1, _MOVED_WINDOW + 1):
        for seq in (record.seq - distance, record.seq + distance):
            if seq >= 0 and record_hash(_at_seq(record, seq)) == record.hash:
                return seq
    return None


def _at_seq(record: AuditRecord, seq: int) -> AuditRecord:
    return AuditRecord(record.run_id, seq, record.at, record.kind, record.actor, record.subject,
                       record.detail_json, record.prev_hash, record.hash)


def _head_break(records: Sequence[AuditRecord], head: AuditHead | None) -> _Break | None:
    """How an intact chain disagrees with the stored head, if it does."""
    if head is None:
        if not records:
            return None
        return _Break("unanchored", None, "the log's head is missing from the store, so records removed from its "
                                          "end would not show: it was deleted")
    if not records:
        return _Break("removed", 0, f"every record (seq 0 to {head.seq}) was removed: the log's head says it ends "
                                    f"at seq {head.seq}")
    last = records[-1]
    if last.seq < head.seq:
        what = f"record seq {head.seq} was" if last.seq + 1 == head.seq else \
            f"records seq {last.seq + 1} to {head.seq} were"
        return _Break("removed", last.seq + 1, f"{what} removed from the end of the log: its head says it ends at "
                                               f"seq {head.seq}")
    anchor = records[head.seq]
    if anchor.hash != head.hash:
        return _Break("altered", head.seq, f"record seq {head.seq} does not match the log's head: the log was "
                                           f"rewritten with recomputed hashes at or before seq {head.seq}")
    if last.seq > head.seq:
        first = head.seq + 1
        what = f"record seq {first} was" if last.seq == first else f"records seq {first} to {last.seq} were"
        return _Break("inserted", first, f"{what} added outside the run: the log's head says it ends at "
                                         f"seq {head.seq}")
    return None


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class AuditTrail:
    """A run's audit records with the head stored beside them, read as one consistent view."""

    records: list[AuditRecord]
    head: AuditHead | None


async def load_trail(store: Store, run_id: str, *, attempts: int = 5) -> AuditTrail:
    """The records and head of ``run_id`` as of one moment, even while the run appends.

    Every batch of records moves the head, so the same head read before and after the records
    means no batch landed in between; otherwise read again (the last read is kept regardless).
    """
    head = await store.audit_head(run_id)
    records: list[AuditRecord] = []
    for _ in range(attempts):
        records = await store.audit(run_id)
        again = await store.audit_head(run_id)
        if again == head:
            break
        head = again
        await asyncio.sleep(0)
    return AuditTrail(records, head)


async def verify_run(store: Store, run_id: str) -> AuditVerdict:
    """`verify` the stored log of ``run_id`` against its stored head."""
    trail = await load_trail(store, run_id)
    return verify(trail.records, run_id=run_id, head=trail.head)
