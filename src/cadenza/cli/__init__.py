"""The ``cadenza`` command line: run, plan and validate workflow files.

Importing this package loads click but not rich; rich and the runtime load
when a command needs them, so ``cadenza --help`` stays quick.
"""

from __future__ import annotations

from ._app import app, main

__all__ = ("app", "main")
