"""The supervisor pattern: plan, execute in parallel, synthesise.

A `Supervisor` coordinates and its workers do the work. It is itself a worker
(same ``execute`` as an `Agent`), so teams nest; usage rolls up through every level.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, Unpack, overload

from pydantic import TypeAdapter, ValidationError

from .._budget import Budget
from .._errors import CadenzaError, ConfigError, ErrorCode, HierarchyError, SpawnError
from .._events import AgentSpawned, PlanReady, RunFinished, RunStarted, UsageRecorded
from .._ids import AgentId, RunId, ScopePath, child_path, new_run_id, new_task_id, split_path
from .._messages import ErrorInfo, Result, Task, utcnow
from .._names import name_problem
from .._outcomes import PlanOutcome, StepRecord
from .._plan import Plan
from .._result import RunResult
from .._step_context import StepContext
from .._sync import run_sync
from .._usage import Usage
from .._worker import Worker
from .._worker_spec import Synthesize, TeamSpec, model_sources
from ..backends.base import Backend, is_composite, servers_of
from ..engine._accounts import BudgetAccount
from ..engine._executor import ExecutionPolicy, Executor
from ..engine._run_state import LocalPort, RunState
from ..models.base import Model
from ..models.registry import resolve_model
from ..observability._tracing import record_outcome, record_usage, span
from ..tools._permissions import narrowed
from ..tools._tool_sources import ToolSources, require_approved
from ._agent import DEFAULT_MODEL, Agent, render_task
from ._planner import Planner
from ._spawn import SpawnPolicy
from ._streamed import RunOptions, streamed

if TYPE_CHECKING:
    from .._events import Event, EventSink, FinalResult
    from .._port import RunPort
    from ..backends.process import ProcessBackend
    from ..backends.ray import RayBackend
    from ..engine._stream import EventStream
    from ..models.pricing import Prices
    from ..stores.base import Store
    from ..tools._mcp import MCPServer
    from ._override import Swaps

__all__ = ("DEFAULT_MAX_DEPTH", "Supervisor", "team_depth")

BackendName = Literal["local", "process", "ray"]
"""A backend by name: ``"local"`` runs steps in this process, ``"process"`` in a pool of worker processes, ``"ray"`` on
Ray actors (of the cluster at ``RAY_ADDRESS``, or of a local Ray instance)."""

ModelSpec = str | Model | Sequence[str | Model]
"""A model string, a model, or a fallback chain of either."""

OutputT = TypeVar("OutputT")

DEFAULT_MAX_DEPTH = 3
"""Teams nested deeper than this (counting the top team as 1) are refused."""

SYNTHESIZER_INSTRUCTIONS = """You lead a team of AI agents. Your team has worked on the goal below, step by step.
Combine their results into the final answer to the goal. Say plainly if some steps failed or were skipped."""


def team_depth(worker: Worker) -> int:
    """Levels of teams in ``worker``'s tree: 0 for an agent, 1 for a team of agents, and so on."""
    spec = worker.describe()
    return spec.depth if isinstance(spec, TeamSpec) else 0


