"""Progress of a run, drawn from its events alone.

`RunView` folds the event stream into per-team, per-step state. Three displays
read it: a rich live tree for terminals, one plain line per step event when
stdout is a pipe or file (logs stay greppable), and a quiet one for ``--json``.
Events arrive on the event loop's thread while rich refreshes from its own, so
the view is guarded by a lock and every frame is built from fresh objects.
A workflow with peer groups shows their conversations too: the display then asks
the run for what happens inside its steps (``wants_reports``), which it otherwise
does not, since a report per model call would cost every step of a fan-out.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import click

from .._events import (
    AgentSpawned,
    Detail,
    Event,
    PeerMessageHandled,
    PeerMessageSent,
    PlanReady,
    RunFinished,
    RunStarted,
    StepCancelled,
    StepFailed,
    StepFinished,
    StepRestored,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepWaiting,
    UsageRecorded,
)
from .._ids import ScopePath, child_path
from .._plan import Plan
from .._status import FINISHED_STEP
from ..recorded import as_text, shorten

if TYPE_CHECKING:
    from types import TracebackType

    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.tree import Tree

    from .._result import RunResult

__all__ = ("Display", "LiveDisplay", "PlainDisplay", "QuietDisplay", "RunView", "make_display", "summary_line")

_MAX_STEPS_SHOWN = 40
_MESSAGES_SHOWN = 6

StepEvent = (StepStarted | StepRetrying | StepFinished | StepFailed | StepSkipped | StepCancelled
             | StepRestored | StepWaiting)
Shown = RunStarted | PlanReady | AgentSpawned | UsageRecorded | RunFinished | StepEvent
SpendingEvent = StepRetrying | StepFinished | StepFailed | StepRestored | StepWaiting
PeerEvent = PeerMessageSent | PeerMessageHandled
PeersShown = Literal["none", "steps", "run"]
"""Where a workflow has peer groups: none, as steps of its teams, or one as the whole run."""


@dataclass
class StepView:
    """One step as the display knows it."""

    id: str
    agent: str
    status: str = "pending"
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    tokens: int = 0
    note: str = ""

    def elapsed(self, now: float) -> float | None:
        """Seconds since the step first started, up to when it finished."""
        return None if self.started is None else (self.finished or now) - self.started


@dataclass
class TeamView:
    """One team (the top one, or a nested one by its path: ``lead/s2`` for the team that runs step ``s2``)."""

    path: ScopePath
    status: str = "planning"
    plan: Plan | None = None
    source: str = ""
    steps: dict[str, StepView] = field(default_factory=dict)

    def shown_status(self) -> str:
        """``synthesising`` once every step has ended and the team has not (its lead writes the answer), else its
        status."""
        if self.status == "running" and self.steps and all(s.status in _ENDED for s in self.steps.values()):
            return "synthesising"
        return self.status


_ENDED = FINISHED_STEP | {"skipped", "cancelled"}
"""A step that will not run again in this run's process: finished, or never to start (or stopped) in it."""


@dataclass
class ConversationView:
    """One peer group's conversation as the display knows it: how far it went and its latest messages."""

    messages: int = 0
    rounds: int = 0
    latest: deque[str] = field(default_factory=lambda: deque(maxlen=_MESSAGES_SHOWN))
    """``sender → recipient: content`` of the last few messages, and the final answers given, oldest first."""


