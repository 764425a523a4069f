"""What crosses the bus between a peer group's conversation and the workers that serve its members.

A conversation runs in the process of its run (the *owner*: it records, counts, stops, and holds the
run's keyring). A member may take its turns in another process, a worker started with ``cadenza peer
serve``, which enrols on the bus's roll for that member (`rolls_of`) and renews its entry while it
lives. The owner sends each member with a worker on the roll to one of them, and the worker reads that
member's inbox itself: a message it was delivered stays pending on the bus until its turn is recorded, so
a worker that dies mid-turn has the message delivered again.

Everything else travels as JSON messages on two kinds of inbox (the same publish, receive and ack as
the members' own), so it works on every bus:

    owner -> worker (the worker's inbox)    {"op": "join", "run", "scope", "agent", "owner"}   take this member's
                                                 turns; "owner" names the process holding the conversation (its
                                                 entry on `owner_roll`, renewed while it lives)
                                             {"op": "leave", "run", "scope"}          the conversation ended
                                             {"op": "answer", "id", "value" | "error"}
    worker -> owner (the conversation's)    {"op": "turn", "id", "worker", "agent", "entry", "body", "attempt"}
                                                 a delivery to take a turn on; answered with the turn (its Task,
                                                 StepContext and the member's own key) or None (nothing to do)
                                             {"op": "ask", "id", "turn", "method", "args"}   a port request
                                             {"op": "tell", "turn", "method", "args"}       a port call, no answer
                                             {"op": "done", "id", "turn", "envelope" | "result" | "error"}
                                                 answered once the turn is recorded and its message acknowledged
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._ids import ScopePath
from ..buses.base import Inbox
from ..engine._fingerprint import describe, digest

if TYPE_CHECKING:
    from .._worker import Worker
    from ..buses.base import Bus

__all__ = ("RENEW", "TTL", "new_worker_id", "owner_inbox", "owner_roll", "parse", "rolls_of", "send", "wire_group",
           "worker_inbox")

TTL = 5.0
"""Seconds a worker's entry on the roll lasts unless renewed: how long a dead worker is taken for alive."""
RENEW = 1.0
"""Seconds between a worker's renewals of its entry."""


def rolls_of(group: Worker, agents: Iterable[str]) -> dict[str, str]:
    """The roll of the workers serving each of ``agents`` of ``group``: named by the group, the agent and the group's
    fingerprint (worked out once for them all), so a worker started from another version of the workflow is never
    sent a turn."""
    fingerprint = digest(describe(group))[:16]
    return {agent: f"{group.name}.{agent}.{fingerprint}" for agent in agents}


def owner_roll(run_id: str, scope: ScopePath) -> str:
    """The roll the process holding the conversation at ``scope`` stays on while it lives: a worker waiting for it
    gives up once it is off (killed), and a resumed run's conversation enrols anew."""
    return f"conversation.{run_id}.{scope}"


def wire_group(scope: ScopePath) -> ScopePath:
    """Where a conversation's own inbox lives: beside its members' (never counted with them, as `unacknowledged`
    counts what the members have in flight), and discarded with them."""
    return ScopePath(f"{scope}/@wire")


def owner_inbox(run_id: str, scope: ScopePath) -> Inbox:
    """The inbox of the conversation at ``scope``: what its workers send it."""
    return Inbox(run_id, wire_group(scope), "owner")


def worker_inbox(worker: str) -> Inbox:
    """A worker's own inbox: what the conversations it serves send it."""
    return Inbox("serve", ScopePath(f"@worker/{worker}"), "in")


def new_worker_id() -> str:
    """A name for a worker process that no other takes: its host, its pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


async def send(bus: Bus, inbox: Inbox, message: dict[str, Any]) -> None:
    await bus.publish(inbox, json.dumps(message, separators=(",", ":"), ensure_ascii=False))


def parse(body: str) -> dict[str, Any]:
    """The message in ``body``; an empty one for what is not a JSON object (dropped by whoever reads it)."""
    try:
        found = json.loads(body)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
