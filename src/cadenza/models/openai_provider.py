"""OpenAI and OpenAI-compatible servers (Ollama, vLLM, llama.cpp, LM Studio) through the Chat Completions API.

Two model strings select the one adapter, `OpenAIModel`:

- ``openai:MODEL``: the key from the ``api_key`` option, else the variable named by ``api_key_env``,
  else ``OPENAI_API_KEY``; the base URL from the ``base_url`` option, else ``OPENAI_BASE_URL``,
  else OpenAI's own.
- ``openai-compatible:MODEL@BASE_URL`` (or ``openai-compatible:MODEL`` with a ``base_url`` option):
  the key from ``api_key`` or ``api_key_env``, else a placeholder, since local servers need none.
  ``OPENAI_API_KEY`` is never sent to such a server.

Structured output (``structured`` option):

- ``"strict"`` (the default for ``openai``): ``response_format`` json_schema. ``strict`` is true when the
  schema converts to OpenAI's strict subset: the root is an object, every object lists its properties
  (no free-form ``dict``), and only supported keywords appear (``oneOf`` becomes ``anyOf``). Converted,
  every object gets ``additionalProperties: false`` and every property becomes required; a property that
  was optional keeps its own type, so the model gives ``null`` where the type allows it and a value
  otherwise, and the answer always validates against the original type. Any other schema is sent
  unchanged with ``strict: false``.
- ``"json_object"``: JSON mode, with the schema written into the system prompt.
- ``"prompt"`` (the default for ``openai-compatible``): the schema in the system prompt only. Many
  compatible servers reject one ``response_format`` type or another (LM Studio refuses ``json_object``,
  older servers ``json_schema``); the prompt works on all of them, and the agent repairs an answer that
  does not fit. Choose ``"strict"`` for a server with json_schema support (vLLM, llama.cpp, LM Studio,
  recent Ollama).

Other options: ``timeout`` (seconds, default 60) and ``max_tokens`` (the output limit of a call whose
request sets none). OpenAI gets ``max_completion_tokens`` (its reasoning models refuse ``max_tokens``);
compatible servers get ``max_tokens``, the one they all know.

The SDK client never retries (``max_retries=0``): cadenza's resilience layer does, and must see every
failure. Each failure becomes a `ModelError` whose ``retryable``, ``status`` and ``retry_after`` say what
the server said: 408, 409, 429 and 5xx (but 501 and 505), timeouts, dropped connections and a body that
is not JSON are retryable; other statuses, refusals, a reply that is not a chat completion and an empty
reply cut off by the token limit are not. A server's ``x-should-retry`` header overrides, as in the SDK.
There is one SDK client per event loop, closed when that loop shuts down.

Streaming (``stream``, when someone reads the run as it happens) asks for ``stream: true`` with the usage in the
last chunk (``stream_options.include_usage``); the chunks are assembled into the completion a whole reply would
have been and read the same way. A compatible server that sends no usage has the call's tokens estimated.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import time
from collections.abc import AsyncGenerator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from openai import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncOpenAI,
    AsyncStream,
    Omit,
    OpenAIError,
    omit,
)
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
    completion_create_params,
)

from .._errors import ConfigError, ModelError
from .._usage import Usage
from .base import (
    AssistantMessage,
    DeltaSink,
    ModelFacts,
    ModelRequest,
    ModelResponse,
    OutputSchema,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolResultMessage,
)
from .pricing import PRICES, Prices
from .registry import register_provider
from .simulated import estimate_input_tokens, estimate_output_tokens

__all__ = ("DEFAULT_TIMEOUT", "OpenAIModel", "StructuredMode", "create_compatible", "create_openai")

StructuredMode = Literal["strict", "json_object", "prompt"]
"""How a structured-output schema reaches the model; see the module docstring."""

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for the server to accept the connection or send its reply."""

