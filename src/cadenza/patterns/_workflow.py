"""Workflow files: a team of agents described in YAML, checked completely before anything runs.

Every problem in a file is collected and reported at once in one `WorkflowError`,
each named by its key path (``agents[2].model``), so a user fixes a file in one pass
instead of one error per attempt. The schema is a set of pydantic models with
unknown keys forbidden; everything that needs the whole file (names, workers,
models, plans, nesting) is checked after it, by `_Builder`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from .._budget import Budget
from .._errors import CadenzaError, ConfigError, UnknownModelError, WorkflowError
from .._names import did_you_mean, suggest
from .._plan import Plan
from .._worker import Worker
from .._worker_spec import ModelSource
from ..buses import bus_problem
from ..engine._executor import ExecutionPolicy, RetryPolicy
from ..models.base import Model
from ..models.pricing import PRICES, Price, Prices
from ..models.registry import available_providers, is_vendor, meant_model, resolve_model
from ..models.simulated import SimulatedModel
from ._agent import DEFAULT_MODEL, Agent
from ._peers import PeerGroup, StopPolicy
from ._spawn import SpawnPolicy
from ._supervisor import Supervisor
from ._workflow_spec import (
    AgentSpec,
    BudgetSpec,
    PeersSpec,
    TeamSpec,
    WorkflowSpec,
    describe,
    key_path,
    load_yaml,
    schema_problems,
    yaml_problem,
)

__all__ = ("Workflow", "load_workflow", "parse_workflow")


@dataclass(frozen=True)
class Workflow:
    """A loaded workflow: its top team, ready to run, and what it is made of."""

    name: str
    description: str
    source: str
    """Where it came from: the file path as given, or ``<workflow>``."""
    entry: Supervisor[str] | PeerGroup
    """What runs the goal, ``await workflow.entry.run(goal)``: the top team, or the peer group of a file that has no
    supervisor."""
    agents: dict[str, Agent[str]]
    teams: dict[str, Supervisor[str]]
    """The nested teams (the ``teams:`` section), by name; the top team is `entry`."""
    models_used: set[str]
    """Model strings of every model the workflow may call."""
    offline: bool
    """True when every model is simulated: running costs nothing and needs no network."""
    prices: Prices = PRICES
    """The shipped price table with the file's ``prices:`` over it: what USD budgets are checked with."""
    budget: Budget | None = None
    """The file's run budget (``budget:``), for ``entry.run(goal, budget=workflow.budget)``."""
    mcp_servers: dict[str, Any] = field(default_factory=dict)
    """The file's MCP servers (`MCPServer`, not opened), by name."""
    peers: dict[str, PeerGroup] = field(default_factory=dict)
    """The peer groups (the ``peers:`` section), by name."""
    bus: str | None = None
    """The file's ``bus:`` URL: where its peer groups' messages travel (`cadenza.buses.open_bus` opens it); None
    for a new in-process bus each run."""

    @property
    def plan_source(self) -> Literal["static", "planner"] | None:
        """Whether the top team runs a plan written in the file or asks its planner; None for a peer group."""
        return None if isinstance(self.entry, PeerGroup) else self.entry.plan_source