class RunView:
    """The state of a run folded from its events; knows nothing of how it is shown."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.finished: float | None = None
        self.teams: dict[str, TeamView] = {}
        self.conversations: dict[str, ConversationView] = {}
        self.top: str | None = None
        self.tokens = 0
        self.cost = 0.0
        self.calls = 0

    def apply(self, event: Event) -> None:
        """Fold one event into the state."""
        now = time.monotonic()
        if isinstance(event, (PeerMessageSent, PeerMessageHandled)):
            self._apply_peer(event)
            return
        if isinstance(event, Detail):  # what happens inside a step is for the audit log, `trace` and metrics
            return
        if isinstance(event, RunStarted):
            self.teams[event.team] = TeamView(event.team)
            self.top = self.top or event.team
            return
        team = self.teams.setdefault(event.team, TeamView(event.team))
        if isinstance(event, PlanReady):
            team.plan, team.source, team.status = event.plan, event.source, "running"
            team.steps = {s.id: StepView(s.id, s.agent) for s in event.plan.steps}
        elif isinstance(event, AgentSpawned):
            return
        elif isinstance(event, UsageRecorded):
            self._add_usage(event.usage.total_tokens, event.usage.cost_usd, event.usage.model_calls)
        elif isinstance(event, RunFinished):
            team.status = event.status
            if event.team == self.top:
                self.finished = now
                if team.plan is None:  # no steps told its usage: a peer group alone, or a run that failed to plan
                    usage = event.usage
                    self.tokens, self.cost, self.calls = usage.total_tokens, usage.cost_usd, usage.model_calls
        else:
            self._apply_step(team, event, now)

    def _apply_peer(self, event: PeerEvent) -> None:
        talk = self.conversations.setdefault(event.group, ConversationView())
        whole = self.teams.get(event.group)  # a peer group that is the whole run has the run's RunStarted
        if whole is not None and whole.status == "planning":
            whole.status = "talking"
        if isinstance(event, PeerMessageSent):
            said = event.message
            talk.messages += 1
            talk.rounds = max(talk.rounds, said.round)
            talk.latest.append(f"{said.sender} → {said.recipient}: {said.content}")
        elif event.answer is not None:
            talk.latest.append(f"{event.agent} answered: {event.answer}")

    def _apply_step(self, team: TeamView, event: StepEvent, now: float) -> None:
        step = team.steps.setdefault(event.step_id, StepView(event.step_id, event.agent))
        if isinstance(event, StepStarted):
            step.status, step.attempts, step.note = "running", event.attempt, ""
            step.started = step.started or now
        elif isinstance(event, StepRetrying):
            step.status, step.note = "retrying", f"{event.error.type}: {event.error.message}"
            step.tokens += event.usage.total_tokens
            self._add_step_usage(event)
        elif isinstance(event, (StepFinished, StepFailed)):
            step.status = event.status if isinstance(event, StepFinished) else "failed"
            step.finished = now
            step.tokens += event.usage.total_tokens
            step.note = event.error.message if isinstance(event, StepFailed) else event.result.stop_reason or ""
            self._add_step_usage(event)
        elif isinstance(event, StepSkipped):
            step.status, step.note = "skipped", event.reason
        elif isinstance(event, (StepRestored, StepWaiting)):
            self._apply_paused(step, event, now)
        else:
            step.status, step.finished = "cancelled", now

    def _apply_paused(self, step: StepView, event: StepRestored | StepWaiting, now: float) -> None:
        """A step restored from the store on resume, or waiting for a human: neither is running now."""
        step.attempts, step.tokens = event.attempt, step.tokens + event.usage.total_tokens
        step.finished = now if step.started is not None else None
        if isinstance(event, StepRestored):
            step.status, step.note = "failed" if event.status == "failure" else event.status, "restored"
        else:
            step.status, step.note = "waiting", event.reason.message
        self._add_step_usage(event)

    def _add_step_usage(self, event: SpendingEvent) -> None:
        if child_path(event.team, event.step_id) not in self.teams:  # a nested team's usage came in its own events
            self._add_usage(event.usage.total_tokens, event.usage.cost_usd, event.usage.model_calls)

    def _add_usage(self, tokens: int, cost: float, calls: int) -> None:
        self.tokens += tokens
        self.cost += cost
        self.calls += calls

    def elapsed(self) -> float:
        """Seconds since the display started, until the top team finished."""
        return (self.finished or time.monotonic()) - self.started


def summary_line(result: RunResult[Any]) -> str:
    """``success in 1.27s · 972 tokens · $0.0000 · 8 model calls``."""
    usage = result.usage
    calls = f"{usage.model_calls} model call{'' if usage.model_calls == 1 else 's'}"
    return (f"{result.status} in {result.duration:.2f}s · {usage.total_tokens} tokens "
            f"({usage.input_tokens} in, {usage.output_tokens} out) · ${usage.cost_usd:.4f} · {calls}")


class Display:
    """Receives a run's events (``handle``) and shows its progress and outcome; a context manager."""

    def __init__(self, run_id: str, workflow: str, goal: str, *, peers: PeersShown = "none") -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.goal = goal
        self.peers = peers
        self.wants_reports = peers != "none"
        """Whether the run should hand this display what happens inside steps: only to show peer messages."""
        self.view = RunView()
        self._lock = threading.Lock()

    def __enter__(self) -> Display:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Show that the run began (its id first, so it can be found later)."""

    def stop(self) -> None:
        """Stop any live drawing; called even when the run raised or was cancelled."""

    def handle(self, event: Event) -> None:
        """The run's event sink: quick, never raises."""
        with self._lock:
            self.view.apply(event)
        self.on_event(event)

    def on_event(self, event: Event) -> None:
        """Hook for displays that react to each event."""

    def finish(self, result: RunResult[Any]) -> None:
        """Show the final output and the summary."""


class QuietDisplay(Display):
    """Shows nothing: ``--json`` keeps stdout for the one JSON document."""


