"""Schema version 2 (the audit log): a version-1 store opens, migrates and loses nothing; version 1 stays frozen."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from cadenza.security._audit import AuditLog, verify
from cadenza.stores import SCHEMA_VERSION, PutRun, Store, Write
from cadenza.stores._schema import migrations
from cadenza.stores._tables import Dialect
from stores.backends import Backend
from stores.rows import run_row
from stores.test_schema import VERSION, fill

V1_DDL: dict[Dialect, str] = {
    "sqlite": "d0d6cd2200bfd2f9f5c482cbb193332a0cb1c5aaac112741ca021e173ce857eb",
    "postgres": "fdd0a7e2d5c5bdc9324a592dcf9e5010fb5ea22729b8026b04d1d110d508d4ee",
}
"""sha256 of the released version-1 statements: a store written by them must keep opening."""


def test_the_released_version_1_statements_never_change() -> None:
    for dialect, expected in V1_DDL.items():
        first = migrations(dialect)[0]
        assert first.version == 1
        assert hashlib.sha256("\n".join(first.statements).encode()).hexdigest() == expected, dialect


def test_version_2_adds_the_audit_log() -> None:
    assert SCHEMA_VERSION >= 2
    for dialect in ("sqlite", "postgres"):
        assert migrations(dialect)[1].version == 2
        assert any("CREATE TABLE audit " in s for s in migrations(dialect)[1].statements)


def as_of_version(patch: pytest.MonkeyPatch, backend: Backend, version: int) -> None:
    """Make this cadenza's store class act as the release that wrote schema ``version``: its migrations only,
    and no reads of tables that came later (a snapshot of it has no reservations)."""
    import cadenza.stores.postgres as pg
    import cadenza.stores.sqlite as lite

    patch.setattr(type(backend.store()), "_history", migrations(backend.dialect)[:version])
    if version < 3:
        module = lite if backend.dialect == "sqlite" else pg
        never = ("SELECT run_id, run_id, run_id, 0, 0.0, run_id, 0, 0.0 FROM runs WHERE run_id = "
                 + ("? AND 1 = 0" if backend.dialect == "sqlite" else "$1 AND false"))
        patch.setattr(module, "_Q", dataclasses.replace(module._Q, reservations=never))


async def version_1_store(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store created by the version-1 statements alone and filled, as a cadenza of version 1 left it."""
    old = backend.store()
    with monkeypatch.context() as patch:
        as_of_version(patch, backend, 1)
        async with old:
            await fill(old)
    assert await backend.scalar(VERSION) == "1"
    with pytest.raises(Exception, match="audit"):
        await backend.scalar("SELECT count(*) FROM audit")


async def everything(store: Store) -> tuple[object, ...]:
    return (await store.snapshot("run-1"), await store.messages("run-1"), await store.workspace_items("run-1"),
            await store.workspace_history("run-1", "k"), await store.list_runs())


async def test_a_version_1_store_is_migrated_to_the_latest_version_keeping_everything(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    await version_1_store(backend, monkeypatch)
    old = backend.store()
    with monkeypatch.context() as patch:
        as_of_version(patch, backend, 1)
        async with old:
            before = await everything(old)

    async with backend.store() as store:
        assert await everything(store) == before
        assert await store.audit("run-1") == []
        assert await store.audit_head("run-1") is None
        writes: list[Write] = []
        log = AuditLog("run-1", write=lambda *w: writes.extend(w))
        log.append("run.resumed", "cadenza", "run-1", {"from_version": 1})
        log.append("tool.called", "lead/writer", "send_mail", {"arguments_digest": "d", "outcome": "ok"})
        await store.apply([PutRun(run_row("run-2")), *writes])

    assert await backend.scalar(VERSION) == str(SCHEMA_VERSION)
    async with backend.store() as reopened:  # already at the latest version: opens without migrating again
        assert (await everything(reopened))[:4] == before[:4]
        assert {r.run_id for r in await reopened.list_runs()} == {"run-1", "run-2"}
        records = await reopened.audit("run-1")
        assert verify(records, head=await reopened.audit_head("run-1")).ok
        assert [r.kind for r in records] == ["run.resumed", "tool.called"]


async def test_a_newer_store_is_refused_by_a_version_1_cadenza(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with backend.store() as store:
        await fill(store)
    old = backend.store()
    monkeypatch.setattr(type(old), "_history", migrations(backend.dialect)[:1])

    with pytest.raises(Exception, match=f"schema version {SCHEMA_VERSION}, written by a newer cadenza"):
        await old.open()

    assert await backend.scalar(VERSION) == str(SCHEMA_VERSION)
