"""Typed tools: a Python function becomes something a model can call safely.

The JSON schema comes from the signature and docstring; arguments are validated
before the function runs, so an invalid call never executes.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_type_hints, overload

import pydantic_core
from pydantic import ConfigDict, ValidationError, create_model

from .._errors import ConfigError, ToolArgumentsError, ToolError
from .._names import summarise_validation
from ..models.base import ToolSpec

if TYPE_CHECKING:
    from .._workspace import Workspace

__all__ = ("SideEffect", "Tool", "ToolContext", "tool")

SideEffect = Literal["pure", "idempotent", "at_most_once"]
"""How a tool may be repeated when a resumed run runs its step again.

``pure``: no effect outside its answer; run it again freely (the default).
``idempotent``: has effects, but the runtime passes a stable ``idempotency_key``
(`ToolContext`) so the tool, or the service it calls, can drop a repeat.
``at_most_once``: must never run twice; a call that was in flight when a process
died is marked uncertain and the resumed run pauses for a human decision.
A call of a non-pure tool that finished is recorded with its result and never repeated.
"""


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What the runtime tells a tool about the call; a parameter annotated ``ToolContext`` receives it.

    That parameter is not part of the tool's schema: the model never sees or sets it.
    """

    run_id: str | None
    """The run the call belongs to (None when the tool is called outside a run)."""
    step: str | None
    """The step's path in the run (``lead/research``), or None outside a plan."""
    agent: str | None
    """The agent that made the call."""
    idempotency_key: str
    """Stable for the same call (tool, arguments and their occurrence) of the same step in the same run."""
    workspace: Workspace | None = None
    """The run's shared workspace, when the run is recorded in a store."""


