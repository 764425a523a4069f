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
from opentelemetry.proto.trace.v1.trace_pb2 import Span

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


def research(collector: Collector, tmp_path: Path, *options: str) -> list[Span]:
    """Run the research example through the CLI, exporting to ``collector``; the spans it received."""
    done = subprocess.run(
        [sys.executable, "-m", "cadenza.cli", "--otlp", collector.url, "--store", str(tmp_path / "runs.db"), "run",
         str(EXAMPLES / "research.yaml"), "Compare", "--model", "simulated:fast", "--json", *options],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    assert collector.bodies and all(path == "/v1/traces" for path, _, _ in collector.bodies)
    assert all(kind == "application/x-protobuf" for _, kind, _ in collector.bodies)
    spans: list[Span] = []
    for _, _, body in collector.bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                spans += scope.spans
    return spans


def test_a_cli_run_exports_its_spans(collector: Collector, tmp_path: Path) -> None:
    names = [span.name for span in research(collector, tmp_path)]
    assert "invoke_agent lead" in names and "cadenza.plan" in names
    assert sum(name.startswith("cadenza.step ") for name in names) == 6  # the research plan's six steps
    assert sum(name.startswith("chat ") for name in names) == 6  # six workers (the writer's report is the answer)


@pytest.mark.parametrize("backend", ["process", "ray"])
def test_agents_in_worker_processes_export_their_spans_into_the_runs_trace(collector: Collector, tmp_path: Path,
                                                                           backend: str) -> None:
    """On Ray, the CLI starts a local Ray instance of its own; its actors export where the run does."""
    spans = research(collector, tmp_path, "--backend", backend, "--workers", "2")

    by_id = {span.span_id: span for span in spans}
    steps = [span for span in spans if span.name.startswith("cadenza.step ")]
    workers = [span for span in spans if span.name.startswith("invoke_agent ") and span.name != "invoke_agent lead"]
    assert len(steps) == 6 and len(workers) == 6
    assert sum(span.name.startswith("chat ") for span in spans) == 6
    assert len({span.trace_id for span in spans}) == 1  # one trace across the processes
    assert all(by_id[span.parent_span_id].name.startswith("cadenza.step ") for span in workers)
