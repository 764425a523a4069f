"""What the CLI itself tells a person on stderr (the run's id, how to resume or decide, errors), beside the logs.

Plain lines by default; with ``--log-format json`` each is a JSON object like every log line, so that stderr is
JSON from its first line to its last and a machine reading it needs one parser. A notice is the command's own
output, not a log line: ``--log-level`` does not hide it.
"""

from __future__ import annotations

import logging

import click

__all__ = ("LOGGING", "json_logs", "notice")

LOGGING = "cadenza.logging"
"""Where the root context keeps the logging options (``format``, ``level``, ``otlp``) the command was given."""


def json_logs() -> bool:
    """Whether this command was given ``--log-format json``."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.find_root().meta.get(LOGGING, {}).get("format") == "json"


def notice(message: str, *, level: int = logging.INFO, **fields: object) -> None:
    """``message`` on stderr: a line as it is, or a JSON object (``level``, ``message``, and ``fields`` such as
    ``run_id``) with ``--log-format json``."""
    if not json_logs():
        click.echo(message, err=True)
        return
    from ..observability._logging import JsonFormatter

    record = logging.LogRecord("cadenza.cli", level, "", 0, message, None, None)
    record.__dict__.update(fields)
    click.echo(JsonFormatter().format(record), err=True)
