"""Peer groups' conversations as ``cadenza show`` presents them, read from the run's stored message rows.

A group that is a step of a plan is drawn under its step; a group that is the whole run, as its own tree.
Each message carries whether it was handled and by whom, so a stopped or killed conversation shows what was
still waiting, and each final answer is shown where it was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import StoreError
from .._ids import ScopePath
from ..engine._journal import PeerRecord, Prior
from ._plan_view import shorten

if TYPE_CHECKING:
    from rich.tree import Tree

    from ..stores.base import MessageRow

__all__ = ("add_conversation", "conversation_json", "conversation_tree", "conversations")

_CONTENT_CHARS = 100


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
    return {"scope": scope, "rounds": _rounds(record), "not_handled": _not_handled(record), "messages": messages}


def conversation_tree(scope: ScopePath, record: PeerRecord) -> Tree:
    """A conversation that is the whole run, as its own tree."""
    from rich.markup import escape
    from rich.tree import Tree

    tree = Tree(f"[bold]{escape(scope)}[/] [dim]· peer group[/]")
    add_conversation(tree, record)
    return tree


def add_conversation(node: Tree, record: PeerRecord) -> None:
    """The messages under ``node``: ``round  sender → recipient: content``, then any final answer it drew."""
    from rich.markup import escape

    count, waiting, rounds = len(record.said), _not_handled(record), _rounds(record)
    summary = f"{count} message{'s' * (count != 1)} in {rounds} round{'s' * (rounds != 1)}"
    talk = node.add(f"[dim]{summary}" + (f", {waiting} not handled[/]" if waiting else "[/]"))
    for said in record.said:
        handled = record.handled.get(said.message_id)
        mark = "" if handled else " [yellow](not handled)[/]"
        talk.add(f"[dim]{said.round:>2}[/] {escape(said.sender)} → {escape(said.recipient)}: "
                 f"{escape(shorten(said.content, _CONTENT_CHARS))}{mark}")
        if handled is not None and handled.answer is not None:
            talk.add(f"[green]✓ {escape(handled.agent)} answered:[/] {escape(shorten(handled.answer, _CONTENT_CHARS))}")


def _rounds(record: PeerRecord) -> int:
    """How many rounds deep the conversation went (the opening message is round 0)."""
    return max((m.round for m in record.said), default=-1) + 1


def _not_handled(record: PeerRecord) -> int:
    """The messages no member handled: still waiting when the group stopped or its process died."""
    return sum(m.message_id not in record.handled for m in record.said)
