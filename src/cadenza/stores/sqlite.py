"""`SQLiteStore`: the embedded default, one file that several processes can share.

Calls to sqlite3 run inline, on the event loop's thread: a small WAL commit costs tens of
microseconds, less than a hop to a worker thread and back would. The price is that a call
waiting for another process's lock blocks the loop for up to ``busy_timeout`` seconds.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Literal

from .._errors import RunNotFound, StoreError, WorkspaceConflict
from ._batch import group, inserts, text_decoder, text_encoder, timestamp_text
from ._queries import Queries, approval_error, audit_conflict
from ._schema import META_TABLE, Migration, migrations, parse_version, pending, read_version_sql, set_version_sql
from ._tables import (
    APPROVALS,
    AUDIT,
    AUDIT_HEADS,
    MESSAGES,
    PLANS,
    RESERVATIONS,
    RUNS,
    SPAWNS,
    STEPS,
    TOOL_CALLS,
    USAGE,
    WORKSPACE,
)
from .base import (
    ApprovalRow,
    AuditHead,
    AuditRecord,
    MessageRow,
    RunRow,
    RunSnapshot,
    Store,
    WorkspaceEntry,
    Write,
)

__all__ = ("SQLiteStore", "Synchronous")

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

_CHECKPOINT_PAGES = 10_000

_Q = Queries.build("sqlite")
_INSERTS = inserts("sqlite", text_encoder)
_RUN = text_decoder(RUNS)
_PLAN = text_decoder(PLANS)
_STEP = text_decoder(STEPS)
_MESSAGE = text_decoder(MESSAGES)
_SPAWN = text_decoder(SPAWNS)
_USAGE = text_decoder(USAGE)
_TOOL_CALL = text_decoder(TOOL_CALLS)
_RESERVATION = text_decoder(RESERVATIONS)
_APPROVAL = text_decoder(APPROVALS)
_ENTRY = text_decoder(WORKSPACE)
_AUDIT = text_decoder(AUDIT)
_AUDIT_HEAD = text_decoder(AUDIT_HEADS)
_AUDIT_CONFLICT = "UNIQUE constraint failed: audit.run_id, audit.seq"


class SQLiteStore(Store):
    """Runs in a SQLite file (created with its directories on open), in WAL mode.

    With the default ``synchronous="NORMAL"`` a commit is durable once `apply` returns as far
    as the process goes: it survives the process crashing or being killed (SIGKILL). Only an OS
    crash or power loss may lose the last few commits, never corrupt the file; pass
    ``synchronous="FULL"`` to fsync every commit and survive those too, at a cost per commit.

    Args:
        path: the database file; ``":memory:"`` for a private in-memory store (tests).
        synchronous: SQLite's ``PRAGMA synchronous``.
        busy_timeout: seconds to wait for another process's lock before raising `StoreError`.
    """

    _history: ClassVar[tuple[Migration, ...]] = migrations("sqlite")

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: Synchronous = "NORMAL", busy_timeout: float = 5.0
    ) -> None:
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        memory = os.fspath(path) == ":memory:"
        self.path = Path(path) if memory else Path(path).absolute()
        """The database file, absolute."""
        self.url = "sqlite::memory:" if memory else f"sqlite://{self.path.as_posix()}"
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # ----------------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Open (creating the file and its directories), switch to WAL and bring the schema up to date."""
        if self._conn is not None:
            return
        if str(self.path) != ":memory:":
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the directory {self.path.parent} for the store: {exc}") from exc
        try:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            # Checked before switching to WAL, which rewrites the header of a database that is not ours.
            todo = pending(self._version(conn), self._history, where=str(self.path))
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            # A checkpoint syncs the file: every 1,000 pages (the default) it was a fifth of a chain step's
            # cost. The WAL may now grow to ~40 MB during a run; close() checkpoints what is left.
            conn.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
            if todo:
                self._migrate(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
            raise
        self._conn = conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another process may have migrated meanwhile.
            for migration in pending(self._version(conn), self._history, where=str(self.path)):
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(set_version_sql(migration.version))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _version(self, conn: sqlite3.Connection) -> int:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        if META_TABLE in tables:
            row = conn.execute(read_version_sql()).fetchone()
            return 0 if row is None else parse_version(row[0], where=str(self.path))
        others = [name for name in tables if not name.startswith("sqlite_")]
        if others:
            raise StoreError(
                f"{self.path} is a SQLite database but not a cadenza store (it has a table {others[0]!r} "
                f"and no {META_TABLE}); it was left as it is"
            )
        return 0

    async def close(self) -> None:
        """Close the connection; idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never waits for other processes' readers
            except sqlite3.Error:
                pass  # the data is safe in the WAL; the next open or checkpoint moves it
            conn.close()

    # ----------------------------------------------------------------------- writes

    async def apply(self, writes: Sequence[Write]) -> None:
        """Apply ``writes`` in one transaction (one ``executemany`` per table); see `Store.apply`."""
        batches = group(writes, _INSERTS)
        if not batches:
            return
        conn = self._live()
        # Inline, not in a thread: the whole commit costs less than a hop to a worker thread would.
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in batches:
                    conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    async def workspace_put(
        self, run_id: str, key: str, value_json: str, *, expected_version: int, writer: str
    ) -> WorkspaceEntry:
        """Compare-and-set under ``BEGIN IMMEDIATE``, so writers in other processes serialise; see `Store`."""
        entry = WorkspaceEntry(run_id, key, expected_version + 1, value_json, writer, datetime.now(UTC))
        with self._transaction() as conn:
            actual = conn.execute(_Q.workspace_version, (run_id, key)).fetchone()[0]
            if actual != expected_version:
                raise WorkspaceConflict(key, expected_version, actual)
            conn.execute(
                _Q.workspace_insert, (run_id, key, entry.version, value_json, writer, timestamp_text(entry.at))
            )
        return entry

    async def decide_approval(
        self, run_id: str, approval_id: str, *, approved: bool, by: str, note: str | None = None
    ) -> ApprovalRow:
        """Decide a pending approval; see `Store.decide_approval`."""
        status = "approved" if approved else "rejected"
        with self._transaction() as conn:
            now = timestamp_text(datetime.now(UTC))
            changed = conn.execute(_Q.decide, (status, now, by, note, run_id, approval_id)).rowcount
            if changed != 1:
                row = conn.execute(_Q.approval_status, (run_id, approval_id)).fetchone()
                raise approval_error(run_id, approval_id, None if row is None else row[0])
            return _APPROVAL(conn.execute(_Q.approval, (run_id, approval_id)).fetchone())

    async def use_approval(self, run_id: str, approval_id: str) -> bool:
        """Mark an approved approval used; True for exactly one caller."""
        with self._transaction() as conn:
            return bool(conn.execute(_Q.use, (run_id, approval_id)).rowcount == 1)

    # ----------------------------------------------------------------------- reads

    async def get_run(self, run_id: str) -> RunRow:
        """The run; raises `RunNotFound`."""
        with self._reading() as conn:
            row = conn.execute(_Q.run, (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(run_id, where=self.url)
        return _RUN(row)

    async def list_runs(self, *, limit: int = 50) -> list[RunRow]:
        """The newest ``limit`` runs, newest ``started_at`` first."""
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit}")
        with self._reading() as conn:
            return [_RUN(row) for row in conn.execute(_Q.list_runs, (limit,))]

    async def snapshot(self, run_id: str) -> RunSnapshot:
        """Everything of the run but its messages, read in one transaction (one consistent view)."""
        with self._transaction("DEFERRED") as conn:
            row = conn.execute(_Q.run, (run_id,)).fetchone()
            if row is None:
                raise RunNotFound(run_id, where=self.url)
            key = (run_id,)
            return RunSnapshot(
                run=_RUN(row),
                plans=[_PLAN(r) for r in conn.execute(_Q.plans, key)],
                steps=[_STEP(r) for r in conn.execute(_Q.steps, key)],
                spawned=[_SPAWN(r) for r in conn.execute(_Q.spawns, key)],
                usage=[_USAGE(r) for r in conn.execute(_Q.usage, key)],
                tool_calls=[_TOOL_CALL(r) for r in conn.execute(_Q.tool_calls, key)],
                approvals=[_APPROVAL(r) for r in conn.execute(_Q.approvals, key)],
                reservations=[_RESERVATION(r) for r in conn.execute(_Q.reservations, key)],
            )

    async def messages(self, run_id: str) -> list[MessageRow]:
        """The run's messages, ascending ``seq``."""
        with self._reading() as conn:
            return [_MESSAGE(row) for row in conn.execute(_Q.messages, (run_id,))]

    async def audit(self, run_id: str) -> list[AuditRecord]:
        """The run's audit records, ascending ``seq``."""
        with self._reading() as conn:
            return [_AUDIT(row) for row in conn.execute(_Q.audit, (run_id,))]

    async def audit_head(self, run_id: str) -> AuditHead | None:
        """The head of the run's audit log, or None."""
        with self._reading() as conn:
            row = conn.execute(_Q.audit_head, (run_id,)).fetchone()
        return None if row is None else _AUDIT_HEAD(row)

    async def workspace_get(self, run_id: str, key: str) -> WorkspaceEntry | None:
        """The latest version of ``key``, or None."""
        with self._reading() as conn:
            row = conn.execute(_Q.workspace_latest, (run_id, key)).fetchone()
        return None if row is None else _ENTRY(row)

    async def workspace_items(self, run_id: str) -> list[WorkspaceEntry]:
        """The latest version of every key, sorted by key."""
        with self._reading() as conn:
            return [_ENTRY(row) for row in conn.execute(_Q.workspace_items, (run_id,))]

    async def workspace_history(self, run_id: str, key: str) -> list[WorkspaceEntry]:
        """Every version of ``key``, oldest first."""
        with self._reading() as conn:
            return [_ENTRY(row) for row in conn.execute(_Q.workspace_history, (run_id, key))]

    # ----------------------------------------------------------------------- plumbing

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store is not open: {self.url} (use `async with store:` or `await store.open()`)")
        return self._conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        conn = self._live()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    @contextmanager
    def _transaction(self, mode: Literal["IMMEDIATE", "DEFERRED"] = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        conn = self._live()
        try:
            conn.execute(f"BEGIN {mode}")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> StoreError:
        """A `StoreError` naming the file and saying what went wrong, in words a user can act on."""
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else -1
        text = str(exc)
        if text == _AUDIT_CONFLICT:
            return audit_conflict(str(self.path))
        if primary in (5, 6) or "locked" in text:  # SQLITE_BUSY, SQLITE_LOCKED
            return StoreError(
                f"the store {self.path} is locked: another process holds a lock on it "
                f"(waited {self._busy_timeout:g} s); try again once it is done"
            )
        if primary in (11, 26) or "not a database" in text or "malformed" in text:  # CORRUPT, NOTADB
            return StoreError(f"{self.path} is not a cadenza store or is corrupt ({text}); it was left as it is")
        if primary in (3, 8, 14):  # SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN
            return StoreError(f"cannot open or write the store {self.path}: {text} (check the path and permissions)")
        return StoreError(f"the store {self.path} failed: {text}")
