"""A local server speaking OpenAI's Chat Completions wire protocol (POST /v1/chat/completions).

`OpenAIServer.check` holds every request to the documented shape of the endpoint, so a test that
asserts ``server.problems == []`` proves the adapter sent what OpenAI accepts: a bearer token, known
roles, tool calls and tool results that pair up, function tools, and strict schemas that follow
strict mode's rules. The helpers build replies: `completion`, `tool_call`, `error`; a scripted `Garbled`
is a reply labelled JSON whose body is not JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cadenza.models._pieces import words
from providers.wire import Raw, Reply, WireServer

__all__ = ("PATH", "Garbled", "OpenAIServer", "completion", "error", "strict_problems", "tool_call")

PATH = "/v1/chat/completions"

_BODY_KEYS = frozenset({
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "response_format", "max_completion_tokens",
    "max_tokens", "temperature", "top_p", "stop", "seed", "n", "user", "metadata", "store", "stream",
    "stream_options", "reasoning_effort", "verbosity", "service_tier", "prompt_cache_key", "safety_identifier",
    "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty", "logit_bias", "modalities", "prediction",
})
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal", "audio"},
    "tool": {"role", "content", "tool_call_id"},
}
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_STRICT_KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf", "$ref",
    "$defs", "description", "title", "format", "pattern", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
})
"""Keywords strict mode supports (``default``, ``oneOf``, ``allOf``, ``minLength`` and the like are refused)."""


@dataclass(frozen=True)
class Garbled(Raw):
    """A 200 reply labelled JSON whose body is ``text`` as is: a reply cut off on its way."""

    text: str = '{"id": "chatcmpl-cut", "object": "chat.completion", "choices": [{"ind'


def completion(
    content: str | None = "Hello from the server.",
    *,
    model: str = "gpt-5-mini-2025-08-07",
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str | None = None,
    refusal: str | None = None,
    prompt_tokens: int = 12,
    completion_tokens: int = 5,
    cached_tokens: int = 0,
) -> dict[str, Any]:
    """A chat.completion body as OpenAI sends it."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal, "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": None,
    }