class Supervisor(Generic[OutputT]):
    """Decomposes a goal into a plan, runs it on its workers, and synthesises the answer."""

    @overload
    def __init__(self: Supervisor[str], name: str, *, workers: Sequence[Worker], output_type: None = None,
                 model: ModelSpec | None = None, planner_model: ModelSpec | None = None,
                 synthesizer_model: ModelSpec | None = None, instructions: str = "", description: str = "",
                 plan: Plan | None = None, policy: ExecutionPolicy | None = None, backend: Backend | BackendName | None = None,
                 spawn: SpawnPolicy | None = None, max_depth: int = DEFAULT_MAX_DEPTH, max_plan_steps: int = 50,
                 planner_repairs: int = 2, budget: Budget | None = None,
                 scopes: Iterable[str] | None = None, synthesize: Synthesize = "auto") -> None: ...
    @overload
    def __init__(self: Supervisor[OutputT], name: str, *, workers: Sequence[Worker], output_type: type[OutputT],
                 model: ModelSpec | None = None, planner_model: ModelSpec | None = None,
                 synthesizer_model: ModelSpec | None = None, instructions: str = "", description: str = "",
                 plan: Plan | None = None, policy: ExecutionPolicy | None = None, backend: Backend | BackendName | None = None,
                 spawn: SpawnPolicy | None = None, max_depth: int = DEFAULT_MAX_DEPTH, max_plan_steps: int = 50,
                 planner_repairs: int = 2, budget: Budget | None = None,
                 scopes: Iterable[str] | None = None, synthesize: Synthesize = "auto") -> None: ...
    def __init__(
        self,
        name: str,
        *,
        workers: Sequence[Worker],
        output_type: type[Any] | None = None,
        model: ModelSpec | None = None,
        planner_model: ModelSpec | None = None,
        synthesizer_model: ModelSpec | None = None,
        instructions: str = "",
        description: str = "",
        plan: Plan | None = None,
        policy: ExecutionPolicy | None = None,
        backend: Backend | BackendName | None = None,
        spawn: SpawnPolicy | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_plan_steps: int = 50,
        planner_repairs: int = 2,
        budget: Budget | None = None,
        scopes: Iterable[str] | None = None,
        synthesize: Synthesize = "auto",
    ) -> None:
        """Create a team.

        Args:
            name: the team's name; as a worker of another team, plans assign steps by it.
            workers: agents, teams or any `Worker`; names must be unique.
            output_type: the type of the synthesised answer; ``str`` when None.
            model: the model for planning and synthesis unless those are given separately.
            planner_model: a (usually strong) model for decomposition.
            synthesizer_model: the model that combines the step results.
            instructions: extra instructions for the synthesiser.
            description: what the team is good for, as a parent planner sees it.
            plan: a fixed plan; when given, the planner is skipped.
            policy: concurrency limits, timeouts, retries and failure policy.
            backend: where steps run: in-process by default (``"local"``); ``"process"`` for a pool of worker
                processes (one per CPU) that each run of this team starts and closes; ``"ray"`` for Ray actors
                that each run starts and closes (on the cluster at ``RAY_ADDRESS``, else on a local Ray instance
                started for the run); or a `Backend` the caller owns, such as ``ProcessBackend(workers=4)`` or
                ``RayBackend(address=...)``.
            spawn: what the planner may grant to new agents; None forbids spawning.
            max_depth: the deepest nesting of teams allowed under and including this one.
            max_plan_steps: the largest plan the planner may produce.
            planner_repairs: how often an invalid plan is sent back to the planner model.
            budget: the most one run of this team may spend (planning, steps and synthesis, nested teams
                included); when it is spent no new call starts and the team's result is partial.
            scopes: the ceiling on what any agent under this team may do (its workers, nested teams and spawned
                agents): each holds at most its own grant intersected with this and every ceiling above. None
                sets no ceiling of its own.
            synthesize: when the synthesiser is called once the steps are done. ``auto``: unless the plan ends in
                one step that succeeded with an output of the team's output type, which is then the team's output
                (no call re-reads what that step already wrote). ``always``: every run. ``never``: the plan's
                last step's output is the team's output; the plan must end in one step (the planner is told so).
        """
        problem = name_problem(name)
        if problem:
            raise ConfigError(f"team name {problem}")
        if not workers:
            raise ConfigError(f"team {name!r} has no workers")
        if synthesize not in ("auto", "always", "never"):
            raise ConfigError(f"team {name!r}: synthesize must be 'auto', 'always' or 'never', not {synthesize!r}")
        self._name = name
        self.synthesize: Synthesize = synthesize
        self.workers: dict[str, Worker] = {}
        for worker in workers:
            if worker.name in self.workers:
                raise ConfigError(f"team {name!r} has two workers named {worker.name!r}")
            if worker is self:
                raise HierarchyError(f"team {name!r} cannot be its own worker")
            self.workers[worker.name] = worker
        self.max_depth = max_depth
        depth = self._depth = 1 + max((team_depth(w) for w in self.workers.values()), default=0)  # this one too
        if depth > max_depth:
            raise HierarchyError(f"team {name!r} nests {depth} levels of teams, deeper than the limit of {max_depth}")
        self._description = description or f"A team ({', '.join(self.workers)}) led by {name}."
        base_model = model if model is not None else DEFAULT_MODEL
        self.planner = Planner(resolve_model(planner_model or base_model), max_repairs=planner_repairs,
                               max_steps=max_plan_steps, one_last_step=synthesize == "never")
        self._planner_sources = model_sources(planner_model or base_model)
        self.synthesizer = Agent(name, "\n\n".join(filter(None, [SYNTHESIZER_INSTRUCTIONS, instructions])),
                                 model=synthesizer_model or base_model, output_type=output_type)
        self.output_type: type[Any] = output_type if output_type is not None else str
        self._adapter: TypeAdapter[Any] | None = TypeAdapter(output_type) if output_type is not None else None
        self.spawn = spawn
        self.static_plan = self._check_static(plan, max_plan_steps) if plan is not None else None
        self._pool = _pool_for(name, backend)
        """The worker processes (or Ray actors) this team started for a backend by name: closed when each run ends."""
        self.executor = Executor(policy, backend=self._pool if isinstance(backend, str) else backend)
        self.budget = budget
        self.scopes: frozenset[str] | None = frozenset(scopes) if scopes is not None else None

    def _check_static(self, plan: Plan, max_plan_steps: int) -> Plan:
        """A written plan meets the same rules as a planned one, its proposed agents included."""
        if plan.new_agents:
            if self.spawn is None:
                raise SpawnError(f"team {self._name!r}: the plan proposes new agents, but the team has no spawn policy")
            problems = self.spawn.problems(plan.new_agents, self.workers.keys())
            if problems:
                raise SpawnError(f"team {self._name!r}: " + "; ".join(problems), problems=problems)
        agents = [*self.workers, *(p.name for p in plan.new_agents)]
        checked = plan.check(agents, max_steps=max(max_plan_steps, len(plan.steps)))
        if self.synthesize == "never" and len(last := plan.sinks()) > 1:
            raise ConfigError(f"team {self._name!r}: synthesize='never' makes the plan's last step's output the team's "
                              f"output, but its plan ends in {len(last)} steps ({', '.join(last)}): end it in one "
                              "step, or synthesize")
        return checked

    @property
    def name(self) -> str:
        """The team's name."""
        return self._name

    @property
    def description(self) -> str:
        """What the team is good for, as a parent planner sees it."""
        return self._description

    @property
    def plan_source(self) -> Literal["static", "planner"]:
        """``static`` when the team follows a written plan, ``planner`` when its model makes one per run."""
        return "static" if self.static_plan is not None else "planner"

    def __repr__(self) -> str:
        return f"Supervisor({self._name!r}, workers={list(self.workers)})"

    def use_backend(self, backend: Backend) -> None:
        """Run this team's steps, and those of every team under it, on ``backend``."""
        self.executor.backend = backend
        for worker in self.workers.values():
            if is_composite(worker):
                worker.use_backend(backend)

    def backend_problems(self) -> list[str]:
        """What of this team's tree its teams' backends cannot run (a lambda tool on a process backend, say)."""
        backend = self.executor.backend
        found = [problem for w in self.workers.values() for problem in backend.problems(w)]
        if self.spawn is not None:
            found += [f"team {self._name!r} may spawn agents {which}, but {problem}"
                      for which, agent in self.spawn.stand_ins().items() for problem in backend.problems(agent)]
        for worker in self.workers.values():
            if is_composite(worker):
                found += worker.backend_problems()
        return found

    def override(self, *, model: ModelSpec) -> AbstractContextManager[None]:
        """Inside ``with team.override(model=FunctionModel(reply)):``, every model of the team (its planner,
        synthesiser, workers, nested teams, peer groups and spawned agents) is ``model``; after the block, what it
        was. An application's own tests run offline this way."""
        from ._override import override_models

        return override_models(self, model)

    def _override_into(self, swaps: Swaps) -> None:
        swaps.set(self.planner, "model", swaps.model)
        swaps.set(self, "_planner_sources", swaps.sources)
        swaps.worker(self.synthesizer)
        if self.spawn is not None:  # the agents a run spawns take their model from the policy's tiers
            swaps.set(self, "spawn", replace(self.spawn, tiers=dict.fromkeys(self.spawn.tiers, swaps.model)))
        for worker in self.workers.values():
            swaps.worker(worker)

    def describe(self) -> TeamSpec:
        """What the team is, as data: its planner, synthesiser, written plan, spawn policy and workers."""
        from .._worker_spec import ModelRef, SpawnSpec

        spawn = self.spawn
        return TeamSpec(
            name=self._name, description=self._description,
            planner_model=ModelRef(name=self.planner.model.name, sources=self._planner_sources),
            synthesizer=self.synthesizer.describe(), synthesize=self.synthesize, plan=self.static_plan,
            spawn=None if spawn is None else SpawnSpec(
                max_agents=spawn.max_agents, tools=tuple(spawn.tool_names),
                tiers={tier: m if isinstance(m, str) else m.name for tier, m in sorted(spawn.tiers.items())}),
            workers=tuple(w.describe() for w in self.workers.values()), max_depth=self.max_depth,
            scopes=tuple(sorted(self.scopes)) if self.scopes is not None else None, budget=self.budget,
        )

    @property
    def mcp_servers(self) -> tuple[MCPServer, ...]:
        """Every MCP server an agent of this team (nested teams too) draws tools from, each once."""
        found: dict[int, MCPServer] = {}
        for worker in self.workers.values():
            found.update((id(server), server) for server in servers_of(worker))
        return tuple(found.values())

    async def run(self, goal: str, *, input: Any = None, run_id: RunId | None = None,
                  events: EventSink | None = None, store: Store | str | os.PathLike[str] | None = None,
                  source: str | None = None, options: dict[str, Any] | None = None,
                  workflow: str | None = None, budget: Budget | None = None,
                  prices: Prices | None = None, sign_messages: bool = True,
                  audit: bool = True, tool_sources: ToolSources | None = None) -> RunResult[OutputT]:
        """Plan, execute and synthesise ``goal``; failures of steps make a partial result, not an exception.

        Args:
            goal: what the team must achieve.
            input: typed input for the goal (any JSON value).
            run_id: the id to record the run under; a fresh one by default.
            events: receives every event of the run, in order. A sink that raises is logged once and
                detached; the run goes on.
            store: where to record the run as it happens, so that it can be shown and resumed: an open
                `Store`, or a store URL or SQLite path (opened and closed around the run).
            source: where the team came from (a workflow file), recorded for ``cadenza resume`` and named in
                the command that approves MCP tools waiting for approval.
            options: how the team was built (e.g. a model override), recorded for ``cadenza resume``.
            workflow: the name to record the run under (``cadenza runs``); the team's name by default.
            budget: the most the whole run may spend, over every team and agent in it (the team's own
                ``budget`` applies as well).
            prices: the price table for budgets in USD (the shipped `PRICES` by default).
            sign_messages: send every Task and Result between agents in a signed envelope, verified on receipt
                (``_security``); a Task and Result that stay in this process are sealed as a `LocalEnvelope`, checked but
                never serialised. False saves the rest of the cost (about 20 us a step) where every agent runs here.
            audit: with a ``store``, keep the run's hash-chained audit log (``cadenza audit``); False saves its
                writes (two records a step).
            tool_sources: MCP servers the caller opened and reviewed already (the CLI does, before it shows the
                run id); they are not reviewed again, and stay open. By default the run opens what its agents
                need and closes it when it ends.

        Raises:
            ConfigError: an agent's MCP server offers tools that wait for approval, or a worker cannot run on its
                team's backend (nothing was executed).
            PlanError: the planner gave no valid plan (nothing was executed).
            ModelError: the planner's model failed (nothing was executed).
            StoreError: the store failed; what was recorded before stays, and the run can be resumed.
        """
        task = Task(task_id=new_task_id(), run_id=run_id or new_run_id(), sender=AgentId("user"),
                    recipient=AgentId(self._name), instruction=goal, input=input)
        state = RunState.begin(task.run_id, budget=budget, prices=prices, sign_messages=sign_messages,
                               sources=tool_sources)
        async with _owned(state.sources, tool_sources), _closing(self._pool):
            await require_approved(self.mcp_servers, state.sources, workflow=source)
            _check_backends(self)
            if store is None:
                result = await self._top(task, state.port(events=events))
            else:
                from ..engine._durable import open_for, record_run

                async with open_for(store) as opened:
                    result = await record_run(self, self._top, task, opened, state=state, events=events,
                                              source=source, options=options, workflow=workflow, audit=audit)
        return self._typed(result)

    async def resume(self, run_id: RunId | str, *, store: Store | str | os.PathLike[str],
                     events: EventSink | None = None, force: bool = False, budget: Budget | None = None,
                     prices: Prices | None = None, sign_messages: bool = True,
                     audit: bool = True, tool_sources: ToolSources | None = None) -> RunResult[OutputT]:
        """Continue a run an earlier process left unfinished (killed, cancelled, or waiting for approval).

        Steps that finished are read back from ``store``, not run again; steps that were in flight run again.

        Raises:
            RunNotFound: no such run in ``store``.
            ResumeError: the run has finished, or this team differs from the one that started it
                (``changes`` says how; ``force=True`` resumes anyway).

        ``budget`` covers what this process spends; what earlier processes spent is not counted against it.
        """
        from ..engine._durable import open_for, resume_run

        state = RunState.begin(str(run_id), budget=budget, prices=prices, sign_messages=sign_messages,
                               sources=tool_sources)
        async with _owned(state.sources, tool_sources), _closing(self._pool), open_for(store) as opened:
            await require_approved(self.mcp_servers, state.sources)
            _check_backends(self)
            return self._typed(await resume_run(self, self._top, RunId(run_id), opened, state=state, events=events,
                                                force=force, audit=audit))

    async def _top(self, task: Task, port: LocalPort) -> RunResult[Any]:
        """The run of this team as the top of its run: what a durable run wraps (`_durable.Engine`)."""
        return await self._run(task, team=ScopePath(self._name), port=port, ceiling=None, raise_plan_errors=True)

    def _typed(self, result: RunResult[Any]) -> RunResult[OutputT]:
        if result.output is not None and self._adapter is not None:
            result.output = self._adapter.validate_python(result.output)  # JSON value -> the declared type
        return result

    def stream(self, goal: str, **options: Unpack[RunOptions]) -> AsyncIterator[Event | FinalResult[OutputT]]:
        """`run`, read as it happens: ``async for event in team.stream(goal):`` yields every event of the run in
        order (the reports of each message and call, and each model's answer piece by piece as `ModelDelta`), then
        the result as a `FinalResult`. The keyword arguments are `run`'s, but ``events``.

        Leaving the loop early cancels the run, as Ctrl-C does: at once when the stream is closed
        (``async with contextlib.aclosing(team.stream(goal)) as events:``), else on the event loop's next turn.
        The run's exceptions (`run`'s) are raised from the loop, after the events that came before them.
        """
        return streamed(lambda sink: self.run(goal, events=sink, **options))

    def run_sync(self, goal: str, *, input: Any = None, events: EventSink | None = None,
                 store: str | os.PathLike[str] | None = None, budget: Budget | None = None,
                 prices: Prices | None = None) -> RunResult[OutputT]:
        """`run` for code that is not async (``store`` is a URL or path here: it is opened inside the run's loop)."""
        return run_sync(self.run(goal, input=input, events=events, store=store, budget=budget, prices=prices))

    async def plan(self, goal: str) -> Plan:
        """The plan this team would run for ``goal``, without running it."""
        if self.static_plan is not None:
            return self.static_plan
        return (await self.planner.plan(goal, list(self.workers.values()), spawn=self.spawn, team=self._name)).plan

    async def execute(self, task: Task, ctx: StepContext, port: RunPort) -> Result:
        """Run as a worker of a parent team, at ``ctx.scope`` in its run; the Result carries the whole subtree's
        usage. A team runs its own steps, so it needs the run itself: the port of the process the run lives in."""
        team = ctx.scope
        if task.depth + self._depth > self.max_depth:
            return _failure(task, self._name, HierarchyError(
                f"team {team!r} would nest deeper than the limit of {self.max_depth} teams"))
        if not isinstance(port, LocalPort):
            return _failure(task, self._name, ConfigError(
                f"team {team!r} can run only in the process of its run; its port is a {type(port).__name__}"))
        outcome = await self._run(task, team=team, port=port, ceiling=ctx.ceiling, raise_plan_errors=False)
        port.state.team_steps[team] = outcome.steps  # for the record of the step above (a Result carries no records)
        return Result(task_id=task.task_id, run_id=task.run_id, agent=AgentId(self._name), status=outcome.status,
                      output=outcome.output, error=outcome.error, usage=outcome.usage,
                      started_at=outcome.started_at, finished_at=outcome.finished_at)

    async def _run(self, task: Task, *, team: ScopePath, port: LocalPort, ceiling: frozenset[str] | None,
                   raise_plan_errors: bool) -> RunResult[Any]:
        """Plan, execute, synthesise; the output is a JSON value. Every way out emits `RunFinished`.

        ``port`` is the run as the team's parent reaches it, ``ceiling`` the most any agent above allows. When the
        run is recorded, the plan and every step are recorded under ``team`` (this team's path in the run).
        """
        account = BudgetAccount(f"team {team!r}", self.budget) if self.budget is not None else None
        events = port.events
        attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": self._name,
                      "cadenza.kind": "team", "cadenza.team": team, "cadenza.run_id": task.run_id,
                      "cadenza.task_id": task.task_id}
        try:
            with span(f"invoke_agent {self._name}", attributes) as run:
                result = await self._plan_execute_synthesise(task, team=team, port=port.within(account),
                                                              ceiling=narrowed(ceiling, self.scopes),
                                                              raise_plan_errors=raise_plan_errors)
                record_usage(run, result.usage)
                record_outcome(run, result)
                return result
        except asyncio.CancelledError:
            if events.active:  # what was spent before the cancellation is on the step events already sent
                events.emit(RunFinished(task.run_id, team, "cancelled", Usage()))
            raise

    async def _plan_execute_synthesise(
        self, task: Task, *, team: ScopePath, port: LocalPort, ceiling: frozenset[str] | None, raise_plan_errors: bool,
    ) -> RunResult[Any]:
        started = utcnow()
        run_id = task.run_id
        goal = render_task(task)
        events = port.events
        own = StepContext(run_id=run_id, scope=team, step_id=split_path(team)[1], agent=self._name, attempt=1,
                          task_id=task.task_id, ceiling=ceiling, budgets=port.budgets, prior_calls=(),
                          trace=(), turn=None)  # planning and synthesis
        if events.active:
            events.emit(RunStarted(run_id, team, task.instruction, started))
        usage = Usage()
        try:
            plan, usage = await self._make_plan(goal, team, own, port)
        except CadenzaError as exc:
            usage = exc.spent or usage  # a planner that gave up was still billed for every attempt
            _count_team_usage("planner", usage, run_id, team, events)
            if events.active:
                events.emit(RunFinished(run_id, team, "failure", usage))
            if raise_plan_errors:
                raise
            return RunResult(run_id=run_id, status="failure", output=None, usage=usage, started_at=started,
                             finished_at=utcnow(), error=ErrorInfo.from_exception(exc))
        # Spawned agents live only in this run's worker map: when the run ends nothing holds them.
        workers = dict(self.workers)
        spawned: list[str] = []
        if self.spawn is not None:
            for proposal in plan.new_agents:
                workers[proposal.name] = self.spawn.build(proposal)
                spawned.append(proposal.name)
                if events.active:
                    events.emit(AgentSpawned(run_id, team, proposal))
        outcome = await self.executor.run(plan, workers, run_id=run_id, team=team, parent_task_id=task.task_id,
                                          depth=task.depth + 1, port=port, ceiling=ceiling)
        usage = usage + outcome.usage
        output, status, error, synth_usage = await self._synthesise(task, goal, plan, outcome, own, port)
        usage = usage + synth_usage
        _count_team_usage("synthesizer", synth_usage, run_id, team, events)
        finished = utcnow()
        if events.active:
            events.emit(RunFinished(run_id, team, status, usage, finished))
        records = list(outcome.records.values())
        _complete(records, workers, team, port.state.team_steps)
        return RunResult(run_id=run_id, status=status, output=output, usage=usage, started_at=started,
                         finished_at=finished, error=error, plan=plan, steps=records, spawned=spawned)

    async def _make_plan(self, goal: str, team: ScopePath, own: StepContext, port: LocalPort) -> tuple[Plan, Usage]:
        run_id = RunId(own.run_id)
        events = port.events
        journal = port.state.journal
        if journal is not None and (stored := journal.prior.plan_of(team, self.workers)) is not None:
            plan, stored_source = stored
            if events.active:
                events.emit(PlanReady(run_id, team, plan, stored_source, restored=True))
            return plan, journal.prior.planning.get(team, Usage())
        source: Literal["planner", "static"]
        if self.static_plan is not None:
            plan, source, usage, repairs = self.static_plan, "static", Usage(), 0
        else:
            with span("cadenza.plan", {"cadenza.team": team, "cadenza.run_id": run_id,
                                       "gen_ai.request.model": self.planner.model.name}) as planning:
                planned = await self.planner.plan(goal, list(self.workers.values()), spawn=self.spawn, team=team,
                                                  within=(own, port))
                record_usage(planning, planned.usage)
            plan, source, usage, repairs = planned.plan, "planner", planned.usage, planned.repairs
            if events.active:
                events.emit(UsageRecorded(run_id, team, "planner", usage))
        if events.active:  # durable before any step starts: a resumed run must follow the same plan
            await events.durable(PlanReady(run_id, team, plan, source, repairs))
        return plan, usage

    async def _synthesise(self, task: Task, goal: str, plan: Plan, outcome: PlanOutcome, own: StepContext,
                          port: LocalPort) -> tuple[Any, Any, ErrorInfo | None, Usage]:
        if outcome.budget_stop is not None:  # no synthesis (it would be refused): what the finished steps made
            return outcome.outputs(), "partial", outcome.budget_stop, Usage()
        if outcome.status == "waiting":
            waiting = [r for r in outcome.records.values() if r.status == "waiting"]
            reason = "; ".join(f"step {r.step.id!r}: {r.error.message if r.error else 'waiting'}" for r in waiting[:3])
            return None, "waiting", ErrorInfo(type="Waiting", code=ErrorCode.WAITING, message=reason), Usage()
        if outcome.status == "failure":
            failed = [r for r in outcome.records.values() if r.status == "failed"]
            reason = "; ".join(f"step {r.step.id!r} failed: {r.error.message if r.error else 'unknown error'}" for r in failed[:3])
            return None, "failure", ErrorInfo(type="RunFailed", code=ErrorCode.RUN_FAILED,
                                                        message=reason or "no step succeeded"), Usage()
        if self.synthesize != "always" and (answer := self._last_step_answer(plan, outcome)) is not None:
            return answer[0], outcome.status, None, Usage()
        if self.synthesize == "never":
            return self._unsynthesised(plan, outcome)
        context: dict[str, Any] = {}
        for record in outcome.records.values():
            if record.status in ("success", "partial"):
                context[record.step.id] = record.output
            else:
                context[record.step.id] = f"[{record.status}: {record.error.message if record.error else record.skip_reason}]"
        synth_task = Task(task_id=new_task_id(), run_id=task.run_id, parent_task_id=task.task_id,
                          sender=AgentId(self._name), recipient=AgentId(self._name),
                          instruction=f"Goal: {goal}\n\nWrite the final answer.", context=context, depth=task.depth)
        with span("cadenza.synthesize", {"cadenza.run_id": task.run_id, "gen_ai.agent.name": self._name}) as synth:
            result = await self.synthesizer.execute(synth_task, own, port)
            record_usage(synth, result.usage)
        if not result.ok and result.error is not None and result.error.code is ErrorCode.BUDGET_EXCEEDED:
            return outcome.outputs(), "partial", result.error, result.usage  # what the steps made, unsynthesised
        if not result.ok:
            return None, "failure", result.error, result.usage
        output = result.output  # a JSON value; `run` turns it into the declared type, `execute` passes it on
        error = _not_completed(outcome) if outcome.status == "partial" else None
        return output, outcome.status, error, result.usage

    def _last_step_answer(self, plan: Plan, outcome: PlanOutcome) -> tuple[Any] | None:
        """The output of the plan's one last step, as the team's output (a JSON value), when that step succeeded
        with an output of the team's output type; None otherwise. Every other step led to it, so all succeeded."""
        last = plan.sinks()
        record = outcome.records.get(last[0]) if len(last) == 1 else None
        if record is None or record.status != "success" or record.result is None:
            return None
        output = record.result.output
        if self._adapter is None:
            return (output,) if isinstance(output, str) else None
        try:
            return (self._adapter.dump_python(self._adapter.validate_python(output), mode="json"),)
        except ValidationError:
            return None

    def _unsynthesised(self, plan: Plan, outcome: PlanOutcome) -> tuple[Any, Any, ErrorInfo | None, Usage]:
        """The end of a ``synthesize='never'`` run whose last step gave no answer: why, with the outputs the steps
        made when some did not finish."""
        if outcome.status == "partial":
            return outcome.outputs(), "partial", _not_completed(outcome), Usage()
        last = plan.sinks()
        why = (f"its plan ends in {len(last)} steps ({', '.join(last)})" if len(last) != 1 else
               f"the output of its last step {last[0]!r} is not a {getattr(self.output_type, '__name__', self.output_type)}")
        return None, "failure", ErrorInfo(type="RunFailed", code=ErrorCode.RUN_FAILED, message=(
            f"team {self._name!r} does not synthesise (synthesize='never'), and {why}")), Usage()


