"""The viewer's pages, rendered on the server: plain HTML with the store's text escaped, and a little JavaScript
(``static/live.js``) that swaps in what the server sends as the runs change."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import get_args

from .._status import RunStatus
from ..stores._summary import duration, usage_of
from ..stores.base import RunRow

__all__ = ("RUN_STATUSES", "not_found_page", "page", "runs_page", "runs_rows")

RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
"""The statuses the runs page filters by."""


def runs_rows(runs: Iterable[RunRow]) -> str:
    """The rows of the runs table: one per run, its status a class the stylesheet colours."""
    rows = []
    for run in runs:
        usage = usage_of(run)
        status = escape(run.status)
        rows.append(
            f'<tr class="run" data-run="{escape(run.run_id)}" data-status="{status}">'
            f'<td><a href="/runs/{escape(run.run_id)}"><code>{escape(run.run_id)}</code></a></td>'
            f'<td class="status {status}">{status}</td>'
            f'<td>{escape(run.workflow)}</td>'
            f'<td class="goal" title="{escape(run.goal)}">{escape(_short(run.goal))}</td>'
            f'<td>{run.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")}</td>'
            f'<td class="num">{duration(run.started_at, run.finished_at)}</td>'
            f'<td class="num">{usage.total_tokens:,}</td>'
            f'<td class="num">${usage.cost_usd:.4f}</td></tr>')
    return "\n".join(rows) or '<tr class="empty"><td colspan="8">no runs match</td></tr>'


def page(title: str, main: str, *, where: str = "", live: str | None = None, part: str = "") -> str:
    """A whole page around ``main``: the stylesheet and a header saying where (HTML, escaped by the caller).

    A live page names the URL of its event stream (``live``) and the id of the element the stream fills
    (``part``), and gets the script that swaps it in and the header's note of whether updates flow.
    """
    body = f'<body data-live="{escape(live)}" data-parts="{escape(part)}">' if live else "<body>"
    connection = '<span id="connection" class="connection">connecting</span>' if live else ""
    script = '<script src="/static/live.js"></script>' if live else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/style.css"></head>
{body}
<header><h1><a href="/">cadenza</a></h1><span class="where">{where}</span>
{connection}</header>
{main}
{script}
</body></html>"""


def runs_page(rows: str, *, where: str, workflows: Sequence[str], status: str | None, workflow: str | None,
              live: str) -> str:
    """The runs page: filters, the table, and the URL of its live updates."""
    statuses = "".join(f'<option value="{s}"{" selected" if s == status else ""}>{s}</option>' for s in RUN_STATUSES)
    names = "".join(f'<option value="{escape(w)}"{" selected" if w == workflow else ""}>{escape(w)}</option>'
                    for w in workflows)
    return page("cadenza runs", f"""<form class="filters" method="get" action="/">
<label>status <select name="status"><option value="">any</option>{statuses}</select></label>
<label>workflow <select name="workflow"><option value="">any</option>{names}</select></label>
<button type="submit">filter</button></form>
<table class="runs"><thead><tr><th>id</th><th>status</th><th>workflow</th><th>goal</th><th>started</th>
<th class="num">duration</th><th class="num">tokens</th><th class="num">cost</th></tr></thead>
<tbody id="runs">{rows}</tbody></table>""", where=f"runs in {escape(where)}", live=live, part="runs")


def not_found_page(run_id: str, *, where: str) -> str:
    """What a link to a run the store does not hold shows."""
    return page("cadenza: no such run", f'<p>There is no run <code>{escape(run_id)}</code> in {escape(where)}. '
                                        '<a href="/">All runs</a></p>')


def _short(text: str, limit: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
