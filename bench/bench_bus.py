"""Each bus's figures (throughput, latency, many agents messaging each other) and a whole peer group.

Run:  python bench/bench_bus.py            (a few seconds, then the Redis bus on 127.0.0.1:6379, and a peer group
                                            whose members are served by 4 worker processes over it)
      python bench/bench_bus.py --quick    (smaller sizes, for a smoke check)
      python bench/bench_bus.py --redis URL   (another Redis server; --redis none skips the Redis bus)

Each message is published, received and acknowledged, as a peer group does with every message
(the envelope around it and its record in the store are measured with the peer group, not here).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import tracemalloc
import uuid
from typing import TYPE_CHECKING

from cadenza._ids import ScopePath
from cadenza.buses import Bus, Inbox, InProcessBus

if TYPE_CHECKING:
    from cadenza import PeerGroup

GROUP = ScopePath("bench")
BODY = "x" * 512
"""About the size of a small signed envelope."""


async def throughput(bus: Bus, n: int) -> float:
    """Messages a second through one inbox: a producer publishing, a consumer receiving and acknowledging."""
    box = Inbox("run_bench", GROUP, "sink")

    async def produce() -> None:
        for _ in range(n):
            await bus.publish(box, BODY)
            await asyncio.sleep(0) if random.random() < 0.01 else None

    async def consume() -> None:
        for _ in range(n):
            delivery = await bus.receive(box, consumer="c", wait=10)
            assert delivery is not None
            await bus.ack(delivery)

    started = time.perf_counter()
    await asyncio.gather(produce(), consume())
    return n / (time.perf_counter() - started)


async def latency(bus: Bus, n: int) -> list[float]:
    """Seconds from publish to receipt, over ``n`` ping-pongs between two agents."""
    ping, pong = Inbox("run_bench", GROUP, "ping"), Inbox("run_bench", GROUP, "pong")
    samples: list[float] = []

    async def echo() -> None:
        for _ in range(n):
            delivery = await bus.receive(pong, consumer="pong", wait=10)
            assert delivery is not None
            await bus.publish(ping, delivery.body)
            await bus.ack(delivery)

    echoing = asyncio.create_task(echo())
    for _ in range(n):
        sent = time.perf_counter()
        await bus.publish(pong, BODY)
        delivery = await bus.receive(ping, consumer="ping", wait=10)
        assert delivery is not None
        samples.append((time.perf_counter() - sent) / 2)
        await bus.ack(delivery)
    await echoing
    return samples


async def many_agents(bus: Bus, agents: int, messages: int) -> float:
    """``agents`` agents, each handling its inbox and forwarding to a random peer, until ``messages`` were handled:
    seconds per message."""
    boxes = [Inbox("run_bench", GROUP, f"a{i}") for i in range(agents)]
    handled = 0
    done = asyncio.Event()

    async def agent(me: Inbox) -> None:
        nonlocal handled
        while not done.is_set():
            delivery = await bus.receive(me, consumer=me.agent, wait=0.05)
            if delivery is None:
                continue
            handled += 1
            if handled >= messages:
                done.set()
            else:
                await bus.publish(random.choice(boxes), delivery.body)
            await bus.ack(delivery)

    started = time.perf_counter()
    for box in boxes[: agents // 4 or 1]:  # a quarter of the group starts with a message
        await bus.publish(box, BODY)
    await asyncio.gather(*(agent(box) for box in boxes))
    return (time.perf_counter() - started) / handled


async def peak_memory(agents: int, messages: int) -> int:
    """The peak of what a fresh bus and its agents allocate in `many_agents` (tracemalloc, bytes)."""
    tracemalloc.start()
    try:
        async with InProcessBus() as bus:
            await many_agents(bus, agents, messages)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def crowd(agents: int, messages: int, bus: Bus | None = None, spread: int = 1) -> PeerGroup:
    """A `PeerGroup` of ``agents`` agents whose model forwards each message to ``spread`` random peers, until
    ``messages`` were sent; the same group (and fingerprint) in every process that builds it. With a spread of 1 the
    conversation is one chain of turns; with more, ever more turns wait at once."""
    from cadenza import Agent, PeerGroup, StopPolicy
    from cadenza.models.base import ModelRequest, ToolCall
    from cadenza.models.function import FunctionModel

    names = [f"a{i}" for i in range(agents)]
    rng = random.Random(1)

    def forward(request: ModelRequest) -> list[ToolCall]:
        peers = rng.sample([n for n in names if n != request.agent], spread)
        return [ToolCall(id=f"s{i}", name="send_message", arguments={"to": to, "content": f"note {rng.random():.6f}"})
                for i, to in enumerate(peers)]

    model = FunctionModel(forward)
    return PeerGroup("crowd", [Agent(n, model=model) for n in names], entry=names[0], bus=bus,
                     stop=StopPolicy(max_messages=messages, ping_pong=messages, answer_by=[names[0]]))


async def peer_group(agents: int, messages: int) -> tuple[float, int, str]:
    """A whole `PeerGroup` of ``agents`` agents (`crowd`: signed messages, the in-process bus) until its message
    limit: seconds per message, peak memory (tracemalloc, bytes), and why it stopped."""
    group = crowd(agents, messages)
    started = time.perf_counter()
    result = await group.run("Pass it on")
    elapsed = time.perf_counter() - started
    tracemalloc.start()  # a second run for memory: tracemalloc slows what it traces several times over
    try:
        await group.run("Pass it on")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return elapsed / max(1, len(result.messages) - 1), peak, result.error.code if result.error else "answer"


async def across_processes(redis: str, agents: int, messages: int, processes: int,
                           spread: int = 1) -> tuple[float, float, str]:
    """`crowd` on the Redis bus, its members served by ``processes`` worker processes (this file with ``--serve``,
    each a `PeerServer` for its share of the agents) and the conversation held here: seconds per message with the
    workers, the same without them (every turn in this process), and why it stopped."""
    import sys

    from cadenza.buses.redis import RedisBus

    prefix = f"cadenza-bench-{uuid.uuid4().hex[:8]}"
    names = [f"a{i}" for i in range(agents)]
    shares = [names[i::processes] for i in range(processes)]
    workers = [await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--redis", redis, "--prefix", prefix, "--agents", str(agents), "--serve",
        ",".join(share), stdout=asyncio.subprocess.PIPE) for share in shares]
    try:
        for worker in workers:  # each says "ready" once it is on its members' rolls
            assert worker.stdout is not None
            async with asyncio.timeout(60):
                assert (await worker.stdout.readline()).strip() == b"ready"
        async with RedisBus(redis, prefix=prefix) as bus:
            group = crowd(agents, messages, bus, spread)
            started = time.perf_counter()
            result = await group.run("Pass it on")
            served = (time.perf_counter() - started) / max(1, len(result.messages) - 1)
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.terminate()
            async with asyncio.timeout(30):
                await worker.communicate()
    async with RedisBus(redis, prefix=prefix) as bus:
        started = time.perf_counter()
        alone = await crowd(agents, messages, bus, spread).run("Pass it on")
        here = (time.perf_counter() - started) / max(1, len(alone.messages) - 1)
    return served, here, result.error.code if result.error else "answer"


async def serve(redis: str, prefix: str, agents: int, names: list[str]) -> None:
    """``--serve``: take the turns of ``names`` of `crowd` until SIGTERM; print "ready" once on their rolls."""
    import signal

    from cadenza.buses.redis import RedisBus
    from cadenza.patterns._peer_serve import PeerServer

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with RedisBus(redis, prefix=prefix) as bus:
        server = PeerServer(crowd(agents, 1, bus), names, bus)
        serving = asyncio.create_task(server.serve(stop))
        await server.ready.wait()
        print("ready", flush=True)
        await serving


async def figures(bus: Bus, n: int, size: int, messages: int) -> None:
    """Throughput, latency and a ``size``-agent group on ``bus``, printed."""
    print(f"  throughput, one inbox:   {await throughput(bus, n):,.0f} messages/s  ({n:,} messages)")
    samples = sorted(await latency(bus, max(10, n // 10)))
    p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99) - 1]
    print(f"  delivery latency:        p50 {p50 * 1e6:.1f} us, p99 {p99 * 1e6:.1f} us  ({len(samples):,} ping-pongs)")
    per_message = await many_agents(bus, size, messages)
    print(f"  {size}-agent group:        {per_message * 1e6:.1f} us per message handled ({messages:,} messages)")


async def run(quick: bool, redis: str | None) -> None:
    n = 5_000 if quick else 100_000
    size, messages = (20, 2_000) if quick else (100, 50_000)
    print(f"in-process bus, {len(BODY)}-byte messages")
    async with InProcessBus() as bus:
        await figures(bus, n, size, messages)
    peak = await peak_memory(size, messages // 10)
    print(f"  {size}-agent group's peak: {peak / 1024:.0f} KiB allocated ({messages // 10:,} messages)")
    if redis is not None:
        from cadenza.buses.redis import RedisBus

        async with RedisBus(redis, prefix=f"cadenza-bench-{uuid.uuid4().hex[:8]}") as bus:
            print(f"Redis bus ({bus.url}, local server), {len(BODY)}-byte messages")
            try:
                await figures(bus, n // 10, size, messages // 10)
            finally:
                await bus.discard("run_bench", GROUP)
    agents, sent = (20, 200) if quick else (100, 2_000)
    per_message, peak, stop = await peer_group(agents, sent)
    print(f"peer group of {agents} agents (function model, signed): {per_message * 1e6:.0f} us "
          f"per message ({sent:,} messages, stopped by {stop}), peak {peak / 2**20:.1f} MiB")
    if redis is not None:
        processes = 4
        for spread, shape in ((1, "one chain of turns"), (2, "each turn messages two peers")):
            served, here, stop = await across_processes(redis, agents, sent, processes, spread)
            print(f"the same group on Redis ({shape}), its members served by {processes} worker processes: "
                  f"{served * 1e6:.0f} us per message, {1 / served:,.0f} messages/s ({sent:,} messages, stopped by "
                  f"{stop}); every turn in one process on Redis: {here * 1e6:.0f} us per message")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke check")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the Redis server for the Redis bus; "
                        "'none' to skip it")
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)  # a worker process of across_processes
    parser.add_argument("--prefix", default="cadenza", help=argparse.SUPPRESS)
    parser.add_argument("--agents", type=int, default=100, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(serve(args.redis, args.prefix, args.agents, args.serve.split(",")))
        return
    asyncio.run(run(args.quick, None if args.redis == "none" else args.redis))


if __name__ == "__main__":
    main()