def tool_call(call_id: str, name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
    """One entry of ``message.tool_calls``; a str is sent as the arguments text verbatim (to send bad JSON)."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def error(status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
          headers: dict[str, str] | None = None) -> Reply:
    """An error reply in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": type, "param": None, "code": code}}
    return Reply(body, status=status, headers=headers or {})


class OpenAIServer(WireServer):
    """Answers POST /v1/chat/completions; checks each request against the documented request shape."""



    def default_reply(self, path: str, body: Any, headers: dict[str, str]) -> Reply:
        if path != PATH:
            return error(404, f"Invalid URL (POST {path})")
        model = body.get("model") if isinstance(body, dict) else None
        # OpenAI answers with the dated snapshot that served the alias.
        return Reply(completion(model=f"{model if isinstance(model, str) else 'gpt-5-mini'}-2025-08-07"))

    def events(self, body: Any) -> list[str]:
        """A chat.completion as the API streams it: ``chat.completion.chunk`` objects (the role, the content a
        word at a time, each tool call's id and name, then its arguments in pieces, the finish reason), a last
        chunk with no choices and the usage, then ``[DONE]``."""
        choice = body["choices"][0]
        message = choice["message"]
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "", "refusal": None}]
        deltas += [{"content": piece} for piece in words(message.get("content") or "")]
        if message.get("refusal"):
            deltas.append({"refusal": message["refusal"]})
        for index, call in enumerate(message.get("tool_calls") or []):
            function = call["function"]
            deltas.append({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                           "function": {"name": function["name"], "arguments": ""}}]})
            arguments = function["arguments"]
            deltas += [{"tool_calls": [{"index": index, "function": {"arguments": arguments[i:i + 10]}}]}
                       for i in range(0, len(arguments), 10)]
        frame = {key: body[key] for key in ("id", "created", "model", "service_tier", "system_fingerprint")}
        chunks = [{**frame, "object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}
                  for delta in deltas]
        chunks.append({**frame, "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": choice["finish_reason"]}]})
        chunks.append({**frame, "object": "chat.completion.chunk", "choices": [], "usage": body["usage"]})
        return [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"]

    def check(self, method: str, path: str, headers: dict[str, str], body: Any) -> list[str]:
        problems: list[str] = []
        if method != "POST" or path != PATH:
            problems.append(f"{method} {path}: expected POST {PATH}")
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth.removeprefix("Bearer ").strip():
            problems.append(f"authorization header {auth!r} is not 'Bearer <key>'")
        if not headers.get("content-type", "").startswith("application/json"):
            problems.append(f"content-type {headers.get('content-type')!r} is not application/json")
        if not isinstance(body, dict):
            return [*problems, f"body is not a JSON object: {body!r}"]
        unknown = sorted(set(body) - _BODY_KEYS)
        if unknown:
            problems.append(f"unknown body keys {unknown}")
        if not isinstance(body.get("model"), str) or not body["model"]:
            problems.append("model is missing or not a non-empty string")
        if body.get("stream") and body.get("stream_options") != {"include_usage": True}:
            problems.append(f"a stream without its usage: stream_options is {body.get('stream_options')!r}, "
                            "not {'include_usage': True}")
        problems += _check_messages(body.get("messages"))
        problems += _check_tools(body.get("tools"))
        problems += _check_limits(body)
        problems += _check_format(body.get("response_format"), body.get("messages"))
        return problems



def _check_messages(messages: Any) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return ["messages is missing or empty"]
    thread = _Thread()
    for n, m in enumerate(messages):
        thread.add(f"messages[{n}]", m)
    if thread.pending:
        thread.problems.append(f"tool calls {sorted(thread.pending)} of the last assistant message have no tool message")
    return thread.problems


class _Thread:
    """The conversation read so far: which tool calls were made, which still wait for their tool message."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.pending: set[str] = set()
        self.called: set[str] = set()

    def add(self, where: str, m: Any) -> None:
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            self.problems.append(f"{where}: not a message with a role of {sorted(_ROLES)}: {m!r}")
            return
        role = m["role"]
        extra = sorted(set(m) - _MESSAGE_KEYS[role])
        if extra:
            self.problems.append(f"{where}: unknown keys {extra} for role {role}")
        if role != "tool" and self.pending:
            self.problems.append(f"{where}: tool calls {sorted(self.pending)} have no tool message before this "
                                 f"{role} message")
            self.pending = set()
        if role == "assistant":
            ids, found = _check_assistant(where, m)
            self.problems += found
            if ids & self.called:
                self.problems.append(f"{where}: tool call ids {sorted(ids & self.called)} were used before")
            self.pending, self.called = set(ids), self.called | ids
        elif role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in self.pending:
                self.problems.append(f"{where}: tool_call_id {call_id!r} answers no pending tool call of the "
                                     f"assistant message before it (pending: {sorted(self.pending)})")
            self.pending.discard(call_id if isinstance(call_id, str) else "")
            if not _is_content(m.get("content")):
                self.problems.append(f"{where}: tool content must be a string or text parts")
        elif not _is_content(m.get("content")):
            self.problems.append(f"{where}: {role} content must be a string or content parts, got {m.get('content')!r}")


def _check_assistant(where: str, m: dict[str, Any]) -> tuple[set[str], list[str]]:
    problems: list[str] = []
    content = m.get("content")
    calls = m.get("tool_calls")
    if content is not None and not _is_content(content):
        problems.append(f"{where}: assistant content must be a string, parts or null")
    if calls is None:
        if content is None:
            problems.append(f"{where}: an assistant message needs content or tool_calls")
        return set(), problems
    if not isinstance(calls, list) or not calls:
        return set(), [*problems, f"{where}: tool_calls must be a non-empty list (omit it instead)"]
    ids: set[str] = set()
    for i, call in enumerate(calls):
        call_id, found = _check_call(f"{where}.tool_calls[{i}]", call)
        problems += found
        if call_id is not None:
            ids.add(call_id)
    return ids, problems


def _check_call(at: str, call: Any) -> tuple[str | None, list[str]]:
    """One entry of an assistant message's ``tool_calls``: its id, and what is wrong with it."""
    if not isinstance(call, dict) or set(call) != {"id", "type", "function"}:
        return None, [f"{at}: expected exactly id, type, function: {call!r}"]
    problems = []
    call_id = call["id"] if isinstance(call["id"], str) and call["id"] else None
    if call_id is None:
        problems.append(f"{at}: id must be a non-empty string")
    if call["type"] != "function":
        problems.append(f"{at}: type must be 'function', got {call['type']!r}")
    function = call["function"]
    if not isinstance(function, dict) or set(function) != {"name", "arguments"}:
        return call_id, [*problems, f"{at}.function: expected exactly name, arguments: {function!r}"]
    if not isinstance(function["name"], str) or not _NAME.match(function["name"]):
        problems.append(f"{at}.function.name {function['name']!r} is not a valid function name")
    arguments = function["arguments"]
    if not isinstance(arguments, str):
        problems.append(f"{at}.function.arguments must be a JSON string, got {type(arguments).__name__}")
    else:
        try:
            json.loads(arguments)
        except ValueError:
            problems.append(f"{at}.function.arguments is not JSON: {arguments!r}")
    return call_id, problems


def _is_content(content: Any) -> bool:
    if isinstance(content, str):
        return True
    return isinstance(content, list) and bool(content) and all(
        isinstance(p, dict) and isinstance(p.get("type"), str) for p in content
    )


def _check_tools(tools: Any) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list) or not tools:
        return ["tools must be a non-empty list (omit it instead)"]
    problems: list[str] = []
    names: set[str] = set()
    for n, t in enumerate(tools):
        where = f"tools[{n}]"
        if not isinstance(t, dict) or t.get("type") != "function" or set(t) != {"type", "function"}:
            problems.append(f"{where}: expected {{type: 'function', function: {{...}}}}: {t!r}")
            continue
        f = t["function"]
        if not isinstance(f, dict) or not set(f) <= {"name", "description", "parameters", "strict"}:
            problems.append(f"{where}.function: unexpected shape {f!r}")
            continue
        name = f.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"{where}.function.name {name!r} is not a valid function name")
        elif name in names:
            problems.append(f"{where}: two tools are named {name!r}")
        names.add(name if isinstance(name, str) else "")
        if "description" in f and not isinstance(f["description"], str):
            problems.append(f"{where}.function.description must be a string")
        params = f.get("parameters")
        if params is not None and (not isinstance(params, dict) or params.get("type") != "object"):
            problems.append(f"{where}.function.parameters must be a JSON schema of type object: {params!r}")
        if "strict" in f and not isinstance(f["strict"], bool):
            problems.append(f"{where}.function.strict must be a boolean")
        if f.get("strict") is True and isinstance(params, dict):
            problems += strict_problems(params, f"{where}.function.parameters")
    return problems


