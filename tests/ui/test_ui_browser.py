"""``cadenza ui`` end to end in a real browser: Playwright driving Debian's Chromium against the viewer served by
the CLI in a process of its own, over a store that another ``cadenza`` process writes at the same time."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from playwright.async_api import Browser, expect

from ui.viewer import EXAMPLES, Viewer, cadenza, free_port, page_of, serve


async def test_a_run_started_in_another_process_appears_and_turns_green_without_a_reload(
        browser: Browser, viewers: list[Viewer], store_url: str) -> None:
    store = store_url
    viewer = await serve(viewers, store)
    page = await page_of(browser)
    await page.goto(viewer.url)
    await expect(page.locator("#connection")).to_have_text("live")
    await expect(page.locator("tbody#runs")).to_have_text("no runs match")
    await page.evaluate("window.sameDocument = true")

    run = await asyncio.create_subprocess_exec(*cadenza("--store", str(store), "run", str(EXAMPLES / "research.yaml"),
                                                        "Compare the last three papers on X"),
                                               stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    row = page.locator("tr.run")
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-status", "success")
    assert await asyncio.wait_for(run.wait(), 60) == 0
    status = row.locator("td.status")
    await expect(status).to_have_text("success")
    await expect(status).to_have_css("color", "rgb(25, 122, 60)")  # green
    await expect(row.locator("td").nth(2)).to_have_text("research")
    assert await page.evaluate("window.sameDocument") is True  # it changed live: the page was never reloaded


async def test_the_runs_page_filters_by_status_and_workflow(browser: Browser, viewers: list[Viewer],
                                                            tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    done = await asyncio.to_thread(subprocess.run, cadenza("--store", str(store), "run",
                                                           str(EXAMPLES / "research.yaml"), "papers"),
                                   capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    viewer = await serve(viewers, store)
    page = await page_of(browser)
    await page.goto(viewer.url)
    await expect(page.locator("tr.run")).to_have_count(1)

    await page.select_option("select[name=status]", "failure")
    await page.click("button[type=submit]")
    await expect(page.locator("tbody#runs")).to_have_text("no runs match")
    assert "status=failure" in page.url
    await page.select_option("select[name=status]", "success")
    await page.select_option("select[name=workflow]", "research")
    await page.click("button[type=submit]")
    await expect(page.locator("tr.run")).to_have_count(1)
    await expect(page.locator("#connection")).to_have_text("live")  # the filtered page stays live too


async def test_beyond_this_machine_the_viewer_needs_its_token(browser: Browser, viewers: list[Viewer],
                                                              tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    refused = await asyncio.to_thread(subprocess.run, cadenza("--store", str(store), "ui", "--host", "0.0.0.0",
                                                              "--port", str(free_port())),
                                      capture_output=True, text=True, timeout=60, check=False, env=_without_token())
    assert refused.returncode == 2
    assert "--host 0.0.0.0 reaches beyond this machine: give a token with --token or CADENZA_UI_TOKEN" in refused.stderr

    viewer = await serve(viewers, store, "--host", "0.0.0.0", "--token", "s3cret-token")
    page = await page_of(browser)
    answer = await page.goto(viewer.url)
    assert answer is not None and answer.status == 401
    assert "needs its token" in await page.inner_text("body")
    answer = await page.goto(viewer.url + "?token=wrong")
    assert answer is not None and answer.status == 401

    answer = await page.goto(viewer.url + "?token=s3cret-token")
    assert answer is not None and answer.status == 200 and page.url == viewer.url  # the token left the address bar
    await expect(page.locator("#connection")).to_have_text("live")  # the page's event stream passed with the cookie
    answer = await page.goto(viewer.url + "api/runs")
    assert answer is not None and answer.status == 200


def _without_token() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "CADENZA_UI_TOKEN"}
