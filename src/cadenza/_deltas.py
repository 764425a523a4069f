"""The pieces of a model's answer as it is generated: what a streaming model tells (`models.base.Streaming`) and
what a run's `ModelDelta` events carry to whoever reads the run as it happens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ("DeltaSink", "OutputDelta", "OutputReset", "TextDelta", "ToolCallDelta")


@dataclass(slots=True)
class TextDelta:
    """The next piece of a model's answer text, as it is generated."""

    text: str


@dataclass(slots=True)
class ToolCallDelta:
    """The next piece of one tool call the model is writing: its first piece names it, the rest add arguments.

    The pieces of a call's ``arguments`` joined are its arguments' JSON text; calls are told apart by ``index``."""

    index: int
    """Which call of this answer (0 for the first)."""
    id: str | None = None
    """Set on the call's first piece."""
    name: str | None = None
    """The tool's name, set on the call's first piece."""
    arguments: str = ""


@dataclass(slots=True)
class OutputReset:
    """What this call streamed so far is void: the attempt failed and another (a retry, the next model of a
    fallback chain) starts over."""

    reason: str


OutputDelta = TextDelta | ToolCallDelta | OutputReset
"""A piece of a model's answer as it is generated (`Streaming`)."""

DeltaSink = Callable[[OutputDelta], None]
"""Receives a streamed answer's pieces in order; must be quick and must not raise."""
