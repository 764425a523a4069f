"""Crash tests of durable runs: SIGKILL a recorded run anywhere, resume it, get what an uninterrupted run gets.

Each case starts ``crash_child.py`` (a team of teams on a seeded simulated model, recorded in
SQLite) in a subprocess and kills it: the child kills itself at an exact point (right after an
event, or before, inside or after a batch of writes), or the parent kills it after a line of its
output or after a seeded delay. Then it resumes the run, killing some resumes as well, until a
resume completes. Between two processes the test reads the store and checks the guarantee of
`cadenza.engine._durable`:

- a step the store held as finished before a process started is never started by it;
- a finished step's stored result never changes afterwards;
- the final run equals an uninterrupted run of the same seed: status, output, usage, and every
  step's output at every scope; each step's result is recorded exactly once.

All cases run once, a few at a time, in a module fixture; each case is then its own test.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cadenza import ResumeError, RunNotFound
from cadenza._ids import RunId
from cadenza.patterns._workflow import parse_workflow
from cadenza.stores.base import StepRow
from cadenza.stores.sqlite import SQLiteStore
from durable.crash_child import GOAL, NESTED_STEP, TOP, WORKFLOW

CHILD = Path(__file__).with_name("crash_child.py")
RUN_ID = "crash-run"
NESTED = f"{TOP}/{NESTED_STEP}"
"""The nested team's scope in the store."""
FINISHED = ("success", "partial", "failed")
DEADLINE = 30.0
"""Seconds one child process may take before it counts as hung (a whole run takes well under one)."""
PARALLEL = 3
"""Cases played at once: the children mostly wait on simulated latency, so three fit on two cores."""

slow = pytest.mark.timeout(240)
"""For tests that need the cases played: the first of them pays for all (about 20 s on two cores)."""

StepKey = tuple[str, str]
"""(scope, step id), as the store keys steps."""


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Kill:
    """Where one process of a case dies; exactly one field is set."""

    die: str | None = None
    """The child kills itself here (its ``--die`` spec): an exact point."""
    after_line: int | None = None
    """The parent kills it right after reading this many lines of its output: a little later each time."""
    after_seconds: float | None = None
    """The parent kills it after this long, wherever it is (during a write, sometimes)."""

    def __str__(self) -> str:
        if self.die is not None:
            return self.die.removeprefix("on:")
        if self.after_line is not None:
            return f"line{self.after_line}"
        return f"{self.after_seconds:.2f}s"


@dataclass(frozen=True)
class Case:
    """A run killed at each of ``kills`` in turn (the first run, then resumes), then resumed to the end."""

    kills: tuple[Kill, ...]

    def __str__(self) -> str:
        return "+".join(map(str, self.kills))


def at(event: str) -> Kill:
    """Right after the first event ``TYPE:TEAM:STEP`` (``-`` for a team event)."""
    return Kill(die=f"on:{event}")


def in_write(number: int | str, phase: str) -> Kill:
    """Before, inside or after the ``number``-th batch of writes the process makes (or the ``final`` one)."""
    return Kill(die=f"write:{number}:{phase}")


_delays = random.Random(20240611)


def delays(count: int) -> tuple[Kill, ...]:
    """Kills at seeded delays, most of them landing mid-run (a child needs about 0.25 s to start)."""
    return tuple(Kill(after_seconds=round(_delays.uniform(0.2, 0.8), 2)) for _ in range(count))


EVENTS = (
    "RunStarted:lead:-",  # the run row is durable, nothing else
    "PlanReady:lead:-",  # the plan is durable, no step started
    "StepStarted:lead:brief",  # the first step in flight, its start not yet written
    "StepFinished:lead:brief",  # its result durable, the fan-out not yet dispatched
    "StepStarted:lead:risks",  # the fan-out of four all in flight
    "StepFinished:lead:costs",  # the fan-out half done
    "StepFinished:lead:users",  # both sides of the diamond done, its join not started
    "StepStarted:lead:engineering",  # the nested team dispatched, nothing of its own recorded
    "RunStarted:lead/engineering:-",
    "PlanReady:lead/engineering:-",  # the nested plan durable
    "StepStarted:lead/engineering:build",
    "StepFinished:lead/engineering:build",
    "StepFinished:lead/engineering:test",  # the nested steps done, its synthesis not
    "RunFinished:lead/engineering:-",  # the nested synthesis done, the top step's result not yet durable
    "StepFinished:lead:engineering",
    "StepStarted:lead:edit",  # in the chain
    "StepFinished:lead:signoff",  # every step done, the synthesis not
    "RunFinished:lead:-",  # the synthesis done, the finished run row not yet durable
)

