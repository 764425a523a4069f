"""Conformance: the shared workspace is a versioned compare-and-set store that keeps every version."""

from __future__ import annotations

import asyncio

import pytest

from cadenza._errors import WorkspaceConflict
from cadenza.stores import Store
from stores.backends import Backend


async def test_a_key_is_created_at_version_one_then_updated(store: Store) -> None:
    created = await store.workspace_put("run-1", "draft", '"v1"', expected_version=0, writer="writer")
    updated = await store.workspace_put("run-1", "draft", '"v2"', expected_version=1, writer="editor")

    assert (created.version, updated.version) == (1, 2)
    assert await store.workspace_get("run-1", "draft") == updated
    assert updated.at.utcoffset() is not None and updated.at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


async def test_a_missing_key_is_none(store: Store) -> None:
    assert await store.workspace_get("run-1", "nothing") is None
    assert await store.workspace_items("run-1") == []
    assert await store.workspace_history("run-1", "nothing") == []


async def test_a_conflict_carries_the_actual_version_and_overwrites_nothing(store: Store) -> None:
    await store.workspace_put("run-1", "k", '"one"', expected_version=0, writer="a")
    latest = await store.workspace_put("run-1", "k", '"two"', expected_version=1, writer="b")

    for stale in (0, 1, 5):
        with pytest.raises(WorkspaceConflict) as caught:
            await store.workspace_put("run-1", "k", '"lost"', expected_version=stale, writer="c")
        assert (caught.value.key, caught.value.expected, caught.value.actual) == ("k", stale, 2)

    assert await store.workspace_get("run-1", "k") == latest
    assert [e.value_json for e in await store.workspace_history("run-1", "k")] == ['"one"', '"two"']


async def test_history_keeps_who_wrote_each_version(store: Store) -> None:
    writers = ["researcher", "critic", "user"]
    written = [
        await store.workspace_put("run-1", "notes", f'"{w}"', expected_version=v, writer=w)
        for v, w in enumerate(writers)
    ]

    history = await store.workspace_history("run-1", "notes")

    assert history == written
    assert [(e.version, e.writer) for e in history] == [(1, "researcher"), (2, "critic"), (3, "user")]


async def test_items_are_the_latest_version_of_every_key_sorted_by_key(store: Store) -> None:
    await store.workspace_put("run-1", "b", "1", expected_version=0, writer="w")
    await store.workspace_put("run-1", "a", "1", expected_version=0, writer="w")
    await store.workspace_put("run-1", "b", "2", expected_version=1, writer="w")
    await store.workspace_put("run-2", "c", "1", expected_version=0, writer="w")

    items = await store.workspace_items("run-1")

    assert [(e.key, e.version, e.value_json) for e in items] == [("a", 1, "1"), ("b", 2, "2")]


async def increment(store: Store, times: int, writer: str, start: asyncio.Barrier | None = None) -> int:
    """Read-increment-write ``times`` times, retrying on conflict; returns how many conflicts it met.

    With ``start``, every writer's first read happens before anyone's first write, so they race.
    """
    conflicts = 0
    for _ in range(times):
        while True:
            current = await store.workspace_get("run-1", "counter")
            version, value = (0, 0) if current is None else (current.version, int(current.value_json))
            if start is not None:
                await start.wait()
                start = None
            await asyncio.sleep(0)  # let the other writers in between the read and the write
            try:
                await store.workspace_put("run-1", "counter", str(value + 1), expected_version=version, writer=writer)
                break
            except WorkspaceConflict:
                conflicts += 1
    return conflicts


async def assert_counted(store: Store, total: int) -> None:
    """The counter is ``total`` and its history has one version per increment, without gaps or duplicates."""
    latest = await store.workspace_get("run-1", "counter")
    assert latest is not None and int(latest.value_json) == total
    history = await store.workspace_history("run-1", "counter")
    assert [e.version for e in history] == list(range(1, total + 1))
    assert [int(e.value_json) for e in history] == list(range(1, total + 1))


async def test_compare_and_set_under_concurrent_writers_loses_no_increment(store: Store) -> None:
    start = asyncio.Barrier(20)
    conflicts = await asyncio.gather(*(increment(store, 5, f"writer-{i}", start) for i in range(20)))

    await assert_counted(store, 100)
    assert sum(conflicts) >= 19  # all but one lost the first race


async def test_compare_and_set_across_store_objects(backend: Backend) -> None:
    stores = [backend.store() for _ in range(3)]
    for opened in stores:
        await opened.open()
    try:
        await asyncio.gather(*(increment(stores[i % 3], 4, f"writer-{i}") for i in range(12)))
        await assert_counted(stores[0], 48)
    finally:
        for opened in stores:
            await opened.close()