def _not_completed(outcome: PlanOutcome) -> ErrorInfo:
    """The error of a partial run: which steps did not succeed."""
    not_ok = [r.step.id for r in outcome.records.values() if r.status != "success"]
    return ErrorInfo(type="PartialRun", code=ErrorCode.PARTIAL_RUN, message=f"steps not completed: {', '.join(not_ok)}")


def _count_team_usage(source: Literal["planner", "synthesizer"], usage: Usage, run_id: RunId, team: ScopePath,
                      events: EventStream) -> None:
    """What a team spent outside its steps, told to the run (the journal records it: its totals count it)."""
    if usage.model_calls and events.active:
        events.emit(UsageRecorded(run_id, team, source, usage))


def _check_backends(team: Supervisor[Any]) -> None:
    """Refuse, before anything runs, a team tree its backends cannot run.

    Raises:
        ConfigError: naming each worker and what of it cannot run where its team sends it.
    """
    problems = team.backend_problems()
    if problems:
        raise ConfigError(f"team {team.name!r} cannot run on its backend: " + "; ".join(problems))


def _pool_for(team: str, backend: Backend | BackendName | None) -> ProcessBackend | RayBackend | None:
    """The pool a team starts itself for ``backend="process"`` or ``"ray"``; None for any other choice."""
    if not isinstance(backend, str) or backend == "local":
        return None
    if backend == "process":
        from ..backends.process import ProcessBackend

        return ProcessBackend()
    if backend == "ray":
        from ..backends.ray import RayBackend

        return RayBackend()
    raise ConfigError(f"team {team!r}: backend must be 'local', 'process', 'ray' or a Backend, not {backend!r}")


