"""``cadenza mcp tools`` and ``cadenza mcp approve`` on a workflow's real MCP server."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from cadenza.cli import app


def write(tmp_path: Path, timezone: str) -> str:
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump({
        "name": "timely",
        "mcp_servers": {"time": {"command": [sys.executable, "-m", "mcp_server_time", "--local-timezone", timezone],
                                 "scopes": {"*": ["read"]}, "pins": str(tmp_path / "pins.json")}},
        "agents": [{"name": "clock", "tools": ["time"], "scopes": ["read"]}],
        "supervisor": {"name": "lead", "workers": ["clock"]},
    }), encoding="utf-8")
    return str(path)


def test_review_approve_and_see_a_change(tmp_path: Path) -> None:
    runner = CliRunner()
    wf = write(tmp_path, "UTC")

    before = runner.invoke(app, ["mcp", "tools", wf])
    assert before.exit_code == 0, before.output
    assert "✗ get_current_time" in before.output and "unapproved" in before.output

    approved = runner.invoke(app, ["mcp", "approve", wf, "time", "--tool", "get_current_time"])
    assert approved.exit_code == 0, approved.output
    assert "approved 1 tool of time: get_current_time" in approved.output

    after = runner.invoke(app, ["mcp", "tools", wf])
    assert "✓ get_current_time" in after.output and "needs read" in after.output
    assert "✗ convert_time" in after.output  # still unapproved

    changed = runner.invoke(app, ["mcp", "tools", write(tmp_path, "Europe/Paris")])  # its schemas name the timezone
    assert "✗ get_current_time" in changed.output and "changed" in changed.output

    unknown = runner.invoke(app, ["mcp", "approve", wf, "clocks"])
    assert unknown.exit_code == 2 and "no MCP server named 'clocks'" in unknown.output


def test_a_run_whose_tools_wait_for_approval_refuses_to_start(tmp_path: Path) -> None:
    runner = CliRunner()
    wf = write(tmp_path, "UTC")
    db = str(tmp_path / "runs.db")

    refused = runner.invoke(app, ["--store", db, "run", wf, "What time is it?"])

    assert refused.exit_code == 2, refused.output
    assert refused.stdout == ""
    errors = [line for line in refused.stderr.splitlines() if not line.startswith("no model provider")]
    assert errors == [f"error: MCP tools wait for approval on server 'time' (2 unapproved: convert_time, "
                      f"get_current_time); review with: cadenza mcp tools {wf}; approve with: cadenza mcp approve "
                      f"{wf} time (or set trust_on_first_use: true on a server to approve tools it has never offered "
                      "before)"]
    assert runner.invoke(app, ["--store", db, "runs"]).output.startswith("no runs recorded")  # nothing was recorded

    assert runner.invoke(app, ["mcp", "approve", wf, "time"]).exit_code == 0  # the command it named
    ran = runner.invoke(app, ["--store", db, "run", wf, "What time is it?"])
    assert ran.exit_code == 0, ran.output
    assert "WARNING" not in ran.stderr


def test_mcp_tools_lists_each_tool_once_with_its_description_and_the_approve_command(tmp_path: Path) -> None:
    wf = write(tmp_path, "UTC")
    listed = CliRunner().invoke(app, ["mcp", "tools", wf])
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("get_current_time") == 1 and listed.output.count("convert_time") == 1
    assert "Get current time in a specific timezone" in listed.stdout
    assert (f"approve with: cadenza mcp approve {wf} time  (or set trust_on_first_use: true under mcp_servers.time "
            "for tools never seen before)") in listed.stdout
    assert "trust_on_first_use=True" not in listed.output