OPENAI_BASE_URL = "https://api.openai.com/v1"
_NO_KEY = "no-key"
"""Sent as the bearer token to compatible servers that need no key (the SDK always sends one)."""
_OPTIONS = ("api_key", "api_key_env", "base_url", "timeout", "max_tokens", "structured", "prices")
_MODES: tuple[StructuredMode, ...] = ("strict", "json_object", "prompt")
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_PERMANENT_5XX = frozenset({501, 505})
_ERROR_PREFIX = "Error: "
"""Starts the content of a failed tool call's result, so the model knows the call did not work."""
_SCHEMA_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_ENDPOINT_IN_NAME = re.compile(r"^(.*?)@(https?://.+)$")
_EXCERPT = 200


class OpenAIModel:
    """A model behind the OpenAI Chat Completions API: ``openai:MODEL`` or ``openai-compatible:MODEL@URL``.

    Args:
        model: the model id the server knows (``gpt-5-mini``, ``llama3.1``).
        compatible: an OpenAI-compatible server rather than OpenAI: a base URL is required, no key is.
        api_key: the key; else the variable named by ``api_key_env``; else ``OPENAI_API_KEY`` (OpenAI only).
        api_key_env: the environment variable holding the key.
        base_url: where the API lives, e.g. ``http://localhost:11434/v1``.
        timeout: seconds to wait for the connection or the reply before a retryable failure.
        max_tokens: output tokens a call may produce when the request does not say; None leaves it to the server.
        structured: how structured output is asked for; ``strict`` for OpenAI, ``prompt`` otherwise.
        prices: the price table calls are costed with.

    Raises:
        ConfigError: no key (naming the variable to set), no or an invalid base URL, a bad option value.
    """

    def __init__(
        self,
        model: str,
        *,
        compatible: bool = False,
        api_key: str | None = None,
        api_key_env: str | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_tokens: int | None = None,
        structured: StructuredMode | None = None,
        prices: Prices | None = None,
    ) -> None:
        provider = "openai-compatible" if compatible else "openai"
        if not model:
            raise ConfigError(f"{provider}: the model string names no model")
        self._model = model
        where = f"{provider}:{model}"
        url = base_url or (None if compatible else os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL)
        if url is None:
            raise ConfigError(
                f"{where} needs the base URL of the server: write it after the model name "
                f"({provider}:{model}@http://localhost:11434/v1) or give the base_url option"
            )
        self._endpoint = _check_url(where, url)
        self._name = f"{provider}:{model}@{self._endpoint}" if compatible else where
        self._api_key = _api_key(self._name, api_key, api_key_env, compatible=compatible)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"{self._name}: timeout must be a positive number of seconds, got {timeout!r}")
        self._timeout = float(timeout)
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
            raise ConfigError(f"{self._name}: max_tokens must be a positive integer, got {max_tokens!r}")
        self._max_tokens = max_tokens
        mode = structured if structured is not None else ("prompt" if compatible else "strict")
        if mode not in _MODES:
            raise ConfigError(f"{self._name}: structured must be one of {', '.join(_MODES)}; got {structured!r}")
        self._structured: StructuredMode = mode
        self._compatible = compatible
        self._prices = prices if prices is not None else PRICES
        self._clients: dict[asyncio.AbstractEventLoop, tuple[AsyncOpenAI, AsyncGenerator[None, None]]] = {}
        """One SDK client per event loop, with the generator that closes it when that loop shuts down."""

    @property
    def name(self) -> str:
        """``openai:MODEL`` or ``openai-compatible:MODEL@BASE_URL``."""
        return self._name

    @property
    def endpoint(self) -> str:
        """The base URL calls go to; a circuit breaker keys on it with the name."""
        return self._endpoint

    @property
    def max_tokens(self) -> int | None:
        """Output tokens a call may produce when its request does not say (None: the server's default)."""
        return self._max_tokens

    @property
    def prices(self) -> Prices:
        """The table each call's usage is priced with."""
        return self._prices

    def facts(self) -> tuple[ModelFacts, ...]:
        """This one model: its endpoint, output bound and own price."""
        return (ModelFacts(self._name, self.endpoint, self._max_tokens, self._prices.lookup(self._name)),)

    def __repr__(self) -> str:
        return f"OpenAIModel({self._name!r})"

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Make one Chat Completions call; every failure is a `ModelError`."""
        return await self._answer(request, None)

    async def stream(self, request: ModelRequest, deltas: DeltaSink) -> ModelResponse:
        """`request` as a stream of chunks (``stream: true``, with the usage in the last chunk): each piece of text
        and of a tool call is told to ``deltas`` as it arrives; the answer is the completion the chunks make.

        A compatible server that sends no usage gets the call's tokens estimated (as the simulated model counts
        them): budgets then still count it."""
        return await self._answer(request, deltas)

    async def _answer(self, request: ModelRequest, deltas: DeltaSink | None) -> ModelResponse:
        fmt, system = _structured(request.output_schema, self._structured, request.system)
        messages = _messages(system, request)
        tools = [_tool(t.name, t.description, t.parameters) for t in request.tools]
        wanted = request.max_tokens if request.max_tokens is not None else self._max_tokens
        limit = omit if wanted is None else wanted
        structured = request.output_schema is not None
        client = await self._sdk()
        params: dict[str, Any] = {
            "model": self._model, "messages": messages, "tools": tools or omit, "response_format": fmt,
            # OpenAI's reasoning models refuse max_tokens; most compatible servers know only it.
            "max_completion_tokens": omit if self._compatible else limit,
            "max_tokens": limit if self._compatible else omit, "timeout": self._timeout,
        }
        try:
            completion: object
            if deltas is None:
                completion = await client.chat.completions.create(**params)
            else:
                chunks = await client.chat.completions.create(**params, stream=True,
                                                              stream_options={"include_usage": True})
                completion = await _gathered(chunks, deltas)
        except OpenAIError as exc:
            raise self._error(exc, structured=structured) from exc
        except ValueError as exc:  # a body that says it is JSON but is not: garbled on the way, try again
            raise self._unreadable(f"its body is not JSON ({exc})", retryable=True) from exc
        response = self._response(completion, structured=structured)
        if deltas is not None and _get(completion, "usage") is None:
            estimated = Usage(input_tokens=estimate_input_tokens(request),
                              output_tokens=estimate_output_tokens(response.text, response.tool_calls), model_calls=1)
            response.usage = estimated.model_copy(update={"cost_usd": self._prices.cost(self._name, estimated)})
        return response

    async def aclose(self) -> None:
        """Close the connections opened on the running event loop now, not when the loop shuts down."""
        found = self._clients.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[1].aclose()

    # ------------------------------------------------------------------ the SDK client

    async def _sdk(self) -> AsyncOpenAI:
        """The client of the running event loop: pooled connections belong to the loop that opened them.

        ``run_sync`` runs each call on a fresh loop; the client of each loop is closed as the loop shuts
        down (through an async generator, which asyncio finalizes then), and forgotten on the next call.
        """
        loop = asyncio.get_running_loop()
        found = self._clients.get(loop)
        if found is not None:
            return found[0]
        for closed in [old for old in self._clients if old.is_closed()]:
            del self._clients[closed]
        # An explicit Authorization header keeps OPENAI_CUSTOM_HEADERS from sending another one.
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._compatible else None
        client = AsyncOpenAI(api_key=self._api_key, base_url=self._endpoint, max_retries=0,
                             timeout=self._timeout, default_headers=headers)
        if self._compatible:  # OPENAI_ORG_ID and OPENAI_PROJECT_ID are for OpenAI, not for this server
            client.organization = client.project = None
        closer = _closing(client)
        await anext(closer)
        self._clients[loop] = (client, closer)
        return client

    # ------------------------------------------------------------------ errors

    def _where(self) -> str:
        return self._name if self._compatible else f"{self._name} at {self._endpoint}"

    def _unreadable(self, what: str, *, retryable: bool = False) -> ModelError:
        return ModelError(f"{self._where()}: the reply is not a chat completion: {what}", retryable=retryable)

    def _error(self, exc: OpenAIError, *, structured: bool) -> ModelError:
        where = self._where()
        if isinstance(exc, APITimeoutError):
            return ModelError(f"{where}: timed out after {self._timeout:g}s waiting for the server", retryable=True)
        if isinstance(exc, APIConnectionError):
            cause = exc.__cause__
            detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
            return ModelError(f"{where}: connection failed{detail}", retryable=True)
        if isinstance(exc, APIResponseValidationError):
            return self._unreadable(str(exc))
        if not isinstance(exc, APIStatusError):
            return ModelError(f"{where}: {type(exc).__name__}: {exc}")
        status = exc.status_code
        headers = exc.response.headers
        retryable = status in _RETRYABLE_STATUS or (status >= 500 and status not in _PERMANENT_5XX)
        should = headers.get("x-should-retry")
        if should in ("true", "false"):  # the server's own word overrides the status
            retryable = should == "true"
        message = f"{where}: HTTP {status}: {_server_said(exc.body)}"
        request_id = headers.get("x-request-id")
        if request_id:
            message += f" (request id {request_id})"
        if structured and status == 400 and self._structured != "prompt":
            message += (f"; if the server does not support response_format {self._structured!r}, "
                        "set the model option structured: prompt")
        return ModelError(message, retryable=retryable, retry_after=_retry_after(headers), status=status)

    # ------------------------------------------------------------------ the reply

    def _response(self, completion: object, *, structured: bool) -> ModelResponse:
        choices = _get(completion, "choices")
        if not isinstance(choices, list) or not choices:
            raise self._unreadable(f"no choices in {_excerpt(completion)}")
        choice = choices[0]
        message = _get(choice, "message")
        if message is None:
            raise self._unreadable(f"the choice has no message: {_excerpt(choice)}")
        refusal = _get(message, "refusal")
        if isinstance(refusal, str) and refusal:
            raise ModelError(f"{self._where()}: the model refused: {refusal}")
        content = _get(message, "content")
        text = content if isinstance(content, str) and content else None
        raw_calls = _get(message, "tool_calls")
        calls = [_tool_call(n, c) for n, c in enumerate(raw_calls)] if isinstance(raw_calls, list) else []
        finish = _get(choice, "finish_reason")
        if text is None and not calls:
            if finish == "length":
                raise ModelError(f"{self._where()}: the reply ran out of tokens before it said anything "
                                 "(finish_reason length); give the call a larger max_tokens")
            if finish == "content_filter":
                raise ModelError(f"{self._where()}: the reply was withheld by the content filter")
        if structured and text is not None and not calls:
            text = _strip_fence(text)
        usage = _usage(_get(completion, "usage"))
        usage = usage.model_copy(update={"cost_usd": self._prices.cost(self._name, usage)})
        model = _get(completion, "model")
        return ModelResponse(text=text, tool_calls=calls, usage=usage,
                             model=model if isinstance(model, str) and model else self._model)


async def _gathered(chunks: AsyncStream[ChatCompletionChunk], deltas: DeltaSink) -> dict[str, Any]:
    """The chat.completion ``chunks`` make (as `OpenAIModel._response` reads one), each piece of the first choice
    told to ``deltas`` as it comes. The stream is closed however this ends (a cancelled call drops it)."""
    text: list[str] = []
    refusal: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish: object = None
    model: object = None
    usage: object = None
    async with chunks:
        async for chunk in chunks:
            model = chunk.model or model
            usage = chunk.usage or usage
            for choice in chunk.choices:
                if choice.index != 0:
                    continue
                finish = choice.finish_reason or finish
                delta = choice.delta
                if delta.content:
                    text.append(delta.content)
                    deltas(TextDelta(delta.content))
                if delta.refusal:
                    refusal.append(delta.refusal)
                for piece in delta.tool_calls or ():
                    function = piece.function
                    name = function.name if function is not None else None
                    arguments = (function.arguments if function is not None else None) or ""
                    call = calls.setdefault(piece.index, {"id": None, "type": "function",
                                                          "function": {"name": "", "arguments": ""}})
                    call["id"] = call["id"] or piece.id
                    call["function"]["name"] += name or ""
                    call["function"]["arguments"] += arguments
                    deltas(ToolCallDelta(piece.index, piece.id, name, arguments))
    message = {"content": "".join(text) or None, "refusal": "".join(refusal) or None,
               "tool_calls": [calls[i] for i in sorted(calls)] or None}
    return {"model": model, "choices": [{"message": message, "finish_reason": finish}], "usage": usage}


async def _closing(client: AsyncOpenAI) -> AsyncGenerator[None, None]:
    """Suspended while ``client`` is in use; closed by `OpenAIModel.aclose` or the loop's shutdown."""
    try:
        yield
    finally:
        await client.close()