class PlainDisplay(Display):
    """One plain line per step event, for pipes, files and CI logs."""

    def start(self) -> None:
        click.echo(f"run {self.run_id}  {self.workflow}  {self.goal!r}")

    def on_event(self, event: Event) -> None:
        if isinstance(event, (PeerMessageSent, PeerMessageHandled)):
            line, where = self._peer_line(event), event.group
        elif isinstance(event, Detail):
            return
        else:
            line, where = self._line(event), event.team
        if line is not None:
            click.echo(f"{self.view.elapsed():7.2f}s  {where}: {line}")

    @staticmethod
    def _peer_line(event: PeerEvent) -> str | None:
        if isinstance(event, PeerMessageSent):
            said = event.message
            return f"{said.sender} → {said.recipient} (round {said.round}): {shorten(said.content, 120)}"
        return None if event.answer is None else f"{event.agent} answered: {shorten(event.answer, 120)}"

    def _line(self, event: Shown) -> str | None:
        if isinstance(event, RunStarted):
            return "conversation" if self.peers == "run" and event.team == self.view.top else "planning"
        if isinstance(event, PlanReady):
            path, _ = event.plan.critical_path()
            repairs = f", after {event.repairs} repair(s)" if event.repairs else ""
            return (f"plan ready ({event.source}{repairs}): {len(event.plan.steps)} steps, "
                    f"critical path {len(path)} step{'' if len(path) == 1 else 's'}")
        if isinstance(event, AgentSpawned):
            return f"spawned agent {event.proposal.name} ({event.proposal.role or 'no role given'})"
        if isinstance(event, RunFinished):
            return f"finished: {event.status}" if event.team != self.view.top else None
        if isinstance(event, UsageRecorded):
            return None
        return self._step_line(event)

    def _step_line(self, event: StepEvent) -> str:
        head = f"{event.step_id} ({event.agent})"
        if isinstance(event, StepStarted):
            return f"{head} running" + (f" (attempt {event.attempt})" if event.attempt > 1 else "")
        if isinstance(event, StepRetrying):
            return f"{head} retrying in {event.delay:.2f}s: {event.error.type}: {shorten(event.error.message, 120)}"
        if isinstance(event, StepFinished):
            step = self.view.teams[event.team].steps[event.step_id]
            took = step.elapsed(time.monotonic()) or 0.0
            said = f"{head} {'done' if event.status == 'success' else event.status} in {took:.2f}s, {step.tokens} tokens"
            return said if event.result.stop_reason is None else f"{said}; stopped on {event.result.stop_reason}"
        if isinstance(event, StepFailed):
            return f"{head} failed after {event.attempt} attempt(s): {event.error.type}: {shorten(event.error.message, 120)}"
        if isinstance(event, StepSkipped):
            return f"{head} skipped: {event.reason}"
        if isinstance(event, StepRestored):
            return f"{head} {'done' if event.status == 'success' else event.status} (restored from the store)"
        if isinstance(event, StepWaiting):
            return f"{head} waiting: {shorten(event.reason.message, 120)}"
        return f"{head} cancelled"

    def finish(self, result: RunResult[Any]) -> None:
        if result.output is not None:
            click.echo("--- output ---")
            click.echo(as_text(result.output))
            click.echo("---")
        if result.error is not None:
            click.echo(f"{result.error.type}: {result.error.message}")
        elif result.stop_reason is not None:
            click.echo(f"stopped on {result.stop_reason}")
        click.echo(f"{summary_line(result)} · run {self.run_id}")


_STYLES: dict[str, tuple[str, str]] = {
    "pending": ("·", "dim"),
    "running": ("▶", "yellow"),
    "retrying": ("↻", "yellow"),
    "success": ("✓", "green"),
    "partial": ("◐", "yellow"),
    "failed": ("✗", "red"),
    "failure": ("✗", "red"),
    "skipped": ("↷", "dim"),
    "cancelled": ("⊘", "red"),
    "planning": ("…", "yellow"),
    "waiting": ("⏸", "magenta"),
    "talking": ("⇄", "yellow"),
    "synthesising": ("✎", "yellow"),
}


