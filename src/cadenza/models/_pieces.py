"""A whole answer told as a stream of pieces: how the offline models (simulated, function) stream.

A vendor streams what it generates; a model that has its answer at once tells it the same way, a word of text
or a few characters of a call's arguments at a time, so that code reading a stream is tested offline on the
shapes it will meet.
"""

from __future__ import annotations

import json
import re

from .base import DeltaSink, ModelResponse, TextDelta, ToolCallDelta

__all__ = ("tell_in_pieces",)

_WORD = re.compile(r"\s*\S+")
"""A word with the space before it: joined, the pieces are the text again."""

ARGUMENT_PIECE = 12
"""Characters of a call's arguments JSON in each piece (what vendors stream is of that order)."""


def tell_in_pieces(response: ModelResponse, deltas: DeltaSink) -> None:
    """Tell ``deltas`` ``response``'s text a word at a time, then each tool call: its name, then its arguments."""
    text = response.text
    if text:
        words = _WORD.findall(text)
        told = sum(map(len, words))
        if told < len(text):  # trailing space belongs to no word
            words.append(text[told:])
        for word in words:
            deltas(TextDelta(word))
    for index, call in enumerate(response.tool_calls):
        deltas(ToolCallDelta(index, call.id, call.name))
        arguments = json.dumps(call.arguments)
        for start in range(0, len(arguments), ARGUMENT_PIECE):
            deltas(ToolCallDelta(index, arguments=arguments[start:start + ARGUMENT_PIECE]))
