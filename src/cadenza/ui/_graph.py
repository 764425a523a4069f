"""A team's plan drawn as a graph: steps as boxes coloured by status, dependencies as arrows, laid out in layers.

A step's layer is one more than its deepest dependency's, so every arrow points right and the steps of one layer
(which may run in parallel) stand in one column. The drawing is inline SVG built on the server: no layout library
and no script, and a step's box links to its details on the page.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from html import escape

from .._ids import child_path
from ..recorded import StepState, TeamState, shorten

__all__ = ("plan_graph",)

_WIDTH, _HEIGHT = 190, 46
"""A step's box."""
_COLUMN_GAP, _ROW_GAP, _MARGIN = 56, 14, 8
_LABEL_CHARS = 24


@dataclass(frozen=True, slots=True)
class _Box:
    step: StepState
    x: int
    y: int


def plan_graph(team: TeamState, *, critical: Collection[str], teams: Collection[str], groups: Collection[str]) -> str:
    """The SVG of ``team``'s steps.

    Args:
        critical: the ids of the steps on the team's critical path (drawn with a heavier outline).
        teams: the paths of steps that are nested teams; their boxes link to the nested team's own graph.
        groups: the paths of steps that are peer groups; their boxes link to the conversation.
    """
    if not team.steps:
        return '<p class="empty">no steps recorded yet</p>'
    boxes = _laid_out(team.steps)
    width = max(b.x for b in boxes.values()) + _WIDTH + _MARGIN
    height = max(b.y for b in boxes.values()) + _HEIGHT + _MARGIN
    edges = [_edge(boxes[dep], box) for box in boxes.values() if box.step.plan_step is not None
             for dep in box.step.plan_step.depends_on if dep in boxes]
    nodes = [_node(box, team, critical=box.step.id in critical, teams=teams, groups=groups) for box in boxes.values()]
    return (f'<svg class="plan" data-team="{escape(team.scope)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="plan of {escape(team.scope)}">'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>'
            + "".join(edges) + "".join(nodes) + "</svg>")


def _laid_out(steps: Sequence[StepState]) -> dict[str, _Box]:
    """Each step's box: its column is its layer, its row its place among that layer's steps in plan order."""
    by_id = {s.id: s for s in steps}
    layer: dict[str, int] = {}

    def depth(step_id: str, seen: frozenset[str] = frozenset()) -> int:
        if step_id not in layer:
            plan_step = by_id[step_id].plan_step
            deps = [d for d in (plan_step.depends_on if plan_step else ()) if d in by_id and d not in seen]
            layer[step_id] = 1 + max((depth(d, seen | {step_id}) for d in deps), default=-1)
        return layer[step_id]

    rows: dict[int, int] = {}
    boxes = {}
    for step in steps:
        column = depth(step.id)
        row = rows.get(column, 0)
        rows[column] = row + 1
        boxes[step.id] = _Box(step, _MARGIN + column * (_WIDTH + _COLUMN_GAP), _MARGIN + row * (_HEIGHT + _ROW_GAP))
    return boxes


def _edge(source: _Box, target: _Box) -> str:
    x1, y1 = source.x + _WIDTH, source.y + _HEIGHT // 2
    x2, y2 = target.x, target.y + _HEIGHT // 2
    bend = (x2 - x1) // 2
    return (f'<path class="edge" data-from="{escape(source.step.id)}" data-to="{escape(target.step.id)}" '
            f'd="M {x1} {y1} C {x1 + bend} {y1}, {x2 - bend} {y2}, {x2} {y2}" marker-end="url(#arrow)"/>')


def _node(box: _Box, team: TeamState, *, critical: bool, teams: Collection[str], groups: Collection[str]) -> str:
    step = box.step
    path = child_path(team.scope, step.id)
    kind, target = "", f"step-{path}"
    if path in teams:
        kind, target = "team", f"team-{path}"
    elif path in groups:
        kind, target = "group", f"group-{path}"
    classes = " ".join(filter(None, ("node", step.status, kind, "critical" if critical else "")))
    mark = {"team": " ▸ team", "group": " ▸ peers"}.get(kind, "")
    return (f'<a href="#{escape(target)}"><g class="{classes}" data-step="{escape(step.id)}" '
            f'data-status="{escape(step.status)}"><title>{escape(path)}: {escape(step.status)}</title>'
            f'<rect x="{box.x}" y="{box.y}" width="{_WIDTH}" height="{_HEIGHT}" rx="6"/>'
            f'<text x="{box.x + 10}" y="{box.y + 19}" class="id">{escape(shorten(step.id, _LABEL_CHARS))}</text>'
            f'<text x="{box.x + 10}" y="{box.y + 36}" class="agent">'
            f'{escape(shorten(step.agent, _LABEL_CHARS - 8))} · {escape(step.status)}{mark}</text></g></a>')
