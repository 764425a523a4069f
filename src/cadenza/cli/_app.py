"""The ``cadenza`` commands: run, plan and validate a workflow file; list, show, export,
resume, decide on and audit the runs recorded in the store.

Exit codes are part of the interface: 0 the run succeeded, 1 it finished
partial or failed (for ``audit verify``: the audit log is not as the run wrote it),
2 the input was bad (any `CadenzaError` before or during planning, or from the
store: an unknown run id, a run that cannot be resumed),
3 cadenza itself broke, 4 the run waits for a human decision (``cadenza approve``
or ``reject``), 130 the user pressed Ctrl-C. Errors print as ``error: ...`` on
stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from .._errors import CadenzaError, ConfigError
from .._version import __version__
from ._notices import LOGGING, json_logs, notice

if TYPE_CHECKING:
    from ..patterns._workflow import Workflow
    from ._placement import Placement

__all__ = ("app", "main")

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_STORE = ".cadenza/runs.db"
_DEBUG = "cadenza.debug"
_STORE = "cadenza.store"


def _set_logging(ctx: click.Context, key: str, value: str) -> None:
    ctx.find_root().meta.setdefault(LOGGING, {})[key] = value


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta[_DEBUG] = True


def debug_option(func: F) -> F:
    """``--debug`` on the group and on each command: either place turns on tracebacks."""
    return click.option("--debug", is_flag=True, expose_value=False, callback=_set_debug,
                        help="Show tracebacks for errors.")(func)


def _set_store(ctx: click.Context, _param: click.Parameter, value: str) -> None:
    ctx.find_root().meta[_STORE] = value


def _store_url() -> str:
    return str(click.get_current_context().find_root().meta.get(_STORE, DEFAULT_STORE))


def model_option(func: F) -> F:
    """``--model``: one model for every agent, planner and synthesiser of the workflow."""
    return click.option("--model", "-m", "model", metavar="MODEL", default=None,
                        help="Replace every model in the workflow, e.g. simulated or anthropic:claude-haiku-4-5.")(func)


def backend_options(func: F) -> F:
    """``--backend``, ``--workers`` and ``--ray-address``: where the run's agent steps execute; ``--bus``: where its
    peer groups talk."""
    func = click.option("--bus", default=None, metavar="URL", envvar="CADENZA_BUS",
                        help="Where peer groups' messages travel: memory:// or redis://host:port/db (overrides the "
                             "file's bus:; env CADENZA_BUS). Default: a new in-process bus for each run.")(func)
    func = click.option("--ray-address", default=None, metavar="ADDRESS", envvar="RAY_ADDRESS",
                        help="The Ray cluster of --backend ray: host:port, ray://host:port or auto (env RAY_ADDRESS). "
                             "Default: a local Ray instance started for the run.")(func)
    func = click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
                        help="Worker processes of the process backend, or actors of the Ray backend (default: one "
                             "per CPU, of this machine or of the Ray cluster).")(func)
    return click.option("--backend", type=click.Choice(["local", "process", "ray"]), default="local",
                        show_default=True,
                        help="local: every step in this process; process: each agent step in a pool of worker "
                             "processes (a tool that crashes or holds the GIL cannot stop the run); ray: each agent "
                             "step on a Ray actor (pip install 'cadenza[ray]').")(func)


_GLOBAL_OPTIONS = frozenset({"--store", "--log-format", "--log-level", "--otlp"})
"""The group's options that take a value and may also be written after the subcommand (``--debug`` is on each)."""


