"""``Supervisor(..., backend="process")``: a team that starts its own worker processes and stops them with each run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cadenza import Agent, ConfigError, Plan, Supervisor
from process.test_process_cli import _children
from process.worker_tools import EFFECTS, effects, publish


def publishing_team(backend: str) -> Supervisor[str]:
    author = Agent("author", "Publish.", model="simulated:conf", tools=[publish], scopes={"write"})
    return Supervisor("lead", workers=[author], model="simulated:conf", backend=backend,  # type: ignore[arg-type]
                      plan=Plan.of({"id": "s1", "agent": "author", "instruction": "Publish it"}))


def pids_of_effects(path: Path) -> list[int]:
    """The process id of each effect, in the order they happened."""
    return [int(line.rsplit(" ", 1)[1]) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("runs", [1, 2])
def test_process_runs_each_step_in_a_worker_process_that_ends_with_the_run(tmp_path: Path, runs: int,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EFFECTS, str(tmp_path / "effects.txt"))  # before any worker process starts
    team = publishing_team("process")
    expected = publishing_team("local").run_sync("Go")

    for _ in range(runs):  # run_sync twice: a new event loop each time, so the pool must start again
        result = team.run_sync("Go")
        assert (result.status, result.output, result.usage) == ("success", expected.output, expected.usage)
        assert _children(os.getpid()) == []  # the team's processes stopped with the run

    assert effects() == ["published"] * (runs + 1)
    local, *elsewhere = pids_of_effects(tmp_path / "effects.txt")
    assert local == os.getpid() and elsewhere and os.getpid() not in elsewhere


def test_local_is_the_default_by_name_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EFFECTS, str(tmp_path / "effects.txt"))
    publishing_team("local").run_sync("Go")
    assert set(pids_of_effects(tmp_path / "effects.txt")) == {os.getpid()}


def test_an_unknown_backend_name_is_refused_naming_the_team() -> None:
    with pytest.raises(ConfigError, match="team 'lead': backend must be 'local', 'process', 'ray' or a Backend, not "
                                          "'dask'"):
        publishing_team("dask")
