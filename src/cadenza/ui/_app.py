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
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .._errors import RunNotFound
from ..recorded import show_json
from ..stores import Store, open_store
from ..stores._summary import run_summary
from ..stores.base import RunRow
from ._access import SameOrigin, TokenGate
from ._actions import DecisionRefused, Resumes, decide
from ._pages import RUN_STATUSES, not_found_page, runs_page, runs_rows
from ._run_page import StoredRun, read_run, refusal_page, run_body, run_page

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
    pages = _Pages(store, where)
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts or ("127.0.0.1", "localhost", "::1")))]
    if token is not None:
        middleware.append(Middleware(TokenGate, token=token))
    middleware.append(Middleware(SameOrigin))
    return Starlette(routes=[
        Route("/", pages.runs), Route("/api/runs", pages.runs_json), Route("/live/runs", pages.live_runs),
        Route("/runs/{run_id}", pages.run), Route("/api/runs/{run_id}", pages.run_json),
        Route("/live/runs/{run_id}", pages.live_run),
        Route("/runs/{run_id}/approvals/{approval_id}", pages.decide, methods=["POST"]),
        Route("/runs/{run_id}/resume", pages.resume, methods=["POST"]),
        Mount("/static", StaticFiles(directory=_STATIC), name="static"),
    ], middleware=middleware, lifespan=pages.lifespan)


class _Pages:
    """The viewer's handlers, over the store it opened for its life and the resumes it started."""

    def __init__(self, store: str | os.PathLike[str], where: str) -> None:
        self._url = store
        self._where = where
        self._opened: Store | None = None
        self._resumes = Resumes(os.fspath(store))

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with open_store(self._url) as opened:
            self._opened = opened
            try:
                yield
            finally:
                await self._resumes.close()

    @property
    def store(self) -> Store:
        if self._opened is None:
            raise RuntimeError("the viewer's store is opened by its lifespan")
        return self._opened

    async def runs(self, request: Request) -> Response:
        status, workflow = _filters(request)
        listed = await _listed(self.store)
        live = "/live/runs" + (f"?{request.url.query}" if request.url.query else "")
        page = runs_page(runs_rows(_matching(listed, status, workflow)), where=self._where, status=status,
                         workflow=workflow, workflows=sorted({run.workflow for run in listed}), live=live)
        return HTMLResponse(page)

    async def runs_json(self, request: Request) -> Response:
        status, workflow = _filters(request)
        return JSONResponse([run_summary(run) for run in _matching(await _listed(self.store), status, workflow)])

    async def live_runs(self, request: Request) -> Response:
        status, workflow = _filters(request)
        rows = (runs_rows(_matching(listed, status, workflow)) async for listed in _polled(self.store))
        return _streamed("runs", rows)

    async def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            body = await self._body(run_id)
        except RunNotFound:
            return self._not_found(run_id)
        return HTMLResponse(run_page(body, run_id=run_id, where=self._where, live=f"/live/runs/{run_id}"))

    async def run_json(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            found = await read_run(self.store, run_id)
        except RunNotFound:
            return JSONResponse({"error": f"no run {run_id} in {self._where}"}, status_code=404)
        return JSONResponse(show_json(found.snapshot, found.trail.records, found.messages))

    async def live_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            await self.store.get_run(run_id)
        except RunNotFound:
            return JSONResponse({"error": f"no run {run_id} in {self._where}"}, status_code=404)
        return _streamed("run", self._bodies(run_id))

    async def decide(self, request: Request) -> Response:
        """Approve or reject what a step waits for (the form's ``decision``, ``digest`` and ``note``), then resume
        the run if the form asks."""
        run_id, approval_id = request.path_params["run_id"], request.path_params["approval_id"]
        form = await _form(request)
        if form is None or form.get("decision") not in ("approve", "reject"):
            return HTMLResponse(refusal_page(run_id, "a decision is a form that says approve or reject"), 400)
        try:
            decided = await decide(self.store, run_id, approval_id, digest=form.get("digest", ""),
                                   approved=form["decision"] == "approve", note=form.get("note", "").strip())
        except RunNotFound:
            return self._not_found(run_id)
        except DecisionRefused as exc:
            return HTMLResponse(refusal_page(run_id, str(exc)), status_code=409)
        if form.get("resume"):
            try:
                await self._resumes.start(await self.store.get_run(run_id))
            except DecisionRefused as exc:
                return HTMLResponse(refusal_page(run_id, f"{decided.status}, but not resumed: {exc}"), 409)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    async def resume(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            await self._resumes.start(await self.store.get_run(run_id))
        except RunNotFound:
            return self._not_found(run_id)
        except DecisionRefused as exc:
            return HTMLResponse(refusal_page(run_id, str(exc)), status_code=409)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    async def _bodies(self, run_id: str) -> AsyncIterator[str]:
        """The run's page body every `POLL` seconds, drawn again only when what it shows changed (a page of a
        thousand steps takes tens of milliseconds to draw, and most polls find nothing new)."""
        shown: tuple[StoredRun, str | None] | None = None
        body = ""
        async for _ in _ticks():
            now = (await read_run(self.store, run_id), self._resumes.about(run_id))
            if now != shown:
                shown, body = now, run_body(now[0], resumed=now[1])
            yield body

    async def _body(self, run_id: str) -> str:
        return run_body(await read_run(self.store, run_id), resumed=self._resumes.about(run_id))

    def _not_found(self, run_id: str) -> Response:
        return HTMLResponse(not_found_page(run_id, where=self._where), status_code=404)


def _streamed(name: str, parts: AsyncIterator[str]) -> Response:
    return StreamingResponse(_events(name, parts), media_type="text/event-stream", headers={"cache-control": "no-store"})


async def _form(request: Request) -> dict[str, str] | None:
    """A posted form's fields (the last value of each), or None when the body is not a URL-encoded form."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    fields = parse_qsl((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True)
    return dict(fields)


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