WRITES = (
    (1, "before"), (1, "inside"),  # the run row never becomes durable: the run starts afresh
    (2, "inside"),  # the plan
    (5, "inside"), (6, "after"),  # the fan-out's starts, its first result
    (12, "before"), (12, "inside"),  # the nested plan
    (16, "after"), (19, "inside"), (21, "after"),
    ("final", "inside"),  # the finished run row is rolled back: a resume only synthesises again
    ("final", "after"),  # the finished run is durable: there is nothing left to resume
)

CASES = (
    *(Case((at(event),)) for event in EVENTS),
    *(Case((in_write(number, phase),)) for number, phase in WRITES),
    *(Case((Kill(after_line=n),)) for n in (4, 17, 33, 52)),
    *(Case(delays(1)) for _ in range(4)),
    # chains of crashes: resumes die too
    Case((at("StepFinished:lead:compare"), at("StepFinished:lead/engineering:design"), at("PlanReady:lead:-"),
          in_write(1, "inside"))),
    Case((at("StepStarted:lead/engineering:test"), at("RunFinished:lead/engineering:-"), at("RunFinished:lead:-"))),
    Case((at("StepFinished:lead:risks"), at("StepRestored:lead:brief"), Kill(die="event:8"))),
    Case((in_write(3, "inside"), in_write(1, "after"), in_write(1, "after"), in_write(2, "inside"))),
    Case((in_write(1, "inside"), at("StepStarted:lead:market"), in_write(4, "before"))),
    Case((at("StepStarted:lead:draft"), in_write("final", "inside"), in_write(1, "before"))),
    Case((Kill(after_line=30), Kill(after_line=22), Kill(after_line=14))),
    Case(delays(3)),
)


# --------------------------------------------------------------------------- reading the store


@dataclass(frozen=True)
class View:
    """What the store holds of the run between two processes."""

    status: str | None
    """None: no run row (the process died before it was durable)."""
    output: Any
    usage: dict[str, Any]
    plans: frozenset[str]
    steps: dict[StepKey, StepRow]
    results: Counter[StepKey]
    """Result messages by step."""
    tasks: Counter[StepKey]
    """Task messages by step (one per attempt dispatched)."""

    @property
    def finished(self) -> dict[StepKey, str]:
        """The stored results (JSON text) of finished steps."""
        return {key: row.result_json for key, row in self.steps.items()
                if row.status in FINISHED and row.result_json is not None}

    def outputs(self) -> dict[StepKey, Any]:
        return {key: json.loads(body)["output"] for key, body in self.finished.items()}


NO_RUN = View(None, None, {}, frozenset(), {}, Counter(), Counter())


def read_view(db: Path) -> View:
    """The run as a fresh `SQLiteStore` on the file sees it (the writer is dead by now)."""
    async def read() -> View:
        async with SQLiteStore(db) as store:
            try:
                snapshot = await store.snapshot(RUN_ID)
            except RunNotFound:
                return NO_RUN
            messages = await store.messages(RUN_ID)
        run = snapshot.run
        counts: dict[str, Counter[StepKey]] = {"result": Counter(), "task": Counter()}
        for message in messages:
            counts[message.kind][(message.scope, message.step_id or "")] += 1
        return View(run.status, json.loads(run.output_json) if run.output_json else None,
                    json.loads(run.usage_json), frozenset(p.scope for p in snapshot.plans),
                    {(s.scope, s.step_id): s for s in snapshot.steps}, counts["result"], counts["task"])

    return asyncio.run(read())


# --------------------------------------------------------------------------- playing a case


@dataclass(frozen=True)
class Process:
    """One child process of a case, and the store before and after it."""

    mode: str
    kill: Kill | None
    pid: int
    returncode: int
    hung: bool
    lines: list[str]
    before: View
    after: View
    started: list[StepKey]
    """Steps this process started (from the shared log)."""

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    @property
    def result(self) -> dict[str, Any] | None:
        found = [line.removeprefix("RESULT ") for line in self.lines if line.startswith("RESULT ")]
        return json.loads(found[0]) if found else None

    @property
    def died(self) -> str | None:
        """Where the process killed itself, as it said just before."""
        return next((line.removeprefix("DIE ") for line in self.lines if line.startswith("DIE ")), None)

    def __str__(self) -> str:
        tail = "\n    ".join(self.lines[-6:])
        return f"{self.mode} (pid {self.pid}, kill {self.kill}, rc {self.returncode}):\n    {tail}"


