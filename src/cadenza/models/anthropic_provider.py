"""Anthropic's Messages API as a cadenza model: ``anthropic:MODEL`` (the ``anthropic`` extra, SDK 2.x).

What the adapter decides, and why:

* **No SDK retries** (``max_retries=0``): cadenza's resilience layer retries, backs off and trips
  circuit breakers, so it must see every failure. One call is one HTTP request.
* **Prompt caching** (``cache=True``): a ``cache_control`` breakpoint on the system prompt and on
  the last tool definition, the prefix an agent sends unchanged on every turn (two of the four
  breakpoints the API allows). A prefix shorter than the model's minimum is simply not cached.
* **Structured output** uses the API's documented ``output_config.format``
  (``{"type": "json_schema", "schema": ...}``), the schema made strict by the SDK's
  ``transform_schema`` (objects closed; constraints the API cannot enforce move into descriptions,
  and cadenza validates the answer anyway). The answer arrives as JSON text, and the agent's tools
  stay callable on the same turns, which a forced answer tool would rule out.
* **Errors** become `ModelError`: rate limits (429), overload (529), other 5xx, 408 and 409,
  timeouts, dropped connections and a garbled reply body are retryable; other statuses, a reply
  that is not a Messages reply, and an empty reply cut off at ``max_tokens`` are not. A server's
  ``x-should-retry`` header overrides, as in the SDK.
* **One client per event loop**: the SDK's connections belong to the loop that opened them, and
  ``run_sync`` runs each call on a fresh loop.
* **Streaming** (``stream``, when someone reads the run as it happens) goes through the SDK's
  ``messages.stream``: text and tool input pieces are told as they arrive, and the answer is the
  message the SDK assembled, read exactly as a whole reply is. A stream broken on its way is a
  retryable failure like a dropped connection. A call nobody streams is one plain request.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from anthropic import (
    AnthropicError,
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncAnthropic,
    Omit,
    omit,
    transform_schema,
)
from anthropic.types import (
    AssistantMessageParam,
    CacheControlEphemeralParam,
    ContentBlockParam,
    InputJSONDelta,
    Message,
    MessageParam,
    OutputConfigParam,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    TextBlock,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUnionParam,
    ToolUseBlock,
    ToolUseBlockParam,
    UserMessageParam,
)
from anthropic.types import TextDelta as SDKTextDelta
from pydantic import ValidationError

from .._errors import ConfigError, ModelError
from .._usage import Usage
from .base import (
    AssistantMessage,
    DeltaSink,
    ModelFacts,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolResultMessage,
    ToolSpec,
)
from .pricing import PRICES, Prices
from .registry import register_provider

__all__ = ("DEFAULT_BASE_URL", "AnthropicModel", "create")

DEFAULT_BASE_URL = "https://api.anthropic.com"
"""The SDK's default endpoint, used when neither ``base_url`` nor ``ANTHROPIC_BASE_URL`` is given."""

_OPTIONS = ("api_key", "base_url", "timeout", "max_tokens", "cache", "prices")
_EPHEMERAL: CacheControlEphemeralParam = {"type": "ephemeral"}
_RETRYABLE_STATUS = frozenset({408, 409, 429})
"""Besides every 5xx (529 is overload): a request timeout, a lock conflict, a rate limit."""
_EMPTY_BECAUSE = {
    "max_tokens": "it reached max_tokens ({max_tokens}) before writing anything; raise max_tokens",
    "refusal": "the model declined to answer",
    "model_context_window_exceeded": "the conversation does not fit the model's context window",
    "pause_turn": "the API paused the turn (a long server-side tool run) before any answer",
}
"""Why a reply with no content is a failure, by stop_reason; an empty ``end_turn`` is an empty answer."""

Role = Literal["user", "assistant"]


