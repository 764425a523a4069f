"""The Ray backend's own promises, beside the conformance suite (`process/test_conformance.py`) it passes too.

Every test joins the session's local Ray instance (`ray_instance`); the CLI tests start ``cadenza`` in a
process of its own that joins it by address, as a user joins a cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadenza import Agent, Plan, RayBackend, Supervisor
from cadenza.cli import app
from cadenza.stores.sqlite import SQLiteStore
from process.worker_tools import EFFECTS, effects, linger, where

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def until_started() -> None:
    """Wait (at most 30 s) until the tool has written that it started, in whichever process it runs."""
    async with asyncio.timeout(30):
        for _ in iter(lambda: effects() == ["started"], True):
            await asyncio.sleep(0.05)


async def test_cancelling_a_run_stops_its_step_on_the_actor(ray_instance: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EFFECTS, str(tmp_path / "effects.txt"))
    async with RayBackend(workers=1, runtime_env={"env_vars": {EFFECTS: os.environ[EFFECTS]}}) as actors:
        team = Supervisor("lead", workers=[Agent("slow", "Wait.", model="simulated:conf", tools=[linger])],
                          model="simulated:conf", backend=actors,
                          plan=Plan.of({"id": "s1", "agent": "slow", "instruction": "Wait"}))
        running = asyncio.create_task(team.run("Go"))
        await until_started()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await asyncio.sleep(3)  # past the tool's end, had it not been stopped; the actor is still up meanwhile
        assert [a.alive for a in actors._actors] == [True]

    assert effects() == ["started"]


@pytest.mark.parametrize("warmed", [True, False])
async def test_a_warmed_pool_spreads_the_first_steps_and_a_cold_one_starts_them_on_its_first_actor(
        ray_instance: str, tmp_path: Path, warmed: bool) -> None:
    """`RayBackend.start` starts every actor before any step. Without it, a step waits for an actor only when none
    is live: the steps that come while the first actor starts run on it, and the rest of the pool starts behind."""
    agents = [Agent(f"w{i}", "Say where.", model="simulated:conf", tools=[where]) for i in range(2)]
    plan = Plan.of(*({"id": f"s{i}", "agent": f"w{i}", "instruction": "Where?"} for i in range(2)))
    async with RayBackend(workers=2) as actors, SQLiteStore(tmp_path / "runs.db") as store:
        if warmed:
            await actors.start()
            assert len(actors._actors) == 2
        team = Supervisor("lead", workers=agents, model="simulated:conf", backend=actors, plan=plan)
        await team.run("Go", store=store, run_id="run_spread")  # type: ignore[arg-type]
        calls = (await store.snapshot("run_spread")).tool_calls
        if actors._filling is not None:  # the pool fills behind a cold start
            await asyncio.wait_for(actors._filling, 60)
        assert [a.alive for a in actors._actors] == [True, True]

    ran_in = {json.loads(c.result_json or "0") for c in calls}
    assert len(ran_in) == (2 if warmed else 1)


async def test_a_team_on_ray_by_name_runs_its_steps_on_actors_and_leaves_the_sessions_ray_up(
        ray_instance: str, tmp_path: Path) -> None:
    import ray

    team = Supervisor("lead", workers=[Agent("w", "Say where.", model="simulated:conf", tools=[where])],
                      model="simulated:conf", backend="ray",
                      plan=Plan.of({"id": "s1", "agent": "w", "instruction": "Where are you?"}))
    async with SQLiteStore(tmp_path / "runs.db") as store:
        result = await team.run("Go", store=store, run_id="run_where")  # type: ignore[arg-type]
        [call] = (await store.snapshot("run_where")).tool_calls

    assert result.status == "success"
    assert call.tool == "where" and json.loads(call.result_json or "0") != str(os.getpid())
    assert ray.is_initialized()  # a Ray this process started is used as it is, and left running


def test_the_example_gives_the_same_result_on_a_ray_cluster(ray_instance: str, tmp_path: Path) -> None:
    """``cadenza run --backend ray --ray-address`` in a process of its own, joining the cluster. A warning the
    cluster sends every driver while the run goes on (as Ray's raylets do when many actors start at once) goes to
    stderr, never into the JSON document on stdout."""
    import ray
    from ray._private.utils import publish_error_to_driver

    example = str(EXAMPLES / "research.yaml")
    local = CliRunner().invoke(app, ["--store", str(tmp_path / "a.db"), "run", example, "Compare X", "--json"])
    warning = "WARNING: a cluster-wide notice sent while the run was going on"
    with subprocess.Popen([sys.executable, "-m", "cadenza.cli", "--store", str(tmp_path / "b.db"), "run", example,
                           "Compare X", "--json", "--backend", "ray", "--ray-address", ray_instance, "--workers", "2"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        assert child.stderr is not None
        for line in child.stderr:  # the run id is printed once the cluster was joined
            if line.startswith("run run_"):
                break
        publish_error_to_driver("cadenza_test", warning, ray._private.worker.global_worker.gcs_client)
        out, err = child.communicate(timeout=120)

    assert local.exit_code == child.returncode == 0, err[-2000:]
    first, second = json.loads(local.stdout), json.loads(out)
    assert (second["status"], second["output"], second["usage"]) == (first["status"], first["output"], first["usage"])
    assert warning in err


def test_a_cluster_that_cannot_be_reached_is_an_error_naming_it_before_the_run_starts(tmp_path: Path) -> None:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cadenza.cli", "--store", str(tmp_path / "runs.db"), "run",
                           str(EXAMPLES / "research.yaml"), "Compare X", "--backend", "ray", "--ray-address",
                           "127.0.0.1:1"], capture_output=True, text=True, timeout=120)

    assert done.returncode == 2, done.stderr[-2000:]
    assert "the Ray cluster at 127.0.0.1:1 cannot be reached within 30s" in done.stderr
    assert time.monotonic() - began < 60
    assert not (tmp_path / "runs.db").exists() or "run_" not in done.stdout  # nothing was recorded


def test_ray_options_apply_to_the_ray_backend_only() -> None:
    runner = CliRunner()
    example = str(EXAMPLES / "research.yaml")

    address = runner.invoke(app, ["run", example, "X", "--ray-address", "127.0.0.1:6380"])
    workers = runner.invoke(app, ["run", example, "X", "--workers", "2"])

    assert address.exit_code == 2 and "--ray-address applies to --backend ray" in address.output
    assert workers.exit_code == 2 and "--workers applies to --backend process or ray" in workers.output
