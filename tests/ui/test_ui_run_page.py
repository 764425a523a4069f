"""The run page in a real browser: the plan as a graph with nested teams expandable, a run followed live, each
step's task, result and calls, a peer group's conversation, and the audit log with its verification."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from ui.viewer import EXAMPLES, Viewer, cadenza, page_of, serve

CHAIN = """\
name: chain
description: Three steps in a row, slow enough to watch.
simulated:
  latency: {min: 1.5, max: 1.8}
  seed: 3
models:
  steady: {model: "simulated:steady"}
default_model: steady
agents:
  - {name: drafter, description: Drafts the note., instructions: Draft it.}
  - {name: editor, description: Edits the draft., instructions: Edit it.}
  - {name: publisher, description: Publishes the note., instructions: Publish it.}
supervisor:
  name: lead
  description: Runs the chain.
  workers: [drafter, editor, publisher]
  plan:
    - {id: draft, agent: drafter, instruction: "Draft the note."}
    - {id: edit, agent: editor, instruction: "Edit the draft.", depends_on: [draft]}
    - {id: publish, agent: publisher, instruction: "Publish the note.", depends_on: [edit]}
"""


async def recorded(store: Path | str, workflow: Path, goal: str) -> str:
    """Runs ``workflow`` to its end in a ``cadenza`` process of its own; the run's id."""
    done = await asyncio.to_thread(subprocess.run, cadenza("--store", str(store), "run", "--json", str(workflow), goal),
                                   capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["run_id"])


async def run_page(browser: Browser, viewer: Viewer, run_id: str) -> Page:
    page = await page_of(browser)
    answer = await page.goto(f"{viewer.url}runs/{run_id}")
    assert answer is not None and answer.status == 200
    await expect(page.locator("#connection")).to_have_text("live")
    return page


def by_id(element_id: str) -> str:
    return f'[id="{element_id}"]'  # ids hold slashes (step paths), which a #selector would need escaped


