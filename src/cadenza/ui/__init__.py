"""The web run viewer (``cadenza ui``, the ``ui`` extra): every run of a store, live, in a browser.

A Starlette app over the same store the CLI writes; it opens nothing on the network but the address it is bound to,
and ships every asset it serves. `create_app` builds it; ``cadenza ui`` serves it with uvicorn.
"""

from __future__ import annotations

from ._app import create_app

__all__ = ("create_app",)