def spawn(db: Path, log: Path, mode: str, kill: Kill | None,
          backend: str = "local") -> tuple[int, int, bool, list[str]]:
    """Run the child until it ends or is killed: (pid, return code, hung, lines of output)."""
    args = [sys.executable, str(CHILD), str(db), str(log), mode, RUN_ID, "--backend", backend]
    if kill is not None and kill.die is not None:
        args += ["--die", kill.die]
    lines: list[str] = []
    hung: list[bool] = []
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        def give_up() -> None:
            hung.append(True)
            proc.kill()

        watchdog = threading.Timer(DEADLINE, give_up)
        watchdog.start()
        try:
            assert proc.stdout is not None
            if kill is not None and kill.after_seconds is not None:
                try:
                    proc.wait(timeout=kill.after_seconds)  # its output (a few kB) fits in the pipe meanwhile
                except subprocess.TimeoutExpired:
                    proc.kill()
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if kill is not None and kill.after_line == len(lines):
                    proc.kill()
            returncode = proc.wait()
        finally:
            watchdog.cancel()
    return proc.pid, returncode, bool(hung), lines


def started_by(log: Path, pid: int) -> list[StepKey]:
    if not log.exists():
        return []
    found: list[StepKey] = []
    for line in log.read_text().splitlines():
        what, scope, step, by = line.split()
        if what == "start" and int(by) == pid:
            found.append((scope, step))
    return found


def play(case: Case, workdir: Path, backend: str = "local") -> list[Process]:
    """Run the case's processes one after the other: each kill, then resumes until one ends by itself."""
    workdir.mkdir(parents=True)
    db, log = workdir / "runs.db", workdir / "steps.log"
    processes: list[Process] = []
    view = NO_RUN
    for kill in (*case.kills, None):
        # A run whose row never became durable was never started: start it again (resuming says RunNotFound).
        mode = "run" if view.status is None else "resume"
        pid, returncode, hung, lines = spawn(db, log, mode, kill, backend)
        after = read_view(db)
        processes.append(Process(mode, kill, pid, returncode, hung, lines, view, after, started_by(log, pid)))
        view = after
        if returncode != -signal.SIGKILL or view.status in FINISHED:
            break  # it finished (a kill that came too late), failed or hung: nothing more to resume
    return processes


@dataclass(frozen=True)
class Played:
    reference: View
    """The store after an uninterrupted run."""
    reference_result: dict[str, Any]
    again: View
    """The store after a second uninterrupted run, in another file."""
    cases: dict[str, list[Process]]


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Played:
    root = tmp_path_factory.mktemp("crashes")
    with ThreadPoolExecutor(PARALLEL) as pool:
        references = [pool.submit(play, Case(()), root / f"reference-{n}") for n in (1, 2)]
        futures = {str(case): pool.submit(play, case, root / f"case-{n}") for n, case in enumerate(CASES)}
        (reference,), (again,) = (f.result() for f in references)
        cases = {name: future.result() for name, future in futures.items()}
    assert reference.returncode == 0 and reference.result is not None, str(reference)
    return Played(reference.after, reference.result, again.after, cases)


# --------------------------------------------------------------------------- the checks


@slow
def test_uninterrupted_runs_agree(played: Played) -> None:
    """The yardstick: the simulated model is seeded, so two uninterrupted runs are the same run."""
    ref = played.reference
    assert ref.status == "success"
    assert set(ref.steps) == {(TOP, s["id"]) for s in WORKFLOW["supervisor"]["plan"]} | {
        (NESTED, s["id"]) for s in WORKFLOW["teams"][0]["plan"]}
    assert (ref.status, ref.output, ref.usage, ref.outputs()) == (
        played.again.status, played.again.output, played.again.usage, played.again.outputs())


def check_process(p: Process) -> None:
    """No step the store held as finished before ``p`` was started by ``p``, nor changed by it."""
    assert not p.hung, f"hung: {p}"
    rerun = sorted(set(p.started) & set(p.before.finished))
    assert not rerun, f"finished steps ran again: {rerun} in {p}"
    changed = sorted(key for key, body in p.before.finished.items() if p.after.finished.get(key) != body)
    assert not changed, f"finished steps' stored results changed: {changed} in {p}"
    if p.kill is not None and p.kill.die is not None:
        assert p.killed and p.died is not None, f"the kill point {p.kill} was never reached: {p}"