def hoisted(args: list[str]) -> list[str]:
    """``args`` with every global option (and its value) moved before the subcommand, where the group reads it:
    ``cadenza runs --store x.db`` is ``cadenza --store x.db runs``. Nothing after ``--`` moves; given twice, the
    later one wins, as click takes the last."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name, equals, _ = arg.partition("=")
        if name in _GLOBAL_OPTIONS:
            if not equals and i + 1 == len(args):
                raise click.BadOptionUsage(name, f"Option '{name}' requires an argument.")
            taken = 1 if equals else 2
            front.extend(args[i:i + taken])
            i += taken
            continue
        rest.append(arg)
        i += 1
    return front + rest


class _App(click.Group):
    """A group that turns exceptions into the documented messages and exit codes, and reads its options after the
    subcommand too."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoisted(args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except CadenzaError as exc:
            _fail(ctx, f"error: {exc}", 2)
        except KeyboardInterrupt:
            notice("cancelled", level=logging.WARNING)
            raise click.exceptions.Exit(130) from None
        except BrokenPipeError:  # stdout was closed by its reader (| head): stop quietly
            from ._resume import closed_stdout

            raise click.exceptions.Exit(closed_stdout()) from None
        except Exception as exc:
            _fail(ctx, f"internal error: {type(exc).__name__}: {exc}", 3,
                  hint=None if ctx.meta.get(_DEBUG) else "run again with --debug to see the traceback")


def _fail(ctx: click.Context, message: str, code: int, *, hint: str | None = None) -> None:
    if ctx.meta.get(_DEBUG):
        if json_logs():
            notice(message, level=logging.ERROR, exception=traceback.format_exc())
            raise click.exceptions.Exit(code)
        traceback.print_exc(file=sys.stderr)
    notice(message, level=logging.ERROR)
    if hint:
        notice(hint)
    raise click.exceptions.Exit(code)


@click.group(cls=_App, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="cadenza")
@click.option("--store", metavar="URL", envvar="CADENZA_STORE", show_envvar=True, default=DEFAULT_STORE,
              show_default=True, expose_value=False, callback=_set_store,
              help="Where runs are recorded: a SQLite file (path or sqlite:PATH) or a postgresql://... URL.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              expose_value=False, callback=lambda ctx, _p, v: _set_logging(ctx, "format", v),
              help="Logs on stderr, each line with its run, step, agent and trace ids: readable text or JSON lines.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning",
              show_default=True, expose_value=False, callback=lambda ctx, _p, v: _set_logging(ctx, "level", v),
              help="The least severe log lines shown (retries, denials and failed steps are warnings).")
@click.option("--otlp", metavar="ENDPOINT", default=None, expose_value=False,
              callback=lambda ctx, _p, v: _set_logging(ctx, "otlp", v),
              help="Export traces over OTLP/HTTP, e.g. http://localhost:4318 (Jaeger, Phoenix, Langfuse, Tempo); "
                   "OTEL_EXPORTER_OTLP_ENDPOINT works too. Needs pip install 'cadenza[otel]'.")
@debug_option
def app() -> None:
    """Orchestrate teams of LLM agents from workflow files (offline on the simulated model by default)."""
    import atexit
    import os

    from ..observability._logging import configure

    ctx = click.get_current_context()
    settings = ctx.meta.get(LOGGING, {})
    configure(settings.get("format", "text"), level=settings.get("level", "warning").upper())
    endpoint = settings.get("otlp")
    if endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from ..observability._tracing import export_to

        try:
            atexit.register(export_to(endpoint))
        except CadenzaError as exc:
            _fail(ctx, f"error: {exc}", 2)


def _load(path: str, model: str | None) -> Workflow:
    from ..patterns._workflow import load_workflow
    from ._resume import OFFLINE_NOTICE

    workflow = load_workflow(path, model=model)
    if workflow.offline:
        notice(OFFLINE_NOTICE)
    return workflow


@app.command()
@click.argument("workflow")
@click.argument("goal")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document with the result, and nothing else.")
@click.option("--no-store", is_flag=True, help="Do not record the run (it cannot be shown or resumed later).")
@click.option("--budget-usd", type=click.FloatRange(min=0, min_open=True), default=None, metavar="USD",
              help="The most the run may spend, in US dollars (overrides the file's budget.usd).")
@click.option("--budget-tokens", type=click.IntRange(min=1), default=None, metavar="N",
              help="The most tokens the run may use (overrides the file's budget.tokens).")
