"""A model backed by a Python function, for tests that need exact control over each reply."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from .._errors import ConfigError
from .._usage import Usage
from ._pieces import answer_in_pieces
from .base import DeltaSink, ModelRequest, ModelResponse, ToolCall
from .simulated import estimate_input_tokens, estimate_output_tokens

__all__ = ("FunctionModel", "FunctionReply", "ModelFunction")

FunctionReply = ModelResponse | str | list[ToolCall]
"""A full response, a final text, or tool calls to make."""

ModelFunction = Callable[[ModelRequest], FunctionReply | Awaitable[FunctionReply]]
"""Sync or async; receives every request the model gets."""


class FunctionModel:
    """Answers each request by calling ``func``; records every request in ``calls``.

    Args:
        func: returns a `ModelResponse`, a final text, or a list of `ToolCall`;
            may be a coroutine function. Exceptions it raises propagate unchanged,
            so it can raise `cadenza.ModelError` to simulate provider failures.
        name: ``.name`` is ``function:NAME``.
    """

    def __init__(self, func: ModelFunction, *, name: str = "function") -> None:
        self._func = func
        self._name = f"function:{name}"
        self.calls: list[ModelRequest] = []
        """Every request received, oldest first, for test assertions."""

    @property
    def name(self) -> str:
        """``function:NAME``."""
        return self._name

    def __repr__(self) -> str:
        return f"FunctionModel({self._name!r})"

    async def stream(self, request: ModelRequest, deltas: DeltaSink) -> ModelResponse:
        """`request`, its answer told to ``deltas`` a word (or a few characters of a call's arguments) at a time."""
        return await answer_in_pieces(self, request, deltas)

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Call the function; wrap a bare text or tool-call list in a response with usage."""
        self.calls.append(request)
        reply = self._func(request)
        if inspect.isawaitable(reply):
            reply = await reply
        if isinstance(reply, ModelResponse):
            return reply
        if isinstance(reply, str):
            text: str | None = reply
            calls: list[ToolCall] = []
        elif isinstance(reply, list) and all(isinstance(call, ToolCall) for call in reply):
            text, calls = None, list(reply)
        else:
            raise ConfigError(
                f"{self._name}: the function must return a ModelResponse, a str or a list of ToolCall, "
                f"got {type(reply).__name__}"
            )
        usage = Usage(
            input_tokens=estimate_input_tokens(request),
            output_tokens=estimate_output_tokens(text, calls),
            model_calls=1,
        )
        return ModelResponse(text=text, tool_calls=calls, usage=usage, model=self._name)
