"""An offline model that answers instantly and reproducibly, so workflows run without API keys.

It calls tools with schema-valid arguments, returns schema-valid structured output,
plays back per-agent scripts, and can simulate latency. Every choice comes from a
seed mixed with the request, so the same request always gets the same answer.
"""

from __future__ import annotations

import asyncio
import json
import random
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from ..._errors import ConfigError, ModelError
from ..._trusted import TrustedBuilder
from ..._usage import Usage
from .._pieces import answer_in_pieces
from ..base import (
    AssistantMessage,
    DeltaSink,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from ._schema_instance import generate_instance

__all__ = ("ScriptedReply", "SimulatedModel", "create", "estimate_input_tokens", "estimate_output_tokens")

ScriptedReply = str | Mapping[str, Any]
"""A final text, or ``{"text": str}``, ``{"json": value}`` or ``{"tool_calls": [{"name", "arguments"}]}``."""

_Reply = tuple[str | None, tuple[ToolCall, ...]]
"""A validated scripted reply: final text, or tool calls (never both)."""

_OPTIONS = ("seed", "latency", "input_tokens", "output_tokens", "replies", "call_tools")
_SUMMARY_CHARS = 80
_QUOTE_CHARS = 60
"""How much of each earlier step's result a synthesised answer quotes."""
_LISTED_STEPS = 10
"""Step ids named in a synthesised answer's first line before the rest are counted instead."""
_RESULT_OPEN = '<result step="'
_RESULT_CLOSE = "\n</result>"
_NEXT_RESULT = "\n\n" + _RESULT_OPEN
_RESULTS_PREAMBLE = "Results of earlier steps follow."
"""The line ``render_task`` (cadenza._agent) puts before the result blocks it appends last."""


class SimulatedModel:
    """A deterministic stand-in for a real model: ``simulated:NAME`` in model strings.

    Args:
        name: distinguishes simulated models in traces; ``.name`` is ``simulated:NAME``.
        seed: mixed into every per-request choice.
        latency: seconds to wait per call, or ``(min, max)`` for a seeded uniform draw.
        input_tokens: report this many input tokens per call instead of estimating.
        output_tokens: report this many output tokens per call instead of estimating.
        replies: per-agent scripts, consumed one reply per request of that agent,
            after which generated behaviour resumes. A reply with ``when: TEXT`` is not
            consumed: it answers every new input that contains TEXT (the first call of a
            turn, not the calls after its tool results), so it answers the same in every
            process of a run, a resumed one included.
        call_tools: when false, never call tools; always answer finally.

    Raises:
        ConfigError: an option or scripted reply is malformed; the message says which.
    """

    def __init__(
        self,
        name: str = "default",
        *,
        seed: int = 0,
        latency: float | tuple[float, float] = 0.0,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        replies: Mapping[str, Sequence[ScriptedReply]] | None = None,
        call_tools: bool = True,
    ) -> None:
        self._name = f"simulated:{name}"
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"{self._name}: seed must be an integer, got {seed!r}")
        self._seed = seed
        self._latency = _latency_range(self._name, latency)
        self._input_tokens = _token_override(self._name, "input_tokens", input_tokens)
        self._output_tokens = _token_override(self._name, "output_tokens", output_tokens)
        if not isinstance(call_tools, bool):
            raise ConfigError(f"{self._name}: call_tools must be true or false, got {call_tools!r}")
        self._call_tools = call_tools
        scripts = _parse_scripts(self._name, replies)
        self._scripts = {agent: [r for when, r in script if when is None] for agent, script in scripts.items()}
        self._answers = {agent: [(when, r) for when, r in script if when is not None] for agent, script in scripts.items()}
        self._positions: dict[str, int] = {}

    @property
    def name(self) -> str:
        """``simulated:NAME``."""
        return self._name

    def __repr__(self) -> str:
        return f"SimulatedModel({self._name!r}, seed={self._seed})"

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Answer from the agent's script, else call a tool, else give a final answer."""
        lo, hi = self._latency
        random_needed = lo != hi or bool(request.tools) or request.output_schema is not None
        mix = self._mix(request) if random_needed else 0
        if hi > 0.0:
            await asyncio.sleep(lo if lo == hi else lo + (hi - lo) * (mix % 1_000_003) / 1_000_002)

        agent = request.agent
        scripted = self._scripted(agent, request) if agent is not None and agent in self._scripts else None
        text, calls = scripted if scripted is not None else self._generate(request, mix)

        output_tokens = self._output_tokens if self._output_tokens is not None else estimate_output_tokens(text, calls)
        if request.max_tokens is not None:  # a real provider stops at the limit; so does this one's count
            output_tokens = min(output_tokens, request.max_tokens)
        usage = _usage(
            self._input_tokens if self._input_tokens is not None else estimate_input_tokens(request), output_tokens,
        )
        if calls:
            return _build_response(tool_calls=list(calls), usage=usage, model=self._name)
        return _build_response(text=text, usage=usage, model=self._name)

    async def stream(self, request: ModelRequest, deltas: DeltaSink) -> ModelResponse:
        """`request`, its answer told to ``deltas`` a word (or a few characters of a call's arguments) at a time."""
        return await answer_in_pieces(self, request, deltas)

    def _mix(self, request: ModelRequest) -> int:
        """Per-request seed: the model seed mixed with who asks, at which turn, about what."""
        messages = request.messages
        last_text = _message_text(messages[-1]) if messages else ""
        crc = zlib.crc32(f"{request.agent}\x1f{len(messages)}\x1f{last_text}".encode())
        return (crc * 2654435761) ^ (self._seed * 0x9E3779B97F4A7C15)

    def _scripted(self, agent: str, request: ModelRequest) -> _Reply | None:
        """The ``when`` reply whose text the new input contains, else the agent's next reply in order."""
        new = _new_input(request)
        if new is not None:
            for when, reply in self._answers[agent]:
                if when in new:
                    return reply
        script = self._scripts[agent]
        position = self._positions.get(agent, 0)
        if position >= len(script):
            return None
        self._positions[agent] = position + 1
        return script[position]

    def _generate(self, request: ModelRequest, mix: int) -> _Reply:
        messages = request.messages
        user_text = ""
        tool_results = 0
        for message in reversed(messages):
            if isinstance(message, UserMessage):
                user_text = message.content
                break
            if isinstance(message, ToolResultMessage):
                tool_results += 1

        if request.tools and self._call_tools and tool_results == 0:
            return None, (self._tool_call(request, random.Random(mix)),)

        if request.output_schema is not None:
            schema = request.output_schema
            try:
                value = generate_instance(schema.json_schema, random.Random(mix), goal=_goal(user_text))
            except ValueError as exc:
                raise ModelError(f"{self._name} cannot produce output for schema {schema.name!r}: {exc}") from exc
            return json.dumps(value), ()

        used_tools = f" (using {tool_results} tool result{'s' if tool_results > 1 else ''})" if tool_results else ""
        if _RESULT_OPEN in user_text:
            synthesis = _synthesis(request.agent or "model", user_text, used_tools)
            if synthesis is not None:
                return synthesis, ()
        return f"[{request.agent or 'model'}] Done: {_summary(user_text)}{used_tools}", ()

    def _tool_call(self, request: ModelRequest, rng: random.Random) -> ToolCall:
        tools = request.tools
        start = rng.randrange(len(tools))
        problems: list[str] = []
        for offset in range(len(tools)):
            spec = tools[(start + offset) % len(tools)]
            try:
                arguments = generate_instance(spec.parameters, rng)
            except ValueError as exc:
                problems.append(f"{spec.name}: {exc}")
                continue
            if isinstance(arguments, dict):
                return ToolCall(id=f"call_{rng.getrandbits(48):012x}", name=spec.name, arguments=arguments)
            problems.append(f"{spec.name}: parameters schema does not describe an object")
        raise ModelError(f"{self._name} cannot build arguments for any tool: {'; '.join(problems)}")


