"""A Ray cluster of two nodes on this machine, started as a user starts one and stopped by killing its processes.

Used by the node-loss test and by ``bench/bench_ray_cluster.py``. Each node is a ``ray start`` with its own custom
resource (``head``, ``node2``) and its own temporary directory under one root, so that every process of a node
names that directory or descends from one that does: a node is killed by killing those, never with ``ray stop``
(which stops every Ray on the machine).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from processes import kill, processes_of

TESTS = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
START_DEADLINE = 120.0
"""Seconds one ``ray start`` may take."""


@dataclass(frozen=True)
class Cluster:
    address: str
    root: Path
    env: dict[str, str]
    """The environment of the nodes, and of a process that joins them (Ray's auth mode; ``tests`` importable)."""

    def processes(self, node: str | None = None) -> set[int]:
        """The live processes of ``node`` (``head`` or ``node2``), or of both."""
        return processes_of(str(self.root / node) if node else str(self.root))


@contextmanager
def two_nodes(cpus: int = 1) -> Iterator[Cluster]:
    """A head node and a second node, each with ``cpus`` CPUs; every process of both is killed on exit.

    Raises:
        RuntimeError: a node did not start (what ``ray start`` printed), or processes outlived the cluster.
    """
    root = Path(tempfile.mkdtemp(prefix="cz", dir="/tmp"))  # short: Ray's socket paths live under it
    port = _free_port()
    env = dict(os.environ, RAY_AUTH_MODE="disabled",
               PYTHONPATH=os.pathsep.join([str(TESTS), *(p for p in sys.path if p)]))
    try:
        _start(env, cpus, "--head", "--port", str(port), "--temp-dir", str(root / "head"), "--resources",
               '{"head": 100}', "--include-dashboard", "false")
        _start(env, cpus, "--address", f"127.0.0.1:{port}", "--temp-dir", str(root / "node2"), "--resources",
               '{"node2": 100}')
        yield Cluster(f"127.0.0.1:{port}", root, env)
    finally:
        left = kill(processes_of(str(root)))
        shutil.rmtree(root, ignore_errors=True)
        if left:
            raise RuntimeError(f"Ray processes outlived the cluster: {sorted(left)}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(env: dict[str, str], cpus: int, *args: str) -> None:
    done = subprocess.run([RAY, "start", *args, "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus),
                           "--disable-usage-stats"], env=env, capture_output=True, text=True, timeout=START_DEADLINE)
    if done.returncode != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