@model_option
@backend_options
@debug_option
def run(workflow: str, goal: str, as_json: bool, no_store: bool, budget_usd: float | None,
        budget_tokens: int | None, model: str | None, backend: str, workers: int | None, ray_address: str | None,
        bus: str | None) -> None:
    """Run WORKFLOW (a YAML file) on GOAL and show its progress.

    The run is recorded in the store as it happens: cadenza show, export and resume
    find it by the id printed first.

    With a budget, no model call starts once the budget could not pay for its worst case;
    calls in flight finish and the run ends partial, saying which budget was spent.

    Exits 0 when the run succeeded, 1 when it was partial or failed, 2 on bad input,
    4 when it waits for a human decision (cadenza approve / reject).
    """
    from .._budget import Budget
    from ._resume import run_workflow, with_bus

    loaded = with_bus(_load(workflow, model), bus)
    budget = loaded.budget
    if budget_usd is not None or budget_tokens is not None:
        base = budget or Budget()
        budget = Budget(tokens=budget_tokens if budget_tokens is not None else base.tokens,
                        usd=budget_usd if budget_usd is not None else base.usd)
    raise click.exceptions.Exit(run_workflow(loaded, path=workflow, goal=goal, as_json=as_json, model=model,
                                             store_url=None if no_store else _store_url(), budget=budget,
                                             placement=_placement(backend, workers, ray_address)))


def _placement(backend: str, workers: int | None, ray_address: str | None) -> Placement | None:
    """Where agent steps run, as the options say; None for the local backend.

    Raises:
        click.UsageError: an option that the chosen backend does not take.
    """
    from ._placement import Placement

    given = click.get_current_context().get_parameter_source("ray_address") == ParameterSource.COMMANDLINE
    if given and backend != "ray":
        raise click.UsageError("--ray-address applies to --backend ray")
    if backend == "local":
        if workers is not None:
            raise click.UsageError("--workers applies to --backend process or ray")
        return None
    if backend == "ray":
        return Placement("ray", workers, ray_address)
    return Placement("process", workers)


@app.command()
@click.argument("workflow")
@click.argument("goal")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON document.")
@model_option
@debug_option
def plan(workflow: str, goal: str, as_json: bool, model: str | None) -> None:
    """Show the plan WORKFLOW would run for GOAL, without running it."""
    from ..patterns._peers import PeerGroup
    from ._plan_view import plan_json, plan_tree

    loaded = _load(workflow, model)
    if isinstance(loaded.entry, PeerGroup):
        raise ConfigError(f"{workflow} runs the peer group {loaded.entry.name!r}, which has no plan: its members "
                          f"message each other from {loaded.entry.entry!r} on until it stops")
    the_plan = asyncio.run(loaded.entry.plan(goal))
    if as_json:
        click.echo(json.dumps(plan_json(the_plan, loaded.entry), indent=2, ensure_ascii=False))
        return
    from rich.console import Console

    Console().print(plan_tree(the_plan, loaded.entry))


@app.command()
@click.argument("workflow")
@debug_option
def validate(workflow: str) -> None:
    """Check WORKFLOW and report every problem in it (exit 0 if valid, 2 if not)."""
    from ..patterns._workflow import load_workflow

    loaded = load_workflow(workflow)
    agents, teams = len(loaded.agents), len(loaded.teams)
    runs = f"plan: {loaded.plan_source}" if loaded.plan_source is not None else f"peer group: {loaded.entry.name}"
    click.echo(f"ok: {loaded.name}: {agents} agent{'s' * (agents != 1)}, {teams} team{'s' * (teams != 1)}, {runs}")


@app.command()
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1), help="Show at most N runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as one JSON list.")
@debug_option
def runs(limit: int, as_json: bool) -> None:
    """List the runs recorded in the store, newest first."""
    from ._records import runs_command

    runs_command(_store_url(), limit=limit, as_json=as_json)


@app.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to serve on; beyond this machine it needs --token.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="The port to serve on.")
@click.option("--token", envvar="CADENZA_UI_TOKEN", show_envvar=True, default=None,
              help="A secret every request must carry (required with a --host beyond this machine).")
