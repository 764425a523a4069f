"""The schema of workflow files, and how YAML and schema errors are worded.

The schema is pydantic models with unknown keys forbidden; errors become
``key.path[2]: what was expected`` lines, with a "did you mean" for near-miss
keys. Checks that need the whole file (names, workers, models, plans) live in
`cadenza._workflow`.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._names import name_problem, suggest
from .._plan import Step
from .._worker_spec import Synthesize
from ._agent import DEFAULT_MODEL
from ._supervisor import DEFAULT_MAX_DEPTH

__all__ = (
    "AgentSpec",
    "ModelEntry",
    "PolicySpec",
    "RetrySpec",
    "SimulatedSpec",
    "SpawnSpec",
    "TeamSpec",
    "WorkflowSpec",
    "describe",
    "key_path",
    "load_yaml",
    "schema_problems",
    "yaml_problem",
)



def _check_name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _check_latency(value: Any) -> Any:
    """Seconds, ``[min, max]`` or ``{min, max}``; the simulated model checks the numbers themselves."""
    if isinstance(value, Mapping) and set(value) != {"min", "max"}:
        raise ValueError("latency as a mapping needs exactly the keys 'min' and 'max'")
    if isinstance(value, list) and len(value) != 2:
        raise ValueError(f"latency as a list needs two values [min, max], got {value!r}")
    if not isinstance(value, (Mapping, list, int, float)) or isinstance(value, bool):
        raise ValueError(f"latency must be seconds, [min, max] or {{min: .., max: ..}}, got {value!r}")
    return value


Name = Annotated[str, AfterValidator(_check_name)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimulatedSpec(_Spec):
    """Options given to every simulated model in the file."""

    seed: int | None = None
    latency: Any = None
    """Seconds per call: a number, ``[min, max]`` or ``{min: .., max: ..}``."""
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    replies: dict[str, list[Any]] | None = None
    """Scripted replies by agent (or team) name, played back before generated ones."""
    call_tools: bool | None = None

    @field_validator("latency")
    @classmethod
    def _latency(cls, value: Any) -> Any:
        return None if value is None else _check_latency(value)


class ModelEntry(BaseModel):
    """A named model setting: a model string plus provider options (any other key)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    """A model string, ``provider:name``."""


ModelRef = str | Annotated[list[str], Field(min_length=1)]
"""A ``models`` entry or a model string, or a list of them: a fallback chain, tried in order."""


class BudgetSpec(_Spec):
    """`Budget` fields: the most a run, team or agent may spend."""

    tokens: int | None = Field(default=None, gt=0)
    usd: float | None = Field(default=None, gt=0)


class PriceSpec(_Spec):
    """USD per million tokens (`Price` fields)."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)


class MCPServerSpec(_Spec):
    """An MCP server whose tools agents may use (`MCPServer` fields): a command (stdio) or a URL (HTTP)."""

    command: list[str] | None = Field(default=None, min_length=1)
    """The program and its arguments, started over stdio, e.g. ``[python, -m, mcp_server_time]``."""
    url: str | None = None
    """A streamable HTTP endpoint, e.g. ``http://localhost:3001/mcp``."""
    env: dict[str, str] | None = None
    """Environment of a started server (it inherits only HOME, PATH, SHELL, TERM, USER and LOGNAME)."""
    scopes: dict[str, list[str]] | None = None
    """Scopes each tool needs, by tool name (``"*"`` for all); a tool not named needs ``mcp:SERVER``."""
    trust_on_first_use: bool = False
    """Approve (pin) a tool the first time it is seen; otherwise ``cadenza``'s pin file must approve it."""
    pins: str | None = None
    """The pin file (``.cadenza/mcp-pins.json`` by default)."""
    timeout: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of command (a stdio server) or url (a streamable HTTP server)")
        return self


