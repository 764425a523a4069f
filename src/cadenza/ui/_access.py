"""Who may use the viewer: a token when it is bound beyond this machine, and only the host names it is served as.

Bound to a loopback address (the default), it answers only requests that name a loopback host (a page on another
site cannot reach it through a DNS name that resolves to 127.0.0.1). Bound elsewhere, every request needs the
token: as ``Authorization: Bearer TOKEN``, or once as ``?token=TOKEN`` in the link ``cadenza ui`` prints, which
sets a cookie (HttpOnly, SameSite=Strict) and redirects to the same page without it.

A request that changes something (an approval, a resume) must come from the viewer's own pages: `SameOrigin`
refuses one whose ``Origin`` is another site's, so a page elsewhere cannot post a decision with the reader's cookie.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ("COOKIE", "SameOrigin", "TokenGate", "is_loopback")

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

COOKIE = "cadenza_ui_token"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class TokenGate:
    """Refuses every request that does not carry ``token`` (401), and trades a ``?token=`` link for a cookie."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        answer = self._answer(request)
        if answer is None:
            await self.app(scope, receive, send)
        else:
            await answer(scope, receive, send)

    def _answer(self, request: Request) -> Response | None:
        given = request.query_params.get("token")
        if given is not None:
            if not self._matches(given):
                return _refused()
            clean = request.url.remove_query_params("token")
            redirect = RedirectResponse(str(clean.path) + (f"?{clean.query}" if clean.query else ""), status_code=303)
            redirect.set_cookie(COOKIE, given, httponly=True, samesite="strict")
            return redirect
        bearer = request.headers.get("authorization", "")
        offered = bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else request.cookies.get(COOKIE)
        return None if offered is not None and self._matches(offered) else _refused()

    def _matches(self, offered: str) -> bool:
        return hmac.compare_digest(offered.encode(), self.token)


def _refused() -> Response:
    return PlainTextResponse("cadenza ui: this viewer needs its token. Open the link `cadenza ui` printed "
                             "(it ends in ?token=...), or send Authorization: Bearer TOKEN.", status_code=401)



class SameOrigin:
    """Refuses (403) a request that changes something unless it comes from the viewer's own pages.

    It passes when its ``Origin`` is the viewer's own (scheme, host and port, as the request names them), or, with
    no ``Origin``, when the browser says it is ``Sec-Fetch-Site: same-origin``. A program that is no browser sends
    ``Authorization: Bearer TOKEN`` (which no page on another site can add) or its own ``Origin``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE or _from_here(Request(scope)):
            await self.app(scope, receive, send)
            return
        refused = PlainTextResponse("cadenza ui: refused a request from another site: decisions and resumes are "
                                    "made from the viewer's own pages", status_code=403)
        await refused(scope, receive, send)


def _from_here(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is not None:
        return origin == f"{request.url.scheme}://{request.url.netloc}"
    if request.headers.get("sec-fetch-site") == "same-origin":
        return True
    return request.headers.get("authorization", "").startswith("Bearer ")