# ---------------------------------------------------------------------- the request


def _messages(system: str, request: ModelRequest) -> list[ChatCompletionMessageParam]:
    out: list[ChatCompletionMessageParam] = []
    if system:
        out.append({"role": "system", "content": system})
    for m in request.messages:
        if isinstance(m, AssistantMessage):
            if not m.tool_calls:
                out.append({"role": "assistant", "content": m.text or ""})
                continue
            calls: list[ChatCompletionMessageFunctionToolCallParam] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": m.text, "tool_calls": calls})
        elif isinstance(m, ToolResultMessage):
            content = _ERROR_PREFIX + m.content if m.is_error else m.content
            out.append({"role": "tool", "tool_call_id": m.call_id, "content": content})
        else:
            out.append({"role": "user", "content": m.content})
    return out


def _tool(name: str, description: str, parameters: dict[str, Any]) -> ChatCompletionFunctionToolParam:
    """A function tool. Never ``strict``: that would make optional arguments required-but-nullable."""
    if description:
        return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def _structured(
    schema: OutputSchema | None, mode: StructuredMode, system: str
) -> tuple[completion_create_params.ResponseFormat | Omit, str]:
    """The ``response_format`` (or ``omit``) and the system prompt, for the structured-output mode."""
    if schema is None:
        return omit, system
    if mode == "strict":
        strict = _strict_schema(schema.json_schema)
        name = _SCHEMA_NAME.sub("_", schema.name)[:64] or "output"
        fmt: completion_create_params.ResponseFormat = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": strict if strict is not None else schema.json_schema,
                            "strict": strict is not None},
        }
        return fmt, system
    instruction = ("Reply with only a JSON value, no other text, that fits this JSON schema:\n"
                   + json.dumps(schema.json_schema, ensure_ascii=False))
    system = f"{system}\n\n{instruction}" if system else instruction
    if mode == "json_object":
        return {"type": "json_object"}, system
    return omit, system