class AgentSpec(_Spec):
    """One agent."""

    name: Name
    description: str = ""
    instructions: str = ""
    model: ModelRef | None = None
    """A ``models`` entry or a model string (or a fallback list of them); ``default_model`` when absent."""
    max_tokens: int | None = Field(default=None, ge=1)
    """The most output tokens per model call."""
    budget: BudgetSpec | None = None
    """The most this agent may spend in one run."""
    scopes: list[str] | None = None
    """What the agent is granted (``[read]`` for a read-only agent); its tools' scopes when absent."""
    tools: list[str] = Field(default_factory=list)
    """Names of ``mcp_servers`` entries whose tools the agent may use (each still needs its scopes granted)."""
    max_turns: int = Field(default=10, ge=1)
    output_retries: int = Field(default=2, ge=0)
    requires_approval: bool = False
    """Each step of this agent waits for a human's approval (``cadenza approve RUN STEP``) before it starts."""


class RetrySpec(_Spec):
    """`RetryPolicy` fields."""

    max_attempts: int = Field(default=3, ge=1)
    initial_delay: float = Field(default=0.1, ge=0)
    max_delay: float = Field(default=10.0, ge=0)
    jitter: float = Field(default=0.5, ge=0)


class PolicySpec(_Spec):
    """`ExecutionPolicy` fields."""

    max_concurrency: int | None = Field(default=None, ge=1)
    per_agent_concurrency: Any = None
    """One limit for every worker, or ``{worker: limit}``."""
    step_timeout: float | None = Field(default=None, gt=0)
    failure_policy: Literal["continue", "fail_fast"] = "continue"
    retry: RetrySpec = Field(default_factory=RetrySpec)

    @field_validator("per_agent_concurrency")
    @classmethod
    def _per_agent(cls, value: Any) -> Any:
        if value is None or _limit(value) or (isinstance(value, Mapping) and all(map(_limit, value.values()))):
            return value
        raise ValueError(f"expected a number of at least 1, or a mapping of worker name to such a number, got {value!r}")


