"""A local server that speaks Anthropic's Messages API (``POST /v1/messages``), for provider tests.

`AnthropicServer.check` holds each request to the documented shape, so a test that asserts
``server.problems == []`` proves the adapter sends what the real API accepts:

* headers: ``anthropic-version`` (a date) and a credential: ``x-api-key``, or the
  ``Authorization: Bearer`` the 2.x SDK sends an API key as;
* fields: ``model``, ``max_tokens`` and ``messages`` required, nothing the API does not know;
* messages start with ``user`` and alternate ``user`` / ``assistant``; content is a non-empty
  string or list of blocks; ``tool_use`` only from the assistant, ``tool_result`` only from the
  user, first in its message, answering a ``tool_use`` of the message just before, and every
  ``tool_use`` answered in the next message;
* tools have a valid name, a description if any, and an object ``input_schema``;
* ``cache_control`` is ``{"type": "ephemeral"}`` (``ttl`` 5m or 1h), at most 4 in a request;
* ``output_config.format`` is ``{"type": "json_schema", "schema": ...}`` with every object schema
  closed (``additionalProperties: false``), as structured outputs require.

Replies are built with `message_reply` and `error_reply`; `Garbled` sends a body that is not JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cadenza.models._pieces import words
from providers.wire import Raw, Reply, WireServer

__all__ = (
    "DEFAULT_TEXT",
    "AnthropicServer",
    "Garbled",
    "error_reply",
    "message_reply",
    "text_block",
    "tool_use_block",
)

DEFAULT_TEXT = "Hello from the Anthropic wire server."
"""What the server says when nothing is scripted."""

_FIELDS = frozenset({
    "model", "max_tokens", "messages", "cache_control", "container", "diagnostics", "inference_geo", "metadata",
    "output_config", "service_tier", "speed", "stop_sequences", "stream", "system", "thinking", "tool_choice", "tools",
})
"""The body fields of ``POST /v1/messages`` in API version 2026-10-21 (SDK 2.17; no ``temperature`` any more)."""

_USER_BLOCKS = frozenset({"text", "image", "document", "search_result", "tool_result"})
_ASSISTANT_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking"})
_TOOL_FIELDS = frozenset({
    "name", "description", "input_schema", "cache_control", "type", "strict", "input_examples", "defer_loading",
    "allowed_callers", "eager_input_streaming",
})
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_BREAKPOINTS = 4


@dataclass(frozen=True)
class Garbled(Raw):
    """A 200 reply whose body is ``text`` sent as is, labelled JSON but not JSON."""

    text: str = '{"id": "msg_cut", "type": "message", "content": [{"type": "te'


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def tool_use_block(id: str, name: str, input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": name, "input": input}


def message_reply(
    *content: dict[str, Any],
    model: str = "claude-haiku-4-5-20251001",
    stop_reason: str | None = None,
    input_tokens: int = 12,
    output_tokens: int = 6,
    cache_read: int = 0,
    cache_write: int = 0,
) -> Reply:
    """A successful reply; ``stop_reason`` defaults to ``tool_use`` when it calls a tool, else ``end_turn``."""
    if stop_reason is None:
        stop_reason = "tool_use" if any(block.get("type") == "tool_use" for block in content) else "end_turn"
    return Reply({
        "id": "msg_01WireServer", "type": "message", "role": "assistant", "model": model, "content": list(content),
        "stop_reason": stop_reason, "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens, "output_tokens": output_tokens,
            "cache_creation_input_tokens": cache_write, "cache_read_input_tokens": cache_read,
        },
    })


def error_reply(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    """An error as the API sends it: ``{"type": "error", "error": {"type", "message"}}`` and a request id."""
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_01WireServer"}
    return Reply(body, status=status, headers={"request-id": "req_01WireServer", **(headers or {})})


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


class AnthropicServer(WireServer):
    """`WireServer` speaking the Messages API; also plays `Garbled` replies."""

    def default_reply(self, path: str, body: Any, headers: dict[str, str]) -> Reply:
        if path.partition("?")[0] != "/v1/messages":
            return error_reply(404, "not_found_error", f"no route {path}")
        model = body.get("model") if isinstance(body, dict) else None
        return message_reply(text_block(DEFAULT_TEXT), model=model if isinstance(model, str) else "claude-haiku-4-5")

    def events(self, body: Any) -> list[str]:
        """A message as the API streams it: ``message_start`` (input usage), each content block started, its text
        or its input's JSON in pieces, stopped, then ``message_delta`` (stop reason, output usage) and
        ``message_stop``, with a ``ping`` after the start as the API sends."""
        usage = dict(body["usage"])
        output_tokens = usage.pop("output_tokens")
        start = {**body, "content": [], "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}
        out = [_event("message_start", {"type": "message_start", "message": start}), _event("ping", {"type": "ping"})]
        for index, block in enumerate(body["content"]):
            if block["type"] == "text":
                opened, pieces = {"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in words(block["text"])]
            else:
                opened = {**block, "input": {}}
                arguments = json.dumps(block["input"])
                pieces = [{"type": "input_json_delta", "partial_json": arguments[i:i + 10]}
                          for i in range(0, len(arguments), 10)]
            out.append(_event("content_block_start", {"type": "content_block_start", "index": index,
                                                      "content_block": opened}))
            out += [_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": piece})
                    for piece in pieces]
            out.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        out.append(_event("message_delta", {"type": "message_delta", "usage": {"output_tokens": output_tokens},
                                            "delta": {"stop_reason": body["stop_reason"], "stop_sequence": None}}))
        out.append(_event("message_stop", {"type": "message_stop"}))
        return out

    def check(self, method: str, path: str, headers: dict[str, str], body: Any) -> list[str]:
        problems: list[str] = []
        if (method, path.partition("?")[0]) != ("POST", "/v1/messages"):
            return [f"{method} {path}: the Messages API is POST /v1/messages"]
        problems += _check_headers(headers)
        if not isinstance(body, dict):
            return [*problems, f"body must be a JSON object, got {body!r:.80}"]
        problems += [f"unknown field {key!r}" for key in sorted(set(body) - _FIELDS)]
        problems += _check_required(body)
        breakpoints = _Breakpoints(problems)
        breakpoints.see(body, "cache_control")
        if "system" in body:
            _check_system(body["system"], problems, breakpoints)
        if isinstance(body.get("messages"), list):
            _check_messages(body["messages"], problems, breakpoints)
        if "tools" in body:
            _check_tools(body["tools"], problems, breakpoints)
        if "tool_choice" in body:
            _check_tool_choice(body["tool_choice"], body.get("tools"), problems)
        if "output_config" in body:
            _check_output_config(body["output_config"], problems)
        if "stream" in body and not isinstance(body["stream"], bool):
            problems.append(f"stream must be a boolean, got {body['stream']!r}")
        if breakpoints.count > _MAX_BREAKPOINTS:
            problems.append(f"{breakpoints.count} cache_control breakpoints; the API allows at most {_MAX_BREAKPOINTS}")
        return problems





class _Breakpoints:
    """Counts ``cache_control`` markers and checks each one's shape."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        self.count = 0

    def see(self, holder: dict[str, Any], where: str) -> None:
        marker = holder.get("cache_control")
        if marker is None:
            return
        self.count += 1
        if not isinstance(marker, dict) or marker.get("type") != "ephemeral" or set(marker) - {"type", "ttl"}:
            self.problems.append(f"{where}: cache_control must be {{'type': 'ephemeral'}}, got {marker!r}")
        elif marker.get("ttl", "5m") not in ("5m", "1h"):
            self.problems.append(f"{where}: cache_control ttl must be '5m' or '1h', got {marker['ttl']!r}")