async def test_a_nested_teams_graph_shows_its_nested_steps_when_expanded(
        browser: Browser, viewers: list[Viewer], tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    run_id = await recorded(store, EXAMPLES / "teams.yaml", "Add offline mode to the sync client")
    page = await run_page(browser, await serve(viewers, store), run_id)

    top = page.locator('svg[data-team="lead"] g.node')
    await expect(top).to_have_count(2)  # the lead planned two steps: the research and the engineering team
    await expect(page.locator('svg[data-team="lead"] g.node.team')).to_have_count(2)
    engineering = await top.filter(has_text="engineering").get_attribute("data-step")
    nested = page.locator(f'svg[data-team="lead/{engineering}"]')
    await expect(nested).to_be_hidden()  # folded until asked for

    await top.filter(has_text="engineering").click()  # the team's box opens its own graph
    await expect(nested).to_be_visible()
    steps = nested.locator("g.node")
    await expect(steps).to_have_count(3)
    for step in ("design", "build", "test"):
        await expect(nested.locator(f'g.node[data-step="{step}"]')).to_have_attribute("data-status", "success")
    await expect(nested.locator('path.edge[data-from="design"][data-to="build"]')).to_have_count(1)
    await expect(nested.locator('path.edge[data-from="build"][data-to="test"]')).to_have_count(1)
    other = await top.filter(has_text="research").get_attribute("data-step")
    await expect(page.locator(f'svg[data-team="lead/{other}"]')).to_be_hidden()  # only the one asked for opened

    # The static chain decided when its team finished: every step of it is on the critical path.
    for step in ("design", "build", "test"):
        await expect(page.locator(f'tr.step[data-path="lead/{engineering}/{step}"]')).to_have_class(
            "line success critical step")

    build = page.locator(by_id(f"step-lead/{engineering}/build"))
    await build.locator("summary").click()
    await expect(build.locator("pre.text").first).to_have_text("Implement the design.")
    await expect(build.locator("tr.call[data-kind='model.called']")).to_have_count(1)
    await expect(build.locator("tr.call td.status")).to_have_text("ok")
    await expect(build.locator("pre.output")).to_contain_text("Implement the design")


async def test_a_run_page_follows_its_run_live_and_keeps_what_the_reader_opened(
        browser: Browser, viewers: list[Viewer], store_url: str, tmp_path: Path) -> None:
    workflow = tmp_path / "chain.yaml"
    workflow.write_text(CHAIN)
    viewer = await serve(viewers, store_url)
    page = await page_of(browser)
    await page.goto(viewer.url)
    await expect(page.locator("#connection")).to_have_text("live")
    run = await asyncio.create_subprocess_exec(*cadenza("--store", store_url, "run", str(workflow), "a note"),
                                               stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await page.locator("tr.run a").click()  # from the runs page to the run's own, while it runs
        await expect(page.locator("#connection")).to_have_text("live")
        await expect(page.locator("#run-status")).to_have_text("running")
        await page.evaluate("window.sameDocument = true")
        graph = page.locator('svg[data-team="lead"]')
        await expect(graph.locator('g.node[data-step="publish"]')).to_have_attribute("data-status", "pending")
        draft = page.locator(by_id("step-lead/draft"))
        await draft.locator("summary").click()

        await expect(graph.locator('g.node[data-step="draft"]')).to_have_attribute("data-status", "success")
        await expect(graph.locator('g.node[data-step="publish"]')).to_have_attribute("data-status", "success")
        await expect(page.locator("#run-status")).to_have_text("success")
        await expect(page.locator("#run-status")).to_have_css("color", "rgb(25, 122, 60)")
        await expect(draft).to_have_attribute("open", "")  # still open after the page's parts were swapped
        await expect(draft.locator("pre.output")).to_contain_text("Draft the note")
        assert await page.evaluate("window.sameDocument") is True  # never reloaded
    finally:
        assert await asyncio.wait_for(run.wait(), 60) == 0


async def test_a_peer_groups_conversation_is_shown_as_its_message_sequence(
        browser: Browser, viewers: list[Viewer], tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    run_id = await recorded(store, EXAMPLES / "peer_review.yaml", "A short note on offline sync")
    viewer = await serve(viewers, store)
    page = await run_page(browser, viewer, run_id)

    await expect(page.locator('svg[data-team="lead"] g.node.group[data-step="note"]')).to_have_count(1)
    talk = page.locator(by_id("group-lead/note"))
    await expect(talk.locator("summary")).to_contain_text("7 messages in 4 rounds")
    messages = talk.locator("li.message")
    await expect(messages).to_have_count(7)
    await expect(messages.first).to_contain_text("note → author")
    await expect(messages.nth(1)).to_contain_text("author → style")
    await expect(messages.nth(1)).to_contain_text("Draft 1: Offline sync keeps working")
    await expect(talk.locator(".answer")).to_have_count(2)
    await expect(talk.locator(".answer").first).to_contain_text("style answered: Approved for style")

    shown = await asyncio.to_thread(subprocess.run, cadenza("--store", str(store), "show", "--json", run_id),
                                    capture_output=True, text=True, timeout=60, check=True)
    answer = await page.goto(f"{viewer.url}api/runs/{run_id}")
    assert answer is not None and answer.status == 200
    assert await answer.json() == json.loads(shown.stdout)  # the page's JSON is `cadenza show --json`


async def test_the_audit_log_says_whether_its_chain_holds(browser: Browser, viewers: list[Viewer],
                                                         tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    run_id = await recorded(store, EXAMPLES / "research.yaml", "papers")
    viewer = await serve(viewers, store)
    page = await run_page(browser, viewer, run_id)
    verdict = page.locator("#audit-verdict")
    await expect(verdict).to_contain_text("chain intact")
    await expect(verdict).to_have_class("verdict ok")

    with sqlite3.connect(store) as db:  # rewrite what the run recorded first, as an intruder with the file would
        db.execute("UPDATE audit SET detail_json = ? WHERE run_id = ? AND seq = 1", ('{"forged": true}', run_id))
    await expect(verdict).to_contain_text("chain broken at seq 1")  # live: the page notices without a reload
    await expect(verdict).to_have_class("verdict broken")
    await expect(verdict).to_have_css("color", "rgb(179, 38, 30)")  # red

    answer = await page.goto(f"{viewer.url}runs/run_nope")
    assert answer is not None and answer.status == 404
    assert "There is no run run_nope" in await page.inner_text("body")
