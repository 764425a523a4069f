"""What a worker is, as a value: `Worker.describe()` gives it, and everything that must know a worker reads it.

A fingerprint (to refuse resuming a run with a different team), the depth check of nested teams,
the plan view, and a backend that moves a worker to another process all need to know what a
worker is without asking which class it is. So each worker describes itself as a `WorkerSpec`:
an agent (`AgentSpec`), a team (`TeamSpec`, holding its workers' specs), a peer group
(`PeersSpec`, holding its members' specs) or any other worker (`OtherSpec`). A spec is plain
data (pydantic, JSON both ways).

Tools travel by reference (an importable ``module:qualname``) and models by their model string
and options. What cannot be rebuilt elsewhere from its reference (a lambda, a function defined
inside another, one in ``__main__``, a model given as an object) is named by `rebuild_problems`,
so a backend can refuse it at submission, before any step runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._budget import Budget
from ._plan import Plan

if TYPE_CHECKING:
    from .models.base import Model
    from .tools._tools import Tool

__all__ = ("AgentSpec", "ModelRef", "ModelSource", "OtherSpec", "PeersSpec", "SpawnSpec", "TeamSpec", "ToolRef", "WorkerSpec",
           "model_sources", "rebuild_problems", "reference", "tool_ref")


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ToolRef(_Spec):
    """A tool, by the importable function behind it and what it declares."""

    name: str
    function: str | None
    """``module:qualname`` of the function (or of the `Tool` a ``@tool`` decorator made); None when the tool
    comes from elsewhere (an MCP server)."""
    description: str
    parameters: dict[str, Any]
    """The JSON schema of its arguments, as the model sees it."""
    scopes: tuple[str, ...]
    side_effect: Literal["pure", "idempotent", "at_most_once"]
    requires_approval: bool
    timeout: float | None


class ModelSource(_Spec):
    """A model string and the options it is resolved with: what builds the same model in another process."""

    spec: str
    options: dict[str, Any] = Field(default_factory=dict)
    """JSON values only (a price table as a mapping, an API key by the name of its environment variable)."""


class ModelRef(_Spec):
    """A model: its name, and what rebuilds it."""

    name: str
    sources: tuple[ModelSource, ...] | None
    """The model, or each model of its fallback chain, as a model string with options; None when the agent was
    handed a model object and was not told where it came from."""


class AgentSpec(_Spec):
    """An `Agent`: instructions, model, tools, output type and limits."""

    kind: Literal["agent"] = "agent"
    name: str
    description: str
    instructions: str
    model: ModelRef
    tools: tuple[ToolRef, ...]
    mcp_servers: tuple[str, ...]
    """The names of its MCP servers."""
    output_schema: dict[str, Any] | None
    """The JSON schema its final answer must fit; None for plain text."""
    output_type: str | None
    """``module:qualname`` of its output type (a generic type such as ``list[str]`` by its repr); None for plain
    text."""
    max_turns: int
    output_retries: int
    max_tokens: int | None
    requires_approval: bool
    budget: Budget | None
    scopes: tuple[str, ...]


class SpawnSpec(_Spec):
    """What a team's planner may grant to agents it proposes."""

    max_agents: int
    tiers: dict[str, str]
    """Model tier name to model name."""
    tools: tuple[str, ...]


Synthesize = Literal["auto", "always", "never"]
"""When a team calls its synthesiser: ``auto`` unless its plan's one last step already produced an answer of the
team's output type, ``always``, or ``never`` (the last step's output is the answer)."""


class TeamSpec(_Spec):
    """A `Supervisor`: its planner and synthesiser, its written plan if any, and its workers' specs."""

    kind: Literal["team"] = "team"
    name: str
    description: str
    planner_model: ModelRef
    synthesizer: AgentSpec
    synthesize: Synthesize = "auto"
    plan: Plan | None
    spawn: SpawnSpec | None
    workers: tuple[WorkerSpec, ...]
    max_depth: int
    scopes: tuple[str, ...] | None
    budget: Budget | None

    @property
    def depth(self) -> int:
        """Levels of teams in this tree, this one included."""
        return 1 + max((w.depth for w in self.workers if isinstance(w, TeamSpec)), default=0)

    def worker(self, name: str) -> WorkerSpec | None:
        """The spec of the worker called ``name``, if the team has one."""
        return next((w for w in self.workers if w.name == name), None)


