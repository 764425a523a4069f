"""A whole batch of writes as one PostgreSQL statement: one round trip, one commit.

Over the network each statement costs a round trip, so BEGIN, one ``executemany`` per table
and COMMIT would cost four for a typical step (a step and its two messages). Instead each
table's rows travel as column arrays and are inserted with ``unnest(...) WITH ORDINALITY``,
one data-modifying CTE per table, in a single autocommitted statement, which is atomic.

One statement cannot upsert the same key twice, so rows of one key are merged first, as
`SQLiteStore` merges them too (`merged`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from operator import attrgetter
from typing import Any

from ._batch import merged
from ._tables import TIMESTAMPS, WRITES, Table
from .base import Write

__all__ = ("batch",)

_RANK = {kind: rank for rank, kind in enumerate(WRITES)}
_TYPES = {"attempts": "integer", "version": "integer", "seq": "integer", "worst_tokens": "bigint", "tokens": "bigint",
          "worst_usd": "double precision", "usd": "double precision"}
"""Columns that are not text (nor timestamps), by name: each table's arrays are sent typed."""
_FIELDS = {kind: attrgetter(*table.written) for kind, table in WRITES.items()}


def batch(writes: Sequence[Write]) -> tuple[str, list[Sequence[object]]] | None:
    """The statement and its arguments (one array per column) for ``writes``; None for no writes.

    Raises:
        TypeError: an object that is not a Write.
    """
    rows_by_kind: dict[type[Any], list[Any]] = {}
    for write in writes:
        kind = type(write)
        rows = rows_by_kind.get(kind)
        if rows is None:
            if kind not in _RANK:
                raise TypeError(f"apply() takes Write objects (PutRun, PutStep, AddMessage, ...), not {kind.__name__}")
            rows = rows_by_kind[kind] = []
        rows.append(write.row)
    if not rows_by_kind:
        return None
    kinds = tuple(sorted(rows_by_kind, key=_RANK.__getitem__))
    args: list[Sequence[object]] = []
    for kind in kinds:
        rows = merged(kind, rows_by_kind[kind])
        args.extend(zip(*map(_FIELDS[kind], rows), strict=True))
    return _statement(kinds), args


@lru_cache(maxsize=256)
def _statement(kinds: tuple[type[Any], ...]) -> str:
    inserts, first = [], 1
    for kind in kinds:
        table = WRITES[kind]
        inserts.append(_unnest_insert(table, first))
        first += len(table.written)
    if len(inserts) == 1:
        return inserts[0]
    return "WITH " + ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(inserts)) + " SELECT 1"


def _unnest_insert(table: Table[Any], first: int) -> str:
    names = ", ".join(table.written)
    arrays = ", ".join(f"${first + i}::{_sql_type(name)}[]" for i, name in enumerate(table.written))
    return (
        f"INSERT INTO {table.name} ({names}) SELECT {names} "
        f"FROM unnest({arrays}) WITH ORDINALITY AS u({names}, position) ORDER BY position{table.upsert()}"
    )


def _sql_type(column: str) -> str:
    if column in TIMESTAMPS:
        return "timestamptz"
    return _TYPES.get(column, "text")
