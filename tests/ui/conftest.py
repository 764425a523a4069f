"""The viewer's fixtures: Debian's Chromium driven by Playwright, viewers stopped after each test, a store on each
backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from stores.backends import PG_URL, Backend, SQLiteBackend
from ui.viewer import CHROMIUM, Viewer


@pytest.fixture
def viewers() -> Iterator[list[Viewer]]:
    started: list[Viewer] = []
    yield started
    for viewer in started:
        viewer.stop()


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium (Playwright's own browser download does not work here); never skipped when missing."""
    if not CHROMIUM.is_file():
        pytest.fail(f"the browser tests need Debian's Chromium at {CHROMIUM}: apt-get install chromium")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), headless=True,
                                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        await launched.close()


@pytest.fixture
def store_url(backend: Backend) -> str:
    """The URL of a store on each backend (`backend`, shared): a SQLite file, or a PostgreSQL schema of the test's own."""
    return str(backend.path) if isinstance(backend, SQLiteBackend) else f"{PG_URL}?schema={backend.schema}"  # type: ignore[attr-defined]
