"""The bus contract: how the agents of a peer group reach each other's inboxes.

A peer group's messages travel over a bus rather than through the engine's call stack, so that the
agents of one group can live in different processes (the Redis bus) as well as in one (`InProcessBus`).
Both pass one conformance suite (``tests/buses``). The bus carries text it never reads (a signed
envelope, as JSON); what a message means is the peer group's business.

Delivery is at least once. Each agent of a group has an inbox; a message published to it is
delivered to one consumer at a time, in publish order, and stays *pending* until that consumer
acknowledges it. A message left pending for ``claim_after`` seconds is taken to belong to a consumer
that died, and is delivered again, to whichever consumer of the inbox asks next. Exactly once in
effect is the peer group's part: it records a message as handled before it acknowledges it, and
acknowledges a redelivered message it finds recorded without handling it again.

A consumer publishes the replies a message caused before it acknowledges that message. Then
`Bus.unacknowledged` stays above zero for as long as any message of the group is in flight, which
is how a peer group tells a deadlock (every agent idle, nothing in flight) from a pause.

A bus also keeps a roll of the workers that serve a *service* (``cadenza peer serve`` serving the members of
a peer group): each worker renews its entry more often than its ``ttl``, so an entry that was not renewed
belongs to a worker that stopped or died, and drops off the roll by itself.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._errors import BusError, ConfigError
from .._ids import ScopePath

__all__ = ("Bus", "Delivery", "Inbox", "bus_problem", "check_body", "check_claim_after", "claim_after_in", "check_ttl", "check_wait",
           "redact")


@dataclass(frozen=True, slots=True)
class Inbox:
    """One agent's inbox in one peer group of one run."""

    run_id: str
    group: ScopePath
    """The path of the peer group in its run."""
    agent: str

    def __str__(self) -> str:
        return f"{self.run_id}/{self.group}:{self.agent}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message handed to a consumer: acknowledge it (`Bus.ack`) once its effects are recorded."""

    inbox: Inbox
    entry_id: str
    """The bus's id of the message in its inbox; ids grow in publish order."""
    body: str
    attempt: int
    """1 the first time the message is delivered; more each time it is delivered again unacknowledged."""


class Bus(ABC):
    """Inboxes for the agents of peer groups. Use it on one event loop at a time; close it when done.

    Every method raises `BusError` when the bus is closed or cannot be reached, and for input it
    cannot take (an empty body, a negative wait). A message it accepted is not lost by a failed call.
    """

    url: str
    """Where the bus is, with any password removed: safe to print."""

    claim_after: float
    """Seconds a delivered message may stay unacknowledged before it is delivered again."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @abstractmethod
    async def publish(self, inbox: Inbox, body: str) -> str:
        """Append ``body`` to ``inbox``; its entry id. Durable (as the bus is) when this returns."""

    @abstractmethod
    async def receive(self, inbox: Inbox, *, consumer: str, wait: float) -> Delivery | None:
        """The next message of ``inbox`` for ``consumer``: first one whose consumer held it unacknowledged past
        ``claim_after``, else the oldest not yet delivered. Waits up to ``wait`` seconds for one; None if none came."""

    @abstractmethod
    async def ack(self, delivery: Delivery) -> bool:
        """Done with ``delivery``: it is never delivered again. False when it was acknowledged already (a consumer
        taken for dead acknowledging late), which is harmless."""

    @abstractmethod
    async def unacknowledged(self, run_id: str, group: ScopePath) -> int:
        """How many messages published to the group's inboxes are not acknowledged yet (delivered or not)."""

    @abstractmethod
    async def enrol(self, service: str, worker: str, ttl: float) -> None:
        """Put ``worker`` on the roll of ``service`` for the next ``ttl`` seconds (again: renew it)."""

    @abstractmethod
    async def roll(self, service: str) -> list[str]:
        """The workers on the roll of ``service`` whose entry has not run out, sorted."""

    @abstractmethod
    async def unenrol(self, service: str, worker: str) -> None:
        """Take ``worker`` off the roll of ``service`` (a worker that stops); harmless when it is not on it."""

    @abstractmethod
    async def discard(self, run_id: str, group: ScopePath) -> None:
        """Forget the group's inboxes and everything in them: the group has ended."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release the bus; waiting receivers raise `BusError`. Closing twice is harmless."""


def check_claim_after(claim_after: float) -> float:
    """``claim_after``, refused with `ConfigError` unless it is a positive number of seconds."""
    if not claim_after > 0:
        raise ConfigError(f"a bus's claim_after must be a positive number of seconds, not {claim_after!r}")
    return claim_after


def check_ttl(service: str, ttl: float) -> None:
    """Refuse with `BusError` an entry on a roll that would run out at once (or never: NaN)."""
    if not ttl > 0:
        raise BusError(f"a worker enrolled for {service!r} needs a positive ttl in seconds, not {ttl!r}")


def check_body(inbox: Inbox, body: str) -> None:
    """Refuse with `BusError` what no bus publishes: anything but non-empty text."""
    if not isinstance(body, str) or not body:
        raise BusError(f"a message published to {inbox} must be non-empty text, not {body!r}")


def check_wait(inbox: Inbox, wait: float) -> None:
    """Refuse with `BusError` a receive that would wait a negative (or no) number of seconds."""
    if not wait >= 0:
        raise BusError(f"a receive from {inbox} may wait zero seconds or more, not {wait!r}")


def bus_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a bus's URL (``memory://``, ``redis[s]://[user:password@]host[:port][/db]``, either
    with an optional ``?claim_after=SECONDS``), or
    None: checked where a URL is given (a workflow file's ``bus:``, ``--bus``, a bus made from it). The password is
    never repeated."""
    parts = urlsplit(url)
    shown = redact(url)
    try:
        claim_after_in(url, 1.0)
    except ConfigError as exc:
        return str(exc)
    if parts.scheme == "memory":
        return None
    if parts.scheme not in ("redis", "rediss"):
        return f"a bus URL starts with memory:// or redis:// (or rediss://), not {shown!r}"
    try:
        parts.port  # noqa: B018 - parsed here, so a bad port is this error rather than a crash later
    except ValueError:
        return f"a Redis bus URL needs a port from 1 to 65535, not the one in {shown!r}"
    db = parts.path.strip("/")
    if not parts.hostname or not (db == "" or db.isdigit()):
        return f"a Redis bus URL is redis://host[:port][/db] with a host and a numbered db, not {shown!r}"
    return None


def claim_after_in(url: str, default: float) -> tuple[str, float]:
    """``url`` without its ``claim_after`` query parameter, and the seconds that parameter says (else ``default``).

    Raises:
        ConfigError: it says something other than a positive number of seconds.
    """
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    said = [value for name, value in pairs if name == "claim_after"]
    if not said:
        return url, default
    try:
        seconds = float(said[-1])
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise ConfigError(f"a bus URL's claim_after is a positive number of seconds, not {said[-1]!r} "
                          f"(in {redact(url)!r})")
    rest = urlencode([(name, value) for name, value in pairs if name != "claim_after"])
    return urlunsplit(parts._replace(query=rest)), seconds


def redact(url: str) -> str:
    """``url`` with its password, if it has one, shown as ``***``: safe to print."""
    return re.sub(r"^([^:/]+://[^:/@]*:)[^@/]*@", r"\1***@", url)
