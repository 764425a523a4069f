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
