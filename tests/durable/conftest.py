"""Durable runs are tested on both real stores: SQLite in a temporary file and PostgreSQL in a fresh schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cadenza.stores import PostgresStore, SQLiteStore, Store
from stores.backends import PG_URL, drop_schema


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store on each backend; a PostgreSQL schema is dropped afterwards."""
    if request.param == "sqlite":
        async with SQLiteStore(tmp_path / "runs.db") as opened:
            yield opened
        return
    schema = f"cadenza_durable_{uuid.uuid4().hex[:12]}"
    try:
        async with PostgresStore(PG_URL, schema=schema) as opened:
            yield opened
    finally:
        await drop_schema(schema)