# ---------------------------------------------------------------------- strict schemas

_STRICT_KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf", "$ref",
    "$defs", "description", "format", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "minItems", "maxItems",
})
"""What OpenAI's strict mode accepts (``title``, ``default`` and ``discriminator`` are removed first)."""


class _NotStrict(Exception):
    """The schema uses something strict mode cannot express."""


def _strict_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """``schema`` in OpenAI's strict subset, or None when it cannot be expressed there (see module docstring)."""
    if schema.get("type") != "object":
        return None
    try:
        out = _strict_node(copy.deepcopy(schema))
        defs = schema.get("$defs")
        if isinstance(defs, dict):
            out["$defs"] = {name: _strict_node(copy.deepcopy(d)) for name, d in defs.items()}
    except _NotStrict:
        return None
    return out


def _strict_node(node: Any) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise _NotStrict
    node.pop("$defs", None)  # only the root's, handled by the caller
    node.pop("title", None)
    node.pop("default", None)
    node.pop("discriminator", None)  # an OpenAPI annotation; the const tags carry the same information
    if "oneOf" in node:
        node["anyOf"] = node.pop("oneOf")
    all_of = node.pop("allOf", None)
    if all_of is not None:  # pydantic's old way to describe a $ref: allOf of one, beside the description
        if not isinstance(all_of, list) or len(all_of) != 1 or not isinstance(all_of[0], dict):
            raise _NotStrict
        return _strict_node({**all_of[0], **node})
    if "$ref" in node:
        return {"$ref": node["$ref"]}  # strict mode allows no keywords beside a $ref
    if not _STRICT_KEYWORDS.issuperset(node):
        raise _NotStrict
    types = node.get("type")
    if types == "object" or (isinstance(types, list) and "object" in types) or "properties" in node:
        _strict_object(node)
    if "items" in node:
        node["items"] = _strict_node(node["items"])
    if "anyOf" in node:
        if not isinstance(node["anyOf"], list):
            raise _NotStrict
        node["anyOf"] = [_strict_node(variant) for variant in node["anyOf"]]
    return cast(dict[str, Any], node)