def _check_headers(headers: dict[str, str]) -> list[str]:
    problems = []
    version = headers.get("anthropic-version")
    if version is None:
        problems.append("missing header anthropic-version")
    elif not _VERSION.match(version):
        problems.append(f"anthropic-version must be a date (YYYY-MM-DD), got {version!r}")
    bearer = headers.get("authorization", "")
    if not headers.get("x-api-key") and not (bearer.startswith("Bearer ") and bearer.removeprefix("Bearer ").strip()):
        problems.append("no credential: neither an x-api-key header nor Authorization: Bearer")
    if headers.get("content-type", "").split(";")[0].strip() != "application/json":
        problems.append(f"content-type must be application/json, got {headers.get('content-type')!r}")
    return problems


def _check_required(body: dict[str, Any]) -> list[str]:
    problems = []
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append(f"model must be a non-empty string, got {body.get('model')!r}")
    tokens = body.get("max_tokens")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        problems.append(f"max_tokens must be a non-negative integer, got {tokens!r}")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        problems.append(f"messages must be a non-empty list, got {body.get('messages')!r:.80}")
    return problems


def _check_text_block(block: dict[str, Any], where: str, problems: list[str]) -> None:
    if not isinstance(block.get("text"), str) or not block["text"]:
        problems.append(f"{where}: a text block needs non-empty text, got {block.get('text')!r}")
    problems += [f"{where}: unknown key {key!r}" for key in sorted(set(block) - {"type", "text", "cache_control",
                                                                                   "citations"})]


