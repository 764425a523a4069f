"""A recorded run read back from its store rows alone (no workflow file, no model): the data ``cadenza show`` and
``cadenza trace`` print and the web viewer draws, so the terminal and the browser give one account of a run."""

from ._calls import Call, calls_by_step
from ._conversations import conversation_json, conversations, not_handled, rounds
from ._show import (
    StepState,
    TeamState,
    approval_json,
    approval_subject,
    error_of,
    is_nested,
    result_of,
    show_json,
    spent,
    teams,
    tool_call_json,
    tool_calls,
    tool_calls_by_step,
    usage_in,
)
from ._text import as_text, shorten
from ._timeline import TraceLine, critical_steps, offset, trace_lines

__all__ = (
    "Call",
    "StepState",
    "TeamState",
    "TraceLine",
    "approval_json",
    "approval_subject",
    "as_text",
    "calls_by_step",
    "conversation_json",
    "conversations",
    "critical_steps",
    "error_of",
    "is_nested",
    "not_handled",
    "offset",
    "result_of",
    "rounds",
    "shorten",
    "show_json",
    "spent",
    "teams",
    "tool_call_json",
    "tool_calls",
    "tool_calls_by_step",
    "trace_lines",
    "usage_in",
)
