"""A run whose one step calls a tool with side effects, in a process the tests kill, resume and approve.

Usage: ``python side_effect_child.py DB LOG ACTION RUN_ID SIDE_EFFECT APPROVAL [HANG]``

ACTION is ``run`` or ``resume``; SIDE_EFFECT a tool class; APPROVAL ``yes`` if the tool requires
approval, ``step`` if the agent does (each of its steps); HANG ``in-tool`` blocks inside the first tool call, ``after-tool`` blocks on the model
turn after it. Every tool execution appends ``call <key> <to>`` to LOG; every line on stdout is
a state the parent can act on: ``IN_TOOL``, ``AFTER_TOOL``, ``RESULT <json>``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from cadenza import Agent, Plan, Supervisor, ToolContext, tool
from cadenza.models.base import ModelRequest, ToolCall, ToolResultMessage
from cadenza.models.function import FunctionModel
from cadenza.stores.sqlite import SQLiteStore

DB, LOG, ACTION, RUN_ID, SIDE_EFFECT, APPROVAL = sys.argv[1:7]
HANG = sys.argv[7] if len(sys.argv) > 7 else ""


def say(line: str) -> None:
    print(line, flush=True)


def log(line: str) -> None:
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


async def send(to: str, context: ToolContext) -> str:
    """Send a message.

    Args:
        to: the recipient.
    """
    log(f"call {context.idempotency_key} {to}")
    if HANG == "in-tool":
        say("IN_TOOL")
        await asyncio.Event().wait()
    return f"sent to {to}"


def reply(request: ModelRequest) -> str | list[ToolCall] | Any:
    results = [m for m in request.messages if isinstance(m, ToolResultMessage)]
    if request.agent == "mailer" and not results:
        return [ToolCall(id="c1", name="send", arguments={"to": "ada@example.org"})]
    if request.agent == "mailer":
        if HANG == "after-tool":
            say("AFTER_TOOL")
            return asyncio.Event().wait()  # the FunctionModel awaits it: blocks forever
        return "mailer saw: " + results[-1].content
    return f"{request.agent} done"


async def main() -> None:
    send_tool = tool(send, side_effect=SIDE_EFFECT, requires_approval=APPROVAL == "yes")  # type: ignore[arg-type]
    model = FunctionModel(reply)
    mailer = Agent("mailer", "Send mail.", model=model, tools=[send_tool], requires_approval=APPROVAL == "step")
    lead = Supervisor("lead", workers=[mailer], model=model,
                      plan=Plan.of({"id": "mail", "agent": "mailer", "instruction": "Mail Ada"}))
    async with SQLiteStore(DB) as store:
        if ACTION == "run":
            result = await lead.run("mail", store=store, run_id=RUN_ID)  # type: ignore[arg-type]
        else:
            result = await lead.resume(RUN_ID, store=store)
    step_output = result.steps[0].output if result.steps else None
    say("RESULT " + json.dumps({"status": result.status, "step": step_output,
                                "error": result.error.message if result.error else None}))


asyncio.run(main())
