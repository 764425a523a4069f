"""A recorded run under a token budget whose model calls a test can leave in flight, then kill (SIGKILL).

Usage: ``python budget_child.py DB LOG ACTION RUN_ID BUDGET HANG``

Ten independent steps each make one model call, which costs exactly its worst case (every input token
the budget's bound allows, and all of ``max_tokens``): what a provider bills is the most the budget
reserved. Each call appends ``billed <tokens>`` to LOG as it starts, as a provider bills a request once
it has it; with HANG ``yes`` it then prints ``IN_CALL <tokens>`` and never answers. ACTION is ``run``
or ``resume``; the last line is ``RESULT <json>``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from cadenza import Agent, Budget, Plan, Supervisor
from cadenza._usage import Usage
from cadenza.engine._accounts import input_token_bound
from cadenza.models.base import ModelRequest, ModelResponse
from cadenza.models.function import FunctionModel
from cadenza.stores.sqlite import SQLiteStore

DB, LOG, ACTION, RUN_ID, BUDGET, HANG = sys.argv[1:7]


async def bill(request: ModelRequest) -> ModelResponse:
    assert request.max_tokens is not None
    tokens = input_token_bound(request) + request.max_tokens
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"billed {tokens}\n".encode())
    finally:
        os.close(fd)
    if HANG == "yes":
        print(f"IN_CALL {tokens}", flush=True)
        await asyncio.Event().wait()
    usage = Usage(input_tokens=tokens - request.max_tokens, output_tokens=request.max_tokens, model_calls=1)
    return ModelResponse(text="done", usage=usage, model="function:billing")


async def main() -> None:
    model = FunctionModel(bill, name="billing")
    worker = Agent("w", "Work.", model=model, max_tokens=200)
    plan = Plan.of(*({"id": f"s{i}", "agent": "w", "instruction": "go"} for i in range(10)))
    lead = Supervisor("lead", workers=[worker], model=model, plan=plan)
    budget = Budget(tokens=int(BUDGET))
    async with SQLiteStore(DB) as store:
        if ACTION == "run":
            result = await lead.run("work", store=store, run_id=RUN_ID, budget=budget)  # type: ignore[arg-type]
        else:
            result = await lead.resume(RUN_ID, store=store, budget=budget)
    print("RESULT " + json.dumps({"status": result.status, "tokens": result.usage.total_tokens}), flush=True)


asyncio.run(main())
