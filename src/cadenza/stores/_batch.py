"""Turning a batch of writes into one ``executemany`` per table: the hot path of `SQLiteStore`.

The orchestrator applies a batch per group of finished steps, so this runs once per step
on average: it touches each write once, and leaves per-row work to C (`attrgetter`).

Rows of one key in a batch are merged first (`merged`): a step started and finished within
one batch is one upsert, not two. On a chain, where every step is its own commit, that
second upsert of a row and its index was a third of the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, TypeVar, cast

from ._tables import TIMESTAMPS, WRITES, Dialect, Table
from .base import Write

_KEYS = {kind: attrgetter(*table.key) for kind, table in WRITES.items() if table.key and table.on_conflict != "append"}
"""The key of each Write type whose rows are merged: an appended row is never merged away, so a duplicate fails."""

__all__ = (
    "Decoder",
    "Encoder",
    "Insert",
    "group",
    "inserts",
    "merged",
    "text_decoder",
    "text_encoder",
    "timestamp_text",
)

R = TypeVar("R")
Encoder = Callable[[Any], Sequence[object]]
"""A row dataclass to the parameters of its insert."""
Decoder = Callable[[Sequence[Any]], R]
"""The values of a selected row to the row dataclass."""


@dataclass(frozen=True, slots=True)
class Insert:
    """The prepared statement of one Write type and how its row becomes parameters."""

    sql: str
    encode: Encoder


def inserts(dialect: Dialect, encoder: Callable[[Table[Any]], Encoder]) -> dict[type[Any], Insert]:
    """The insert of every Write type in ``dialect``."""
    return {kind: Insert(table.insert(dialect), encoder(table)) for kind, table in WRITES.items()}


def group(writes: Sequence[Write], by_kind: Mapping[type[Any], Insert]) -> list[tuple[str, list[Sequence[object]]]]:
    """``(sql, rows)`` per Write type, in order of first appearance; rows keep the batch order.

    Writes of different types touch different tables, so only the order within a type matters
    (messages appended in sequence); rows of one key are `merged`.

    Raises:
        TypeError: an object that is not a Write, or a row field of the wrong type; raised
            before anything is written.
    """
    rows_by_kind: dict[type[Any], list[Any]] = {}
    for write in writes:
        kind = type(write)
        rows = rows_by_kind.get(kind)
        if rows is None:
            if kind not in by_kind:
                raise TypeError(f"apply() takes Write objects (PutRun, PutStep, AddMessage, ...), not {kind.__name__}")
            rows = rows_by_kind[kind] = []
        rows.append(write.row)
    batches: list[tuple[str, list[Sequence[object]]]] = []
    for kind, rows in rows_by_kind.items():
        insert = by_kind[kind]
        try:
            batches.append((insert.sql, list(map(insert.encode, merged(kind, rows)))))
        except (AttributeError, TypeError, ValueError) as exc:
            raise TypeError(f"cannot store a {kind.__name__}: {exc}") from exc
    return batches


def merged(kind: type[Any], rows: list[Any]) -> list[Any]:
    """``rows`` of one Write type with each key once: what writing them one after the other would leave.

    A replaced row gets the last write's values at the first write's position (its ``ord``);
    a kept row (an approval) stays the first write; appended rows all stay (an audit record
    written twice in one batch fails the batch in the database, as it would in two batches).
    """
    key = _KEYS.get(kind)
    if key is None or len(rows) == 1:
        return rows
    by_key: dict[object, Any] = {}
    if WRITES[kind].on_conflict == "keep":
        for row in rows:
            by_key.setdefault(key(row), row)
    else:
        for row in rows:
            by_key[key(row)] = row  # a dict keeps the first insertion's position
    return list(by_key.values())


def timestamp_text(value: datetime) -> str:
    """ISO-8601 in UTC with microseconds: fixed width, so text order is time order.

    A naive datetime is taken as local time, as `datetime.astimezone` (and asyncpg) take it.
    """
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # The same text either way; parsing the keyword costs a third of the call, so only a whole second needs it.
    return value.isoformat() if value.microsecond else value.isoformat(timespec="microseconds")


def text_encoder(table: Table[Any]) -> Encoder:
    """Parameters for SQLite: the fields in order, datetimes as `timestamp_text`."""
    get = attrgetter(*table.written)
    stamps = tuple(i for i, name in enumerate(table.written) if name in TIMESTAMPS)

    def encode(row: object) -> Sequence[object]:
        values = list(get(row))
        for i in stamps:
            if values[i] is not None:
                values[i] = timestamp_text(values[i])
        return values

    return encode if stamps else cast(Encoder, get)


def text_decoder(table: Table[R]) -> Decoder[R]:
    """A row from SQLite values: datetimes parsed back (timezone-aware UTC)."""
    cls = table.row
    stamps = tuple(i for i, name in enumerate(table.columns) if name in TIMESTAMPS)

    def decode(values: Sequence[Any]) -> R:
        if stamps:
            values = list(values)
            for i in stamps:
                if values[i] is not None:
                    values[i] = datetime.fromisoformat(values[i])
        return cls(*values)

    return decode