@debug_option
def ui(host: str, port: int, token: str | None) -> None:
    """Serve the web run viewer: every run of the store, live (pip install 'cadenza[ui]')."""
    from ._ui import ui_command

    ui_command(_store_url(), host=host, port=port, token=token)


@app.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run as one JSON document.")
@debug_option
def show(run_id: str, as_json: bool) -> None:
    """Show RUN_ID: totals, each team's plan and step outcomes.

    Also the goal, the output, and any approvals the run waits for.
    """
    from ._records import show_command

    show_command(_store_url(), run_id, as_json=as_json)


@app.command()
@click.argument("run_id")
@click.option("--output", "-o", metavar="FILE", default=None,
              type=click.Path(dir_okay=False, writable=True, allow_dash=True), help="Write to FILE, not stdout.")
@debug_option
def export(run_id: str, output: str | None) -> None:
    """Write RUN_ID as one JSON document.

    Everything recorded: the run, plans, steps with results, every message in order,
    spawned agents, usage, tool calls, approvals, the workspace with its history.
    """
    from ._records import export_command

    export_command(_store_url(), run_id, output=output)


@app.command()
@click.argument("run_id")
@click.option("--force", is_flag=True, help="Resume even though the workflow changed since the run started.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document with the result, and nothing else.")
@click.option("--model", "-m", "model", metavar="MODEL", default=None,
              help="Replace every model in the workflow (default: the --model the run was started with).")
@backend_options
@debug_option
def resume(run_id: str, force: bool, as_json: bool, model: str | None, backend: str, workers: int | None,
           ray_address: str | None, bus: str | None) -> None:
    """Continue RUN_ID where it stopped.

    Finished steps are read back from the store, the rest run. The team is rebuilt from
    the workflow file the run was started from; exit codes as for run.
    """
    from ._resume import resume_run

    raise click.exceptions.Exit(resume_run(_store_url(), run_id, force=force, as_json=as_json, model=model,
                                           placement=_placement(backend, workers, ray_address), bus=bus))


@app.command()
@click.argument("run_id")
@click.option("--width", default=40, show_default=True, type=click.IntRange(min=10, max=400),
              help="Characters of the timeline bars.")
@debug_option
def trace(run_id: str, width: int) -> None:
    """The tree of RUN_ID with a timeline: teams, steps, tool calls, status, duration, tokens and cost.

    Bars show what ran in parallel; * marks each team's critical path. Built from what the run
    recorded, so it works for finished, failed, waiting and resumed runs.
    """
    from ._trace import trace_command

    trace_command(_store_url(), run_id, width=width)


@app.group()
@debug_option
def audit() -> None:
    """Show or verify the audit log of a run.

    Every message between agents, tool call, approval and spawned agent, chained by hashes.
    """


@audit.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print every field of every record as one JSON document.")
@debug_option
def audit_show(run_id: str, as_json: bool) -> None:
    """List the audit records of RUN_ID, oldest first (--json: every field)."""
    from ._audit import audit_show_command

    audit_show_command(_store_url(), run_id, as_json=as_json)


@audit.command("verify")
@click.argument("run_id")
@debug_option
def audit_verify(run_id: str) -> None:
    """Check that the audit log of RUN_ID is as the run wrote it.

    Exits 0 when the hash chain is intact, 1 naming the first record that was altered, removed,
    inserted or reordered, 2 for an unknown run.
    """
    from ._audit import audit_verify_command

    raise click.exceptions.Exit(audit_verify_command(_store_url(), run_id))


@app.group()
@debug_option
def mcp() -> None:
    """Review and approve the tools of a workflow's MCP servers.

    A tool is usable only once approved: its description and schema are pinned (by hash, in the
    pin file); a server that changes them later has that tool disabled until approved again.
    """


@mcp.command("tools")
@click.argument("workflow")
@click.argument("servers", nargs=-1)
@debug_option
def mcp_tools(workflow: str, servers: tuple[str, ...]) -> None:
    """Start each MCP server of WORKFLOW (or only SERVERS) and list its tools: approved, unapproved or changed."""
    from ._mcp import tools_command

    tools_command(_load(workflow, None), servers)


