"""The one sync shim: run a coroutine from code that is not async."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from ._errors import ConfigError

__all__ = ("run_sync",)

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh event loop.

    Raises:
        ConfigError: when called from inside a running event loop (use ``await`` there).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise ConfigError("run_sync() was called inside a running event loop; use 'await ...run(...)' instead")