def check_final(last: Process, reference: View, reference_result: dict[str, Any]) -> None:
    """The store, and what the last process returned, equal the uninterrupted run, at every scope."""
    final = last.after
    assert final.status == "success", str(last)
    assert final.output == reference.output
    assert final.usage == reference.usage
    assert final.outputs() == reference.outputs()
    assert {key: row.status for key, row in final.steps.items()} == dict.fromkeys(reference.steps, "success")
    assert final.plans == reference.plans == {TOP, NESTED}
    assert final.results == Counter(dict.fromkeys(reference.steps, 1)), "a step's result was recorded twice"
    assert set(final.tasks) == set(reference.steps)
    if last.result is not None:  # None when the process died after the finished run row was durable
        # (a seeded delay may end it a moment after it said RESULT, while the interpreter exits: that is fine)
        assert last.returncode in (0, -signal.SIGKILL), str(last)
        assert last.result == reference_result
    else:
        assert last.killed, str(last)


@slow
@pytest.mark.parametrize("case", CASES, ids=str)
def test_killed_run_resumes_to_the_uninterrupted_result(case: Case, played: Played) -> None:
    processes = played.cases[str(case)]
    for p in processes:
        check_process(p)
    check_final(processes[-1], played.reference, played.reference_result)


PROCESS_CASES = (
    Case(()),
    Case((at("StepFinished:lead:costs"),)),
    Case((at("StepStarted:lead/engineering:build"), at("StepStarted:lead:edit"))),
)
"""Runs whose agent steps run in worker processes: killed with steps in flight there, resumed on them."""


@slow
@pytest.mark.parametrize("case", PROCESS_CASES, ids=lambda case: str(case) or "uninterrupted")
def test_a_run_on_worker_processes_resumes_to_what_the_local_run_gives(case: Case, played: Played,
                                                                       tmp_path: Path) -> None:
    """Same seed, same outputs and stored rows on either backend, however the run was interrupted."""
    processes = play(case, tmp_path / "process", backend="process")
    for p in processes:
        check_process(p)
    check_final(processes[-1], played.reference, played.reference_result)


@slow
@pytest.mark.parametrize("case", PROCESS_CASES, ids=lambda case: str(case) or "uninterrupted")
def test_a_run_on_ray_resumes_to_what_the_local_run_gives(case: Case, played: Played, tmp_path: Path,
                                                         ray_instance: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed with steps in flight on Ray actors (which die with the run that owns them), resumed on new ones."""
    monkeypatch.setenv("RAY_ADDRESS", ray_instance)  # each child joins the session's Ray instance
    processes = play(case, tmp_path / "ray", backend="ray")
    for p in processes:
        check_process(p)
    check_final(processes[-1], played.reference, played.reference_result)


def resumes(played: Played) -> Iterator[Process]:
    return (p for ps in played.cases.values() for p in ps if p.mode == "resume")


@slow
def test_crashes_left_runs_half_done(played: Played) -> None:
    """Not vacuous: many resumes both read steps back and ran others, the nested team's included."""
    mixed = [p for p in resumes(played) if p.before.finished and p.started]
    assert len(mixed) >= 15
    nested_split = [p for p in mixed
                    if any(s == NESTED for s, _ in p.before.finished) and any(s == NESTED for s, _ in p.started)]
    assert nested_split
    everything_restored = [p for p in resumes(played) if len(p.before.finished) == len(played.reference.steps)]
    assert everything_restored  # killed after the last step, before the run row said so
    reruns = [p for p in resumes(played) if set(p.started) & {k for k, r in p.before.steps.items() if r.status == "running"}]
    assert reruns  # steps in flight when the process died ran again
    restarted = [ps for ps in played.cases.values() if sum(p.mode == "run" for p in ps) > 1]
    assert restarted  # killed before the run row was durable
    died_inside = [p for ps in played.cases.values() for p in ps if (p.died or "").startswith("inside")]
    assert len(died_inside) >= 4


# --------------------------------------------------------------------------- in process


async def test_resuming_a_finished_run_is_refused(tmp_path: Path) -> None:
    team = parse_workflow(WORKFLOW).entry
    async with SQLiteStore(tmp_path / "runs.db") as store:
        result = await team.run(GOAL, run_id=RunId(RUN_ID), store=store)
        assert result.status == "success"
        with pytest.raises(ResumeError, match="already finished"):
            await team.resume(RUN_ID, store=store)


async def test_resuming_an_unknown_run_says_so(tmp_path: Path) -> None:
    team = parse_workflow(WORKFLOW).entry
    async with SQLiteStore(tmp_path / "runs.db") as store:
        with pytest.raises(RunNotFound, match="no-such-run"):
            await team.resume("no-such-run", store=store)
