"""Remakes docs/ui-runs.png and docs/ui-run.png: the examples run offline into a new store, `cadenza ui` serves it,
and Playwright photographs the runs page and the run page of the nested teams (one nested team opened).

    pip install -e ".[test]"; python docs/screenshots.py      (needs Debian's Chromium at /usr/bin/chromium)
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.async_api import async_playwright

DOCS = Path(__file__).resolve().parent
EXAMPLES = DOCS.parent / "examples"
RUNS = [(EXAMPLES / "research.yaml", "Compare the last three papers on retrieval-augmented generation", []),
        (EXAMPLES / "peer_review.yaml", "A short note on offline sync", []),
        (EXAMPLES / "release.yaml", "Ship 1.2", []),  # waits for its approval
        (EXAMPLES / "teams.yaml", "Add offline mode to the sync client", [])]


def cadenza(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cadenza.cli", "--store", str(store), *args],
                          capture_output=True, text=True, timeout=120, check=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def photograph(url: str, nested_team_of: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                   args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = await browser.new_page(viewport={"width": 1280, "height": 330}, device_scale_factor=1)
        await page.goto(url)
        await page.wait_for_selector("#connection.live")
        await page.screenshot(path=DOCS / "ui-runs.png")
        await page.goto(f"{url}runs/{nested_team_of}")
        await page.wait_for_selector("#connection.live")
        await page.locator('svg[data-team="lead"] g.node', has_text="engineering").click()
        await page.set_viewport_size({"width": 1280, "height": 1100})
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=DOCS / "ui-run.png")
        await browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        store = Path(scratch) / "runs.db"
        ids = []
        for workflow, goal, options in RUNS:
            ran = cadenza(store, "run", "--json", str(workflow), goal, *options)
            ids.append(json.loads(ran.stdout)["run_id"])
        port = free_port()
        viewer = subprocess.Popen([sys.executable, "-m", "cadenza.cli", "--store", str(store), "ui", "--port",
                                   str(port)], stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            asyncio.run(photograph(f"http://127.0.0.1:{port}/", ids[-1]))
        finally:
            viewer.terminate()
            viewer.wait(10)
    print(f"wrote {DOCS / 'ui-runs.png'} and {DOCS / 'ui-run.png'}")


if __name__ == "__main__":
    main()
