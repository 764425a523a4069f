"""Peer groups in workflow files: the ``peers:`` section, checked with the rest of the file, and the example."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from cadenza import WorkflowError
from cadenza.patterns._workflow import load_workflow, parse_workflow
from cadenza.stores.sqlite import SQLiteStore

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "peer_review.yaml"


async def test_the_peer_review_example_ends_when_both_reviewers_approve(tmp_path: Path) -> None:
    workflow = load_workflow(EXAMPLE)
    async with SQLiteStore(tmp_path / "runs.db") as store:
        async with asyncio.timeout(30):
            result = await workflow.entry.run("A short note on offline sync", store=store)
        rows = await store.messages(result.run_id)

    [step] = result.steps
    assert result.status == "success" and step.status == "success"
    assert step.output is not None and step.output.startswith("Approved for")
    said = [json.loads(r.body_json) for r in rows if r.kind == "message"]
    assert [(m["sender"], m["recipient"]) for m in said] == [
        ("note", "author"), ("author", "style"), ("author", "facts"), ("style", "author"), ("facts", "author"),
        ("author", "style"), ("author", "facts")]
    answers = [json.loads(r.body_json)["answer"] for r in rows if r.kind == "handled"]
    assert sorted(a for a in answers if a) == [
        "Approved for facts: 'Work offline; changes sync when you reconnect, newest edit first.'",
        "Approved for style: 'Work offline; changes sync when you reconnect.'"]


def workflow(**peers: Any) -> dict[str, Any]:
    group = {"name": "review", "agents": ["author", "critic"], "entry": "author", **peers}
    return {"name": "w", "agents": [{"name": "author"}, {"name": "critic"}], "peers": [group],
            "supervisor": {"name": "lead", "workers": ["review"]}}


@pytest.mark.parametrize(("change", "expected"), [
    ({"agents": ["author", "ghost"]}, "peers[0].agents[1]: unknown agent 'ghost'"),
    ({"entry": "nobody"}, "peers[0]: peer group 'review': the entry agent 'nobody' is not a member"),
    ({"stop": {"answer_by": ["critic"], "quorum": 2}}, "peers[0]: peer group 'review': a quorum of 2"),
    ({"talks_to": {"critic": ["critic"]}}, "'critic' may not message itself"),
    ({"stop": {"max_rounds": 0}}, "peers[0].stop.max_rounds"),
])
def test_a_peer_group_that_cannot_work_is_reported_with_its_key_path(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(WorkflowError) as failed:
        parse_workflow(workflow(**change))
    assert expected in str(failed.value)


def test_a_peer_group_shares_the_namespace_of_agents_and_teams() -> None:
    data = workflow()
    data["peers"][0]["name"] = "critic"
    data["supervisor"]["workers"] = ["critic"]
    with pytest.raises(WorkflowError, match="duplicate name 'critic'"):
        parse_workflow(data)


def test_a_team_names_a_peer_group_as_a_worker() -> None:
    loaded = parse_workflow(workflow(stop={"answer_by": ["critic"], "max_messages": 4}))
    group = loaded.peers["review"]
    assert loaded.entry.workers["review"] is group
    assert (group.answer_by, group.stop.max_messages, group.entry) == (("critic",), 4, "author")


def test_a_file_without_a_supervisor_runs_its_one_peer_group() -> None:
    data = workflow()
    del data["supervisor"]
    loaded = parse_workflow(data)
    assert loaded.entry is loaded.peers["review"]
    assert loaded.plan_source is None and loaded.teams == {}


@pytest.mark.parametrize(("groups", "have"), [(0, "none"), (2, "2 (review, second)")])
def test_without_a_supervisor_the_file_needs_exactly_one_peer_group(groups: int, have: str) -> None:
    data = workflow()
    del data["supervisor"]
    data["peers"] = [data["peers"][0], {**data["peers"][0], "name": "second"}][:groups]
    with pytest.raises(WorkflowError) as failed:
        parse_workflow(data)
    assert f"supervisor: required key is missing: a workflow runs its supervisor (a team), or, without one, its one peer group; " \
           f"peers: has {have}" in str(failed.value)
