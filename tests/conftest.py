"""Fixtures shared by every test module, among them the two real store backends (`backend`, `store`).

Without a PostgreSQL server the PostgreSQL tests fail: they are never skipped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from cadenza._events import Event
from cadenza.stores import Store
from stores.backends import Backend, PostgresBackend, SQLiteBackend, drop_schema

# Property tests check behaviour, never speed: no per-example deadline, which a loaded CI machine would trip.
settings.register_profile("cadenza", deadline=None)
settings.load_profile("cadenza")


@pytest.fixture(scope="session")
def ray_instance() -> Iterator[str]:
    """One local Ray instance for every Ray test of the session, started by the first: its address."""
    import ray

    ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


@pytest.fixture
def events() -> list[Event]:
    """A list that collects a run's events in order (pass ``events.append`` as the sink)."""
    return []


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each backend in turn; a PostgreSQL schema is dropped afterwards."""
    if request.param == "sqlite":
        yield SQLiteBackend(tmp_path / "runs.db")
        return
    schema = f"cadenza_test_{uuid.uuid4().hex[:12]}"
    yield PostgresBackend(schema)
    await drop_schema(schema)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    """An open store on each backend."""
    async with backend.store() as opened:
        yield opened
