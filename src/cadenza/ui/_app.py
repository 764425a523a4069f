"""The viewer's routes: the runs page and each run's page, their live updates and their JSON, over one store opened
for the app's life.

Live updates are server-sent events. The store may be written by other processes (a ``cadenza run`` beside the
viewer, workers sharing a PostgreSQL store), which notify nobody, so each open page's stream reads the store every
`POLL` seconds and sends the part of the page that changed, and nothing when nothing did (a comment every
`KEEPALIVE` seconds keeps proxies from closing it).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .._errors import RunNotFound
from ..recorded import show_json
from ..stores import Store, open_store
from ..stores._summary import run_summary
from ..stores.base import RunRow
from ._access import TokenGate
from ._pages import RUN_STATUSES, not_found_page, runs_page, runs_rows
from ._run_page import read_run, run_body, run_page

__all__ = ("KEEPALIVE", "POLL", "create_app")

POLL = 0.5
"""Seconds between two reads of the store by a live page."""
KEEPALIVE = 15.0
"""Seconds of silence after which a live page's stream gets a comment."""
LISTED = 500
"""The most runs a page lists (the newest)."""

_STATIC = Path(__file__).with_name("static")


def create_app(store: str | os.PathLike[str], *, where: str, token: str | None = None,
               hosts: Sequence[str] | None = None) -> Starlette:
    """The viewer over the store at ``store`` (a URL or SQLite path), which it opens at start-up and closes at the end.

    Args:
        where: how the store is named on the pages (a URL with its password left out).
        token: every request must carry it (`_access.TokenGate`); None when bound to this machine only.
        hosts: the host names requests may name (loopback names by default); ``["*"]`` for any.
    """
    opened: dict[str, Store] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_store(store) as found:
            opened["store"] = found
            yield

    async def runs(request: Request) -> Response:
        status, workflow = _filters(request)
        listed = await _listed(opened["store"])
        live = "/live/runs" + (f"?{request.url.query}" if request.url.query else "")
        page = runs_page(runs_rows(_matching(listed, status, workflow)), where=where, status=status,
                         workflow=workflow, workflows=sorted({run.workflow for run in listed}), live=live)
        return HTMLResponse(page)

    async def runs_json(request: Request) -> Response:
        status, workflow = _filters(request)
        return JSONResponse([run_summary(run) for run in _matching(await _listed(opened["store"]), status, workflow)])

    async def live_runs(request: Request) -> Response:
        status, workflow = _filters(request)
        rows = (runs_rows(_matching(listed, status, workflow)) async for listed in _polled(opened["store"]))
        return StreamingResponse(_events("runs", rows), media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    async def run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            body = run_body(await read_run(opened["store"], run_id))
        except RunNotFound:
            return HTMLResponse(not_found_page(run_id, where=where), status_code=404)
        return HTMLResponse(run_page(body, run_id=run_id, where=where, live=f"/live/runs/{run_id}"))

    async def run_json(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            found = await read_run(opened["store"], run_id)
        except RunNotFound:
            return JSONResponse({"error": f"no run {run_id} in {where}"}, status_code=404)
        return JSONResponse(show_json(found.snapshot, found.trail.records, found.messages))

    async def live_run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            await opened["store"].get_run(run_id)
        except RunNotFound:
            return JSONResponse({"error": f"no run {run_id} in {where}"}, status_code=404)
        bodies = (run_body(await read_run(opened["store"], run_id)) async for _ in _ticks())
        return StreamingResponse(_events("run", bodies), media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts or ("127.0.0.1", "localhost", "::1")))]
    if token is not None:
        middleware.append(Middleware(TokenGate, token=token))
    return Starlette(routes=[
        Route("/", runs), Route("/api/runs", runs_json), Route("/live/runs", live_runs),
        Route("/runs/{run_id}", run), Route("/api/runs/{run_id}", run_json), Route("/live/runs/{run_id}", live_run),
        Mount("/static", StaticFiles(directory=_STATIC), name="static"),
    ], middleware=middleware, lifespan=lifespan)


def _filters(request: Request) -> tuple[str | None, str | None]:
    status = request.query_params.get("status") or None
    workflow = request.query_params.get("workflow") or None
    return (status if status in RUN_STATUSES else None), workflow


def _matching(runs: Sequence[RunRow], status: str | None, workflow: str | None) -> list[RunRow]:
    return [run for run in runs
            if (status is None or run.status == status) and (workflow is None or run.workflow == workflow)]


async def _listed(store: Store) -> list[RunRow]:
    return await store.list_runs(limit=LISTED)


async def _polled(store: Store) -> AsyncIterator[list[RunRow]]:
    """The store's runs, read every `POLL` seconds for as long as the page listens."""
    async for _ in _ticks():
        yield await _listed(store)


async def _ticks() -> AsyncIterator[None]:
    """Now, then every `POLL` seconds, for as long as a page listens."""
    while True:
        yield None
        await asyncio.sleep(POLL)


async def _events(name: str, parts: AsyncIterator[str]) -> AsyncIterator[str]:
    """Server-sent events named ``name``: each part of the page that differs from the last sent, as a JSON string."""
    last: str | None = None
    quiet = 0.0
    async for part in parts:
        if part != last:
            last, quiet = part, 0.0
            yield f"event: {name}\ndata: {json.dumps(part)}\n\n"
        else:
            quiet += POLL
            if quiet >= KEEPALIVE:
                quiet = 0.0
                yield ": still here\n\n"
