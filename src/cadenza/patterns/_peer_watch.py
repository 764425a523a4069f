"""What a peer group watches in its conversation: loops, and who waits on whom when it goes quiet.

Pure bookkeeping over `PeerMessage` values, kept apart from the group that runs the agents so that each
rule can be read (and tested) on its own.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from .._messages import PeerMessage

__all__ = ("LoopWatch", "wait_for_graph")

_SPACE = re.compile(r"\s+")


def _gist(content: str) -> str:
    """What a message says, ignoring case and spacing: the same words are the same message."""
    return _SPACE.sub(" ", content).strip().casefold()


def _quote(content: str, limit: int = 80) -> str:
    flat = _SPACE.sub(" ", content).strip()
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


@dataclass(slots=True)
class LoopWatch:
    """Sees every message before it is sent; says why the conversation is looping, or None.

    Two patterns: the same message (sender, recipient and words) sent more than ``repeats`` times, and two
    agents answering only each other more than ``ping_pong`` times in a row.
    """

    repeats: int
    ping_pong: int
    _seen: dict[tuple[str, str, str], int] = field(default_factory=dict)
    _streak: dict[str, int] = field(default_factory=dict)
    """By message id: how many messages back and forth between the same two agents end with this one."""
    _by_id: dict[str, PeerMessage] = field(default_factory=dict)

    def check(self, message: PeerMessage) -> str | None:
        """Count ``message``; the diagnosis if sending it would make a loop."""
        key = (message.sender, message.recipient, _gist(message.content))
        sent = self._seen[key] = self._seen.get(key, 0) + 1
        if sent > self.repeats:
            return (f"{message.sender} and {message.recipient} repeat themselves: {message.sender} → "
                    f"{message.recipient} {_quote(message.content)} would be sent for the {_ordinal(sent)} time")
        parent = self._by_id.get(message.in_reply_to or "")
        answers_the_other = parent is not None and (parent.sender, parent.recipient) == (message.recipient,
                                                                                        message.sender)
        streak = self._streak[message.message_id] = (self._streak[parent.message_id] + 1
                                                     if parent is not None and answers_the_other else 1)
        self._by_id[message.message_id] = message
        if streak > self.ping_pong:
            return (f"{message.sender} and {message.recipient} went back and forth {streak} times with nobody else; "
                    f"the last: {message.sender} → {message.recipient} {_quote(message.content)}")
        return None

    def remember(self, message: PeerMessage) -> None:
        """Know ``message`` (the opening one, or one sent before a resume) without counting it as a repeat."""
        self._by_id[message.message_id] = message
        self._streak.setdefault(message.message_id, 1)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def wait_for_graph(members: list[str], transcript: list[PeerMessage], answered: Collection[str] = ()) -> str:
    """Who was waiting on whom when every agent went idle with nothing in flight: from each agent's last message
    sent and last message handled, and whether it gave its final answer (``answered``)."""
    last_sent: dict[str, PeerMessage] = {}
    last_received: dict[str, PeerMessage] = {}
    for message in transcript:
        last_sent[message.sender] = message
        last_received[message.recipient] = message
    parts = []
    for name in members:
        sent, received = last_sent.get(name), last_received.get(name)
        if received is not None and (sent is None or sent.round <= received.round):
            did = "gave its final answer" if name in answered else "sent nothing"
            parts.append(f"{name} handled {received.sender}'s message of round {received.round} and {did}")
        elif sent is not None:
            parts.append(f"{name} waits for {sent.recipient}, who has its message of round {sent.round}")
        else:
            parts.append(f"{name} was never messaged and sent nothing")
    return "; ".join(parts)