class LiveDisplay(Display):
    """A live tree of teams and steps with elapsed time, tokens and cost, for terminals."""

    def __init__(self, run_id: str, workflow: str, goal: str, *, peers: PeersShown = "none",
                 console: Console | None = None) -> None:
        super().__init__(run_id, workflow, goal, peers=peers)
        from rich.console import Console

        self.console = console or Console()
        self._live: Live | None = None

    def start(self) -> None:
        from rich.live import Live

        self.console.print(f"[dim]run[/] [bold]{self.run_id}[/]  {self.workflow}  [italic]{self.goal}[/]")
        self._live = Live(get_renderable=self._frame, console=self.console, refresh_per_second=8, transient=False)
        self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _frame(self) -> RenderableType:
        from rich.console import Group
        from rich.text import Text

        with self._lock:
            view = self.view
            header = Text.assemble(
                (f"{view.elapsed():.1f}s", "bold"), "  ", (f"{view.tokens} tokens", "cyan"), "  ",
                (f"${view.cost:.4f}", "green"), "  ", (f"{view.calls} model call{'s' * (view.calls != 1)}", "dim"))
            if view.top is None:
                return Group(header, Text("starting…", style="yellow"))
            return Group(header, self._team_tree(view.teams[view.top], view.top, time.monotonic()))

    def _team_tree(self, team: TeamView, name: str, now: float) -> Tree:
        """``team``'s steps under a line naming it: the top team by its name, a nested one by the step's agent."""
        from rich.markup import escape
        from rich.tree import Tree

        status = team.shown_status()
        glyph, style = _STYLES.get(status, ("•", ""))
        label = f"[{style}]{glyph}[/] [bold]{escape(name)}[/] [dim]{status}[/]"
        if team.plan is not None:
            label += f" [dim]· {team.source} plan, {len(team.plan.steps)} steps[/]"
        tree = Tree(label)
        talk = self.view.conversations.get(team.path)
        if talk is not None:
            self._add_conversation(tree, talk)
        steps = list(team.steps.values())
        for step in steps[:_MAX_STEPS_SHOWN]:
            node = tree.add(self._step_label(step, now))
            nested = self.view.teams.get(child_path(team.path, step.id))
            if nested is not None:
                node.add(self._team_tree(nested, step.agent, now))
            talk = self.view.conversations.get(child_path(team.path, step.id))
            if talk is not None:
                self._add_conversation(node, talk)
        if len(steps) > _MAX_STEPS_SHOWN:
            rest = steps[_MAX_STEPS_SHOWN:]
            done = sum(s.status in ("success", "partial") for s in rest)
            tree.add(f"[dim]… {len(rest)} more steps ({done} done)[/]")
        return tree

    @staticmethod
    def _add_conversation(node: Tree, talk: ConversationView) -> None:
        """A peer group's count of messages and its latest ones, under the node of its step or run."""
        from rich.markup import escape

        shown = len(talk.latest)
        more = f", the last {shown}" if talk.messages > shown else ""
        said = node.add(f"[dim]{talk.messages} message{'s' * (talk.messages != 1)} in {talk.rounds + 1} "
                        f"round{'s' * (talk.rounds != 0)}{more}[/]")
        for line in talk.latest:
            said.add(f"[dim]{escape(shorten(line, 100))}[/]")

    @staticmethod
    def _step_label(step: StepView, now: float) -> str:
        from rich.markup import escape

        glyph, style = _STYLES.get(step.status, ("•", ""))
        label = f"[{style}]{glyph}[/] [cyan]{escape(step.id)}[/] {escape(step.agent)} [{style}]{step.status}[/]"
        took = step.elapsed(now)
        if took is not None:
            label += f" [dim]{took:.1f}s[/]"
        if step.attempts > 1:
            label += f" [dim]attempt {step.attempts}[/]"
        if step.tokens:
            label += f" [dim]{step.tokens} tokens[/]"
        if step.note:
            label += f" [{style}]{escape(shorten(step.note, 80))}[/]"
        return label

    def finish(self, result: RunResult[Any]) -> None:
        from rich.markdown import Markdown
        from rich.panel import Panel
        from rich.text import Text

        if result.output is not None:
            body = Markdown(result.output) if isinstance(result.output, str) else Text(as_text(result.output))
            self.console.print(Panel(body, title="output", title_align="left", border_style="green"))
        if result.error is not None:
            self.console.print(Text(f"{result.error.type}: {result.error.message}", style="red"))
        elif result.stop_reason is not None:
            self.console.print(Text(f"stopped on {result.stop_reason}", style="green"))
        style = {"success": "green", "partial": "yellow", "waiting": "magenta"}.get(result.status, "red")
        self.console.print(Text(summary_line(result), style=style), Text(f"· run {self.run_id}", style="dim"))


def make_display(kind: Literal["live", "plain", "quiet"], run_id: str, workflow: str, goal: str, *,
                 peers: PeersShown = "none") -> Display:
    """The display for this output: live on a terminal, plain lines otherwise, quiet for ``--json``."""
    if kind == "live":
        return LiveDisplay(run_id, workflow, goal, peers=peers)
    if kind == "plain":
        return PlainDisplay(run_id, workflow, goal, peers=peers)
    return QuietDisplay(run_id, workflow, goal)
