"""Where a run's agent steps execute, as ``--backend``, ``--workers`` and ``--ray-address`` say."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ..backends.process import ProcessBackend
    from ..backends.ray import RayBackend

__all__ = ("Placement",)


@dataclass(frozen=True, slots=True)
class Placement:
    """A backend other than the local one, chosen on the command line, opened for one run."""

    backend: Literal["process", "ray"]
    workers: int | None = None
    """Worker processes or actors; None: one per CPU (of this machine, or of the Ray cluster)."""
    ray_address: str | None = None
    """The Ray cluster to join; None: ``RAY_ADDRESS``, else a local Ray instance started for the run."""

    def open(self) -> ProcessBackend | RayBackend:
        """The backend, to be entered (``async with``) around the run."""
        if self.backend == "ray":
            from ..backends.ray import RayBackend

            return RayBackend(self.workers, address=self.ray_address)
        from ..backends.process import ProcessBackend

        return ProcessBackend(self.workers)