def _check_system(system: Any, problems: list[str], breakpoints: _Breakpoints) -> None:
    if isinstance(system, str):
        return
    if not isinstance(system, list):
        problems.append(f"system must be a string or a list of text blocks, got {system!r:.80}")
        return
    for n, block in enumerate(system):
        where = f"system[{n}]"
        if not isinstance(block, dict) or block.get("type") != "text":
            problems.append(f"{where}: system blocks must be text blocks, got {block!r:.80}")
            continue
        _check_text_block(block, where, problems)
        breakpoints.see(block, where)


def _check_messages(messages: list[Any], problems: list[str], breakpoints: _Breakpoints) -> None:
    expected = "user"
    unanswered: dict[str, str] = {}
    """tool_use ids of the previous assistant message, not yet answered by a tool_result."""
    for n, message in enumerate(messages):
        where = f"messages[{n}]"
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            problems.append(f"{where}: a message is exactly {{role, content}}, got {message!r:.80}")
            continue
        role = message["role"]
        if role != expected:
            problems.append(f"{where}: role must be {expected!r} (messages start with user and alternate), got {role!r}")
        content = message["content"]
        answering, unanswered = (unanswered, {}) if role == "user" else ({}, unanswered)
        if isinstance(content, str):
            if not content:
                problems.append(f"{where}: content must not be empty")
        elif not isinstance(content, list) or not content:
            problems.append(f"{where}: content must be a non-empty string or list of blocks, got {content!r:.80}")
        else:
            made = _check_blocks(content, role, where, answering, problems, breakpoints)
            if role == "assistant":
                unanswered = made
        if role == "user" and answering:
            problems.append(f"{where}: tool_use ids {sorted(answering)} of the previous message have no tool_result")
        expected = "assistant" if role == "user" else "user"


def _check_blocks(
    blocks: list[Any], role: str, where: str, answering: dict[str, str], problems: list[str],
    breakpoints: _Breakpoints,
) -> dict[str, str]:
    """Check one message's blocks; the ``tool_use`` ids it makes. Answered ids are removed from ``answering``."""
    allowed = _USER_BLOCKS if role == "user" else _ASSISTANT_BLOCKS
    made: dict[str, str] = {}
    others_seen = False
    for k, block in enumerate(blocks):
        at = f"{where}.content[{k}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in allowed:
            problems.append(f"{at}: a {role} message cannot hold a block of type {kind!r}")
            continue
        breakpoints.see(block, at)
        if kind == "text":
            _check_text_block(block, at, problems)
        elif kind == "tool_use":
            _check_tool_use(block, at, made, problems)
        elif kind == "tool_result":
            if others_seen:
                problems.append(f"{at}: tool_result blocks must come before any other content")
            _check_tool_result(block, at, answering, problems)
        others_seen = others_seen or kind != "tool_result"
    return made


def _check_tool_use(block: dict[str, Any], at: str, made: dict[str, str], problems: list[str]) -> None:
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str) or not call_id:
        problems.append(f"{at}: tool_use needs an id, got {call_id!r}")
    elif call_id in made:
        problems.append(f"{at}: tool_use id {call_id!r} is used twice")
    else:
        made[call_id] = str(name)
    if not isinstance(name, str) or not name:
        problems.append(f"{at}: tool_use needs a name, got {name!r}")
    if not isinstance(block.get("input"), dict):
        problems.append(f"{at}: tool_use input must be an object, got {block.get('input')!r:.80}")
    problems += [f"{at}: unknown key {key!r}" for key in sorted(set(block) - {"type", "id", "name", "input",
                                                                               "cache_control", "caller"})]