class AnthropicModel:
    """A Claude model behind the Messages API.

    Args:
        model: the API's model name, e.g. ``claude-haiku-4-5``; ``.name`` is ``anthropic:MODEL``.
        api_key: defaults to the ``ANTHROPIC_API_KEY`` environment variable.
        base_url: defaults to ``ANTHROPIC_BASE_URL``, else the SDK's default endpoint.
        timeout: seconds one call may take, connecting included.
        max_tokens: output tokens a call may produce when the request does not say.
        prices: the table that prices each call's usage.
        cache: mark the system prompt and tool definitions for prompt caching.
        client: a ready SDK client to use (its endpoint and credentials); retries are turned off on it.

    Raises:
        ConfigError: no API key anywhere, or an option of the wrong type.
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_tokens: int = 4096,
        prices: Prices = PRICES,
        cache: bool = True,
        client: AsyncAnthropic | None = None,
    ) -> None:
        self._model = model
        self._name = f"anthropic:{model}"
        _check_options(self._name, model=model, api_key=api_key, base_url=base_url, timeout=timeout,
                       max_tokens=max_tokens, cache=cache)
        self._timeout = float(timeout)
        self._max_tokens = max_tokens
        self._prices = prices
        self._cache = cache
        self._given = client.with_options(max_retries=0) if client is not None else None
        self._client: AsyncAnthropic | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        if self._given is not None:
            self._api_key = ""
            self._base_url = str(self._given.base_url).rstrip("/")
            return
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY", "")
        if not key:
            raise ConfigError(
                f"model {self._name!r} needs an Anthropic API key: set the ANTHROPIC_API_KEY environment variable "
                f"or give the model an api_key option"
            )
        self._api_key = key
        self._base_url = (base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")

    @property
    def name(self) -> str:
        """``anthropic:MODEL``."""
        return self._name

    @property
    def endpoint(self) -> str:
        """The API's base URL (no trailing slash); circuit breakers key on it with the name."""
        return self._base_url

    @property
    def max_tokens(self) -> int:
        """Output tokens a call may produce when its request does not say (budgets reserve this many)."""
        return self._max_tokens

    @property
    def prices(self) -> Prices:
        """The table this model's calls are priced with."""
        return self._prices

    def facts(self) -> tuple[ModelFacts, ...]:
        """This one model: its endpoint, output bound and own price."""
        return (ModelFacts(self._name, self.endpoint, self._max_tokens, self._prices.lookup(self._name)),)

    def __repr__(self) -> str:
        return f"AnthropicModel({self._model!r}, endpoint={self._base_url!r})"

    async def request(self, request: ModelRequest) -> ModelResponse:
        """One ``POST /v1/messages``; every failure is a `ModelError` that says whether to try again."""
        return await self._answer(request, None)

    async def stream(self, request: ModelRequest, deltas: DeltaSink) -> ModelResponse:
        """`request` as a stream of server-sent events (the SDK's ``messages.stream``): each piece of text and of a
        tool call's input is told to ``deltas`` as it arrives; the answer is the message the stream made."""
        return await self._answer(request, deltas)

    async def _answer(self, request: ModelRequest, deltas: DeltaSink | None) -> ModelResponse:
        max_tokens = request.max_tokens if request.max_tokens is not None else self._max_tokens
        params: dict[str, Any] = {
            "model": self._model, "max_tokens": max_tokens, "messages": _messages(request.messages),
            "system": self._system(request.system), "tools": self._tools(request.tools),
            "output_config": _output_config(request), "timeout": self._timeout,
        }
        try:
            reply: object
            if deltas is None:
                reply = await self._sdk().messages.create(**params)
            else:
                async with self._sdk().messages.stream(**params) as stream:
                    tool_calls: dict[int, int] = {}
                    async for event in stream:
                        _tell(event, tool_calls, deltas)
                    reply = await stream.get_final_message()
        except APIStatusError as exc:
            raise self._status_error(exc) from exc
        except APITimeoutError as exc:
            raise self._error(f"no reply within {self._timeout:g}s (timed out)", retryable=True) from exc
        except APIConnectionError as exc:
            raise self._error(f"the connection failed: {exc.message}", retryable=True) from exc
        except APIResponseValidationError as exc:
            raise self._error(f"the reply does not fit the Messages API: {exc.message}") from exc
        except json.JSONDecodeError as exc:
            raise self._error(f"the reply body is not valid JSON ({exc})", retryable=True) from exc
        except AnthropicError as exc:
            raise self._error(f"the SDK failed: {exc}") from exc
        return self._response(reply, max_tokens)

    async def aclose(self) -> None:
        """Close the connections this model opened on the running event loop (not a client it was given)."""
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await client.close()

    # ------------------------------------------------------------------ request

    def _sdk(self) -> AsyncAnthropic:
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = AsyncAnthropic(
                api_key=self._api_key, base_url=self._base_url, timeout=self._timeout, max_retries=0
            )
            self._loop = loop
        return self._client

    def _system(self, system: str) -> list[TextBlockParam] | Omit:
        if not system:
            return omit
        block: TextBlockParam = {"type": "text", "text": system}
        if self._cache:
            block["cache_control"] = _EPHEMERAL
        return [block]

    def _tools(self, tools: Sequence[ToolSpec]) -> list[ToolUnionParam] | Omit:
        if not tools:
            return omit
        params: list[ToolParam] = []
        for spec in tools:
            param: ToolParam = {"name": spec.name, "input_schema": spec.parameters}
            if spec.description:
                param["description"] = spec.description
            params.append(param)
        if self._cache:
            params[-1]["cache_control"] = _EPHEMERAL
        union: list[ToolUnionParam] = list(params)
        return union

    # ------------------------------------------------------------------ response

    def _response(self, reply: object, max_tokens: int) -> ModelResponse:
        if not isinstance(reply, Message) or not isinstance(reply.content, list) or reply.usage is None:
            raise self._error(f"the reply is not a Messages API message: {_excerpt(reply)}")
        try:
            return self._read(reply, max_tokens)
        except (ValidationError, TypeError) as exc:
            raise self._error(f"the reply could not be read: {exc}") from exc

    def _read(self, reply: Message, max_tokens: int) -> ModelResponse:
        texts = [block.text for block in reply.content if isinstance(block, TextBlock)]
        calls = [_tool_call(block) for block in reply.content if isinstance(block, ToolUseBlock)]
        stop = reply.stop_reason
        because = _EMPTY_BECAUSE.get(stop or "")
        if because is not None and not calls and not "".join(texts):
            raise self._error(f"empty reply (stop_reason {stop}): {because.format(max_tokens=max_tokens)}")
        if stop == "max_tokens" and calls:
            calls[-1] = calls[-1].model_copy(update={"malformed": (
                f"the reply was cut off at max_tokens ({max_tokens}) while this call was written; "
                "its arguments may be incomplete")})
        text = "".join(texts) if texts or not calls else None
        return ModelResponse(text=text, tool_calls=calls, usage=self._usage(reply), model=reply.model or self._model)

    def _usage(self, reply: Message) -> Usage:
        counts = reply.usage
        usage = Usage(
            input_tokens=counts.input_tokens, output_tokens=counts.output_tokens,
            cache_read_tokens=counts.cache_read_input_tokens or 0,
            cache_write_tokens=counts.cache_creation_input_tokens or 0, model_calls=1,
        )
        return usage.model_copy(update={"cost_usd": self._prices.cost(self._name, usage)})

    # ------------------------------------------------------------------ errors

    def _error(self, what: str, *, retryable: bool = False, status: int | None = None,
               retry_after: float | None = None) -> ModelError:
        return ModelError(f"{self._name} at {self._base_url}: {what}", retryable=retryable, status=status,
                          retry_after=retry_after)

    def _status_error(self, exc: APIStatusError) -> ModelError:
        status = exc.status_code
        headers = exc.response.headers
        retryable = status in _RETRYABLE_STATUS or status >= 500
        said = headers.get("x-should-retry")
        if said in ("true", "false"):
            retryable = said == "true"
        kind = f" {exc.type}" if exc.type else ""
        message = exc.api_message or _excerpt(exc.body) or "(no body)"
        request_id = f" (request-id {exc.request_id})" if exc.request_id else ""
        return self._error(f"HTTP {status}{kind}: {message}{request_id}", retryable=retryable, status=status,
                           retry_after=_retry_after(headers))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked to wait: ``retry-after-ms``, else ``retry-after`` (seconds or an HTTP date)."""
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    seconds = _number(value)
    if seconds is not None or value is None:
        return seconds
    parsed = email.utils.parsedate_tz(value)
    return None if parsed is None else max(0.0, email.utils.mktime_tz(parsed) - time.time())


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _messages(messages: Iterable[ModelMessage]) -> list[MessageParam]:
    """Cadenza's messages as API turns: consecutive messages of one role share a turn, so tool results
    returned together go back in one user message, and roles alternate as the API requires."""
    turns: list[tuple[Role, list[ContentBlockParam]]] = []
    for message in messages:
        role, blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return [
        UserMessageParam(role="user", content=blocks) if role == "user"
        else AssistantMessageParam(role="assistant", content=blocks)
        for role, blocks in turns
    ]


def _blocks(message: ModelMessage) -> tuple[Role, list[ContentBlockParam]]:
    if isinstance(message, ToolResultMessage):
        result: ToolResultBlockParam = {"type": "tool_result", "tool_use_id": message.call_id,
                                        "content": message.content}
        if message.is_error:
            result["is_error"] = True
        return "user", [result]
    if isinstance(message, AssistantMessage):
        blocks: list[ContentBlockParam] = [TextBlockParam(type="text", text=message.text)] if message.text else []
        blocks += [ToolUseBlockParam(type="tool_use", id=call.id, name=call.name, input=call.arguments)
                   for call in message.tool_calls]
        return "assistant", blocks
    return "user", [TextBlockParam(type="text", text=message.content)]


def _output_config(request: ModelRequest) -> OutputConfigParam | Omit:
    if request.output_schema is None:
        return omit
    schema = request.output_schema.json_schema
    try:
        strict = transform_schema(schema)
    except (ValueError, TypeError, KeyError):
        strict = schema  # a schema the SDK cannot tighten goes as it is; the API says if it is unusable
    return {"format": {"type": "json_schema", "schema": strict}}


def _tell(event: object, tool_calls: dict[int, int], deltas: DeltaSink) -> None:
    """Tell ``deltas`` the piece a stream's ``event`` carries, if any: text, a tool call's start, a piece of its input.

    ``tool_calls`` maps the content block of each tool call to the call's number among them (the `ToolCallDelta`
    index): a text block before them takes a block index too."""
    if isinstance(event, RawContentBlockStartEvent) and isinstance(event.content_block, ToolUseBlock):
        number = tool_calls[event.index] = len(tool_calls)
        deltas(ToolCallDelta(number, event.content_block.id, event.content_block.name))
    elif isinstance(event, RawContentBlockDeltaEvent):
        if isinstance(event.delta, SDKTextDelta):
            deltas(TextDelta(event.delta.text))
        elif isinstance(event.delta, InputJSONDelta) and event.index in tool_calls:
            deltas(ToolCallDelta(tool_calls[event.index], arguments=event.delta.partial_json))


def _tool_call(block: ToolUseBlock) -> ToolCall:
    arguments: object = block.input
    if isinstance(arguments, dict):
        return ToolCall(id=block.id, name=block.name, arguments=arguments)
    return ToolCall(id=block.id, name=block.name, malformed=(
        f"the arguments must be a JSON object, but the model sent {type(arguments).__name__} {_excerpt(arguments)}"))


def _excerpt(value: object, limit: int = 200) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_options(owner: str, *, model: object, api_key: object, base_url: object, timeout: object,
                   max_tokens: object, cache: object) -> None:
    if not isinstance(model, str) or not model:
        raise ConfigError(f"{owner}: the model name must be a non-empty string")
    for what, value in (("api_key", api_key), ("base_url", base_url)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{owner}: {what} must be a string, got {type(value).__name__}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ConfigError(f"{owner}: timeout must be a positive number of seconds, got {timeout!r}")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ConfigError(f"{owner}: max_tokens must be a positive integer, got {max_tokens!r}")
    if not isinstance(cache, bool):
        raise ConfigError(f"{owner}: cache must be true or false, got {cache!r}")


def create(name: str, options: dict[str, Any]) -> AnthropicModel:
    """The registry's factory: ``anthropic:NAME`` with options api_key, base_url, timeout, max_tokens, cache and
    prices (a `Prices` table, or a mapping of prices as in a workflow file's ``prices:``)."""
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"for model 'anthropic:{name}'; valid options: {', '.join(_OPTIONS)}"
        )
    if "prices" in options:
        options = {**options, "prices": Prices.option(options["prices"], where=f"model 'anthropic:{name}'")}
    return AnthropicModel(name, **options)


register_provider("anthropic", create, replace=True)
