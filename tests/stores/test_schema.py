"""Conformance: a store keeps its data across opens, migrates older schemas and refuses newer ones untouched."""

from __future__ import annotations

import asyncio

import pytest

from cadenza._errors import StoreError
from cadenza.stores import (
    SCHEMA_VERSION,
    AddMessage,
    PutApproval,
    PutPlan,
    PutRun,
    PutStep,
    Store,
)
from cadenza.stores._schema import Migration, migrations
from stores.backends import Backend
from stores.rows import approval_row, finished_step, full_run_row, message, plan_row, step_row

VERSION = "SELECT value FROM cadenza_meta WHERE key = 'schema_version'"


async def fill(store: Store) -> None:
    """A run with something in every part of it."""
    await store.apply(
        [
            PutRun(full_run_row()),
            PutPlan(plan_row()),
            PutStep(finished_step("a")),
            PutStep(step_row("b")),
            AddMessage(message("1")),
            AddMessage(message("2", kind="result")),
            PutApproval(approval_row()),
        ]
    )
    await store.workspace_put("run-1", "k", '"v"', expected_version=0, writer="w")


def test_the_history_ends_at_the_schema_version_this_cadenza_writes() -> None:
    for dialect in ("sqlite", "postgres"):
        assert [m.version for m in migrations(dialect)] == list(range(1, SCHEMA_VERSION + 1))


async def test_everything_is_there_after_reopening(backend: Backend) -> None:
    async with backend.store() as first:
        await fill(first)
        snapshot, messages = await first.snapshot("run-1"), await first.messages("run-1")
        items = await first.workspace_items("run-1")

    async with backend.store() as second:
        assert await second.snapshot("run-1") == snapshot
        assert await second.messages("run-1") == messages
        assert await second.workspace_items("run-1") == items
        await second.apply([AddMessage(message("3"))])
        assert [m.seq for m in await second.messages("run-1")][-1] > messages[-1].seq
    assert await backend.scalar(VERSION) == str(SCHEMA_VERSION)


async def test_a_store_from_a_newer_cadenza_is_refused_untouched(backend: Backend) -> None:
    async with backend.store() as store:
        await fill(store)
    newer = SCHEMA_VERSION + 1
    await backend.execute(f"UPDATE cadenza_meta SET value = '{newer}' WHERE key = 'schema_version'")

    with pytest.raises(StoreError) as caught:
        await backend.store().open()

    text = str(caught.value)
    assert f"schema version {newer}" in text
    assert f"reads schema version {SCHEMA_VERSION}" in text
    assert "upgrade cadenza" in text
    assert await backend.scalar(VERSION) == str(newer)
    assert await backend.scalar("SELECT count(*) FROM steps") == 2
    await backend.execute(f"UPDATE cadenza_meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version'")
    async with backend.store() as store:
        assert (await store.get_run("run-1")) == full_run_row()


def extended(backend: Backend, *later: tuple[str, ...]) -> tuple[Migration, ...]:
    """This cadenza's history followed by ``later`` migrations, numbered on from it."""
    history = migrations(backend.dialect)
    return history + tuple(Migration(SCHEMA_VERSION + 1 + i, stmts) for i, stmts in enumerate(later))


async def test_an_older_store_is_migrated_in_order_keeping_its_data(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with backend.store() as store:
        await fill(store)
    history = extended(
        backend,
        ("CREATE TABLE labels (run_id TEXT NOT NULL, label TEXT NOT NULL)",),
        ("INSERT INTO labels (run_id, label) SELECT run_id, 'migrated' FROM runs",),  # needs the one before
    )
    newer = backend.store()
    monkeypatch.setattr(type(newer), "_history", history)

    async with newer:
        assert (await newer.get_run("run-1")) == full_run_row()

    assert await backend.scalar(VERSION) == str(SCHEMA_VERSION + 2)
    assert await backend.scalar("SELECT label FROM labels WHERE run_id = 'run-1'") == "migrated"


async def test_a_failed_migration_leaves_the_store_as_it_was(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    async with backend.store() as store:
        await fill(store)
    history = extended(backend, ("CREATE TABLE half_done (x TEXT)", "THIS IS NOT SQL"))
    newer = backend.store()
    monkeypatch.setattr(type(newer), "_history", history)

    with pytest.raises(StoreError):
        await newer.open()

    assert await backend.scalar(VERSION) == str(SCHEMA_VERSION)
    monkeypatch.undo()
    async with backend.store() as store:
        assert (await store.get_run("run-1")) == full_run_row()
    with pytest.raises(Exception, match="half_done"):  # the migration's first statement was rolled back
        await backend.scalar("SELECT count(*) FROM half_done")


async def test_stores_opening_an_empty_location_at_once_create_the_tables_once(backend: Backend) -> None:
    stores = [backend.store() for _ in range(3)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        await stores[0].apply([PutRun(full_run_row())])
        assert (await stores[2].get_run("run-1")) == full_run_row()
    finally:
        for s in stores:
            await s.close()
    assert await backend.scalar(VERSION) == str(SCHEMA_VERSION)
