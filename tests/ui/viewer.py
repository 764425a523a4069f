"""The viewer's tests' helpers: ``cadenza`` commands, and ``cadenza ui`` served in a process of its own."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

from playwright.async_api import Browser, Page

from processes import stop

CHROMIUM = Path("/usr/bin/chromium")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEADLINE_MS = 20_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cadenza(*args: str) -> list[str]:
    return [sys.executable, "-m", "cadenza.cli", *args]


class Viewer:
    """``cadenza ui`` in a process of its own, on a free port; stopped afterwards."""

    def __init__(self, store: Path | str, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process = subprocess.Popen(cadenza("--store", str(store), "ui", "--port", str(self.port), *args),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    async def listening(self) -> None:
        async with asyncio.timeout(20):
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"cadenza ui exited ({self.process.returncode}): {self.process.stderr.read()}"
                                         if self.process.stderr else "cadenza ui exited")
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
                except OSError:
                    await asyncio.sleep(0.1)

    def stop(self) -> None:
        stop(self.process, 10)
        if self.process.stderr is not None:
            self.process.stderr.close()


async def serve(viewers: list[Viewer], store: Path | str, *args: str) -> Viewer:
    viewer = Viewer(store, *args)
    viewers.append(viewer)
    await viewer.listening()
    return viewer


async def page_of(browser: Browser) -> Page:
    page = await browser.new_page()
    page.set_default_timeout(DEADLINE_MS)
    return page
