"""Replacing the models of an agent or a whole team for a block: how an application's own tests run offline.

``with team.override(model=FunctionModel(reply)):`` gives every model call the team's run makes (its planner,
its agents, its synthesiser, nested teams, peer groups' members and the agents it spawns) to ``reply``, and puts
the models back when the block ends, however it ends. The objects themselves are changed for the block, so every
run of them in this process sees the override while it lasts (as a test wants); overrides nest, the inner one
winning inside its block. Each pattern says what it holds (``_override_into``); a worker of another kind is left
as it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from .._worker_spec import ModelSource, model_sources
from ..models.registry import resolve_model

if TYPE_CHECKING:
    from ..models.base import Model

__all__ = ("Overridable", "Swaps", "override_models")


class Swaps:
    """The replacement model, and every attribute changed for it with its old value, to be put back in reverse."""

    __slots__ = ("_done", "_saved", "model", "sources")

    def __init__(self, model: Model, sources: tuple[ModelSource, ...] | None) -> None:
        self.model = model
        self.sources = sources
        """What rebuilds ``model`` in another process; None for a model given as an object."""
        self._saved: list[tuple[object, str, Any]] = []
        self._done: set[int] = set()

    def set(self, target: object, name: str, value: object) -> None:
        self._saved.append((target, name, getattr(target, name)))
        setattr(target, name, value)

    def worker(self, worker: object) -> None:
        """The models of ``worker``, if it is a pattern that holds any; once, however many teams it is in."""
        into = getattr(worker, "_override_into", None)
        if into is not None and id(worker) not in self._done:
            self._done.add(id(worker))
            into(self)

    def restore(self) -> None:
        for target, name, value in reversed(self._saved):
            setattr(target, name, value)
        self._saved.clear()


class Overridable(Protocol):
    def _override_into(self, swaps: Swaps) -> None: ...


@contextmanager
def override_models(worker: Overridable, model: str | Model | Sequence[str | Model]) -> Iterator[None]:
    """Every model under ``worker`` is ``model`` inside the block, and what it was again after it.

    Raises:
        ConfigError, UnknownModelError: ``model`` does not name a model; nothing was changed.
    """
    swaps = Swaps(resolve_model(model), model_sources(model))
    try:
        swaps.worker(worker)
        yield
    finally:
        swaps.restore()
