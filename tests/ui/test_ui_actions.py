"""Deciding from the run page: a waiting run approved in the browser resumes and finishes; a decision is bound to
the call the page showed and used once; a request from another site decides nothing."""

from __future__ import annotations

import asyncio
import getpass
import json
import subprocess
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from ui.viewer import EXAMPLES, Viewer, cadenza, page_of, serve

GATED = EXAMPLES / "release.yaml"
"""A written plan whose second step waits for a human's approval before it starts."""


async def waiting_run(store: str, workflow: Path = GATED) -> str:
    """A run of ``workflow`` (`GATED`) that stopped to wait for its approval (exit 4); its id."""
    done = await asyncio.to_thread(subprocess.run, cadenza("--store", store, "run", "--json", str(workflow), "Ship"),
                                   capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 4, done.stderr
    return str(json.loads(done.stdout)["run_id"])


async def exported(store: str, run_id: str) -> dict[str, object]:
    done = await asyncio.to_thread(subprocess.run, cadenza("--store", store, "export", run_id),
                                   capture_output=True, text=True, timeout=60, check=True)
    return dict(json.loads(done.stdout))


def decisions(export: dict[str, object]) -> list[tuple[str, str | None, str | None]]:
    return [(a["status"], a["decided_by"], a["note"]) for a in export["approvals"]]  # type: ignore[attr-defined]


async def opened(browser: Browser, viewer: Viewer, run_id: str) -> Page:
    page = await page_of(browser)
    await page.goto(f"{viewer.url}runs/{run_id}")
    await expect(page.locator("#connection")).to_have_text("live")
    return page


async def test_a_waiting_run_is_approved_from_the_page_then_resumes_and_finishes(
        browser: Browser, viewers: list[Viewer], store_url: str, tmp_path: Path) -> None:
    run_id = await waiting_run(store_url)
    viewer = await serve(viewers, store_url)
    page = await opened(browser, viewer, run_id)
    await expect(page.locator("#run-status")).to_have_text("waiting")
    approval = page.locator("li.approval")
    await expect(approval).to_contain_text("publisher waits to start: Publish them")
    form = {"digest": await approval.locator("input[name=digest]").input_value(),
            "decision": "approve", "resume": "yes"}
    await approval.locator("input[name=note]").fill("looks good")

    await approval.locator("button.approve").click()
    await expect(page.locator("#run-status")).to_have_text("success", timeout=60_000)  # resumed in its own process
    await expect(page.locator('svg[data-team="lead"] g.node[data-step="publish"]')).to_have_attribute(
        "data-status", "success")
    await expect(page.locator("li.approval")).to_have_count(0)
    await expect(page.locator("#resumed")).to_have_text("the resume started here finished")
    export = await exported(store_url, run_id)
    assert decisions(export) == [("used", f"{getpass.getuser()} via cadenza ui", "looks good")]  # used once
    decided = [r for r in export["audit"] if r["kind"] == "approval.decided"]  # type: ignore[attr-defined]
    assert [(r["actor"], r["detail"]["decision"]) for r in decided] == [(f"{getpass.getuser()} via cadenza ui",
                                                                          "approved")]

    again = await page.request.post(f"{viewer.url}runs/{run_id}/approvals/{approval_id(export)}", form=form,
                                    headers={"origin": viewer.url.rstrip("/")})  # the same form, sent twice
    assert again.status == 409
    assert f"run {run_id} has no pending approval" in await again.text()
    assert decisions(await exported(store_url, run_id)) == decisions(export)


def approval_id(export: dict[str, object]) -> str:
    return str(export["approvals"][0]["approval_id"])  # type: ignore[index]


async def test_a_decision_from_another_site_or_about_another_call_decides_nothing(
        browser: Browser, viewers: list[Viewer], tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    run_id = await waiting_run(store)
    viewer = await serve(viewers, store)
    the_id = approval_id(await exported(store, run_id))
    page = await opened(browser, viewer, run_id)
    digest = await page.locator("li.approval input[name=digest]").input_value()
    url = f"{viewer.url}runs/{run_id}/approvals/{the_id}"

    forged = await page.request.post(url, form={"digest": digest, "decision": "approve"},
                                     headers={"origin": "http://evil.example"})  # a page on another site
    assert forged.status == 403
    assert "refused a request from another site" in await forged.text()
    stale = await page.request.post(url, form={"digest": "0" * 64, "decision": "approve"},
                                    headers={"origin": viewer.url.rstrip("/")})
    assert stale.status == 409
    assert "is not the one the page showed" in await stale.text()
    assert decisions(await exported(store, run_id)) == [("pending", None, None)]

    approval = page.locator("li.approval")
    await approval.locator("input[name=resume]").uncheck()
    await approval.locator("input[name=note]").fill("not this week")
    await approval.locator("button.reject").click()
    await expect(page.locator("li.approval")).to_have_count(0)
    await expect(page.locator("#run-status")).to_have_text("waiting")  # decided, not resumed
    assert decisions(await exported(store, run_id)) == [("rejected", f"{getpass.getuser()} via cadenza ui",
                                                         "not this week")]

    await page.locator("button#resume").click()
    await expect(page.locator("#run-status")).to_have_text("partial", timeout=60_000)
    publish = page.locator('svg[data-team="lead"] g.node[data-step="publish"]')
    await expect(publish).to_have_attribute("data-status", "failed")
    await expect(page.locator("#resumed")).to_have_text("the resume started here ended partial or failed")
    await expect(page.locator("button#resume")).to_have_count(0)  # a finished run is not resumed again


async def test_a_resume_that_fails_says_why_on_the_page(browser: Browser, viewers: list[Viewer],
                                                        tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    workflow = tmp_path / "release.yaml"
    workflow.write_text(GATED.read_text())
    run_id = await waiting_run(store, workflow)
    workflow.unlink()  # the file the resume rebuilds the team from is gone
    viewer = await serve(viewers, store)
    page = await opened(browser, viewer, run_id)

    await page.locator("li.approval button.approve").click()
    resumed = page.locator("#resumed")
    await expect(resumed).to_contain_text("the resume started here failed with exit status 2: error: ")
    await expect(resumed).to_contain_text(str(workflow))
    await expect(page.locator("#run-status")).to_have_text("waiting")  # approved, and still waiting to be resumed
    assert decisions(await exported(store, run_id)) == [("approved", f"{getpass.getuser()} via cadenza ui", None)]
