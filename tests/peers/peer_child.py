"""A recorded peer conversation of seven turns, in a process the tests kill and resume.

Usage: ``python peer_child.py DB LOG ACTION RUN_ID SHAPE BUS``

ACTION is ``run`` or ``resume``; SHAPE is ``team`` (the conversation is the one step of a team's plan) or
``alone`` (it is the whole run); BUS is a bus URL (``memory://``, ``redis://...``) under the key prefix
``cadenza-test-RUN_ID``. Every turn appends ``agent|message it handles`` to LOG and prints ``TURN``
before its model answers (after a short pause, so that a kill lands inside turns as well as between them);
the end prints ``RESULT <json>``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys

from cadenza import Agent, PeerGroup, Plan, Supervisor
from cadenza._ids import RunId
from cadenza.buses import InProcessBus
from cadenza.buses.redis import RedisBus
from cadenza.models.base import ModelRequest, ToolCall, UserMessage
from cadenza.models.function import FunctionModel
from cadenza.stores.sqlite import SQLiteStore

DB, LOG, ACTION, RUN_ID, SHAPE, BUS = sys.argv[1:7]

SCRIPT = {
    ("author", "Write the poem"): ("critic", "draft 1"),
    ("critic", "draft 1"): ("author", "note 1"),
    ("author", "note 1"): ("critic", "draft 2"),
    ("critic", "draft 2"): ("author", "note 2"),
    ("author", "note 2"): ("critic", "draft 3"),
    ("critic", "draft 3"): ("author", "approved"),
}


def log(line: str) -> None:
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


async def reply(request: ModelRequest) -> list[ToolCall]:
    turn = next(m.content for m in request.messages if isinstance(m, UserMessage))
    found = re.search(r"<message>(.*)</message>", turn, re.S)
    assert found is not None
    message = found.group(1)
    log(f"{request.agent}|{message}")
    print("TURN", flush=True)
    await asyncio.sleep(0.02)
    if (request.agent, message) == ("author", "approved"):
        return [ToolCall(id="a", name="final_answer", arguments={"answer": "draft 3, approved"})]
    to, content = SCRIPT[(request.agent or "", message)]
    return [ToolCall(id="s", name="send_message", arguments={"to": to, "content": content})]


async def main() -> None:
    model = FunctionModel(reply)
    # a short claim_after: what a killed process left pending is delivered again while the resumed run goes on
    bus = InProcessBus() if BUS == "memory://" else RedisBus(BUS, prefix=f"cadenza-test-{RUN_ID}", claim_after=0.05)
    group = PeerGroup("talk", [Agent("author", model=model), Agent("critic", model=model)], entry="author", bus=bus)
    lead = Supervisor("lead", workers=[group], model="simulated",
                      plan=Plan.of({"id": "poem", "agent": "talk", "instruction": "Write the poem"}))
    async with bus, SQLiteStore(DB) as store:
        if SHAPE == "alone":
            result = await (group.run("Write the poem", store=store, run_id=RunId(RUN_ID)) if ACTION == "run"
                            else group.resume(RUN_ID, store=store))
            output, reason, usage = result.output, result.stop_reason, result.usage
        else:
            result = await (lead.run("A poem", store=store, run_id=RunId(RUN_ID)) if ACTION == "run"
                            else lead.resume(RUN_ID, store=store))
            step = result.steps[0]
            assert step.result is not None
            output, reason, usage = step.output, step.result.stop_reason, step.result.usage
        said = [json.loads(m.body_json)["content"] for m in await store.messages(RUN_ID) if m.kind == "message"]
        row = await store.get_run(RUN_ID)
    print("RESULT " + json.dumps({"status": result.status, "output": output, "said": said, "reason": reason,
                                  "calls": usage.model_calls, "tokens": usage.total_tokens, "stored": row.status, "stored_output": row.output_json}), flush=True)


asyncio.run(main())
