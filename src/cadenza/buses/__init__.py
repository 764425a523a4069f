"""Message buses for peer groups: the contract (`Bus`, `Inbox`, `Delivery`), the in-process bus, and `open_bus`,
which makes either bus from a URL (``memory://``, ``redis://...``).

The Redis bus is `cadenza.buses.redis.RedisBus`, imported from there: it needs the ``redis`` extra."""

from __future__ import annotations

from urllib.parse import urlsplit

from .._errors import ConfigError
from .base import Bus, Delivery, Inbox
from .memory import InProcessBus

__all__ = ("Bus", "Delivery", "InProcessBus", "Inbox", "bus_problem", "open_bus")

_SCHEMES = ("memory", "redis", "rediss")


def bus_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a bus's URL, or None: the check a workflow file's ``bus:`` gets when loaded."""
    scheme = urlsplit(url).scheme
    if scheme not in _SCHEMES:
        return f"a bus URL starts with memory:// or redis:// (or rediss://), not {url.split('@')[-1]!r}"
    return None


def open_bus(url: str, *, claim_after: float = 30.0) -> Bus:
    """The bus ``url`` names: ``memory://`` for one in this process, ``redis://[user:password@]host:port/db`` for
    Redis Streams (the ``redis`` extra). Close it when done (``async with``).

    Raises:
        ConfigError: the URL names no bus, or the Redis bus's client is not installed.
    """
    problem = bus_problem(url)
    if problem is not None:
        raise ConfigError(problem)
    if urlsplit(url).scheme == "memory":
        return InProcessBus(claim_after=claim_after)
    try:
        from .redis import RedisBus
    except ImportError:
        raise ConfigError("the Redis bus needs the redis client: pip install 'cadenza[redis]'") from None
    return RedisBus(url, claim_after=claim_after)
