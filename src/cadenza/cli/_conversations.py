"""Peer groups' conversations as ``cadenza show`` draws them (`cadenza.recorded` reads them from the store).

A group that is a step of a plan is drawn under its step; a group that is the whole run, as its own tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._ids import ScopePath
from ..recorded import not_handled, rounds, shorten

if TYPE_CHECKING:
    from rich.tree import Tree

    from ..engine._journal import PeerRecord

__all__ = ("add_conversation", "conversation_tree")

_CONTENT_CHARS = 100


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

    count, waiting, deep = len(record.said), not_handled(record), rounds(record)
    summary = f"{count} message{'s' * (count != 1)} in {deep} round{'s' * (deep != 1)}"
    talk = node.add(f"[dim]{summary}" + (f", {waiting} not handled[/]" if waiting else "[/]"))
    for said in record.said:
        handled = record.handled.get(said.message_id)
        mark = "" if handled else " [yellow](not handled)[/]"
        talk.add(f"[dim]{said.round:>2}[/] {escape(said.sender)} → {escape(said.recipient)}: "
                 f"{escape(shorten(said.content, _CONTENT_CHARS))}{mark}")
        if handled is not None and handled.answer is not None:
            talk.add(f"[green]✓ {escape(handled.agent)} answered:[/] {escape(shorten(handled.answer, _CONTENT_CHARS))}")