class PeersSpec(_Spec):
    """A `PeerGroup`: its members, who gets the goal, who may message whom, who answers, and its limits."""

    kind: Literal["peers"] = "peers"
    name: str
    description: str
    members: tuple[AgentSpec, ...]
    entry: str
    talks_to: dict[str, tuple[str, ...]]
    """Whom each member may message (every member is named)."""
    answer_by: tuple[str, ...]
    quorum: int
    history: int
    """How many earlier messages a member is shown with each new one."""
    max_messages: int
    max_rounds: int | None
    timeout: float | None
    repeats: int
    ping_pong: int


class OtherSpec(_Spec):
    """Any other worker: what it is for, and the class that makes it."""

    kind: Literal["worker"] = "worker"
    name: str
    description: str
    type: str
    """``module:qualname`` of its class."""


WorkerSpec = Annotated[AgentSpec | TeamSpec | PeersSpec | OtherSpec, Field(discriminator="kind")]
"""What any worker is, as data."""

TeamSpec.model_rebuild()


def reference(obj: Callable[..., Any] | type[Any]) -> str:
    """``module:qualname`` of a function or class."""
    return f"{obj.__module__}:{obj.__qualname__}"


def model_sources(model: str | Model | Sequence[str | Model]) -> tuple[ModelSource, ...] | None:
    """What resolves ``model`` again in another process: its model strings; None for a model object."""
    if isinstance(model, str):
        return (ModelSource(spec=model),)
    if isinstance(model, Sequence) and all(isinstance(m, str) for m in model):
        return tuple(ModelSource(spec=str(m)) for m in model)
    return None


def tool_ref(tool: Tool) -> ToolRef:
    """The reference of a tool written in Python (``function`` None for one a server describes)."""
    return ToolRef(name=tool.name, function=tool.reference,
                   description=tool.description, parameters=tool.spec.parameters, scopes=tuple(sorted(tool.scopes)),
                   side_effect=tool.side_effect, requires_approval=tool.requires_approval, timeout=tool.timeout)


def rebuild_problems(spec: WorkerSpec, path: str = "") -> list[str]:
    """What in ``spec`` (and the specs under it) another process could not rebuild, each naming the object
    and the worker (empty: all of it can be rebuilt)."""
    where = f"{path}/{spec.name}" if path else spec.name
    problems: list[str] = []
    if isinstance(spec, TeamSpec):  # its planning and synthesis run where its run does: only its workers move
        for worker in spec.workers:
            problems += rebuild_problems(worker, where)
        return problems
    if isinstance(spec, PeersSpec):  # its conversation, members' turns included, runs where its run does
        return problems
    if isinstance(spec, OtherSpec):
        return _reference_problems(spec.type, f"worker {where!r} (a {spec.type.rpartition(':')[2]})")
    problems += _model_problems(spec.model, f"agent {where!r}")
    for tool in spec.tools:
        if tool.function is None:
            problems.append(f"agent {where!r}: tool {tool.name!r} has no function to import (it comes from a server)")
        else:
            problems += _reference_problems(tool.function, f"agent {where!r}: tool {tool.name!r}")
    if spec.output_type is not None:
        problems += _reference_problems(spec.output_type, f"agent {where!r}: its output type")
    problems += [f"agent {where!r}: MCP server {name!r} is an open session, which cannot be moved"
                 for name in spec.mcp_servers]
    return problems


def _model_problems(model: ModelRef, who: str) -> list[str]:
    if model.sources is not None:
        return []
    return [f"{who}: model {model.name!r} was given as an object; give a model string (and model_source with its "
            "options) instead"]


def _reference_problems(ref: str, what: str) -> list[str]:
    module, colon, qualname = ref.partition(":")
    if not colon:
        return [f"{what} ({ref}) is not a class or function another process can import; wrap it in a pydantic model"]
    if "<lambda>" in qualname:
        return [f"{what} is a lambda ({ref}), which cannot be imported; define it at module level"]
    if "<locals>" in qualname:
        return [f"{what} is defined inside a function ({ref}), so it cannot be imported; define it at module level"]
    if module == "__main__":
        return [f"{what} is defined in the script being run ({ref}); move it to a module another process can import"]
    return []
