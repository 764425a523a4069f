"""``cadenza --otlp ENDPOINT``: a real CLI process exports its run's spans to an OTLP/HTTP collector."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Collector:
    """Accepts OTLP/HTTP trace exports (POST /v1/traces, protobuf) and keeps their bodies."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, str, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.bodies.append((self.path, self.headers.get("content-type", ""), body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


def test_a_cli_run_exports_its_spans(collector: Collector, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cadenza.cli", "--otlp", collector.url, "--store", str(tmp_path / "runs.db"), "run",
         str(EXAMPLES / "research.yaml"), "Compare", "--model", "simulated:fast", "--json"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    assert collector.bodies and all(path == "/v1/traces" for path, _, _ in collector.bodies)
    assert all(kind == "application/x-protobuf" for _, kind, _ in collector.bodies)
    names = []
    for _, _, body in collector.bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                names += [span.name for span in scope.spans]
    assert "invoke_agent lead" in names and "cadenza.plan" in names
    assert sum(name.startswith("cadenza.step ") for name in names) == 6  # the research plan's six steps
    assert sum(name.startswith("chat ") for name in names) == 7  # six workers and the synthesiser
