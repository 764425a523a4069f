"""A peer conversation killed (SIGKILL) at many points and resumed: no handled message is handled again, and it
ends as the same conversation run without a kill."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

CHILD = Path(__file__).with_name("peer_child.py")
TURNS = 7


def start(db: Path, log: Path, action: str, shape: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(CHILD), str(db), str(log), action, "run_peers", shape],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(db: Path, log: Path, action: str, shape: str) -> dict[str, Any]:
    proc = start(db, log, action, shape)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))  # type: ignore[no-any-return]


def kill_at_turn(db: Path, log: Path, turn: int, shape: str) -> None:
    proc = start(db, log, "run", shape)
    assert proc.stdout is not None
    seen = 0
    for line in proc.stdout:
        seen += line.strip() == "TURN"
        if seen == turn:
            break
    proc.kill()
    proc.communicate(timeout=30)


@pytest.fixture(scope="module", params=["team", "alone"])
def shape(request: pytest.FixtureRequest) -> str:
    """Where the conversation is: the one step of a team's plan, or the whole run."""
    return str(request.param)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, shape: str) -> dict[str, Any]:
    where = tmp_path_factory.mktemp("whole")
    result = finish(where / "runs.db", where / "turns.log", "run", shape)
    assert result["status"] == "success"
    assert len((where / "turns.log").read_text().splitlines()) == TURNS
    return result


@pytest.mark.parametrize("turn", range(1, TURNS + 1))
def test_a_conversation_killed_at_a_turn_resumes_to_the_same_end(tmp_path: Path, turn: int, shape: str,
                                                                 uninterrupted: dict[str, Any]) -> None:
    db, log = tmp_path / "runs.db", tmp_path / "turns.log"
    kill_at_turn(db, log, turn, shape)
    before = log.read_text().splitlines()

    resumed = finish(db, log, "resume", shape)

    assert (resumed["status"], resumed["output"]) == ("success", "draft 3, approved")
    assert resumed["reason"] == "answer: final answer from author"
    assert resumed["stored"] == "success"
    if shape == "alone":
        assert json.loads(resumed["stored_output"]) == "draft 3, approved"
    assert resumed["said"] == uninterrupted["said"]  # every message once, in the same order
    # what the conversation spent: the turns handled before the kill counted from their notes, not lost
    assert (resumed["calls"], resumed["tokens"]) == (uninterrupted["calls"], uninterrupted["tokens"])
    assert resumed["calls"] == TURNS and resumed["tokens"] > 0
    turns = log.read_text().splitlines()
    again = [t for t, n in Counter(turns).items() if n > 1]
    assert again in ([], [before[-1]])  # only the turn in flight at the kill ran twice
    assert sorted(set(turns)) == sorted(set(uninterrupted_turns()))


def uninterrupted_turns() -> list[str]:
    return ["author|Write the poem", "critic|draft 1", "author|note 1", "critic|draft 2", "author|note 2",
            "critic|draft 3", "author|approved"]
