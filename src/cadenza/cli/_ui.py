"""``cadenza ui``: the web run viewer over the CLI's store, served by uvicorn until Ctrl-C."""

from __future__ import annotations

import click

__all__ = ("ui_command",)


def ui_command(store_url: str, *, host: str, port: int, token: str | None) -> None:
    """Serve the viewer; refuse to bind beyond this machine without a token (anyone who can reach it could read
    every prompt and output the store holds)."""
    try:
        import uvicorn

        from ..ui import create_app
        from ..ui._access import is_loopback
    except ImportError as exc:
        raise click.ClickException(f"cadenza ui needs the ui extra ({exc.name} is missing): "
                                   "pip install 'cadenza[ui]'") from None
    from ..stores._url import redact

    where = redact(store_url)
    local = is_loopback(host)
    if not local and not token:
        raise click.UsageError(f"--host {host} reaches beyond this machine: give a token with --token or "
                               "CADENZA_UI_TOKEN (every request must then carry it)")
    app = create_app(store_url, where=where, token=token, hosts=None if local else ["*"])
    shown = f"[{host}]" if ":" in host else host
    link = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"cadenza ui: {link}  (runs in {where}; Ctrl-C stops it)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