def _limit(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class SpawnSpec(_Spec):
    """`SpawnPolicy` fields (tools cannot be granted from a file)."""

    max_agents: int = Field(default=3, ge=0)
    tiers: dict[str, str] = Field(default_factory=lambda: {"default": DEFAULT_MODEL}, min_length=1)
    """Tier name to a ``models`` entry or a model string."""


class TeamSpec(_Spec):
    """A supervisor and its workers; ``teams:`` entries and ``supervisor:`` share this shape."""

    name: Name
    workers: list[str] = Field(min_length=1)
    """Names of agents, or of teams in ``teams:`` (each team belongs to one team only)."""
    model: ModelRef | None = None
    """Planner and synthesiser model unless ``planner_model`` / ``synthesizer_model`` say otherwise."""
    planner_model: ModelRef | None = None
    synthesizer_model: ModelRef | None = None
    budget: BudgetSpec | None = None
    """The most one run of this team may spend, nested teams included."""
    scopes: list[str] | None = None
    """The ceiling on what any agent under this team may do; none of its own when absent."""
    instructions: str = ""
    description: str = ""
    plan: list[Step] | None = None
    """A static plan: when given, the planner is skipped."""
    synthesize: Synthesize = "auto"
    """When the synthesiser is called (`Supervisor`'s ``synthesize``)."""
    policy: PolicySpec | None = None
    spawn: SpawnSpec | None = None
    max_depth: int = Field(default=DEFAULT_MAX_DEPTH, ge=1)
    max_plan_steps: int = Field(default=50, ge=1)
    planner_repairs: int = Field(default=2, ge=0)


class StopSpec(_Spec):
    """`StopPolicy` fields: who answers, and the limits of a conversation."""

    answer_by: list[str] = Field(default_factory=list)
    """Members that may give the final answer; the entry agent when empty."""
    quorum: int | Literal["all"] = 1
    max_messages: int = Field(default=50, ge=1)
    max_rounds: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    repeats: int = Field(default=2, ge=0)
    ping_pong: int = Field(default=10, ge=1)


class PeersSpec(_Spec):
    """A peer group: agents that message each other directly; a worker of a team, like an agent."""

    name: Name
    agents: list[str] = Field(min_length=2)
    """Names of agents in ``agents:``."""
    entry: str
    """The member the goal goes to."""
    talks_to: dict[str, list[str]] = Field(default_factory=dict)
    """Who may message whom; a member not named may message every other."""
    stop: StopSpec = Field(default_factory=StopSpec)
    history: int = Field(default=20, ge=1)
    description: str = ""


class WorkflowSpec(_Spec):
    """A whole workflow file."""

    name: Name
    description: str = ""
    simulated: SimulatedSpec | None = None
    models: dict[str, ModelEntry] = Field(default_factory=dict)
    """Named model settings that agents and teams refer to by name."""
    default_model: str | None = None
    """A ``models`` entry or a model string for everything that names none; ``simulated`` when absent."""
    mcp_servers: dict[str, MCPServerSpec] = Field(default_factory=dict)
    """MCP servers, by name, that agents draw tools from (``tools: [name]`` on an agent)."""
    prices: dict[str, PriceSpec] = Field(default_factory=dict)
    """Prices by ``provider:model`` prefix, replacing or adding to the shipped table."""
    budget: BudgetSpec | None = None
    """The most a whole run may spend (``--budget-usd`` / ``--budget-tokens`` override it)."""
    bus: str | None = None
    """Where the peer groups' messages travel: ``memory://`` or ``redis://host:port/db`` (``--bus`` overrides it);
    a new in-process bus for each run when absent."""
    agents: list[AgentSpec] = Field(min_length=1)
    teams: list[TeamSpec] = Field(default_factory=list)
    """Nested teams, used as workers of the supervisor or of each other."""
    peers: list[PeersSpec] = Field(default_factory=list)
    """Peer groups, used as workers of the supervisor or of teams."""
    supervisor: TeamSpec | None = None
    """The top team, which runs the goal; a file without one runs its one peer group instead."""


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys, which plain YAML loading silently overwrites."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[object, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:
            continue  # unhashable: construct_mapping reports it
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first given on line {first + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str) -> Any:
    """Plain data from YAML text (a SafeLoader: no objects), refusing duplicate keys.

    Raises:
        yaml.YAMLError: describe it with `yaml_problem`.
    """
    return yaml.load(text, Loader=_Loader)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """Where the broken construct starts (an unclosed quote or bracket is usually noticed lines later, where the
    parser gave up, which is said too) and what is wrong with it."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    what = f"{context}, {problem}" if context and "duplicate key" not in problem else problem
    if mark is None:
        return f"invalid YAML: {what}"
    start = getattr(exc, "context_mark", None)
    if start is not None and start.line != mark.line and "duplicate key" not in problem:
        return (f"invalid YAML at line {start.line + 1}, column {start.column + 1}: {what} "
                f"(noticed at line {mark.line + 1}, column {mark.column + 1})")
    return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {what}"


# --------------------------------------------------------------------------- pydantic errors


def key_path(loc: Sequence[str | int]) -> str:
    """``("agents", 2, "model")`` as ``agents[2].model``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def schema_problems(exc: ValidationError) -> list[str]:
    """One ``key.path: message`` line per schema error."""
    return [_pydantic_problem(e) for e in exc.errors()]


def _pydantic_problem(error: Mapping[str, Any]) -> str:
    loc: tuple[str | int, ...] = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_at(WorkflowSpec, loc[:-1])
        allowed = list(parent.model_fields) if parent is not None else []
        hint = suggest(str(loc[-1]), allowed) or (f" (allowed: {', '.join(allowed)})" if allowed else "")
        return f"{key_path(loc)}: unknown key{hint}"
    if kind == "missing":
        return f"{key_path(loc)}: required key is missing"
    if kind == "value_error":
        return f"{key_path(loc)}: {error.get('ctx', {}).get('error', error['msg'])}"
    message = _EXPECTED.get(kind) or str(error["msg"])
    if kind in ("too_short", "too_long"):
        return f"{key_path(loc)}: {message[:1].lower()}{message[1:]}"
    value = error.get("input")
    got = repr(value) if isinstance(value, (str, int, float, bool)) or value is None else describe(value)
    return f"{key_path(loc)}: {message[:1].lower()}{message[1:]} (got {got})"


_EXPECTED = {
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
}


def describe(value: object) -> str:
    """What kind of YAML value this is, in words: ``a list``, ``a mapping``."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return {str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(type(value), type(value).__name__)


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The spec model found by following ``loc`` from ``root``, to list its keys."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        origin = get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        elif origin in (list, tuple) and isinstance(part, int):
            current = get_args(current)[0]
        elif origin is dict:
            current = get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation
