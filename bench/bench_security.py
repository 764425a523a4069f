"""What signing costs: microseconds per seal and per open of an Envelope, HMAC-SHA256 against Ed25519.

Run:  python bench/bench_security.py            (20,000 typical and 2,000 large envelopes per scheme)
      python bench/bench_security.py --quick    (a tenth of that: a smoke check, a few seconds)

A typical Task carries about 1 KB of JSON (an instruction and a dependency's output), a large
one about 50 KB (many dependency outputs in its context). ``seal`` is `Keyring.seal`: the
payload serialised, a nonce, the signing input, the signature and the Envelope; ``open`` is
`Keyring.open(..., model=Task)` of a copy, as an envelope that came back from another process
arrives: the checks, the signature, the replay cache and the payload parsed back into a Task.
``in process`` is what a step whose Task and Result stay in the run's process pays:
`Keyring.seal_local` (a `LocalEnvelope`, neither serialised nor signed) and its open (the
checks and the replay cache). Both go through the same Keyring, only its ``key_factory`` differs;
Ed25519 uses the ``cryptography`` package when it can be imported (it is not a cadenza
dependency: ``pip install cryptography`` to measure it). ``serialise only`` is what any
message crossing a process costs unsigned (model_dump_json plus model_validate_json), the floor
under seal plus open. Each figure is the median of 5 rounds; every envelope is opened once.
Per step the executor would seal and open two envelopes (the Task out, the Result back),
compared with the core per-step overhead measured here by ``bench_core.py``'s zero-latency chain.

Then the 1,000-way fan-out at zero latency (and the 1,000-step chain), each variant in a fresh
process: no security (``sign_messages=False``, no store), signed messages, and signed messages
with the run recorded in SQLite, which adds the audit log (two message records per step, plus
the run's own) to the store's writes; the store without audit is `bench_store.py`'s figure.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from bench_core import _run

ROUNDS = 5


class Ed25519Key:
    """A `SigningKey` for Ed25519 (``cryptography``), to measure the alternative through the same Keyring."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._private = Ed25519PrivateKey.generate()
        self._public = self._private.public_key()

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def verify(self, data: bytes, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self._public.verify(signature, data)
        except InvalidSignature:
            return False
        return True


def _task(size: int) -> Any:
    """A Task whose JSON is ``size`` bytes: an instruction and eight dependency outputs in its context."""
    from cadenza import Task

    words = "the quick brown fox jumps over the lazy dog " * (size // 40 + 1)

    def build(text: int) -> Any:
        context = {f"s{i}": {"summary": words[i : i + text // 8], "sources": [f"https://example.org/{i}/{j}" for j in range(2)]}
                   for i in range(8)}
        return Task.model_validate({"task_id": "task_0123456789abcdef", "run_id": "run_bench", "sender": "lead",
                                    "recipient": "lead/researcher", "step_id": "s9",
                                    "instruction": "Summarise what the sources say about X.", "context": context})

    return build(max(size - len(build(0).model_dump_json()), 0))


def _median_us(rounds: list[float], n: int) -> float:
    return statistics.median(rounds) / n * 1e6


def _measure(key_factory: Callable[[], Any], task: Any, n: int, *, local: bool = False) -> dict[str, float]:
    """Seal and open ``n`` envelopes: as data (each opened as a copy, as one that came back from another process is:
    the signature checked and the payload parsed), or, with ``local``, as `LocalEnvelope` opened where sealed."""
    from cadenza import Task
    from cadenza.security._identity import Keyring

    keyring = Keyring("run_bench", key_factory=key_factory)
    lead = keyring.issue("lead")
    keyring.issue("lead/researcher")
    seal_one = keyring.seal_local if local else keyring.seal
    for envelope in [seal_one(lead, "lead/researcher", task) for _ in range(min(n, 200))]:  # warm up
        keyring.open(envelope, recipient="lead/researcher", model=Task)
    seal: list[float] = []
    open_: list[float] = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        envelopes = [seal_one(lead, "lead/researcher", task) for _ in range(n)]
        seal.append(time.perf_counter() - t0)
        arrived = envelopes if local else [envelope.model_copy() for envelope in envelopes]
        t0 = time.perf_counter()
        for envelope in arrived:
            keyring.open(envelope, recipient="lead/researcher", model=Task)
        open_.append(time.perf_counter() - t0)
    return {"seal": _median_us(seal, n), "open": _median_us(open_, n)}


def _serialise_only(task: Any, n: int) -> float:
    from cadenza import Task

    rounds = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for _ in range(n):
            Task.model_validate_json(task.model_dump_json())
        rounds.append(time.perf_counter() - t0)
    return _median_us(rounds, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of the envelopes (a smoke check)")
    parser.add_argument("--workload", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        shape, n, variant = args.workload
        _workload_child(shape, int(n), variant)
        return
    from cadenza.security._identity import HmacKey

    scale = 10 if args.quick else 1
    sizes = {"typical": (1_000, 20_000 // scale), "large": (50_000, 2_000 // scale)}
    schemes: dict[str, tuple[Callable[[], Any], int]] = {"HMAC-SHA256": (HmacKey.generate, 1)}
    try:
        import cryptography

        schemes[f"Ed25519 (cryptography {cryptography.__version__})"] = (Ed25519Key, 4)  # slower: fewer iterations
        missing = ""
    except ImportError:
        missing = "Ed25519 not measured: the cryptography package is not installed (pip install cryptography)"
    print(f"cadenza envelope benchmarks (python {sys.version.split()[0]}; median of {ROUNDS} rounds)")
    load = os.getloadavg()[0]
    busy = "  (busy: figures will be high and noisy)" if load > 0.5 * (os.cpu_count() or 1) else ""
    print(f"load average {load:.2f} on {os.cpu_count()} CPUs{busy}")
    steps = 500 if args.quick else 2_000
    core = _run("configured", "runtime", "chain", steps)["cpu_us_per_step"]
    print(f"core per-step cost (bench_core, the runtime alone, zero-latency chain of {steps} steps): {core:.1f} us CPU/step\n")
    print(f"  {'scheme':<42} {'message':<16} {'seal us':>8} {'open us':>8} {'both us':>8} {'per step':>9} {'of core':>8}")
    for size_name, (size, n) in sizes.items():
        task = _task(size)
        base = _serialise_only(task, n)
        label = f"{size_name} ({len(task.model_dump_json()) / 1000:.0f} KB)"
        print(f"  {'serialise only (no signature)':<42} {label:<16} {'':>8} {'':>8} {base:8.1f} {2 * base:9.1f} "
              f"{2 * base / core:8.0%}")
        variants = [(f"{scheme}, as data", factory, slower, False) for scheme, (factory, slower) in schemes.items()]
        variants.append(("HMAC-SHA256, in process (local)", HmacKey.generate, 1, True))
        for scheme, factory, slower, local in variants:
            r = _measure(factory, task, max(n // slower, 100), local=local)
            both = r["seal"] + r["open"]
            print(f"  {scheme:<42} {label:<16} {r['seal']:8.1f} {r['open']:8.1f} {both:8.1f} {2 * both:9.1f} "
                  f"{2 * both / core:8.0%}")
    if missing:
        print(f"\n{missing}")
    print("\n'per step' is two envelopes (the Task out, the Result back); 'of core' is that against the core "
          "per-step overhead above.")
    _workloads(100 if args.quick else 1_000, 1 if args.quick else 3)


_VARIANTS = {"plain": "no security, no store", "signed": "signed messages", "audited": "signed + SQLite store and audit"}


def _workload_child(shape: str, n: int, variant: str) -> None:
    import asyncio
    import gc
    import tempfile
    import time

    from bench_store import _team, _warm_up

    async def measure() -> float:
        await _warm_up()
        team, steps = _team(shape, n)
        with tempfile.TemporaryDirectory() as where:
            store = None
            if variant == "audited":
                from cadenza.stores import SQLiteStore

                store = SQLiteStore(os.path.join(where, "runs.db"))
                await store.open()
            gc.collect()
            t0 = time.perf_counter()
            result = await team.run("go", store=store, sign_messages=variant != "plain")
            elapsed = time.perf_counter() - t0
            if store is not None:
                await store.close()
        if result.status != "success":
            raise SystemExit(f"broken run: {result.status}")
        return elapsed / steps * 1e6

    print(json.dumps(asyncio.run(measure())))


def _workloads(n: int, runs: int) -> None:
    print(f"\nper-step time at zero latency, fresh process per run, median of {runs}:")
    print(f"  {'workload':<28} " + " ".join(f"{label:>32}" for label in _VARIANTS.values()))
    for shape in ("fanout", "chain"):
        figures = {}
        for variant in _VARIANTS:
            samples = []
            for _ in range(runs):
                out = subprocess.run([sys.executable, __file__, "--workload", shape, str(n), variant],
                                     capture_output=True, text=True, check=True)
                samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
            figures[variant] = statistics.median(samples)
        name = f"{n}-way fan-out + join" if shape == "fanout" else f"chain of {n}"
        cells = [f"{figures['plain']:>25.1f} us/step"]
        cells += [f"{figures[v]:>12.1f} us (+{figures[v] - figures['plain']:.1f})".rjust(32) for v in ("signed", "audited")]
        print(f"  {name:<28} " + " ".join(cells))


if __name__ == "__main__":
    main()