@mcp.command("approve")
@click.argument("workflow")
@click.argument("server")
@click.option("--tool", "tools", multiple=True, metavar="NAME", help="Approve only this tool (repeatable).")
@debug_option
def mcp_approve(workflow: str, server: str, tools: tuple[str, ...]) -> None:
    """Pin the tools of SERVER in WORKFLOW as it offers them now (all of them unless --tool names some)."""
    from ._mcp import approve_command

    approve_command(_load(workflow, None), server, tools)


@app.group()
@debug_option
def peer() -> None:
    """Run members of a workflow's peer groups in processes of their own."""


@peer.command("serve")
@click.argument("workflow")
@click.option("--agent", "agents", multiple=True, required=True, metavar="NAME",
              help="A member to serve (repeatable): its turns are taken in this process.")
@click.option("--group", "group", default=None, metavar="NAME",
              help="The peer group, when the agents belong to several.")
@click.option("--bus", default=None, metavar="URL", envvar="CADENZA_BUS",
              help="The bus the runs use: redis://host:port/db (overrides the file's bus:; env CADENZA_BUS).")
@model_option
@debug_option
def peer_serve(workflow: str, agents: tuple[str, ...], group: str | None, bus: str | None, model: str | None) -> None:
    """Serve the turns of AGENTS of a peer group of WORKFLOW until Ctrl-C or SIGTERM.

    Runs of the workflow started on the same bus (cadenza run WORKFLOW GOAL --bus URL) send
    these members' turns here while they run the conversation; start one worker per member,
    or several (a member whose worker dies is taken on by another, or by the run).
    Start it with the same workflow file and --model as the runs: a worker of a different
    group is never sent a turn.
    """
    from ._resume import with_bus
    from ._serve import serve_command

    serve_command(with_bus(_load(workflow, model), bus), agents, group)


def decision_options(func: F) -> F:
    """The arguments and options ``approve`` and ``reject`` share."""
    for option in reversed((
        click.argument("run_id"),
        click.argument("step"),
        click.option("--note", metavar="TEXT", default=None, help="Why: recorded with the decision."),
        click.option("--no-resume", is_flag=True, help="Only record the decision; resume the run later."),
        debug_option,
    )):
        func = option(func)
    return backend_options(func)  # where the resume runs, as for resume


@app.command()
@decision_options
def approve(run_id: str, step: str, note: str | None, no_resume: bool, backend: str, workers: int | None,
            ray_address: str | None, bus: str | None) -> None:
    """Approve what STEP of RUN_ID waits for, then resume the run.

    STEP is a step id, a step path (lead/publish) or, when one step waits on several
    calls, an approval id (cadenza show lists them).
    """
    _decide(run_id, step, approved=True, note=note, no_resume=no_resume,
            placement=_placement(backend, workers, ray_address), bus=bus)


@app.command()
@decision_options
def reject(run_id: str, step: str, note: str | None, no_resume: bool, backend: str, workers: int | None,
           ray_address: str | None, bus: str | None) -> None:
    """Reject what STEP of RUN_ID waits for, then resume the run.

    The step fails with the refusal. STEP is a step id, a step path (lead/publish) or,
    when one step waits on several calls, an approval id (cadenza show lists them).
    """
    _decide(run_id, step, approved=False, note=note, no_resume=no_resume,
            placement=_placement(backend, workers, ray_address), bus=bus)


def _decide(run_id: str, step: str, *, approved: bool, note: str | None, no_resume: bool,
            placement: Placement | None, bus: str | None) -> None:
    """``approve`` and ``reject``: the decision, then the resume on the backend the options name."""
    from ._resume import decide

    if no_resume and placement is not None:
        raise click.UsageError(f"--backend {placement.backend} applies to the resume, and --no-resume does not resume")
    raise click.exceptions.Exit(decide(_store_url(), run_id, step, approved=approved, note=note,
                                       resume=not no_resume, placement=placement, bus=bus))


def main(args: list[str] | None = None) -> None:
    """The console script: ``cadenza ...``."""
    app.main(args=args, prog_name="cadenza")