def load_workflow(path: str | Path, *, model: str | None = None) -> Workflow:
    """Read, check and build the workflow in a YAML file.

    Args:
        path: the file.
        model: a model string (or ``models`` entry) replacing every agent's and team's model.

    Raises:
        WorkflowError: naming the file and every problem found, each with its key path.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowError(f"{source}: no such file", path=source) from None
    except IsADirectoryError:
        raise WorkflowError(f"{source}: is a directory, not a workflow file", path=source) from None
    except UnicodeDecodeError as exc:
        raise WorkflowError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})", path=source) from None
    except OSError as exc:
        raise WorkflowError(f"{source}: cannot read: {exc.strerror or exc}", path=source) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise _fail(source, [yaml_problem(exc)]) from None
    except RecursionError:  # the YAML parser recurses once per level of nesting
        raise _fail(source, [_TOO_DEEP]) from None
    if data is None:
        raise _fail(source, ["the file is empty; expected a mapping with name, agents and supervisor"])
    return parse_workflow(data, source=source, model=model)


def parse_workflow(data: Mapping[str, Any], *, source: str = "<workflow>", model: str | None = None) -> Workflow:
    """Check and build a workflow from already-parsed data (see `load_workflow`)."""
    if not isinstance(data, Mapping):
        raise _fail(source, [f"expected a mapping with name, agents and supervisor at the top level, got {describe(data)}"])
    try:
        spec = WorkflowSpec.model_validate(data)
        return _Builder(spec, source, model).build()
    except ValidationError as exc:
        try:
            beyond = _beyond_the_schema(data, exc, source, model)
        except RecursionError:  # nested thousands of levels deep: the schema's report is all there is
            beyond = []
        problems = schema_problems(exc) + (beyond or _unknown_workers_in_raw(data))
        raise _fail(source, sorted(dict.fromkeys(problems), key=_file_order)) from None
    except RecursionError:  # validating (or describing) a value nested thousands of levels deep
        raise _fail(source, [_TOO_DEEP]) from None


_TOO_DEEP = ("nested too deeply: lists or mappings inside each other thousands of levels down "
             "(a workflow file needs only a few levels)")


def _beyond_the_schema(data: Mapping[str, Any], exc: ValidationError, source: str, model: str | None) -> list[str]:
    """The problems the whole-file checks find once the keys the schema refused are left out (so that a file with
    five mistakes reports five, not only the schema's); empty when the file cannot be checked that way (a required
    key or a list item is what is wrong)."""
    pruned: Any = copy.deepcopy(dict(data))
    left_out: list[str] = []
    found: list[str] = []
    for _ in range(3):  # leaving keys out may show the schema what it could not see before
        for error in exc.errors():
            place = _key_at(pruned, error["loc"])
            if error["type"] == "missing" or place is None:
                return []
            mapping, key, path = place
            mapping.pop(key, None)
            left_out.append(path)
        try:
            spec = WorkflowSpec.model_validate(pruned)
        except ValidationError as again:
            found += schema_problems(again)
            exc = again
            continue
        try:
            _Builder(spec, source, model).build()
        except WorkflowError as failed:  # not what leaving a key out made (it is missing now): the schema said why
            found += [p for p in failed.problems if not any(_under(p, path) for path in left_out)]
        return found
    return []


def _key_at(data: Any, loc: Sequence[str | int]) -> tuple[dict[str, Any], str, str] | None:
    """The mapping and key that hold the value at ``loc`` (a schema error's path, which may end in the names of
    union members the data does not have), and that key's path; None when the value is a list item (leaving it out
    would renumber the items after it, and with them the key paths of their problems)."""
    parent: Any = None
    key: str | int | None = None
    node = data
    depth = 0
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            parent, key, node = node, part, node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            parent, key, node = node, part, node[part]
        else:
            break
        depth += 1
    if not isinstance(parent, dict) or not isinstance(key, str):
        return None
    return parent, key, key_path(loc[:depth])


def _under(problem: str, path: str) -> bool:
    """Whether ``problem`` is about the key at ``path`` or something inside it."""
    return problem.startswith(path) and problem[len(path):len(path) + 1] in (":", ".", "[")


def _unknown_workers_in_raw(data: Mapping[str, Any]) -> list[str]:
    """Unknown worker names, read leniently from a file whose schema failed, so one run reports both kinds."""
    def names(section: object) -> set[str]:
        items = section if isinstance(section, list) else []
        return {item["name"] for item in items if isinstance(item, Mapping) and isinstance(item.get("name"), str)}

    known = names(data.get("agents")) | names(data.get("teams")) | names(data.get("peers"))
    teams = [("supervisor", data.get("supervisor"))]
    teams += [(f"teams[{i}]", t) for i, t in enumerate(data.get("teams") or []) if isinstance(data.get("teams"), list)]
    found: list[str] = []
    for path, team in teams:
        workers = team.get("workers") if isinstance(team, Mapping) else None
        for j, worker in enumerate(workers if isinstance(workers, list) else []):
            if isinstance(worker, str) and worker not in known:
                choices = sorted(known)
                found.append(f"{path}.workers[{j}]: unknown worker {worker!r}{suggest(worker, choices)} "
                             f"(known: {', '.join(choices) or 'none'})")
    return found


def _fail(source: str, problems: list[str]) -> WorkflowError:
    if len(problems) == 1:
        return WorkflowError(f"{source}: {problems[0]}", path=source, problems=problems)
    detail = "\n".join(f"  - {p}" for p in problems)
    return WorkflowError(f"{source}: {len(problems)} problems:\n{detail}", path=source, problems=problems)


# --------------------------------------------------------------------------- building


@dataclass(frozen=True, slots=True)
class _TeamParts:
    model: Model
    planner: Model
    synthesizer: Model
    policy: ExecutionPolicy
    spawn: SpawnPolicy | None
    plan: Plan | None


class _Builder:
    """Checks everything that needs the whole file, then builds agents and teams bottom-up."""

    def __init__(self, spec: WorkflowSpec, source: str, override: str | None) -> None:
        self.spec = spec
        self.source = source
        self.override = override
        self.problems: list[str] = []
        self.models_used: set[str] = set()
        self.offline = True
        self.sim: dict[str, Any] = {}
        self.entries: dict[str, Model | None] = {}
        self.too_deep: set[str] = set()
        self.by_string: dict[str, Model | CadenzaError] = {}
        self.sources: dict[int, tuple[Model, tuple[ModelSource, ...]]] = {}
        """What each resolved model (by id; it is kept alive here) was resolved from, so a backend can build it in
        another process."""
        self.team_specs: dict[str, tuple[str, TeamSpec]] = {}
        self.children: dict[str, list[str]] = {}
        self.servers: dict[str, Any] = {}
        """MCP servers by name, built once and shared by the agents that use them (opened when a run needs them)."""
        self.prices = PRICES.override(
            Prices({key: Price(**price.model_dump()) for key, price in spec.prices.items()})
        ) if spec.prices else PRICES

    def build(self) -> Workflow:
        spec = self.spec
        self._check_names()
        self._check_workers()
        cyclic = self._check_cycles()
        if not cyclic and spec.supervisor is not None:
            self._check_depth(spec.supervisor.name, 0)
        self._check_entry()
        if spec.bus is not None and (problem := bus_problem(spec.bus)) is not None:
            self._problem("bus", problem)
        self._load_models()
        agents = {a.name: agent for i, a in enumerate(spec.agents) if (agent := self._agent(i, a)) is not None}
        groups = {g.name: group for i, g in enumerate(spec.peers) if (group := self._peers(i, g, agents)) is not None}
        parts = {name: self._team_parts(path, team) for name, (path, team) in self.team_specs.items()}
        teams: dict[str, Supervisor[str]] = {}
        for name in [] if cyclic else self._bottom_up():
            path, team_spec = self.team_specs[name]
            team_parts = parts[name]
            if team_parts is not None and name not in self.too_deep:
                team = self._team(path, team_spec, team_parts, {**agents, **groups}, teams)
                if team is not None:
                    teams[name] = team
        entry: Supervisor[str] | PeerGroup | None
        if spec.supervisor is not None:
            entry = teams.pop(spec.supervisor.name, None)
        else:
            entry = next(iter(groups.values()), None)
        if self.problems or entry is None:
            raise _fail(self.source, sorted(self.problems, key=_file_order) or ["the top supervisor could not be built"])
        return Workflow(name=spec.name, description=spec.description, source=self.source, entry=entry,
                        agents=agents, teams=teams, models_used=self.models_used, offline=self.offline,
                        prices=self.prices, budget=_budget(spec.budget), peers=groups, bus=spec.bus,
                        mcp_servers={name: self._server(name, f"mcp_servers.{name}") for name in spec.mcp_servers})

    def _problem(self, path: str, message: str) -> None:
        problem = f"{path}: {message}"
        if problem not in self.problems:  # a shared model or team is reported once per key path
            self.problems.append(problem)

    # ------------------------------------------------------------------ names and the team graph

    def _check_names(self) -> None:
        first: dict[str, str] = {}
        named = [(f"agents[{i}].name", a.name) for i, a in enumerate(self.spec.agents)]
        named += [(f"teams[{i}].name", t.name) for i, t in enumerate(self.spec.teams)]
        named += [(f"peers[{i}].name", g.name) for i, g in enumerate(self.spec.peers)]
        if self.spec.supervisor is not None:
            named.append(("supervisor.name", self.spec.supervisor.name))
        for path, name in named:
            if name in first:
                self._problem(path, f"duplicate name {name!r} (also {first[name]}); agents, teams and peer groups "
                                    "share one namespace")
            else:
                first[name] = path
        for i, team in enumerate(self.spec.teams):
            self.team_specs.setdefault(team.name, (f"teams[{i}]", team))
        if self.spec.supervisor is not None:
            self.team_specs.setdefault(self.spec.supervisor.name, ("supervisor", self.spec.supervisor))

    def _check_entry(self) -> None:
        """A file without a supervisor runs its peer group, so it must have exactly one."""
        groups = self.spec.peers
        if self.spec.supervisor is None and len(groups) != 1:
            have = "none" if not groups else f"{len(groups)} ({', '.join(g.name for g in groups)})"
            self._problem("supervisor", "required key is missing: a workflow runs its supervisor (a team), or, "
                                        f"without one, its one peer group; peers: has {have}")

    def _known(self, workers: Sequence[str]) -> list[str]:
        """The workers that name an agent, a team or a peer group (unknown ones are reported elsewhere)."""
        named = {a.name for a in self.spec.agents} | {g.name for g in self.spec.peers}
        return [w for w in workers if w in self.team_specs or w in named]

    def _check_workers(self) -> None:
        agents = {a.name for a in self.spec.agents} | {g.name for g in self.spec.peers}
        top = self.spec.supervisor.name if self.spec.supervisor is not None else None
        parent_of: dict[str, str] = {}
        for name, (path, team) in self.team_specs.items():
            children = self.children.setdefault(name, [])
            known = sorted((agents | set(self.team_specs)) - {name, top})
            for j, worker in enumerate(team.workers):
                where = f"{path}.workers[{j}]"
                if worker in team.workers[:j]:
                    self._problem(where, f"worker {worker!r} is listed twice")
                elif worker == name:
                    self._problem(where, f"team {name!r} cannot be its own worker")
                elif worker == top:
                    self._problem(where, f"{worker!r} is the top supervisor and cannot be a worker")
                elif worker in agents:
                    continue
                elif worker in self.team_specs:
                    children.append(worker)
                    if worker in parent_of:
                        self._problem(where, f"team {worker!r} is already a worker of {parent_of[worker]}; "
                                             "a team can belong to one team only")
                    else:
                        parent_of[worker] = f"{path} ({name!r})"
                else:
                    self._problem(where, f"unknown worker {worker!r}{suggest(worker, known)} "
                                         f"(known: {', '.join(known) or 'none'})")

    def _check_cycles(self) -> bool:
        state: dict[str, int] = {}
        found = False

        def visit(name: str, trail: list[str]) -> None:
            nonlocal found
            state[name] = 1
            for child in self.children.get(name, []):
                if state.get(child) == 1:
                    loop = [*trail[trail.index(child):], child]
                    self._problem(f"{self.team_specs[child][0]}.workers", f"teams form a cycle: {' -> '.join(loop)}")
                    found = True
                elif child not in state:
                    visit(child, [*trail, child])
            state[name] = 2

        for name in self.team_specs:
            if name not in state:
                visit(name, [name])
        return found

    def _check_depth(self, name: str, level: int) -> int:
        """Depth of ``name``'s subtree; reports a team whose level plus depth exceeds its max_depth."""
        path, spec = self.team_specs[name]
        depth = 1 + max((self._check_depth(c, level + 1) for c in self.children.get(name, [])), default=0)
        if level + depth > spec.max_depth:
            self.too_deep.add(name)
            self._problem(path, f"teams nest {level + depth} levels deep here, more than max_depth {spec.max_depth}")
        return depth

    def _bottom_up(self) -> list[str]:
        order: list[str] = []

        def visit(name: str) -> None:
            for child in self.children.get(name, []):
                if child not in order:
                    visit(child)
            if name not in order:
                order.append(name)

        for name in self.team_specs:
            visit(name)
        return order

    # ------------------------------------------------------------------ models

    def _load_models(self) -> None:
        spec = self.spec
        if spec.simulated is not None:
            self.sim = spec.simulated.model_dump(exclude_none=True)
            try:
                SimulatedModel(**self.sim)
            except ConfigError as exc:
                self._problem("simulated", str(exc).removeprefix("simulated:default: "))
                self.sim = {}
            names = [a.name for a in spec.agents] + list(self.team_specs)
            for agent in (spec.simulated.replies or {}):
                if agent not in names:
                    self._problem(f"simulated.replies.{agent}", f"no agent or team named {agent!r}{suggest(agent, names)}")
        if self.override is None:
            for name in spec.models:
                self._entry(name)
        # With an override, entries are resolved only if named by it: their providers may not be installed.

    def _entry(self, name: str) -> Model | None:
        if name not in self.entries:
            entry = self.spec.models[name]
            options = dict(entry.model_extra or {})
            provider = entry.model.partition(":")[0]
            if provider == "simulated":
                options = {**self.sim, **options}
            elif is_vendor(provider) and self.spec.prices:
                options["prices"] = self.prices
            self.entries[name] = None
            try:
                self.entries[name] = self._resolve(entry.model, options)
            except UnknownModelError as exc:
                self._problem(f"models.{name}.model", str(exc))
            except ConfigError as exc:
                self._problem(f"models.{name}", str(exc))
        return self.entries[name]

    def _resolve(self, spec: str, options: dict[str, Any] | None) -> Model:
        """`resolve_model`, remembering what the model was made from (a price table as its mapping)."""
        model = resolve_model(spec, options)
        portable = dict(options or {})
        if "prices" in portable:
            portable["prices"] = {key: price.model_dump(exclude_none=True) for key, price in self.spec.prices.items()}
        self.sources[id(model)] = (model, (ModelSource(spec=spec, options=portable),))
        return model

    def _use(self, model: Model) -> Model:
        """Count a model that something refers to (an unused ``models`` entry neither costs nor goes online)."""
        self.models_used.add(model.name)
        self.offline = self.offline and isinstance(model, SimulatedModel)
        return model

    def model(self, ref: str | list[str] | None, path: str) -> Model | None:
        """Resolve a model reference: the override, a ``models`` entry, a model string or a fallback list of them;
        None after a problem."""
        if isinstance(ref, list) and self.override is None:
            chain = [self.model(one, f"{path}[{i}]") for i, one in enumerate(ref)]
            models = [m for m in chain if m is not None]
            if len(models) != len(chain):
                return None
            from ..models.resilience import FallbackModel

            if len(models) == 1:
                return models[0]
            fallback = FallbackModel(models)
            self.sources[id(fallback)] = (fallback, tuple(src for m in models for src in self.sources[id(m)][1]))
            return fallback
        if isinstance(ref, list):
            ref = None
        if self.override is not None:
            ref, path = self.override, "--model"
        elif ref is None:
            ref, path = self.spec.default_model or DEFAULT_MODEL, "default_model"
        if ref in self.spec.models:
            entry = self._entry(ref)
            return None if entry is None else self._use(entry)
        if ref not in self.by_string:
            provider = ref.partition(":")[0]
            if ":" not in ref and provider not in available_providers():
                known = list(self.spec.models)
                hint = suggest(ref, known) or did_you_mean(meant_model(ref))
                self._problem(path, f"unknown model {ref!r}{hint}: not an entry of models "
                                    f"(known: {', '.join(known) or 'none'}) nor a model string 'provider:name'")
                return None
            try:
                # The file's simulated options are for the file's models, not for a --model from the command line.
                merge = provider == "simulated" and path != "--model"
                options = self.sim if merge else ({"prices": self.prices} if is_vendor(provider) and self.spec.prices
                                                  else None)
                self.by_string[ref] = self._resolve(ref, options)
            except ConfigError as exc:
                self.by_string[ref] = exc
        resolved = self.by_string[ref]
        if isinstance(resolved, CadenzaError):
            self._problem(path, str(resolved))
            return None
        return self._use(resolved)

    # ------------------------------------------------------------------ agents and teams

    def _server(self, name: str, path: str) -> Any:
        """The MCP server ``name`` of ``mcp_servers``; None after a problem (reported at ``path``)."""
        if name in self.servers:
            return self.servers[name]
        spec = self.spec.mcp_servers.get(name)
        if spec is None:
            known = list(self.spec.mcp_servers)
            self._problem(path, f"no MCP server named {name!r} in mcp_servers{suggest(name, known)} "
                                f"(known: {', '.join(known) or 'none'})")
            return None
        try:
            from ..tools._mcp import MCPServer
            from ..tools._mcp_pins import MCPPins
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] != "mcp":
                raise
            self._problem(f"mcp_servers.{name}", "MCP needs the mcp SDK, which is not installed: "
                                                  "pip install 'cadenza[mcp]'")
            self.servers[name] = None
            return None
        try:
            self.servers[name] = MCPServer(
                name, command=spec.command, url=spec.url, env=spec.env, scopes=spec.scopes,
                pins=MCPPins(spec.pins) if spec.pins else None, trust_on_first_use=spec.trust_on_first_use,
                timeout=spec.timeout)
        except ConfigError as exc:
            self._problem(f"mcp_servers.{name}", str(exc))
            self.servers[name] = None
        return self.servers[name]

    def _agent(self, index: int, spec: AgentSpec) -> Agent[str] | None:
        model = self.model(spec.model, f"agents[{index}].model")
        servers = [self._server(name, f"agents[{index}].tools[{i}]") for i, name in enumerate(spec.tools)]
        if model is None or any(server is None for server in servers):
            return None
        try:
            return Agent(spec.name, spec.instructions, model=model, model_source=self.sources.get(id(model), (model, None))[1],
                         description=spec.description,
                         max_turns=spec.max_turns, output_retries=spec.output_retries,
                         requires_approval=spec.requires_approval, max_tokens=spec.max_tokens,
                         budget=_budget(spec.budget), scopes=spec.scopes, mcp_servers=servers)
        except ConfigError as exc:
            self._problem(f"agents[{index}]", str(exc))
            return None

    def _peers(self, index: int, spec: PeersSpec, agents: Mapping[str, Agent[str]]) -> PeerGroup | None:
        path = f"peers[{index}]"
        known = [a.name for a in self.spec.agents]
        missing = [(j, name) for j, name in enumerate(spec.agents) if name not in known]
        for j, name in missing:
            self._problem(f"{path}.agents[{j}]", f"unknown agent {name!r}{suggest(name, known)} (a peer group's "
                                                 f"members are agents of agents:)")
        members = [agents[name] for name in spec.agents if name in agents]
        if len(members) != len(spec.agents):  # unknown, or an agent with a problem of its own
            return None
        try:
            return PeerGroup(spec.name, members, entry=spec.entry, talks_to=spec.talks_to,
                             stop=StopPolicy(**spec.stop.model_dump()),
                             history=spec.history, description=spec.description)
        except ConfigError as exc:
            self._problem(path, str(exc))
            return None

    def _team_parts(self, path: str, spec: TeamSpec) -> _TeamParts | None:
        """Everything a team needs besides its workers, checked; None after a problem."""
        model = self.model(spec.model, f"{path}.model")
        planner = self.model(spec.planner_model, f"{path}.planner_model") if spec.planner_model else model
        synthesizer = self.model(spec.synthesizer_model, f"{path}.synthesizer_model") if spec.synthesizer_model else model
        policy = self._policy(path, spec)
        spawn = self._spawn(path, spec)
        plan = self._plan(path, spec)
        if model is None or planner is None or synthesizer is None or policy is None or (
                spec.spawn is not None and spawn is None) or (spec.plan is not None and plan is None):
            return None
        return _TeamParts(model, planner, synthesizer, policy, spawn, plan)

    def _team(self, path: str, spec: TeamSpec, parts: _TeamParts, agents: Mapping[str, Worker],
              teams: Mapping[str, Supervisor[str]]) -> Supervisor[str] | None:
        workers: list[Worker] = [w for name in spec.workers if (w := agents.get(name) or teams.get(name)) is not None]
        if len(workers) != len(spec.workers):
            return None  # a worker had a problem, already reported
        try:
            return Supervisor(spec.name, workers=workers, model=parts.model, planner_model=parts.planner,
                              synthesizer_model=parts.synthesizer, instructions=spec.instructions,
                              description=spec.description, plan=parts.plan, policy=parts.policy, spawn=parts.spawn,
                              max_depth=spec.max_depth, max_plan_steps=spec.max_plan_steps,
                              planner_repairs=spec.planner_repairs, budget=_budget(spec.budget),
                              scopes=spec.scopes, synthesize=spec.synthesize)
        except CadenzaError as exc:
            self._problem(path, str(exc))
            return None

    def _policy(self, path: str, spec: TeamSpec) -> ExecutionPolicy | None:
        if spec.policy is None:
            return ExecutionPolicy()
        p = spec.policy
        per_agent = p.per_agent_concurrency
        if isinstance(per_agent, Mapping):
            for name in per_agent:
                if name not in spec.workers:
                    known = self._known(spec.workers)
                    self._problem(f"{path}.policy.per_agent_concurrency.{name}",
                                  f"{name!r} is not a worker of this team{suggest(str(name), known)}")
        try:
            retry = RetryPolicy(**p.retry.model_dump())
            return ExecutionPolicy(max_concurrency=p.max_concurrency, per_agent_concurrency=per_agent,
                                   step_timeout=p.step_timeout, failure_policy=p.failure_policy, retry=retry)
        except ConfigError as exc:
            self._problem(f"{path}.policy", str(exc))
            return None

    def _spawn(self, path: str, spec: TeamSpec) -> SpawnPolicy | None:
        if spec.spawn is None:
            return None
        tiers = {tier: self.model(ref, f"{path}.spawn.tiers.{tier}") for tier, ref in spec.spawn.tiers.items()}
        resolved = {tier: m for tier, m in tiers.items() if m is not None}
        if len(resolved) != len(tiers):
            return None
        try:
            return SpawnPolicy(max_agents=spec.spawn.max_agents, tiers=resolved)
        except ConfigError as exc:
            self._problem(f"{path}.spawn", str(exc))
            return None

    def _plan(self, path: str, spec: TeamSpec) -> Plan | None:
        if spec.plan is None:
            return None
        plan = Plan(steps=tuple(spec.plan))
        problems = plan.diagnose(self._known(spec.workers), max_steps=max(spec.max_plan_steps, len(plan.steps)))
        for problem in problems:
            key = f"{path}.plan" if problem.step is None else f"{path}.plan[{problem.step}].{problem.field}"
            self._problem(key, problem.message)
        return None if problems else plan


_SECTIONS = {"--model": -1, **{name: rank for rank, name in enumerate(WorkflowSpec.model_fields)}}


def _budget(spec: BudgetSpec | None) -> Budget | None:
    return None if spec is None or (spec.tokens is None and spec.usd is None) else Budget(**spec.model_dump())


def _file_order(problem: str) -> tuple[int, int]:
    """Problems sorted by section and item as they appear in the file (a stable sort keeps the rest)."""
    match = re.match(r"([\w-]+)(?:\[(\d+)\])?", problem)
    if match is None:
        return len(_SECTIONS), 0
    return _SECTIONS.get(match.group(1), len(_SECTIONS)), int(match.group(2) or 0)
