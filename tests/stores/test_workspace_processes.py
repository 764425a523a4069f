"""Compare-and-set across operating-system processes: each writer has its own connection and interpreter.

The in-process tests race coroutines on one event loop; here four processes race on one key
of the same store (one SQLite file, one PostgreSQL schema), so the store's own locking, not
the event loop's turn-taking, is what keeps every increment.
"""

from __future__ import annotations

import asyncio
import sys
import time
from asyncio.subprocess import PIPE

from cadenza.stores import open_store
from stores.backends import PG_URL, Backend, PostgresBackend, SQLiteBackend
from stores.test_workspace import assert_counted

WRITERS = 4
INCREMENTS = 15

_CHILD = """
import asyncio, sys, time
from cadenza._errors import WorkspaceConflict
from cadenza.stores import open_store

async def main(url: str, writer: str, times: int, start: float) -> None:
    conflicts = 0
    async with open_store(url) as store:
        await asyncio.sleep(max(0.0, start - time.time()))  # every writer begins at the same moment
        for _ in range(times):
            while True:
                current = await store.workspace_get("run-1", "counter")
                version, value = (0, 0) if current is None else (current.version, int(current.value_json))
                await asyncio.sleep(0.001)  # widen the window between the read and the write
                try:
                    await store.workspace_put("run-1", "counter", str(value + 1), expected_version=version,
                                              writer=writer)
                    break
                except WorkspaceConflict:
                    conflicts += 1
    print(conflicts)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""


def url_of(backend: Backend) -> str:
    if isinstance(backend, SQLiteBackend):
        return str(backend.path)
    assert isinstance(backend, PostgresBackend)
    return f"{PG_URL}?schema={backend.schema}"


async def test_compare_and_set_across_processes_loses_no_increment(backend: Backend) -> None:
    url = url_of(backend)
    async with open_store(url):
        pass  # create the schema once, so the writers do not race to migrate it
    start = time.time() + 2.0  # after every interpreter has started and opened the store
    writers = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", _CHILD, url, f"process-{i}", str(INCREMENTS),
                                             str(start), stdout=PIPE, stderr=PIPE)
        for i in range(WRITERS)
    ]
    outcomes = await asyncio.wait_for(asyncio.gather(*(w.communicate() for w in writers)), timeout=120)
    for writer, (_, err) in zip(writers, outcomes, strict=True):
        assert writer.returncode == 0, err.decode()

    async with open_store(url) as store:
        await assert_counted(store, WRITERS * INCREMENTS)
        history = await store.workspace_history("run-1", "counter")
    assert {e.writer for e in history} == {f"process-{i}" for i in range(WRITERS)}
    assert sum(int(out) for out, _ in outcomes) > 0  # they did race: some writes were refused and retried
