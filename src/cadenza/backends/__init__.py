"""Execution backends: where the steps of a plan run."""

from .base import Backend, Worker
from .local import LocalBackend

__all__ = ("Backend", "LocalBackend", "Worker")
