"""Where the store tests put their stores: the two real backends, and raw SQL that bypasses the store.

PostgreSQL is the server at ``postgresql://postgres@127.0.0.1:5432/test`` (``CADENZA_TEST_POSTGRES``
overrides it).
"""

from __future__ import annotations

import os
import sqlite3
from abc import ABC, abstractmethod
from contextlib import closing
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

from cadenza.stores import PostgresStore, SQLiteStore, Store
from cadenza.stores._tables import Dialect

PG_URL = os.environ.get("CADENZA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def drop_schema(schema: str) -> None:
    """Drop a test's PostgreSQL schema and everything in it, if it exists."""
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


class Backend(ABC):
    """One place a store lives: new store objects on it, and raw SQL that bypasses the store."""

    dialect: Dialect

    @abstractmethod
    def store(self) -> Store:
        """A new, unopened store object on this location."""

    @abstractmethod
    async def execute(self, sql: str) -> None:
        """Run ``sql`` on a connection of its own, committed."""

    @abstractmethod
    async def scalar(self, sql: str) -> object:
        """The first column of the first row of ``sql``."""


class SQLiteBackend(Backend):
    dialect: Dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def store(self) -> SQLiteStore:
        return SQLiteStore(self.path)

    async def execute(self, sql: str) -> None:
        with closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            conn.execute(sql)

    async def scalar(self, sql: str) -> object:
        with closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            row = conn.execute(sql).fetchone()
        return None if row is None else row[0]


class PostgresBackend(Backend):
    dialect: Dialect = "postgres"

    def __init__(self, schema: str) -> None:
        self.schema = schema

    def store(self) -> PostgresStore:
        return PostgresStore(PG_URL, schema=self.schema)

    async def execute(self, sql: str) -> None:
        conn = await asyncpg.connect(PG_URL, server_settings={"search_path": self.schema})
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def scalar(self, sql: str) -> object:
        conn = await asyncpg.connect(PG_URL, server_settings={"search_path": self.schema})
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()