def _check_limits(body: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if key in body and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            problems.append(f"{key} must be a positive integer, got {value!r}")
    if "max_completion_tokens" in body and "max_tokens" in body:
        problems.append("max_tokens and max_completion_tokens are both set")
    return problems


def _check_format(fmt: Any, messages: Any) -> list[str]:
    if fmt is None:
        return []
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        return [f"response_format has an unknown shape: {fmt!r}"]
    if fmt["type"] == "json_object":
        if "json" not in json.dumps(messages).lower():
            return ["response_format json_object needs the word 'JSON' somewhere in the messages"]
        return []
    if fmt["type"] == "text":
        return []
    spec = fmt.get("json_schema")
    if set(fmt) != {"type", "json_schema"} or not isinstance(spec, dict):
        return [f"response_format json_schema has an unknown shape: {fmt!r}"]
    problems = []
    if not set(spec) <= {"name", "description", "schema", "strict"}:
        problems.append(f"response_format.json_schema has unknown keys {sorted(set(spec) - {'name', 'schema'})}")
    if not isinstance(spec.get("name"), str) or not _NAME.match(spec["name"]):
        problems.append(f"response_format.json_schema.name {spec.get('name')!r} is not a valid name")
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        problems.append("response_format.json_schema.schema must be a JSON schema object")
    elif spec.get("strict") is True:
        problems += strict_problems(schema, "response_format.json_schema.schema")
    if "strict" in spec and not isinstance(spec["strict"], bool):
        problems.append("response_format.json_schema.strict must be a boolean")
    return problems


def strict_problems(schema: dict[str, Any], where: str) -> list[str]:
    """Where ``schema`` breaks strict mode's rules; empty when it keeps them."""
    problems: list[str] = []
    if schema.get("type") != "object":
        problems.append(f"{where}: the root of a strict schema must be an object")
    defs = schema.get("$defs", {})
    _visit({k: v for k, v in schema.items() if k != "$defs"}, where, defs, problems)
    for name, sub in defs.items():
        _visit(sub, f"{where}.$defs.{name}", defs, problems)
    return problems


def _visit(node: Any, at: str, defs: dict[str, Any], problems: list[str]) -> None:
    if not isinstance(node, dict):
        problems.append(f"{at}: not a schema: {node!r}")
        return
    if "$ref" in node:
        problems += _ref_problems(node, at, defs)
        return
    bad = sorted(set(node) - _STRICT_KEYWORDS)
    if bad:
        problems.append(f"{at}: keywords {bad} are not supported in strict mode")
    if "$defs" in node:
        problems.append(f"{at}: $defs are only allowed at the root")
    types = node.get("type")
    if types == "object" or (isinstance(types, list) and "object" in types) or "properties" in node:
        props = node.get("properties", {})
        if node.get("additionalProperties") is not False:
            problems.append(f"{at}: an object must set additionalProperties: false")
        if not isinstance(props, dict) or sorted(node.get("required", [])) != sorted(props):
            problems.append(f"{at}: required must list every property ({sorted(props)}), got {node.get('required')}")
        for key, value in (props.items() if isinstance(props, dict) else ()):
            _visit(value, f"{at}.properties.{key}", defs, problems)
    if "items" in node:
        _visit(node["items"], f"{at}.items", defs, problems)
    for i, variant in enumerate(node.get("anyOf", [])):
        _visit(variant, f"{at}.anyOf[{i}]", defs, problems)


def _ref_problems(node: dict[str, Any], at: str, defs: dict[str, Any]) -> list[str]:
    problems = []
    ref = node["$ref"]
    if len(node) > 1:
        problems.append(f"{at}: a $ref may have no sibling keywords: {sorted(node)}")
    name = ref.removeprefix("#/$defs/") if isinstance(ref, str) else None
    if ref != "#" and (name is None or name == ref or name not in defs):
        problems.append(f"{at}: $ref {ref!r} does not resolve to the root or one of its $defs")
    return problems
