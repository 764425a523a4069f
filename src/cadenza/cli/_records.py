"""Reading recorded runs for ``cadenza runs``, ``show`` and ``export``.

Reading never creates a store: asking for runs in a SQLite file that does not exist yet
reports no runs (or no such run) instead of leaving an empty database behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._errors import RunNotFound
from ._notices import notice

if TYPE_CHECKING:
    from ..security._audit import AuditTrail
    from ..stores.base import AuditRecord, MessageRow, RunRow, RunSnapshot, Store, WorkspaceEntry

__all__ = ("export_command", "open_existing", "read_run", "runs_command", "show_command")

Workspace = list[tuple["WorkspaceEntry", list["WorkspaceEntry"]]]


def _store(url: str) -> tuple[Store, bool]:
    """The store ``url`` names (not opened yet), and whether it exists: False for a SQLite file not created yet."""
    from ..stores import SQLiteStore, open_store

    store = open_store(url)
    return store, not isinstance(store, SQLiteStore) or str(store.path) == ":memory:" or store.path.exists()


@asynccontextmanager
async def open_existing(url: str, run_id: str) -> AsyncIterator[Store]:
    """The open store at ``url``; `RunNotFound` for ``run_id`` when it is a SQLite file not created yet."""
    store, exists = _store(url)
    if not exists:
        raise RunNotFound(run_id, store.url)
    async with store:
        yield store


async def read_run(url: str, run_id: str) -> RunRow:
    """The run row, for commands that need its workflow file before they open the store for good."""
    async with open_existing(url, run_id) as store:
        return await store.get_run(run_id)


async def _list(url: str, limit: int) -> tuple[str, list[RunRow]]:
    store, exists = _store(url)
    if not exists:
        return store.url, []
    async with store:
        return store.url, await store.list_runs(limit=limit)


def runs_command(url: str, *, limit: int, as_json: bool) -> None:
    """``cadenza runs``: the newest runs as a table, or as a JSON list."""
    from ._runs import runs_json, runs_table

    where, rows = asyncio.run(_list(url, limit))
    if as_json:
        click.echo(json.dumps(runs_json(rows), indent=2, ensure_ascii=False))
    elif not rows:
        click.echo(f"no runs recorded in {where} yet (cadenza run WORKFLOW GOAL records one)")
    else:
        from rich.console import Console
        from rich.measure import Measurement

        console = Console()
        table = runs_table(rows, where=where)
        if not console.is_terminal:  # a pipe or file gets whole lines (for grep), however wide
            needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
            console = Console(width=max(console.width, needed))
        console.print(table)


async def _snapshot(url: str, run_id: str) -> tuple[RunSnapshot, list[AuditRecord], list[MessageRow]]:
    async with open_existing(url, run_id) as store:
        return await store.snapshot(run_id), await store.audit(run_id), await store.messages(run_id)


def show_command(url: str, run_id: str, *, as_json: bool) -> None:
    """``cadenza show``: one run, its plans with each step's outcome, tool calls and peer conversations, and what
    waits for a decision."""
    from ..recorded import show_json
    from ._runs import show_view

    snapshot, audit, messages = asyncio.run(_snapshot(url, run_id))
    if as_json:
        click.echo(json.dumps(show_json(snapshot, audit, messages), indent=2, ensure_ascii=False))
        return
    from rich.console import Console

    Console().print(show_view(snapshot, audit, messages))


async def _everything(url: str, run_id: str) -> tuple[RunSnapshot, list[MessageRow], Workspace, AuditTrail]:
    from ..security._audit import load_trail

    async with open_existing(url, run_id) as store:
        snapshot = await store.snapshot(run_id)
        messages = await store.messages(run_id)
        workspace = [(item, await store.workspace_history(run_id, item.key))
                     for item in await store.workspace_items(run_id)]
        return snapshot, messages, workspace, await load_trail(store, run_id)


def export_command(url: str, run_id: str, *, output: str | None) -> None:
    """``cadenza export``: the whole run as one JSON document, to a file or stdout."""
    from .._messages import utcnow
    from .._version import __version__
    from ._runs import export_json

    snapshot, messages, workspace, trail = asyncio.run(_everything(url, run_id))
    doc: dict[str, Any] = export_json(snapshot, messages, workspace, exported_at=utcnow(), version=__version__,
                                      audit=trail.records, audit_head=trail.head)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        notice(f"error: cannot write {output}: {exc.strerror or exc}", level=logging.ERROR)
        raise click.exceptions.Exit(2) from None
    steps, count = len(snapshot.steps), len(messages)
    click.echo(f"exported run {run_id} to {output}: {steps} step{'s' * (steps != 1)}, "
               f"{count} message{'s' * (count != 1)}", err=True)