def _closing(pool: ProcessBackend | RayBackend | None) -> AbstractAsyncContextManager[object]:
    """The team's own pool of worker processes, stopped when the run ends (no process outlives a run)."""
    return nullcontext() if pool is None else pool


def _owned(sources: ToolSources, given: ToolSources | None) -> AbstractAsyncContextManager[object]:
    """``sources`` closed when the run ends, unless the caller gave them (then the caller closes them)."""
    return nullcontext() if given is not None else sources


def _failure(task: Task, agent: str, exc: CadenzaError) -> Result:
    now = utcnow()
    return Result(task_id=task.task_id, run_id=task.run_id, agent=AgentId(agent), status="failure",
                  error=ErrorInfo.from_exception(exc), started_at=now, finished_at=now)


def _complete(records: list[StepRecord], workers: dict[str, Worker], team: ScopePath,
              team_steps: dict[ScopePath, list[StepRecord]]) -> None:
    """What the records hand a user beyond the messages: a typed worker's output as its type (it travels and is
    stored as a JSON value, as the team's own output does), and a nested team's own records."""
    for record in records:
        nested = team_steps.pop(child_path(team, record.step.id), None)
        if nested:
            record.steps = tuple(nested)
        result = record.result
        adapter = getattr(workers.get(record.step.agent), "_adapter", None)  # a typed agent's or team's
        if adapter is None or result is None or result.output is None:
            continue
        try:
            typed = adapter.validate_python(result.output)
        except ValidationError:
            continue  # kept as it came (a failed step's partial output, or a result stored by another version)
        record.result = result.model_copy(update={"output": typed})
