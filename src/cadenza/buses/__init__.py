"""Message buses for peer groups: the contract (`Bus`, `Inbox`, `Delivery`), the in-process bus, and `open_bus`,
which makes either bus from a URL (``memory://``, ``redis://...``).

The Redis bus is `cadenza.buses.redis.RedisBus`, imported from there: it needs the ``redis`` extra."""

from __future__ import annotations

from urllib.parse import urlsplit

from .._errors import ConfigError
from .base import Bus, Delivery, Inbox, bus_problem, claim_after_in
from .memory import InProcessBus

__all__ = ("Bus", "Delivery", "InProcessBus", "Inbox", "bus_problem", "open_bus")

def open_bus(url: str, *, claim_after: float = 30.0) -> Bus:
    """The bus ``url`` names: ``memory://`` for one in this process, ``redis://[user:password@]host:port/db`` for
    Redis Streams (the ``redis`` extra). Close it when done (``async with``). A ``claim_after=SECONDS`` query
    parameter sets how long a delivered message may stay unacknowledged before it is delivered again.

    Raises:
        ConfigError: the URL names no bus, or the Redis bus's client is not installed.
    """
    problem = bus_problem(url)
    if problem is not None:
        raise ConfigError(problem)
    url, claim_after = claim_after_in(url, claim_after)
    if urlsplit(url).scheme == "memory":
        return InProcessBus(claim_after=claim_after)
    try:
        from .redis import RedisBus
    except ImportError:
        raise ConfigError("the Redis bus needs the redis client: pip install 'cadenza[redis]'") from None
    return RedisBus(url, claim_after=claim_after)
