"""Raw cost of `Store.apply` per step, without the executor: what persistence adds to each step.

A step is one PutStep and two AddMessage (its task and its result). A chain commits one
step per batch; a fan-out commits all its steps in one batch.

Run:  python bench/bench_store_raw.py                       (SQLite in a temporary directory)
      python bench/bench_store_raw.py --postgres URL        (also PostgreSQL, in a throwaway schema)
      python bench/bench_store_raw.py --quick               (smaller sizes, for a smoke check)

Prints the best of a few repetitions in microseconds per step; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cadenza.stores import AddMessage, MessageRow, PostgresStore, PutRun, PutStep, RunRow, SQLiteStore, StepRow, Store


def _step(i: str, now: datetime) -> list[PutStep | AddMessage]:
    return [
        PutStep(StepRow("r", "lead", i, "worker", "success", 1, now, now, '{"output": "x"}', None, None, "{}")),
        AddMessage(MessageRow("r", "lead", i, "task", '{"goal": "g"}', now)),
        AddMessage(MessageRow("r", "lead", i, "result", '{"output": "x"}', now)),
    ]


async def _measure(make: Callable[[], Store], steps: int, repeats: int) -> tuple[float, float]:
    chain = fan_out = float("inf")
    for rep in range(repeats):
        async with make() as store:
            now = datetime.now(UTC)
            await store.apply([PutRun(RunRow("r", "bench", "goal", "running", now))])
            batches = [_step(f"{rep}c{i}", now) for i in range(steps)]
            start = time.perf_counter()
            for batch in batches:
                await store.apply(batch)
            chain = min(chain, (time.perf_counter() - start) / steps * 1e6)
            wide = [w for i in range(steps) for w in _step(f"{rep}f{i}", now)]
            start = time.perf_counter()
            await store.apply(wide)
            fan_out = min(fan_out, (time.perf_counter() - start) / steps * 1e6)
    return chain, fan_out


async def _drop_schema(url: str, schema: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _main(steps: int, repeats: int, postgres: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for synchronous in ("NORMAL", "FULL"):
            path = Path(tmp) / f"{synchronous}.db"
            chain, fan_out = await _measure(lambda: SQLiteStore(path, synchronous=synchronous), steps, repeats)  # noqa: B023
            print(f"sqlite {synchronous:<6}  chain {chain:7.1f} us/step   fan-out {fan_out:6.1f} us/step")
    if postgres:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        try:
            chain, fan_out = await _measure(lambda: PostgresStore(postgres, schema=schema), steps, repeats)
            print(f"postgres         chain {chain:7.1f} us/step   fan-out {fan_out:6.1f} us/step")
        finally:
            await _drop_schema(postgres, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", metavar="URL", help="also measure PostgreSQL at URL")
    parser.add_argument("--quick", action="store_true", help="100 steps, one repetition")
    args = parser.parse_args()
    steps, repeats = (100, 1) if args.quick else (1000, 3)
    print(f"{steps} steps (a PutStep and two AddMessage each), best of {repeats}")
    asyncio.run(_main(steps, repeats, args.postgres))


if __name__ == "__main__":
    main()