_build_response = TrustedBuilder(ModelResponse)
"""Responses are made here from checked parts (scripts are validated when the model is built)."""

_usage_cache: dict[tuple[int, int], Usage] = {}


def _usage(input_tokens: int, output_tokens: int) -> Usage:
    """Usage is frozen, so equal counts share one object: validating a new one per call is slow."""
    key = (input_tokens, output_tokens)
    usage = _usage_cache.get(key)
    if usage is None:
        if len(_usage_cache) >= 4096:
            _usage_cache.clear()
        usage = _usage_cache[key] = Usage(
            input_tokens=input_tokens, output_tokens=output_tokens, model_calls=1, cost_usd=0.0
        )
    return usage


def estimate_input_tokens(request: ModelRequest) -> int:
    """Roughly four characters per token over the system prompt and messages; cheap, not exact."""
    chars = len(request.system)
    for message in request.messages:
        chars += _message_chars(message)
    return -(-chars // 4)


def estimate_output_tokens(text: str | None, tool_calls: Sequence[ToolCall] = ()) -> int:
    """Roughly four characters per token over the answer text and tool calls."""
    chars = len(text) if text else 0
    for call in tool_calls:
        chars += len(call.name) + len(str(call.arguments))
    return -(-chars // 4)


def _message_chars(message: ModelMessage) -> int:
    if isinstance(message, AssistantMessage):
        chars = len(message.text) if message.text else 0
        for call in message.tool_calls:
            chars += len(call.name) + len(str(call.arguments))
        return chars
    return len(message.content)


def _message_text(message: ModelMessage) -> str:
    if isinstance(message, AssistantMessage):
        return message.text or ""
    return message.content


def _goal(text: str) -> str:
    """The goal a request states: its first paragraph, without a leading ``Goal:`` label."""
    text = text.strip()
    if text[:5].lower() == "goal:":
        text = text[5:].strip()
    return text.split("\n\n", 1)[0].strip()


def _summary(text: str) -> str:
    """The first line of the request, shortened: enough to see which task was answered."""
    line = text.strip().split("\n", 1)[0].strip()
    if not line:
        return "the task is complete."
    return _shorten(line, _SUMMARY_CHARS) if len(line) > _SUMMARY_CHARS else line


def _shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, at a word boundary when one is near, marked with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip() + "…"


def _synthesis(agent: str, text: str, used_tools: str) -> str | None:
    """An answer that combines the earlier steps' results in ``text``, one quoted line each.

    Reads the blocks after the last preamble ``render_task`` writes, so results quoted
    inside the goal (a nested team's task) are not mistaken for this step's inputs.
    Returns ``None`` when no well-formed block is found, so the plain answer is used.
    """
    start = text.rfind(_RESULTS_PREAMBLE)
    if start < 0:
        start = text.find(_RESULT_OPEN)
    results = _result_blocks(text, start)
    if not results:
        return None
    title = _goal(text[:start]).split("\n", 1)[0].strip()
    title = _shorten(title, _SUMMARY_CHARS).rstrip(" .:;") if not title.startswith("<input>") else ""
    ids = [step for step, _ in results[:_LISTED_STEPS]]
    if len(results) > _LISTED_STEPS:
        ids.append(f"and {len(results) - _LISTED_STEPS} more")
    count = f"{len(results)} result{'s' if len(results) > 1 else ''} ({', '.join(ids)})"
    lead = f"[{agent}] {title}: combined" if title else f"[{agent}] Combined"
    lines = [f"{lead} {count}.{used_tools}"]
    for step, output in results:
        quote = _one_line(output[: _QUOTE_CHARS * 2])
        lines.append(f"- {step}: {_shorten(quote, _QUOTE_CHARS) if quote else '(empty)'}")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    """``text`` on one line, each run of whitespace one space; the slow general split runs only when needed."""
    line = text.replace("\n", " ")
    if "  " in line or not line.isprintable():
        return " ".join(line.split())
    return line.strip()


def _result_blocks(text: str, start: int) -> list[tuple[str, str]]:
    """``(step id, output)`` for each result block, as ``render_task`` writes them, from ``start`` on.

    A block ends at a closing tag followed by the next block or the end of the text, as
    ``render_task`` lays them out, so an output that itself contains ``</result>`` stays whole.
    Plain string search, not a regex: this runs for every step that has dependencies.
    """
    blocks: list[tuple[str, str]] = []
    end = len(text.rstrip())
    opened = text.find(_RESULT_OPEN, start)
    while opened >= 0:
        head_end = text.find('">\n', opened)
        if head_end < 0:
            break
        body = head_end + 3
        close = text.find(_RESULT_CLOSE, body)
        while close >= 0:
            after = close + len(_RESULT_CLOSE)
            if after >= end or text.startswith(_NEXT_RESULT, after):
                break
            close = text.find(_RESULT_CLOSE, close + 1)
        if close < 0:
            break
        blocks.append((text[opened + len(_RESULT_OPEN) : head_end], text[body:close]))
        opened = text.find(_RESULT_OPEN, close + len(_RESULT_CLOSE))
    return blocks


# --------------------------------------------------------------------------- option checking


def _number(owner: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{owner}: {what} must be a non-negative number of seconds, got {value!r}")
    return float(value)


def _latency_range(owner: str, latency: Any) -> tuple[float, float]:
    """Accept seconds, ``(min, max)``, ``[min, max]`` or ``{"min": .., "max": ..}`` (YAML forms)."""
    if isinstance(latency, Mapping):
        if set(latency) != {"min", "max"}:
            raise ConfigError(f"{owner}: latency as a mapping needs exactly the keys 'min' and 'max'")
        bounds = (latency["min"], latency["max"])
    elif isinstance(latency, (list, tuple)):
        if len(latency) != 2:
            raise ConfigError(f"{owner}: latency as a range needs two values [min, max], got {latency!r}")
        bounds = (latency[0], latency[1])
    else:
        seconds = _number(owner, "latency", latency)
        return seconds, seconds
    lo, hi = _number(owner, "latency min", bounds[0]), _number(owner, "latency max", bounds[1])
    if lo > hi:
        raise ConfigError(f"{owner}: latency min {lo} is larger than max {hi}")
    return lo, hi


def _token_override(owner: str, what: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{owner}: {what} must be a non-negative integer, got {value!r}")
    return value


def _new_input(request: ModelRequest) -> str | None:
    """What a turn was asked, when this is its first call: the latest user message, or in a peer group's turn the
    message it handles (the last ``<message>`` block); None after tool results, which answer the turn's own calls."""
    messages = request.messages
    if not messages or not isinstance(messages[-1], UserMessage):
        return None
    text = messages[-1].content
    start = text.rfind("<message>")
    if start < 0:
        return text
    end = text.find("</message>", start)
    return text[start + len("<message>"):end if end >= 0 else None]


def _parse_scripts(owner: str, replies: Any) -> dict[str, list[tuple[str | None, _Reply]]]:
    if replies is None:
        return {}
    if not isinstance(replies, Mapping):
        raise ConfigError(f"{owner}: replies must map agent names to lists of replies")
    scripts: dict[str, list[tuple[str | None, _Reply]]] = {}
    for agent, script in replies.items():
        if not isinstance(agent, str):
            raise ConfigError(f"{owner}: replies keys must be agent names, got {agent!r}")
        if isinstance(script, (str, Mapping)) or not isinstance(script, Sequence):
            raise ConfigError(f"{owner}: replies for agent {agent!r} must be a list of replies")
        scripts[agent] = [_parse_reply(owner, agent, index, reply) for index, reply in enumerate(script)]
    return scripts


def _parse_reply(owner: str, agent: str, index: int, reply: Any) -> tuple[str | None, _Reply]:
    """``(when, reply)``: the text a new input must contain for the reply to answer it (None: next in order)."""
    where = f"{owner}: scripted reply {index} for agent {agent!r}"
    if isinstance(reply, str):
        return None, (reply, ())
    if not isinstance(reply, Mapping):
        raise ConfigError(
            f"{where} must be a string or a mapping with exactly one of 'text', 'json', 'tool_calls'; got {reply!r}"
        )
    when = reply.get("when")
    if "when" in reply and (not isinstance(when, str) or not when):
        raise ConfigError(f"{where}: 'when' must be a non-empty string, the text a new input contains; got {when!r}")
    return when, _parse_content(where, agent, index, {k: v for k, v in reply.items() if k != "when"})


def _parse_content(where: str, agent: str, index: int, reply: Mapping[str, Any]) -> _Reply:
    if len(reply) != 1:
        raise ConfigError(
            f"{where} must be a string or a mapping with exactly one of 'text', 'json', 'tool_calls' (and an "
            f"optional 'when'); got {dict(reply)!r}"
        )
    ((key, value),) = reply.items()
    if key == "text":
        if not isinstance(value, str):
            raise ConfigError(f"{where}: 'text' must be a string, got {value!r}")
        return value, ()
    if key == "json":
        try:
            return json.dumps(value), ()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: 'json' value is not JSON-serialisable: {exc}") from None
    if key == "tool_calls":
        if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence) or not value:
            raise ConfigError(f"{where}: 'tool_calls' must be a non-empty list of {{name, arguments}} mappings")
        calls: list[ToolCall] = []
        for number, call in enumerate(value):
            if not isinstance(call, Mapping) or not isinstance(call.get("name"), str) or not call["name"]:
                raise ConfigError(f"{where}: tool call {number} needs a 'name' string, got {call!r}")
            arguments = call.get("arguments", {})
            unknown = set(call) - {"name", "arguments"}
            if unknown or not isinstance(arguments, Mapping):
                raise ConfigError(
                    f"{where}: tool call {number} must have only 'name' and an 'arguments' mapping, got {call!r}"
                )
            calls.append(ToolCall(id=f"call_{agent}_{index}_{number}", name=call["name"], arguments=dict(arguments)))
        return None, tuple(calls)
    raise ConfigError(f"{where}: unknown key {key!r}; expected one of 'text', 'json', 'tool_calls'")


def create(name: str, options: dict[str, Any]) -> SimulatedModel:
    """The model of ``simulated:NAME``: how the registry builds it (``registry._ensure_builtins``)."""
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"for model 'simulated:{name}'; valid options: {', '.join(_OPTIONS)}"
        )
    return SimulatedModel(name, **options)

