"""SQLite only: files that are not stores, locks, directories, durability and writers in other processes."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest

from cadenza._errors import StoreError
from cadenza.stores import PutRun, SQLiteStore
from stores.rows import run_row


async def test_a_missing_file_is_created_with_its_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "runs.db"

    async with SQLiteStore(path) as store:
        await store.apply([PutRun(run_row())])

    assert path.is_file()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(("synchronous", "level"), [("NORMAL", 1), ("FULL", 2)])
async def test_synchronous_is_set_on_the_connection(tmp_path: Path, synchronous: str, level: int) -> None:
    async with SQLiteStore(tmp_path / "runs.db", synchronous=synchronous) as store:  # type: ignore[arg-type]
        assert store._conn is not None
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == level


def test_an_unknown_synchronous_level_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NORMAL"):
        SQLiteStore(tmp_path / "runs.db", synchronous="SOMETIMES")  # type: ignore[arg-type]


async def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    garbage = b"these bytes are not a SQLite database\n" * 200
    path.write_bytes(garbage)

    with pytest.raises(StoreError, match="not a cadenza store or is corrupt") as caught:
        await SQLiteStore(path).open()

    assert str(path) in str(caught.value)
    assert path.read_bytes() == garbage


async def test_a_database_of_something_else_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.commit()
    before = path.read_bytes()

    with pytest.raises(StoreError, match="not a cadenza store") as caught:
        await SQLiteStore(path).open()

    assert "'users'" in str(caught.value)
    assert path.read_bytes() == before


async def test_a_store_from_a_newer_cadenza_keeps_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with SQLiteStore(path) as store:
        await store.apply([PutRun(run_row())])
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE cadenza_meta SET value = '99' WHERE key = 'schema_version'")
        conn.commit()
    before = path.read_bytes()

    with pytest.raises(StoreError, match="newer cadenza"):
        await SQLiteStore(path).open()

    assert path.read_bytes() == before


async def test_a_lock_held_by_another_connection_is_reported_quickly(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteStore(path, busy_timeout=0.1)
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreError, match="locked: another process holds a lock") as caught:
            await store.apply([PutRun(run_row())])
        assert str(path) in str(caught.value)
        other.execute("ROLLBACK")
        await store.apply([PutRun(run_row())])  # usable again once the lock is gone
    finally:
        other.close()
        await store.close()


async def test_opening_a_locked_new_database_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreError, match="locked"):
            await SQLiteStore(path, busy_timeout=0.1).open()
    finally:
        other.close()


async def test_a_directory_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    path = blocker / "sub" / "runs.db"

    with pytest.raises(StoreError, match="cannot create the directory") as caught:
        await SQLiteStore(path).open()

    assert str(blocker / "sub") in str(caught.value)


async def test_a_path_that_is_a_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        await SQLiteStore(tmp_path).open()
    assert str(tmp_path) in str(caught.value)


def test_the_url_is_absolute_and_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = SQLiteStore("runs.db")
    assert store.path == tmp_path / "runs.db"
    assert store.url == f"sqlite://{tmp_path / 'runs.db'}"


async def test_an_in_memory_store_works(tmp_path: Path) -> None:
    async with SQLiteStore(":memory:") as store:
        await store.apply([PutRun(run_row())])
        assert (await store.get_run("run-1")).run_id == "run-1"


async def run_python(code: str, *args: str) -> tuple[int, str]:
    """Run ``code`` in a fresh interpreter (this one, so cadenza is importable): its exit code and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", textwrap.dedent(code), *args, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    return process.returncode or 0, err.decode()


async def test_a_batch_is_durable_when_apply_returns_even_if_the_process_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    returncode, err = await run_python(
        """
        import asyncio, os, signal, sys
        from cadenza.stores import SQLiteStore, PutRun, PutStep, AddMessage
        sys.path.insert(0, sys.argv[2])
        from stores.rows import run_row, step_row, message

        async def main():
            store = SQLiteStore(sys.argv[1])
            await store.open()
            await store.apply([PutRun(run_row()), PutStep(step_row("a")), AddMessage(message("m"))])
            os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint, no atexit

        asyncio.run(main())
        """,
        str(path),
        str(Path(__file__).parent.parent),
    )
    assert returncode == -signal.SIGKILL, err

    async with SQLiteStore(path) as store:
        assert (await store.get_run("run-1")) == run_row()
        assert [s.step_id for s in (await store.snapshot("run-1")).steps] == ["a"]
        assert len(await store.messages("run-1")) == 1


WORKER = """
import asyncio, sys
from cadenza._errors import WorkspaceConflict
from cadenza.stores import SQLiteStore

async def main(path, times, writer):
    async with SQLiteStore(path, busy_timeout=30) as store:
        for _ in range(times):
            while True:
                current = await store.workspace_get("run-1", "counter")
                version, value = (0, 0) if current is None else (current.version, int(current.value_json))
                try:
                    await store.workspace_put("run-1", "counter", str(value + 1), expected_version=version, writer=writer)
                    break
                except WorkspaceConflict:
                    pass

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


async def test_compare_and_set_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with SQLiteStore(path):
        pass  # created once, so the workers race on writes, not on creating the tables
    workers = [run_python(WORKER, str(path), "25", f"process-{i}") for i in range(4)]
    for returncode, err in await asyncio.gather(*workers):
        assert returncode == 0, err

    async with SQLiteStore(path) as store:
        history = await store.workspace_history("run-1", "counter")
    assert [e.version for e in history] == list(range(1, 101))
    assert [int(e.value_json) for e in history] == list(range(1, 101))
    assert {e.writer for e in history} <= {f"process-{i}" for i in range(4)}
