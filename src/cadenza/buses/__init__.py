"""Message buses for peer groups: the contract (`Bus`, `Inbox`, `Delivery`) and the in-process bus.

The Redis bus is `cadenza.buses.redis.RedisBus`, imported from there: it needs the ``redis`` extra."""

from __future__ import annotations

from .base import Bus, Delivery, Inbox
from .memory import InProcessBus

__all__ = ("Bus", "Delivery", "InProcessBus", "Inbox")
