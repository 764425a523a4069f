"""MCP servers declared in a workflow file: built from it, opened when a run needs them, closed when it ends."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cadenza import ConfigError, WorkflowError
from cadenza.patterns._workflow import parse_workflow
from mcp_servers.scripted import one_call


def workflow(tmp_path: Path, *, grant: list[str] | None, server: dict[str, Any] | None = None) -> dict[str, Any]:
    agent: dict[str, Any] = {"name": "clock", "instructions": "Tell the time.", "tools": ["time"]}
    if grant is not None:
        agent["scopes"] = grant
    return {
        "name": "timely",
        "mcp_servers": {"time": server or {
            "command": [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"],
            "scopes": {"*": ["read"]}, "trust_on_first_use": True, "pins": str(tmp_path / "pins.json"),
        }},
        "agents": [agent],
        "supervisor": {"name": "lead", "workers": ["clock"],
                       "plan": [{"id": "now", "agent": "clock", "instruction": "What time is it in Tokyo?"}]},
    }


@pytest.mark.parametrize(("grant", "allowed"), [(["read"], True), (None, False), (["network"], False)])
async def test_a_workflow_agent_uses_its_servers_tools_only_as_granted(
    tmp_path: Path, grant: list[str] | None, allowed: bool,
) -> None:
    built = parse_workflow(workflow(tmp_path, grant=grant))
    clock = built.agents["clock"]
    clock.model = one_call("get_current_time", {"timezone": "Asia/Tokyo"})
    [server] = clock.mcp_servers

    result = await built.entry.run("What time is it?")

    [step] = result.steps
    assert step.status == "success"
    assert ('"timezone":"Asia/Tokyo"' in str(step.output)) is allowed, step.output
    assert not server.is_open  # closed with the run
    assert (tmp_path / "pins.json").exists()


def test_workflow_mistakes_about_servers_name_their_key_path(tmp_path: Path) -> None:
    data = workflow(tmp_path, grant=["read"])
    data["agents"][0]["tools"] = ["tiem"]
    with pytest.raises(WorkflowError, match=r"agents\[0\]\.tools\[0\]: no MCP server named 'tiem'.*did you mean 'time'"):
        parse_workflow(data)
    both = workflow(tmp_path, grant=["read"], server={"command": ["x"], "url": "http://localhost:1/mcp"})
    with pytest.raises(WorkflowError, match=r"mcp_servers\.time: .*exactly one of command"):
        parse_workflow(both)


def test_the_yaml_form_loads(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(workflow(tmp_path, grant=["read"])), encoding="utf-8")
    from cadenza.patterns._workflow import load_workflow

    built = load_workflow(path)
    [server] = built.agents["clock"].mcp_servers
    assert server.name == "time"


async def test_in_python_a_run_whose_tools_wait_for_approval_raises_before_any_model_call(tmp_path: Path) -> None:
    server = {"command": [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"],
              "pins": str(tmp_path / "pins.json")}
    built = parse_workflow(workflow(tmp_path, grant=["read"], server=server))
    clock = built.agents["clock"]
    clock.model = one_call("get_current_time", {"timezone": "Asia/Tokyo"})
    [opened] = clock.mcp_servers
    with pytest.raises(ConfigError, match=r"wait for approval on server 'time' \(2 unapproved: convert_time, "
                                          r"get_current_time\); approve with: await server.approve_all\(\)"):
        await built.entry.run("What time is it?")
    assert clock.model.calls == []  # type: ignore[attr-defined]
    assert not opened.is_open  # closed with the refused run
