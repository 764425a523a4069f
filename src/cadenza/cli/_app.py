"""The ``cadenza`` commands: run, plan and validate a workflow file.

Exit codes are part of the interface: 0 the run succeeded, 1 it finished
partial or failed, 2 the input was bad (any `CadenzaError` before or during
planning), 3 cadenza itself broke, 130 the user pressed Ctrl-C. Errors print
as ``error: ...`` on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click

from .. import __version__
from .._errors import CadenzaError

if TYPE_CHECKING:
    from .._result import RunResult
    from .._workflow import Workflow
    from ._display import Display

__all__ = ("app", "main")

F = TypeVar("F", bound=Callable[..., Any])

OFFLINE_NOTICE = "no model provider configured: running offline on the simulated model"
_DEBUG = "cadenza.debug"


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta[_DEBUG] = True


def debug_option(func: F) -> F:
    """``--debug`` on the group and on each command: either place turns on tracebacks."""
    return click.option("--debug", is_flag=True, expose_value=False, callback=_set_debug,
                        help="Show tracebacks for errors.")(func)


def model_option(func: F) -> F:
    """``--model``: one model for every agent, planner and synthesiser of the workflow."""
    return click.option("--model", "-m", "model", metavar="MODEL", default=None,
                        help="Replace every model in the workflow, e.g. simulated or anthropic:claude-haiku-4-5.")(func)


class _App(click.Group):
    """A group that turns exceptions into the documented messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except CadenzaError as exc:
            _fail(ctx, f"error: {exc}", 2)
        except KeyboardInterrupt:
            click.echo("cancelled", err=True)
            raise click.exceptions.Exit(130) from None
        except Exception as exc:
            _fail(ctx, f"internal error: {type(exc).__name__}: {exc}", 3,
                  hint=None if ctx.meta.get(_DEBUG) else "run again with --debug to see the traceback")


def _fail(ctx: click.Context, message: str, code: int, *, hint: str | None = None) -> None:
    if ctx.meta.get(_DEBUG):
        traceback.print_exc(file=sys.stderr)
    click.echo(message, err=True)
    if hint:
        click.echo(hint, err=True)
    raise click.exceptions.Exit(code)


@click.group(cls=_App, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="cadenza")
@debug_option
def app() -> None:
    """Orchestrate teams of LLM agents from workflow files (offline on the simulated model by default)."""


def _load(path: str, model: str | None) -> Workflow:
    from .._workflow import load_workflow

    workflow = load_workflow(path, model=model)
    if workflow.offline:
        click.echo(OFFLINE_NOTICE, err=True)
    return workflow


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


@app.command()
@click.argument("workflow")
@click.argument("goal")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document with the result, and nothing else.")
@model_option
@debug_option
def run(workflow: str, goal: str, as_json: bool, model: str | None) -> None:
    """Run WORKFLOW (a YAML file) on GOAL and show its progress.

    Exits 0 when the run succeeded, 1 when it was partial or failed, 2 on bad input.
    """
    from .._ids import new_run_id
    from ._display import make_display

    loaded = _load(workflow, model)
    run_id = new_run_id()
    kind: Literal["live", "plain", "quiet"] = "quiet" if as_json else "live" if _stdout_is_terminal() else "plain"
    if as_json:
        click.echo(f"run {run_id}", err=True)
    display = make_display(kind, run_id, loaded.name, goal)
    try:
        result = asyncio.run(_run(loaded, goal, run_id, display))
    except KeyboardInterrupt:
        click.echo(f"cancelled: run {run_id} was stopped; running steps were cancelled", err=True)
        raise click.exceptions.Exit(130) from None
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        display.finish(result)
    raise click.exceptions.Exit(0 if result.ok else 1)


async def _run(workflow: Workflow, goal: str, run_id: str, display: Display) -> RunResult[str]:
    from .._ids import RunId

    with display:
        return await workflow.entry.run(goal, run_id=RunId(run_id), events=display.handle)


@app.command()
@click.argument("workflow")
@click.argument("goal")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON document.")
@model_option
@debug_option
def plan(workflow: str, goal: str, as_json: bool, model: str | None) -> None:
    """Show the plan WORKFLOW would run for GOAL, without running it."""
    from ._plan_view import plan_json, plan_tree

    loaded = _load(workflow, model)
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
    from .._workflow import load_workflow

    loaded = load_workflow(workflow)
    agents, teams = len(loaded.agents), len(loaded.teams)
    click.echo(f"ok: {loaded.name}: {agents} agent{'s' * (agents != 1)}, {teams} team{'s' * (teams != 1)}, "
               f"plan: {loaded.plan_source}")


def main(args: list[str] | None = None) -> None:
    """The console script: ``cadenza ...``."""
    app.main(args=args, prog_name="cadenza")
