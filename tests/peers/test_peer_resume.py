"""A peer conversation killed (SIGKILL) at many points and resumed: no handled message is handled again, and it
ends as the same conversation run without a kill. On the in-process bus, and on the Redis bus, where what the
killed process left in its inboxes is still there when the run resumes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

CHILD = Path(__file__).with_name("peer_child.py")
TURNS = 7
REDIS = "redis://127.0.0.1:6379/0"

Shape = tuple[str, str]
"""Where the conversation is (``team``: the one step of a team's plan; ``alone``: the whole run), and its bus."""


def run_id_of(db: Path) -> str:
    """The run's id, one per database: the Redis bus keeps each run's inboxes under its own keys."""
    return "run_" + hashlib.sha256(str(db).encode()).hexdigest()[:12]


def start(db: Path, log: Path, action: str, shape: Shape) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(CHILD), str(db), str(log), action, run_id_of(db), *shape],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def forget(db: Path) -> None:
    """Delete what the run's Redis bus left (a killed process discards nothing)."""
    with redis.Redis.from_url(REDIS, socket_timeout=5) as client:
        keys = list(client.scan_iter(match=f"cadenza-test-{run_id_of(db)}:*"))
        if keys:
            client.delete(*keys)


def finish(db: Path, log: Path, action: str, shape: Shape) -> dict[str, Any]:
    proc = start(db, log, action, shape)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))  # type: ignore[no-any-return]


def kill_at_turn(db: Path, log: Path, turn: int, shape: Shape) -> None:
    proc = start(db, log, "run", shape)
    assert proc.stdout is not None
    seen = 0
    for line in proc.stdout:
        seen += line.strip() == "TURN"
        if seen == turn:
            break
    proc.kill()
    proc.communicate(timeout=30)


@pytest.fixture(scope="module", params=[("team", "memory://"), ("alone", "memory://"), ("team", REDIS)],
                ids=["team", "alone", "team-on-redis"])
def shape(request: pytest.FixtureRequest) -> Shape:
    """Where the conversation is, and its bus."""
    where, bus = request.param
    return str(where), str(bus)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, shape: Shape) -> dict[str, Any]:
    where = tmp_path_factory.mktemp("whole")
    result = finish(where / "runs.db", where / "turns.log", "run", shape)
    forget(where / "runs.db")
    assert result["status"] == "success"
    assert len((where / "turns.log").read_text().splitlines()) == TURNS
    return result


@pytest.mark.parametrize("turn", range(1, TURNS + 1))
def test_a_conversation_killed_at_a_turn_resumes_to_the_same_end(tmp_path: Path, turn: int, shape: str,
                                                                 uninterrupted: dict[str, Any]) -> None:
    db, log = tmp_path / "runs.db", tmp_path / "turns.log"
    kill_at_turn(db, log, turn, shape)
    before = log.read_text().splitlines()

    try:
        resumed = finish(db, log, "resume", shape)
    finally:
        forget(db)

    assert (resumed["status"], resumed["output"]) == ("success", "draft 3, approved")
    assert resumed["reason"] == "answer: final answer from author"
    assert resumed["stored"] == "success"
    if shape[0] == "alone":
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
