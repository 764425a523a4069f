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
from typing import Any, get_type_hints, overload

import pydantic_core
from pydantic import ConfigDict, ValidationError, create_model

from ._errors import ConfigError, ToolError
from ._names import summarise_validation
from .models.base import ToolSpec

__all__ = ("Tool", "tool")

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

    __slots__ = ("_args_model", "_func", "_is_async", "description", "name", "scopes", "spec", "timeout")

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        scopes: Iterable[str] = (),
        timeout: float | None = 30.0,
    ) -> None:
        self._func = func
        self._is_async = inspect.iscoroutinefunction(func)
        self.name = name or func.__name__
        summary, param_docs = _split_docstring(func.__doc__)
        self.description = description if description is not None else summary
        self.scopes = frozenset(scopes)
        self.timeout = timeout
        self._args_model = _arguments_model(func, self.name, param_docs)
        schema = self._args_model.model_json_schema()
        schema.pop("title", None)
        self.spec = ToolSpec(name=self.name, description=self.description, parameters=schema)

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, scopes={sorted(self.scopes)})"

    def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check ``arguments`` against the schema; raise `ToolError` saying what is wrong."""
        try:
            model = self._args_model.model_validate(arguments)
        except ValidationError as exc:
            problems = summarise_validation(exc, root="(arguments)", limit=20)
            raise ToolError(f"invalid arguments for tool {self.name!r}: {problems}") from None
        return {field: getattr(model, field) for field in type(model).model_fields}

    async def run(self, arguments: dict[str, Any]) -> Any:
        """Validate and run; the return value is the function's."""
        kwargs = self.validate_arguments(arguments)
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


def _arguments_model(func: Callable[..., Any], name: str, docs: dict[str, str]) -> type[Any]:
    try:
        hints = get_type_hints(func)
    except Exception as exc:
        raise ConfigError(f"tool {name!r}: cannot resolve its type hints: {exc}") from exc
    fields: dict[str, Any] = {}
    from pydantic import Field

    for param in inspect.signature(func).parameters.values():
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
def tool(func: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, scopes: Iterable[str] = (), timeout: float | None = 30.0
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    scopes: Iterable[str] = (),
    timeout: float | None = 30.0,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a typed function (sync or async) into a `Tool`.

    Use bare (``@tool``) or with options (``@tool(scopes={"read"}, timeout=5)``).
    """

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, description=description, scopes=scopes, timeout=timeout)

    return wrap(func) if func is not None else wrap