_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s+(\*{0,2}\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


def _split_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Google-style docstring -> (summary, {param: description})."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    in_args = False
    current: str | None = None
    for line in lines:
        if _ARGS_HEADER.match(line):
            in_args = True
            continue
        if in_args:
            if line and not line[0].isspace():
                in_args = False
            else:
                match = _ARG_LINE.match(line)
                if match and (len(line) - len(line.lstrip())) <= 4:
                    current = match.group(1).lstrip("*")
                    params[current] = match.group(2).strip()
                elif current and line.strip():
                    params[current] += " " + line.strip()
                continue
        if not in_args and not params:
            summary.append(line)
    return "\n".join(summary).strip(), params


class Tool:
    """A callable tool with a schema, scopes and a timeout.

    Build one with the `tool` decorator. Calling `run` validates the arguments,
    runs the function (in a thread when it is synchronous) and returns its value;
    every failure comes out as `ToolError`, so an agent can hand it back to the model.
    """

    __slots__ = ("_args_model", "_context_param", "_func", "_is_async", "description", "ends_turn", "name",
                 "requires_approval", "scopes", "side_effect", "spec", "timeout")

    grants_own_scopes: ClassVar[bool] = True
    """Whether giving an agent this tool grants the scopes it declares (when the agent names no grant of its own):
    true for tools written in the program, false for tools a server describes (MCP), which need an explicit grant."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        scopes: Iterable[str] = (),
        timeout: float | None = 30.0,
        side_effect: SideEffect = "pure",
        requires_approval: bool = False,
        ends_turn: bool = False,
    ) -> None:
        if side_effect not in ("pure", "idempotent", "at_most_once"):
            raise ConfigError(f"tool {name or func.__name__!r}: side_effect must be 'pure', 'idempotent' or "
                              f"'at_most_once', got {side_effect!r}")
        self._func = func
        self._is_async = inspect.iscoroutinefunction(func)
        self.name = name or func.__name__
        summary, param_docs = _split_docstring(func.__doc__)
        self.description = description if description is not None else summary
        self.scopes = frozenset(scopes)
        self.timeout = timeout
        self.side_effect: SideEffect = side_effect
        self.requires_approval = requires_approval
        """Each call waits for a human's approval, bound to its exact arguments and used once."""
        self.ends_turn = ends_turn
        """A call that succeeds ends the agent's task once the calls made with it have run, without another model
        call (a peer's ``send_message``: what it had to say is said). The task's output is the reply's text."""
        self._context_param = _context_parameter(func)
        self._args_model = _arguments_model(func, self.name, param_docs, skip=self._context_param)
        schema = self._args_model.model_json_schema()
        schema.pop("title", None)
        self.spec = ToolSpec(name=self.name, description=self.description, parameters=schema)

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, scopes={sorted(self.scopes)})"

    @property
    def reference(self) -> str | None:
        """``module:qualname`` of the function behind the tool, by which another process imports it again."""
        return f"{self._func.__module__}:{self._func.__qualname__}"

    def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check ``arguments`` against the schema; raise `ToolError` saying what is wrong."""
        try:
            model = self._args_model.model_validate(arguments)
        except ValidationError as exc:
            problems = summarise_validation(exc, root="(arguments)", limit=20)
            raise ToolArgumentsError(f"invalid arguments for tool {self.name!r}: {problems}") from None
        return {field: getattr(model, field) for field in type(model).model_fields}

    async def run(self, arguments: dict[str, Any], *, context: ToolContext | None = None) -> Any:
        """Validate and run; the return value is the function's."""
        kwargs = self.validate_arguments(arguments)
        if self._context_param is not None:
            kwargs[self._context_param] = context or ToolContext(None, None, None, idempotency_key="")
        call: Awaitable[Any]
        if self._is_async:
            call = self._func(**kwargs)
        else:
            call = asyncio.to_thread(functools.partial(self._func, **kwargs))
        try:
            return await asyncio.wait_for(call, self.timeout)
        except TimeoutError:
            raise ToolError(f"tool {self.name!r} timed out after {self.timeout}s") from None
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(f"tool {self.name!r} failed: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def render(value: Any) -> str:
        """A tool's return value as the text a model reads."""
        if isinstance(value, str):
            return value
        return pydantic_core.to_json(value, fallback=str).decode()


def _context_parameter(func: Callable[..., Any]) -> str | None:
    """The parameter annotated ``ToolContext``, which the runtime fills and the model never sees."""
    try:
        hints = get_type_hints(func)
    except Exception:
        return None  # reported with its cause by _arguments_model
    return next((name for name, hint in hints.items() if hint is ToolContext), None)


def _arguments_model(func: Callable[..., Any], name: str, docs: dict[str, str], *, skip: str | None) -> type[Any]:
    try:
        hints = get_type_hints(func)
    except Exception as exc:
        raise ConfigError(f"tool {name!r}: cannot resolve its type hints: {exc}") from exc
    fields: dict[str, Any] = {}
    from pydantic import Field

    for param in inspect.signature(func).parameters.values():
        if param.name == skip:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(f"tool {name!r}: *args and **kwargs cannot be described to a model")
        if param.name not in hints:
            raise ConfigError(f"tool {name!r}: parameter {param.name!r} needs a type hint")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], Field(default, description=docs.get(param.name)))
    return create_model(  # type: ignore[no-any-return]
        f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
    )


@overload
def tool(
    func: Callable[..., Any], /, *, name: str | None = None, description: str | None = None, scopes: Iterable[str] = (),
    timeout: float | None = 30.0, side_effect: SideEffect = "pure", requires_approval: bool = False,
) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, scopes: Iterable[str] = (), timeout: float | None = 30.0,
    side_effect: SideEffect = "pure", requires_approval: bool = False,
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    scopes: Iterable[str] = (),
    timeout: float | None = 30.0,
    side_effect: SideEffect = "pure",
    requires_approval: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a typed function (sync or async) into a `Tool`.

    Use bare (``@tool``) or with options (``@tool(scopes={"write"}, side_effect="at_most_once")``).
    """

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, description=description, scopes=scopes, timeout=timeout, side_effect=side_effect,
                    requires_approval=requires_approval)

    return wrap(func) if func is not None else wrap