def _check_tool_result(block: dict[str, Any], at: str, answering: dict[str, str], problems: list[str]) -> None:
    call_id = block.get("tool_use_id")
    if call_id not in answering:
        problems.append(f"{at}: tool_use_id {call_id!r} answers no tool_use of the previous message")
    else:
        del answering[call_id]
    content = block.get("content", "")
    if isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("text", "image", "document", "search_result"):
                problems.append(f"{at}.content[{j}]: not a tool result content block: {part!r:.80}")
            elif part["type"] == "text":
                _check_text_block(part, f"{at}.content[{j}]", problems)
    elif not isinstance(content, str):
        problems.append(f"{at}: tool_result content must be a string or a list of blocks, got {content!r:.80}")
    if "is_error" in block and not isinstance(block["is_error"], bool):
        problems.append(f"{at}: is_error must be true or false, got {block['is_error']!r}")
    problems += [f"{at}: unknown key {key!r}" for key in sorted(set(block) - {"type", "tool_use_id", "content",
                                                                               "is_error", "cache_control"})]


def _check_tools(tools: Any, problems: list[str], breakpoints: _Breakpoints) -> None:
    if not isinstance(tools, list):
        problems.append(f"tools must be a list, got {tools!r:.80}")
        return
    names: set[str] = set()
    for n, spec in enumerate(tools):
        where = f"tools[{n}]"
        if not isinstance(spec, dict):
            problems.append(f"{where}: a tool must be an object, got {spec!r:.80}")
            continue
        if spec.get("type", "custom") not in ("custom", None):
            continue  # a server tool (web search, code execution): its own shape
        breakpoints.see(spec, where)
        name = spec.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            problems.append(f"{where}: tool name must match {_TOOL_NAME.pattern}, got {name!r}")
        elif name in names:
            problems.append(f"{where}: two tools are named {name!r}")
        else:
            names.add(name)
        if "description" in spec and not isinstance(spec["description"], str):
            problems.append(f"{where}: description must be a string, got {spec['description']!r:.80}")
        schema = spec.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            problems.append(f"{where}: input_schema must be a JSON schema with type 'object', got {schema!r:.80}")
        problems += [f"{where}: unknown key {key!r}" for key in sorted(set(spec) - _TOOL_FIELDS)]


def _check_tool_choice(choice: Any, tools: Any, problems: list[str]) -> None:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        problems.append(f"tool_choice type must be auto, any, tool or none, got {choice!r:.80}")
    elif kind == "tool":
        names = [t.get("name") for t in tools] if isinstance(tools, list) else []
        if choice.get("name") not in names:
            problems.append(f"tool_choice names tool {choice.get('name')!r}, which is not in tools")


def _check_output_config(config: Any, problems: list[str]) -> None:
    if not isinstance(config, dict) or set(config) - {"effort", "format"}:
        problems.append(f"output_config must be an object with effort and/or format, got {config!r:.80}")
        return
    fmt = config.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or set(fmt) != {"type", "schema"}:
        problems.append(f"output_config.format must be {{'type': 'json_schema', 'schema': ...}}, got {fmt!r:.80}")
        return
    if not isinstance(fmt["schema"], dict):
        problems.append(f"output_config.format.schema must be a JSON schema object, got {fmt['schema']!r:.80}")
        return
    _check_closed(fmt["schema"], "output_config.format.schema", problems)


def _check_closed(schema: Any, where: str, problems: list[str]) -> None:
    """Structured outputs need every object schema closed: ``additionalProperties: false``."""
    if isinstance(schema, list):
        for n, item in enumerate(schema):
            _check_closed(item, f"{where}[{n}]", problems)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
        problems.append(f"{where}: an object schema must set additionalProperties: false")
    for key, value in schema.items():
        if key in ("properties", "$defs"):
            for name, sub in value.items() if isinstance(value, dict) else ():
                _check_closed(sub, f"{where}.{key}.{name}", problems)
        elif key in ("items", "anyOf", "allOf", "oneOf"):
            _check_closed(value, f"{where}.{key}", problems)
