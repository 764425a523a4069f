"""The version of cadenza, where low-level modules can read it without importing the package facade."""

__all__ = ("__version__",)

__version__ = "0.1.0"
"""Kept equal to ``project.version`` in pyproject.toml (a test checks it)."""
