"""Schema version 3 (budget reservations): a version-2 store migrates and loses nothing; version 2 stays frozen."""

from __future__ import annotations

import hashlib

import pytest

from cadenza.stores import SCHEMA_VERSION, PutReservation, ReservationRow
from cadenza.stores._schema import migrations
from cadenza.stores._tables import Dialect
from stores.backends import Backend
from stores.test_migration_v2 import as_of_version, everything
from stores.test_schema import VERSION, fill

V2_DDL: dict[Dialect, str] = {
    "sqlite": "0193bbf56173f8bb420f3451f944057ee830cd1b130df37fed06342f751f9f33",
    "postgres": "329da8f454380173ea229a3b2ca681c4e0ee5cab004b06d5e70c05a8e387a040",
}
"""sha256 of the released version-2 statements: a store written by them must keep opening."""


def test_the_released_version_2_statements_never_change() -> None:
    for dialect, expected in V2_DDL.items():
        second = migrations(dialect)[1]
        assert second.version == 2
        assert hashlib.sha256("\n".join(second.statements).encode()).hexdigest() == expected, dialect


def test_this_cadenza_writes_version_3() -> None:
    assert SCHEMA_VERSION == 3
    for dialect in ("sqlite", "postgres"):
        assert migrations(dialect)[2].version == 3
        assert any("CREATE TABLE reservations " in s for s in migrations(dialect)[2].statements)


async def test_a_version_2_store_is_migrated_to_version_3_keeping_everything(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = backend.store()
    with monkeypatch.context() as patch:
        as_of_version(patch, backend, 2)
        async with old:
            await fill(old)
            before = await everything(old)
    assert await backend.scalar(VERSION) == "2"

    async with backend.store() as store:
        assert await everything(store) == before
        assert (await store.snapshot("run-1")).reservations == []
        rows = [ReservationRow("run-1", "rsv_1", "lead/w", 1_200, 0.0125, "open"),
                ReservationRow("run-1", "rsv_2", "lead/w", 900, 0.01, "settled", 412, 0.0041)]
        await store.apply([PutReservation(r) for r in rows])
        await store.apply([PutReservation(ReservationRow("run-1", "rsv_1", "lead/w", 1_200, 0.0125, "settled",
                                                         5_000_000_000, 0.5))])  # settled later; tokens past 2**31

    assert await backend.scalar(VERSION) == "3"
    async with backend.store() as reopened:
        got = (await reopened.snapshot("run-1")).reservations
        assert [(r.reservation_id, r.status, r.tokens, r.usd) for r in got] == [
            ("rsv_1", "settled", 5_000_000_000, 0.5), ("rsv_2", "settled", 412, 0.0041)]


async def test_a_version_3_store_is_refused_by_a_version_2_cadenza(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with backend.store() as store:
        await fill(store)
    as_of_version(monkeypatch, backend, 2)
    with pytest.raises(Exception, match="schema version 3, written by a newer cadenza"):
        await backend.store().open()
    assert await backend.scalar(VERSION) == "3"
