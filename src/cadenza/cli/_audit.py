"""``cadenza audit show`` and ``verify``: a run's audit log as a table or JSON, and whether its chain holds.

Verifying is read-only and works from store rows alone, so a run can be audited on any
machine that can reach its store, including while the run is still appending.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from ..security._audit import AuditTrail, AuditVerdict, load_trail, verify
from ._records import open_existing

if TYPE_CHECKING:
    from rich.console import RenderableType

    from ..stores.base import AuditHead, AuditRecord

__all__ = ("audit_json", "audit_show_command", "audit_table", "audit_verify_command")

_DETAIL_CHARS = 80


async def _trail(url: str, run_id: str) -> AuditTrail:
    async with open_existing(url, run_id) as store:
        await store.get_run(run_id)  # RunNotFound for an unknown run, as every command reports it
        return await load_trail(store, run_id)


def audit_json(run_id: str, trail: AuditTrail) -> dict[str, Any]:
    """Every field of every record (details decoded) and the stored head."""
    from ._runs import _row_json

    head: AuditHead | None = trail.head
    return {
        "run_id": run_id,
        "head": None if head is None else {"seq": head.seq, "hash": head.hash},
        "records": [_row_json(r) for r in trail.records],
    }


def audit_table(run_id: str, records: Sequence[AuditRecord]) -> RenderableType:
    """The records for a terminal, one line each, details shortened."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from ..recorded import shorten

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("seq", justify="right", no_wrap=True)
    for name in ("time", "kind", "actor", "subject"):
        table.add_column(name, no_wrap=True)
    table.add_column("detail")
    for r in records:
        local = r.at.astimezone()
        table.add_row(str(r.seq), f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d}", escape(r.kind),
                      f"[cyan]{escape(r.actor)}[/]", escape(r.subject), escape(shorten(r.detail_json, _DETAIL_CHARS)))
    count = len(records)
    return Group(Text(f"audit log of {run_id}: {count} record{'s' * (count != 1)}", style="dim"), table)


def audit_show_command(url: str, run_id: str, *, as_json: bool) -> None:
    """``cadenza audit show``."""
    trail = asyncio.run(_trail(url, run_id))
    if as_json:
        click.echo(json.dumps(audit_json(run_id, trail), indent=2, ensure_ascii=False))
        return
    if not trail.records:
        click.echo(f"run {run_id} has no audit records")
        return
    from rich.console import Console
    from rich.measure import Measurement

    console = Console()
    table = audit_table(run_id, trail.records)
    if not console.is_terminal:  # a pipe or file gets whole lines (for grep), however wide
        needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
        console = Console(width=max(console.width, needed))
    console.print(table)


def audit_verify_command(url: str, run_id: str) -> int:
    """``cadenza audit verify``: prints the verdict; 0 when the chain is intact, 1 when it is not."""
    trail = asyncio.run(_trail(url, run_id))
    verdict: AuditVerdict = verify(trail.records, run_id=run_id, head=trail.head)
    click.echo(verdict.message)
    if verdict.ok:
        if verdict.head is not None:
            click.echo(f"head: seq {verdict.head.seq}, sha256 {verdict.head.hash} "
                       "(keep it elsewhere to detect a rewrite of the whole log later)")
        return 0
    if verdict.seq:
        click.echo(f"records before seq {verdict.seq} are intact; from seq {verdict.seq} on the log cannot be trusted")
    return 1
