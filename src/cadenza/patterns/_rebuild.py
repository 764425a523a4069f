"""Building a worker again from its spec, in another process: the other half of `Worker.describe`.

A worker process is handed an `AgentSpec` and rebuilds the agent from it: tools imported by their
``module:qualname`` (a ``@tool`` object as it is, a plain function wrapped with what it declared),
its model resolved from its model strings and options, its output type imported. Each rebuilt
tool must match what the run described (name, schema, scopes, side effect), so a module that
changed between the two processes is an error, not a different tool run under the same name.
"""

from __future__ import annotations

import importlib
from typing import Any

from .._errors import ConfigError
from .._worker_spec import AgentSpec, ModelSource, ToolRef, WorkerSpec, rebuild_problems
from ..models.base import Model
from ..models.registry import resolve_model
from ..tools._tools import Tool
from ._agent import Agent

__all__ = ("build_agent", "build_model")


def build_agent(spec: WorkerSpec) -> Agent[Any]:
    """The agent ``spec`` describes, built in this process.

    Raises:
        ConfigError: the spec is not an agent's, or names something this process cannot import or build.
    """
    if not isinstance(spec, AgentSpec):
        raise ConfigError(f"{spec.kind} {spec.name!r} cannot be rebuilt in a worker process: only agents can "
                          "(a team runs its steps from the process of its run)")
    problems = rebuild_problems(spec)
    if problems or spec.model.sources is None:
        raise ConfigError("; ".join(problems))
    output_type = _imported(spec.output_type, f"agent {spec.name!r}: its output type") if spec.output_type else None
    return Agent(spec.name, spec.instructions, model=build_model(spec.model.sources),
                 model_source=spec.model.sources, tools=[_tool(ref, spec.name) for ref in spec.tools],
                 output_type=output_type, description=spec.description, max_turns=spec.max_turns,
                 output_retries=spec.output_retries, requires_approval=spec.requires_approval, budget=spec.budget,
                 max_tokens=spec.max_tokens, scopes=spec.scopes)


def build_model(sources: tuple[ModelSource, ...]) -> Model:
    """The model (or fallback chain) ``sources`` describe."""
    chain = [resolve_model(source.spec, dict(source.options)) for source in sources]
    if len(chain) == 1:
        return chain[0]
    from ..models.resilience import FallbackModel

    return FallbackModel(chain)


def _tool(ref: ToolRef, agent: str) -> Tool:
    what = f"agent {agent!r}: tool {ref.name!r}"
    assert ref.function is not None  # rebuild_problems refused tools without one
    found = _imported(ref.function, what)
    if isinstance(found, Tool):
        built = found
    elif callable(found):
        built = Tool(found, name=ref.name, description=ref.description, scopes=ref.scopes, timeout=ref.timeout,
                     side_effect=ref.side_effect, requires_approval=ref.requires_approval)
    else:
        raise ConfigError(f"{what}: {ref.function} is a {type(found).__name__}, not a function or a tool")
    differs = [name for name, mine, theirs in (
        ("name", built.name, ref.name), ("schema", built.spec.parameters, ref.parameters),
        ("scopes", tuple(sorted(built.scopes)), ref.scopes), ("side effect", built.side_effect, ref.side_effect),
        ("approval", built.requires_approval, ref.requires_approval)) if mine != theirs]
    if differs:
        raise ConfigError(f"{what}: {ref.function} in this process is not the tool the run described (its "
                          f"{', '.join(differs)} differ); the two processes run different code")
    return built


def _imported(ref: str, what: str) -> Any:
    module_name, _, qualname = ref.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what}: cannot import {ref} in this process: {exc}") from None
    return found
