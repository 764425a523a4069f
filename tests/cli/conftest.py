"""Every CLI test records its runs in its own temporary store, never in the working directory's."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The SQLite file ``cadenza`` uses when no ``--store`` is given (CADENZA_STORE, for child processes too)."""
    path = tmp_path / "store" / "runs.db"
    monkeypatch.setenv("CADENZA_STORE", str(path))
    return path
