"""A plan as a tree, for ``cadenza plan``: what would run, in which order, on whom.

Steps are grouped by `Plan.layers` only for reading; the executor never waits
for a layer. A worker that is itself a team says so, and shows its own plan when
it has a static one (a planner team decides its steps at run time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._plan import Plan, Step
from .._worker_spec import PeersSpec, TeamSpec
from ..recorded import shorten

if TYPE_CHECKING:
    from rich.tree import Tree

    from .._worker import Worker

__all__ = ("plan_json", "plan_tree")


def plan_tree(plan: Plan, team: Worker, *, source: str | None = None) -> Tree:
    """The plan of ``team`` as a rich Tree: one branch per layer, one leaf per step."""
    from rich.tree import Tree

    spec = _team_spec(team)
    tree = Tree(_title(plan, spec, source or _source(spec)))
    _add_layers(tree, plan, spec)
    return tree


def _peers_line(group: PeersSpec) -> str:
    """``peer group of author, style, facts: author gets the step; answered by style and facts (quorum 2)``."""
    members = ", ".join(m.name for m in group.members)
    answers = " and ".join(group.answer_by)
    quorum = f" (quorum {group.quorum})" if len(group.answer_by) > 1 else ""
    return f"peer group of {members}: {group.entry} gets the step; answered by {answers}{quorum}"


def _team_spec(team: Worker) -> TeamSpec:
    spec = team.describe()
    if not isinstance(spec, TeamSpec):
        raise TypeError(f"{team.name!r} is not a team: it has no plan")
    return spec


def _source(team: TeamSpec) -> str:
    return "static" if team.plan is not None else "planner"


def _title(plan: Plan, team: TeamSpec, source: str) -> str:
    path, _ = plan.critical_path()
    layers = len(plan.layers())
    return (f"[bold]{team.name}[/] plan ([italic]{source}[/]): {_count(len(plan.steps), 'step')} "
            f"in {_count(layers, 'layer')}, critical path {_count(len(path), 'step')}")


def _add_layers(tree: Tree, plan: Plan, team: TeamSpec) -> None:
    from rich.markup import escape

    for number, layer in enumerate(plan.layers(), start=1):
        parallel = " in parallel" if len(layer) > 1 else ""
        branch = tree.add(f"[dim]layer {number}: {_count(len(layer), 'step')}{parallel}[/]")
        for step_id in layer:
            step = plan.step(step_id)
            worker = team.worker(step.agent)
            label = f"[cyan]{escape(step.id)}[/] → [bold]{escape(step.agent)}[/]: {escape(shorten(step.instruction))}"
            if step.depends_on:
                label += f" [dim](after {escape(', '.join(step.depends_on))})[/]"
            leaf = branch.add(label)
            if isinstance(worker, TeamSpec):
                _add_team(leaf, worker)
            elif isinstance(worker, PeersSpec):
                leaf.add(f"[dim]{escape(_peers_line(worker))}[/]")
            elif worker is None:
                leaf.add("[dim]an agent the planner proposes to spawn for this run[/]")


def _add_team(leaf: Tree, team: TeamSpec) -> None:
    from rich.markup import escape

    workers = ", ".join(w.name for w in team.workers)
    if team.plan is None:
        leaf.add(f"[magenta]team[/] of {escape(workers)}: plans its own steps at run time")
        return
    sub = leaf.add(f"[magenta]team[/] of {escape(workers)}: " + _title(team.plan, team, "static"))
    _add_layers(sub, team.plan, team)


def plan_json(plan: Plan, team: Worker, *, source: str | None = None) -> dict[str, Any]:
    """The plan as a JSON-ready document, with the layers, the critical path and nested static plans."""
    spec = _team_spec(team)
    return _plan_json(plan, spec, source or _source(spec))


def _plan_json(plan: Plan, team: TeamSpec, source: str) -> dict[str, Any]:
    path, _ = plan.critical_path()
    return {
        "team": team.name,
        "source": source,
        "steps": [_step_json(step, team) for step in plan.steps],
        "new_agents": [p.model_dump(mode="json") for p in plan.new_agents],
        "layers": plan.layers(),
        "critical_path": path,
    }


def _step_json(step: Step, team: TeamSpec) -> dict[str, Any]:
    worker = team.worker(step.agent)
    out: dict[str, Any] = {
        "id": step.id,
        "agent": step.agent,
        "instruction": step.instruction,
        "depends_on": list(step.depends_on),
        "worker": "spawned" if worker is None else "team" if isinstance(worker, TeamSpec) else worker.kind,
    }
    if isinstance(worker, TeamSpec) and worker.plan is not None:
        out["plan"] = _plan_json(worker.plan, worker, "static")
    return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
