"""Fixtures shared by every test module."""

from __future__ import annotations

import pytest

from cadenza._events import Event


@pytest.fixture
def events() -> list[Event]:
    """A list that collects a run's events in order (pass ``events.append`` as the sink)."""
    return []
