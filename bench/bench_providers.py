"""What a provider adapter adds to each model call, against the local protocol servers the tests use.

Run:  python bench/bench_providers.py           (500 calls per variant and provider, about 30 s)
      python bench/bench_providers.py --quick   (50 calls: a smoke check for CI)

For each provider (Anthropic Messages, OpenAI Chat Completions) the same one-turn request is
made four ways, interleaved in rounds so that drift on this shared machine hits all alike:

- ``http``: the SDK's own HTTP client (httpx2) posting the JSON body the adapter would send:
  the floor, what the server and the socket cost;
- ``sdk``: the official SDK's ``create`` call, as a user of the SDK alone would make it;
- ``adapter``: cadenza's adapter (`AnthropicModel` / `OpenAIModel`): translation to the wire
  format and back, usage and cost;
- ``cadenza``: what an agent calls, `resolve_model(...)`: the adapter inside its retries and
  the endpoint's circuit breaker, called through the budget layer under a run budget.

Figures are medians per call in microseconds, and what each layer adds over the one below.
A 100-call fan-out through the whole stack is timed too. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from providers.anthropic_server import AnthropicServer
from providers.openai_server import OpenAIServer

Call = Callable[[], Awaitable[Any]]
SYSTEM = "You answer in one short sentence."
PROMPT = "Name one benefit of writing tests before code."


async def _variants(provider: str, url: str) -> tuple[dict[str, Call], Callable[[], Awaitable[None]]]:
    import httpx2  # the SDKs' HTTP client

    from cadenza._budget import Budget
    from cadenza._step_context import StepContext
    from cadenza.engine._accounts import BudgetAccount, call_model
    from cadenza.engine._run_state import RunState
    from cadenza.models import resolve_model
    from cadenza.models.base import ModelRequest, UserMessage

    request = ModelRequest(system=SYSTEM, messages=[UserMessage(content=PROMPT)], max_tokens=200)
    http = httpx2.AsyncClient()
    if provider == "anthropic":
        from anthropic import AsyncAnthropic

        from cadenza.models.anthropic_provider import AnthropicModel

        sdk_client = AsyncAnthropic(api_key="bench", base_url=url, max_retries=0)
        adapter = AnthropicModel("claude-haiku-4-5", api_key="bench", base_url=url)
        full = resolve_model("anthropic:claude-haiku-4-5", {"api_key": "bench", "base_url": url})
        body = {"model": "claude-haiku-4-5", "max_tokens": 200, "system": SYSTEM,
                "messages": [{"role": "user", "content": PROMPT}]}
        headers = {"authorization": "Bearer bench", "anthropic-version": "2023-06-01"}
        endpoint = f"{url}/v1/messages"

        async def sdk() -> Any:
            return await sdk_client.messages.create(model="claude-haiku-4-5", max_tokens=200, system=SYSTEM,
                                                    messages=[{"role": "user", "content": PROMPT}])
    else:
        from openai import AsyncOpenAI

        from cadenza.models.openai_provider import OpenAIModel

        base = f"{url}/v1"
        sdk_client = AsyncOpenAI(api_key="bench", base_url=base, max_retries=0)  # type: ignore[assignment]
        adapter = OpenAIModel("gpt-5-mini", api_key="bench", base_url=base)  # type: ignore[assignment]
        full = resolve_model("openai:gpt-5-mini", {"api_key": "bench", "base_url": base})
        body = {"model": "gpt-5-mini", "max_completion_tokens": 200,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]}
        headers = {"authorization": "Bearer bench"}
        endpoint = f"{base}/chat/completions"

        async def sdk() -> Any:
            return await sdk_client.chat.completions.create(  # type: ignore[attr-defined]
                model="gpt-5-mini", max_completion_tokens=200,
                messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}])

    async def raw() -> Any:
        reply = await http.post(endpoint, json=body, headers=headers)
        return reply.json()

    port = RunState("run_bench", budget=BudgetAccount("run", Budget(usd=1_000_000.0))).port()
    ctx = StepContext(run_id="run_bench", scope="bench/s1", step_id="s1", agent="bench", attempt=1, task_id="task_b",
                      ceiling=None, budgets=("run",), prior_calls=(), trace=(), turn=None)

    async def through_cadenza() -> Any:
        return await call_model(full, request, ctx, port)

    async def close() -> None:
        await http.aclose()
        await sdk_client.close()
        await adapter.aclose()
        await full.aclose()  # type: ignore[attr-defined]

    return {"http": raw, "sdk": sdk, "adapter": lambda: adapter.request(request),
            "cadenza": through_cadenza}, close


async def _measure(provider: str, server: Any, calls: int) -> dict[str, Any]:
    variants, close = await _variants(provider, server.url)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for call in variants.values():  # warm up: connections, imports, first-call caches
            for _ in range(5):
                await call()
        rounds = 10
        for _ in range(rounds):
            for name, call in variants.items():
                for _ in range(calls // rounds):
                    t0 = time.perf_counter()
                    await call()
                    samples[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await asyncio.gather(*(variants["cadenza"]() for _ in range(100)))
        fan_out = time.perf_counter() - t0
    finally:
        await close()
    return {"medians": {name: statistics.median(s) * 1e6 for name, s in samples.items()}, "fan_out_ms": fan_out * 1e3,
            "problems": list(server.problems)}


def _report(provider: str, figures: dict[str, Any]) -> None:
    m = figures["medians"]
    print(f"\n{provider}: median per call, us")
    below = {"http": None, "sdk": "http", "adapter": "sdk", "cadenza": "adapter"}
    for name, value in m.items():
        base = below[name]
        added = "" if base is None else f"  (+{value - m[base]:.0f} over {base})"
        print(f"  {name:<8} {value:8.0f}{added}")
    print(f"  cadenza over the SDK alone: +{m['cadenza'] - m['sdk']:.0f} us per call")
    print(f"  100 calls at once through cadenza: {figures['fan_out_ms']:.0f} ms")
    if figures["problems"]:
        print(f"  the server found problems in requests: {figures['problems'][:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50 calls per variant (a smoke check)")
    args = parser.parse_args()
    calls = 50 if args.quick else 500
    print(f"cadenza provider adapter overhead (python {sys.version.split()[0]}; {calls} calls per variant, "
          "local protocol servers on 127.0.0.1, stdlib threaded HTTP)")
    for provider, server_type in (("anthropic", AnthropicServer), ("openai", OpenAIServer)):
        server = server_type()
        with server.serve():
            figures = asyncio.run(_measure(provider, server, calls))
        _report(provider, figures)


if __name__ == "__main__":
    main()
