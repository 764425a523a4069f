"""Peer groups' conversations, read back from a run's stored message rows.

Each message carries whether it was handled and by whom, so a stopped or killed conversation shows what was
still waiting, and each final answer is shown where it was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import StoreError
from .._ids import ScopePath
from ..engine._journal import PeerRecord, Prior

if TYPE_CHECKING:
    from ..stores.base import MessageRow

__all__ = ("conversation_json", "conversations", "not_handled", "rounds")


def conversations(rows: Sequence[MessageRow]) -> dict[ScopePath, PeerRecord]:
    """Every peer group's conversation among a run's message rows, by the group's path, in the order they began."""
    prior = Prior()
    try:
        prior.read_messages(rows)
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"a peer message of the run cannot be read ({type(exc).__name__}); the store may be damaged"
                         ) from None
    return prior.conversations


def conversation_json(scope: ScopePath, record: PeerRecord) -> dict[str, Any]:
    """One conversation as data: each message with who handled it and the final answer given then, in order."""
    messages = []
    for said in record.said:
        handled = record.handled.get(said.message_id)
        messages.append({
            "message_id": said.message_id, "sender": said.sender, "recipient": said.recipient, "round": said.round,
            "in_reply_to": said.in_reply_to, "content": said.content, "sent_at": said.sent_at.isoformat(),
            "handled_by": handled.agent if handled else None, "answer": handled.answer if handled else None,
            "tokens": handled.usage.total_tokens if handled else None})
    return {"scope": scope, "rounds": rounds(record), "not_handled": not_handled(record), "messages": messages}


def rounds(record: PeerRecord) -> int:
    """How many rounds deep the conversation went (the opening message is round 0)."""
    return max((m.round for m in record.said), default=-1) + 1


def not_handled(record: PeerRecord) -> int:
    """The messages no member handled: still waiting when the group stopped or its process died."""
    return sum(m.message_id not in record.handled for m in record.said)
