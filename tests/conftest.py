"""Fixtures shared by every test module."""

from __future__ import annotations

import pytest
from hypothesis import settings

from cadenza._events import Event

# Property tests check behaviour, never speed: no per-example deadline, which a loaded CI machine would trip.
settings.register_profile("cadenza", deadline=None)
settings.load_profile("cadenza")


@pytest.fixture
def events() -> list[Event]:
    """A list that collects a run's events in order (pass ``events.append`` as the sink)."""
    return []
