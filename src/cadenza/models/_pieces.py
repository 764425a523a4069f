"""A whole answer told as a stream of pieces: how the offline models (simulated, function) stream.

A vendor streams what it generates; a model that has its answer at once tells it the same way, a word of text
or a few characters of a call's arguments at a time, so that code reading a stream is tested offline on the
shapes it will meet.
"""

from __future__ import annotations

import json
import re

from .base import DeltaSink, Model, ModelRequest, ModelResponse, TextDelta, ToolCallDelta

__all__ = ("answer_in_pieces", "tell_in_pieces", "words")

_WORD = re.compile(r"\s*\S+")
"""A word with the space before it: joined, the pieces are the text again."""

ARGUMENT_PIECE = 12
"""Characters of a call's arguments JSON in each piece (what vendors stream is of that order)."""


def words(text: str) -> list[str]:
    """``text`` a word (with the space before it) at a time; joined, the pieces are ``text`` again."""
    found = _WORD.findall(text)
    told = sum(map(len, found))
    if told < len(text):  # trailing space belongs to no word
        found.append(text[told:])
    return found


async def answer_in_pieces(model: Model, request: ModelRequest, deltas: DeltaSink) -> ModelResponse:
    """``model``'s whole answer to ``request``, told to ``deltas`` in pieces on its way back (`tell_in_pieces`)."""
    response = await model.request(request)
    tell_in_pieces(response, deltas)
    return response


def tell_in_pieces(response: ModelResponse, deltas: DeltaSink) -> None:
    """Tell ``deltas`` ``response``'s text a word at a time, then each tool call: its name, then its arguments."""
    if response.text:
        for word in words(response.text):
            deltas(TextDelta(word))
    for index, call in enumerate(response.tool_calls):
        deltas(ToolCallDelta(index, call.id, call.name))
        arguments = json.dumps(call.arguments)
        for start in range(0, len(arguments), ARGUMENT_PIECE):
            deltas(ToolCallDelta(index, arguments=arguments[start:start + ARGUMENT_PIECE]))
