"""The contract every model provider fulfils: one async call from a request to a response.

Requests and responses are cadenza's own types; each provider adapter translates
them to and from its vendor's wire format at its edge.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Discriminator, Field

from .._deltas import DeltaSink, OutputDelta, OutputReset, TextDelta, ToolCallDelta
from .._usage import Usage

if TYPE_CHECKING:
    from .pricing import Price

__all__ = (
    "AssistantMessage",
    "Closeable",
    "Declared",
    "DeltaSink",
    "Model",
    "ModelFacts",
    "ModelMessage",
    "ModelRequest",
    "ModelResponse",
    "OutputDelta",
    "OutputReset",
    "OutputSchema",
    "Streaming",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolResultMessage",
    "ToolSpec",
    "UserMessage",
    "close_model",
    "facts_of",
    "request_streamed",
)


class ToolSpec(BaseModel):
    """A tool as a model sees it: a name, what it does, and a JSON schema of its arguments."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    """JSON schema of the arguments object."""


class ToolCall(BaseModel):
    """A model's request to run one tool."""

    model_config = ConfigDict(frozen=True)

    id: str
    """Pairs the call with its result."""
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    malformed: str | None = None
    """Set by an adapter when the model's arguments could not be read (not JSON, not an object): what was
    wrong. The agent sends it back to the model as the call's error instead of running the tool."""


class UserMessage(BaseModel):
    """Text given to the model by the runtime on the user's or orchestrator's behalf."""

    kind: Literal["user"] = "user"
    content: str


class AssistantMessage(BaseModel):
    """What the model said on an earlier turn: text, tool calls, or both."""

    kind: Literal["assistant"] = "assistant"
    text: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)


class ToolResultMessage(BaseModel):
    """The outcome of one tool call, returned to the model as data."""

    kind: Literal["tool_result"] = "tool_result"
    call_id: str
    name: str
    content: str
    is_error: bool = False
    """True when the tool failed or the call was invalid; the content says why."""


ModelMessage = Annotated[UserMessage | AssistantMessage | ToolResultMessage, Discriminator("kind")]


class OutputSchema(BaseModel):
    """A JSON schema the final answer must fit (structured output)."""

    model_config = ConfigDict(frozen=True)

    name: str
    json_schema: dict[str, Any]


class ModelRequest(BaseModel):
    """One call to a model."""

    system: str = ""
    """The system prompt: the agent's instructions."""
    messages: list[ModelMessage] = Field(default_factory=list)
    """The conversation so far, oldest first."""
    tools: list[ToolSpec] = Field(default_factory=list)
    """Tools the model may call on this turn."""
    output_schema: OutputSchema | None = None
    """When set, the final text must be JSON fitting this schema."""
    agent: str | None = None
    """Name of the calling agent; providers ignore it, fakes may script replies by it."""
    max_tokens: int | None = None
    """The most output tokens this call may produce; None for the model's own default. Budgets reserve it."""


class ModelResponse(BaseModel):
    """A model's answer: final text, or tool calls to run before asking again."""

    text: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model: str = ""
    """The model that actually answered, as the provider named it."""


@runtime_checkable
class Model(Protocol):
    """Anything that can answer a `ModelRequest`.

    Raise `cadenza.ModelError` (with ``retryable`` set honestly) when the call fails.
    """

    @property
    def name(self) -> str:
        """The model string that selects this model, e.g. ``simulated:default``."""
        ...

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Answer one request."""
        ...


@runtime_checkable
class Streaming(Protocol):
    """A model that can tell its answer as it generates it. A `Model` need not: its answer then comes whole."""

    async def stream(self, request: ModelRequest, deltas: DeltaSink) -> ModelResponse:
        """Answer ``request`` as `Model.request` does, telling ``deltas`` each piece of the answer on the way."""
        ...


def request_streamed(model: Model, request: ModelRequest, deltas: DeltaSink) -> Coroutine[Any, Any, ModelResponse]:
    """``model``'s answer to ``request``, streamed to ``deltas`` if the model streams (whole otherwise)."""
    if isinstance(model, Streaming):
        return model.stream(request, deltas)
    return model.request(request)


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What one model a call may reach says about itself: what budgets reserve and breakers key on."""

    name: str
    endpoint: str | None = None
    """The base URL its calls go to (None: it makes no network calls, or does not say)."""
    max_tokens: int | None = None
    """Output tokens a call may produce when its request does not say (None: not bounded by the model)."""
    price: Price | None = None
    """Its own price, from a table it was configured with (None: the run's price table decides)."""


@runtime_checkable
class Declared(Protocol):
    """A model that states its facts. Vendor adapters and the resilience wrappers do; a plain `Model` need not."""

    def facts(self) -> tuple[ModelFacts, ...]:
        """One entry per model a call may reach, the one tried first first (a fallback chain has several)."""
        ...


@runtime_checkable
class Closeable(Protocol):
    """A model that holds connections, closed with ``aclose`` on the loop that opened them."""

    async def aclose(self) -> None: ...


def facts_of(model: Model) -> tuple[ModelFacts, ...]:
    """What ``model`` declares about the models a call may reach; a model that declares nothing is one such model
    with only its name known."""
    return model.facts() if isinstance(model, Declared) else (ModelFacts(model.name),)


async def close_model(model: Model) -> None:
    """Close ``model``'s connections, if it holds any."""
    if isinstance(model, Closeable):
        await model.aclose()
