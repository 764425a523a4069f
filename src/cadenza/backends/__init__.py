"""Execution backends: where the steps of a plan run."""

from .._worker import Worker
from .base import Backend
from .local import LocalBackend

__all__ = ("Backend", "LocalBackend", "Worker")
