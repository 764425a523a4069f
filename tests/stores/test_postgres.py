"""PostgreSQL only: connection failures named without the password, and the ``schema`` option."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import pytest

from cadenza._errors import StoreError
from cadenza.stores import PostgresStore, PutRun
from stores.backends import PG_URL, drop_schema
from stores.rows import run_row

SECRET = "s3cr3t-Pa55"


def with_parts(*, user: str = "postgres", password: str = SECRET, hostport: str = "", database: str = "") -> str:
    """``PG_URL`` with another user, password, host:port or database."""
    scheme, rest = PG_URL.split("://", 1)
    netloc, _, path = rest.partition("/")
    hostport = hostport or netloc.rpartition("@")[2]
    return f"{scheme}://{user}:{password}@{hostport}/{database or path.partition('?')[0]}"


def assert_secret_hidden(error: BaseException) -> None:
    """Neither the error nor anything it was raised from mentions the password."""
    while error is not None:
        assert SECRET not in str(error)
        error = error.__cause__ or error.__context__  # type: ignore[assignment]


async def open_failure(url: str) -> StoreError:
    store = PostgresStore(url, connect_timeout=20)
    assert SECRET not in store.url and SECRET not in repr(store)
    with pytest.raises(StoreError) as caught:
        await store.open()
    assert_secret_hidden(caught.value)
    return caught.value


async def test_an_unreachable_server_is_named() -> None:
    error = await open_failure(with_parts(hostport="127.0.0.1:1", database="test"))

    assert "127.0.0.1:1/test" in str(error)
    assert "unreachable" in str(error)


async def test_an_unknown_database_is_named() -> None:
    error = await open_failure(with_parts(database="cadenza_no_such_database"))

    assert "/cadenza_no_such_database" in str(error)
    assert "does not exist" in str(error)


async def test_an_unknown_user_is_refused_without_showing_the_password() -> None:
    error = await open_failure(with_parts(user="cadenza_no_such_user"))

    assert "cannot connect to PostgreSQL at" in str(error)


def test_the_url_never_holds_the_password() -> None:
    store = PostgresStore(f"postgresql://ana:{SECRET}@db.example:6543/runs?sslmode=disable&password={SECRET}")

    assert store.url == "postgresql://ana@db.example:6543/runs?sslmode=disable"
    assert SECRET not in repr(store)


def test_the_schema_comes_from_the_url_or_the_argument_but_not_two_different_ones() -> None:
    assert PostgresStore("postgresql://h/db?schema=runs").schema == "runs"
    assert PostgresStore("postgresql://h/db", schema="runs").url == "postgresql://h/db?schema=runs"
    assert PostgresStore("postgresql://h/db?schema=runs", schema="runs").schema == "runs"
    with pytest.raises(StoreError, match="two schemas"):
        PostgresStore("postgresql://h/db?schema=a", schema="b")
    with pytest.raises(StoreError, match="plain identifier"):
        PostgresStore("postgresql://h/db", schema='x"; DROP TABLE runs; --')


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """A schema name nothing uses; dropped afterwards."""
    name = f"cadenza_test_{uuid.uuid4().hex[:12]}"
    yield name
    await drop_schema(name)


async def test_the_tables_go_into_the_schema_named_in_the_url(schema: str) -> None:
    separator = "&" if "?" in PG_URL else "?"
    async with PostgresStore(f"{PG_URL}{separator}schema={schema}") as store:
        await store.apply([PutRun(run_row())])

    conn = await asyncpg.connect(PG_URL)
    try:
        tables = {
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
            )
        }
        count = await conn.fetchval(f'SELECT count(*) FROM "{schema}".runs')
    finally:
        await conn.close()
    assert {"cadenza_meta", "runs", "steps", "messages", "workspace", "approvals"} <= tables
    assert count == 1