def _strict_object(node: dict[str, Any]) -> None:
    """Every property named and required, nothing else allowed."""
    properties = node.get("properties")
    if not isinstance(properties, dict) or node.get("additionalProperties", False) is not False:
        raise _NotStrict  # a free-form mapping: strict mode needs every key named
    node["properties"] = {key: _strict_node(value) for key, value in properties.items()}
    node["required"] = list(properties)
    node["additionalProperties"] = False


# ---------------------------------------------------------------------- reading replies


def _get(obj: object, name: str) -> object:
    """A field of an SDK object or a plain dict; None when missing (replies are read without validation)."""
    if isinstance(obj, Mapping):
        return cast(Mapping[str, object], obj).get(name)
    return getattr(obj, name, None)


def _excerpt(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def _tool_call(index: int, raw: object) -> ToolCall:
    """A tool call; arguments that are not a JSON object become ``malformed``, for the agent to send back."""
    call_id = _get(raw, "id")
    call_id = call_id if isinstance(call_id, str) and call_id else f"call_{index}"
    function = _get(raw, "function")
    if function is None:
        custom = _get(raw, "custom")
        name = _get(custom, "name")
        return ToolCall(id=call_id, name=name if isinstance(name, str) else "", arguments={},
                        malformed="not a function call; only function tools are offered")
    name = _get(function, "name")
    name = name if isinstance(name, str) else ""
    arguments = _get(function, "arguments")
    if isinstance(arguments, dict):  # some compatible servers send the object itself
        return ToolCall(id=call_id, name=name, arguments=arguments)
    if not isinstance(arguments, str):
        return ToolCall(id=call_id, name=name, arguments={}, malformed="the arguments are missing")
    if not arguments.strip():
        return ToolCall(id=call_id, name=name, arguments={})  # no arguments given: an empty object
    try:
        value = json.loads(arguments)
    except ValueError as exc:
        return ToolCall(id=call_id, name=name, arguments={},
                        malformed=f"the arguments are not valid JSON ({exc}): {_excerpt(arguments)}")
    if not isinstance(value, dict):
        return ToolCall(id=call_id, name=name, arguments={},
                        malformed=f"the arguments must be a JSON object, not {type(value).__name__}: "
                                  f"{_excerpt(arguments)}")
    return ToolCall(id=call_id, name=name, arguments=value)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(raw: object) -> Usage:
    """Tokens of the call: cached prompt tokens are cache reads, the rest of the prompt is input.

    Cache writes stay in ``input_tokens``: OpenAI bills them at the input price.
    """
    prompt = _count(_get(raw, "prompt_tokens"))
    cached = min(_count(_get(_get(raw, "prompt_tokens_details"), "cached_tokens")), prompt)
    return Usage(input_tokens=prompt - cached, cache_read_tokens=cached,
                 output_tokens=_count(_get(raw, "completion_tokens")), model_calls=1)


def _strip_fence(text: str) -> str:
    """JSON without the Markdown code fence that models answering in prompt mode often put around it."""
    stripped = text.strip()
    if not stripped.startswith("```") or not stripped.endswith("```") or "\n" not in stripped:
        return text
    return stripped[stripped.index("\n") + 1 : -3].strip()


def _server_said(body: object) -> str:
    """The server's error message (and its type or code), else the body."""
    if isinstance(body, Mapping):
        body = cast(Mapping[str, object], body)
        message = body.get("message")
        kind = body.get("code") or body.get("type")
        if isinstance(message, str) and message:
            return f"{kind}: {message}" if isinstance(kind, str) and kind else message
    if body is None or body == "":
        return "(no body)"
    return _excerpt(body) if not isinstance(body, str) else body[:_EXCERPT]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked to wait: ``retry-after-ms``, else ``retry-after`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


# ---------------------------------------------------------------------- configuration


def _check_url(where: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}: base URL {url!r} is not an http:// or https:// URL")
    return url.rstrip("/")


def _api_key(name: str, api_key: str | None, api_key_env: str | None, *, compatible: bool) -> str:
    if api_key is not None:
        if not isinstance(api_key, str) or not api_key:
            raise ConfigError(f"{name}: api_key must be a non-empty string")
        return api_key
    if api_key_env is not None:
        found = os.environ.get(api_key_env)
        if not found:
            raise ConfigError(f"{name} reads its API key from ${api_key_env}, which is not set")
        return found
    if compatible:
        return _NO_KEY
    found = os.environ.get("OPENAI_API_KEY")
    if not found:
        raise ConfigError(f"{name} needs an API key: set OPENAI_API_KEY, or give the api_key or api_key_env option")
    return found


def _from_options(name: str, options: dict[str, Any], *, compatible: bool, base_url: str | None) -> OpenAIModel:
    provider = "openai-compatible" if compatible else "openai"
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ConfigError(f"{provider}:{name}: unknown option(s) {', '.join(map(repr, unknown))}; "
                          f"known: {', '.join(_OPTIONS)}")
    for key in ("api_key", "api_key_env", "base_url", "structured"):
        if key in options and not isinstance(options[key], str):
            raise ConfigError(f"{provider}:{name}: option {key} must be a string, got {options[key]!r}")
    given = options.get("base_url")
    if base_url is not None and given is not None and given.rstrip("/") != base_url.rstrip("/"):
        raise ConfigError(f"{provider}:{name}@{base_url}: the base_url option says {given!r}; give the URL once")
    return OpenAIModel(
        name, compatible=compatible, api_key=options.get("api_key"), api_key_env=options.get("api_key_env"),
        base_url=base_url or given, timeout=options.get("timeout", DEFAULT_TIMEOUT),
        max_tokens=options.get("max_tokens"), structured=options.get("structured"),
        prices=Prices.option(options["prices"], where=f"{provider}:{name}") if "prices" in options else None,
    )


def create_openai(name: str, options: dict[str, Any]) -> OpenAIModel:
    """Factory of ``openai:MODEL`` (options: api_key, api_key_env, base_url, timeout, max_tokens, structured,
    prices)."""
    return _from_options(name, options, compatible=False, base_url=None)


def create_compatible(name: str, options: dict[str, Any]) -> OpenAIModel:
    """Factory of ``openai-compatible:MODEL@BASE_URL``; the URL may come as the ``base_url`` option instead."""
    found = _ENDPOINT_IN_NAME.match(name)
    if found is None:
        return _from_options(name, options, compatible=True, base_url=None)
    return _from_options(found.group(1), options, compatible=True, base_url=found.group(2))


register_provider("openai", create_openai)
register_provider("openai-compatible", create_compatible)
