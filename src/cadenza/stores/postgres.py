"""`PostgresStore`: runs in PostgreSQL, for many processes and machines (the ``postgres`` extra).

Every statement is prepared once per connection (asyncpg caches them by text), and a batch
of writes is one statement (`_pg_batch`), so a commit costs one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from .._errors import RunNotFound, StoreError, WorkspaceConflict

try:
    import asyncpg  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise StoreError("PostgresStore needs asyncpg: pip install 'cadenza[postgres]'") from exc

from ._pg_batch import batch
from ._queries import Queries, approval_error, audit_conflict
from ._schema import META_TABLE, Migration, migrations, parse_version, pending, read_version_sql, set_version_sql
from ._tables import (
    APPROVALS,
    AUDIT,
    MESSAGES,
    PLANS,
    RESERVATIONS,
    RUNS,
    SPAWNS,
    STEPS,
    TOOL_CALLS,
    USAGE,
    WORKSPACE,
    Table,
)
from ._url import postgres_target
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

__all__ = ("PostgresStore",)

_Q = Queries.build("postgres")
_CAS = (
    "INSERT INTO workspace (run_id, key, version, value_json, writer, at) "
    "SELECT $1::text, $2::text, $3::integer + 1, $4::text, $5::text, $6::timestamptz "
    "WHERE (SELECT coalesce(max(version), 0) FROM workspace WHERE run_id = $1 AND key = $2) = $3 "
    "ON CONFLICT DO NOTHING RETURNING version"
)
"""Compare-and-set in one statement: the primary key (run_id, key, version) lets one racer win."""
_DECIDE = f"{_Q.decide} RETURNING {', '.join(APPROVALS.columns)}"
_USE = f"{_Q.use} RETURNING 1"
_MIGRATION_LOCK = 0x63616465_6E7A61
"""An advisory lock key: stores opening at once migrate one after the other."""
_FAILURES = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


async def _keep_session(conn: Any) -> None:
    """Skip asyncpg's reset query on release, a round trip per call: no call leaves session state behind.

    (An open transaction is still rolled back by asyncpg itself; locks are transaction-scoped.)
    """


class PostgresStore(Store):
    """Runs in a PostgreSQL database, through a small asyncpg pool.

    Args:
        url: ``postgresql://user:password@host:port/database``; ``?schema=NAME`` puts the tables
            in that schema (created if missing) instead of the default search path.
        schema: the same as ``?schema=NAME``.
        connect_timeout: seconds to wait for the server on open.
    """

    _history: ClassVar[tuple[Migration, ...]] = migrations("postgres")

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout: float = 10.0) -> None:
        self._target = postgres_target(url, schema)
        self.url = self._target.url
        self.schema = self._target.schema
        """The PostgreSQL schema holding the tables, or None for the connection's search path."""
        self._connect_timeout = connect_timeout
        self._pool: Any = None

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    # ----------------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Connect, create the schema if asked, and bring the tables up to date."""
        if self._pool is not None:
            return
        settings = {"application_name": "cadenza"}
        if self.schema is not None:
            settings["search_path"] = f'"{self.schema}"'
        try:
            pool = await asyncpg.create_pool(
                self._target.dsn,
                min_size=1,
                max_size=4,
                timeout=self._connect_timeout,
                server_settings=settings,
                reset=_keep_session,
            )
        except (*_FAILURES, ValueError) as exc:
            raise self._connect_error(exc) from exc
        try:
            async with pool.acquire() as conn:
                await self._migrate(conn)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, _FAILURES):
                raise self._error(exc) from exc
            raise
        self._pool = pool

    async def _migrate(self, conn: Any) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            if self.schema is not None and not await conn.fetchval(
                "SELECT 1 FROM pg_namespace WHERE nspname = $1", self.schema
            ):
                await conn.execute(f'CREATE SCHEMA "{self.schema}"')
            found = 0
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", META_TABLE):
                found = parse_version(await conn.fetchval(read_version_sql()) or 0, where=self.url)
            for migration in pending(found, self._history, where=self.url):
                for statement in migration.statements:
                    await conn.execute(statement)
                await conn.execute(set_version_sql(migration.version))

    async def close(self) -> None:
        """Close the pool; idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # ----------------------------------------------------------------------- writes

    async def apply(self, writes: Sequence[Write]) -> None:
        """Apply ``writes`` as one statement (one round trip, atomic); see `Store.apply` and `_pg_batch`."""
        prepared = batch(writes)
        if prepared is None:
            return
        sql, args = prepared
        try:
            await self._live().execute(sql, *args)
        except _FAILURES as exc:
            raise self._error(exc) from exc

    async def workspace_put(
        self, run_id: str, key: str, value_json: str, *, expected_version: int, writer: str
    ) -> WorkspaceEntry:
        """Compare-and-set across processes; see `Store.workspace_put`."""
        entry = WorkspaceEntry(run_id, key, expected_version + 1, value_json, writer, datetime.now(UTC))
        pool = self._live()
        try:
            written = await pool.fetchval(_CAS, run_id, key, expected_version, value_json, writer, entry.at)
            if written is not None:
                return entry
            actual = await pool.fetchval(_Q.workspace_version, run_id, key)
        except _FAILURES as exc:
            raise self._error(exc) from exc
        raise WorkspaceConflict(key, expected_version, int(actual))

    async def decide_approval(
        self, run_id: str, approval_id: str, *, approved: bool, by: str, note: str | None = None
    ) -> ApprovalRow:
        """Decide a pending approval (one UPDATE: two deciders cannot both succeed); see `Store`."""
        status = "approved" if approved else "rejected"
        pool = self._live()
        try:
            row = await pool.fetchrow(_DECIDE, status, datetime.now(UTC), by, note, run_id, approval_id)
            if row is not None:
                return ApprovalRow(*row)
            current = await pool.fetchval(_Q.approval_status, run_id, approval_id)
        except _FAILURES as exc:
            raise self._error(exc) from exc
        raise approval_error(run_id, approval_id, current)

    async def use_approval(self, run_id: str, approval_id: str) -> bool:
        """Mark an approved approval used; True for exactly one caller."""
        try:
            return await self._live().fetchval(_USE, run_id, approval_id) is not None
        except _FAILURES as exc:
            raise self._error(exc) from exc

    # ----------------------------------------------------------------------- reads

    async def get_run(self, run_id: str) -> RunRow:
        """The run; raises `RunNotFound`."""
        row = await self._fetchrow(_Q.run, run_id)
        if row is None:
            raise RunNotFound(run_id, where=self.url)
        return RunRow(*row)

    async def list_runs(self, *, limit: int = 50) -> list[RunRow]:
        """The newest ``limit`` runs, newest ``started_at`` first."""
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit}")
        return await self._fetch(RUNS, _Q.list_runs, limit)

    async def snapshot(self, run_id: str) -> RunSnapshot:
        """Everything of the run but its messages, read in one repeatable-read transaction."""
        pool = self._live()
        try:
            async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                run = await conn.fetchrow(_Q.run, run_id)
                if run is None:
                    raise RunNotFound(run_id, where=self.url)
                return RunSnapshot(
                    run=RunRow(*run),
                    plans=[PLANS.row(*r) for r in await conn.fetch(_Q.plans, run_id)],
                    steps=[STEPS.row(*r) for r in await conn.fetch(_Q.steps, run_id)],
                    spawned=[SPAWNS.row(*r) for r in await conn.fetch(_Q.spawns, run_id)],
                    usage=[USAGE.row(*r) for r in await conn.fetch(_Q.usage, run_id)],
                    tool_calls=[TOOL_CALLS.row(*r) for r in await conn.fetch(_Q.tool_calls, run_id)],
                    approvals=[APPROVALS.row(*r) for r in await conn.fetch(_Q.approvals, run_id)],
                    reservations=[RESERVATIONS.row(*r) for r in await conn.fetch(_Q.reservations, run_id)],
                )
        except _FAILURES as exc:
            raise self._error(exc) from exc

    async def messages(self, run_id: str) -> list[MessageRow]:
        """The run's messages, ascending ``seq``."""
        return await self._fetch(MESSAGES, _Q.messages, run_id)

    async def audit(self, run_id: str) -> list[AuditRecord]:
        """The run's audit records, ascending ``seq``."""
        return await self._fetch(AUDIT, _Q.audit, run_id)

    async def audit_head(self, run_id: str) -> AuditHead | None:
        """The head of the run's audit log, or None."""
        row = await self._fetchrow(_Q.audit_head, run_id)
        return None if row is None else AuditHead(*row)

    async def workspace_get(self, run_id: str, key: str) -> WorkspaceEntry | None:
        """The latest version of ``key``, or None."""
        row = await self._fetchrow(_Q.workspace_latest, run_id, key)
        return None if row is None else WorkspaceEntry(*row)

    async def workspace_items(self, run_id: str) -> list[WorkspaceEntry]:
        """The latest version of every key, sorted by key."""
        return await self._fetch(WORKSPACE, _Q.workspace_items, run_id)

    async def workspace_history(self, run_id: str, key: str) -> list[WorkspaceEntry]:
        """Every version of ``key``, oldest first."""
        return await self._fetch(WORKSPACE, _Q.workspace_history, run_id, key)

    # ----------------------------------------------------------------------- plumbing

    def _live(self) -> Any:
        if self._pool is None:
            raise StoreError(f"store is not open: {self.url} (use `async with store:` or `await store.open()`)")
        return self._pool

    async def _fetchrow(self, sql: str, *args: object) -> Sequence[Any] | None:
        try:
            return cast("Sequence[Any] | None", await self._live().fetchrow(sql, *args))
        except _FAILURES as exc:
            raise self._error(exc) from exc

    async def _fetch(self, table: Table[Any], sql: str, *args: object) -> list[Any]:
        try:
            return [table.row(*row) for row in await self._live().fetch(sql, *args)]
        except _FAILURES as exc:
            raise self._error(exc) from exc

    def _error(self, exc: BaseException) -> StoreError:
        if isinstance(exc, asyncpg.UniqueViolationError) and getattr(exc, "constraint_name", None) == "audit_pkey":
            return audit_conflict(self.url, str(getattr(exc, "detail", "") or ""))
        if isinstance(exc, OSError | TimeoutError | asyncpg.ConnectionDoesNotExistError):
            what = f"lost the connection to PostgreSQL at {self._target.where}"
        else:
            what = f"the store {self.url} failed"
        return StoreError(self._target.scrub(f"{what}: {type(exc).__name__}: {exc}"))

    def _connect_error(self, exc: BaseException) -> StoreError:
        if isinstance(exc, asyncpg.InvalidCatalogNameError):
            what = "the database does not exist"
        elif isinstance(exc, asyncpg.InvalidPasswordError):
            what = "authentication failed (wrong user or password)"
        elif isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
            what = f"the server refused the user ({exc})"
        elif isinstance(exc, TimeoutError):
            what = f"no answer within {self._connect_timeout:g} s"
        elif isinstance(exc, OSError):
            what = f"the server is unreachable ({exc})"
        else:
            what = f"{type(exc).__name__}: {exc}"
        return StoreError(self._target.scrub(f"cannot connect to PostgreSQL at {self._target.where}: {what}"))
