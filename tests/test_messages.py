"""Task and Result survive a JSON round trip unchanged, whatever they carry."""

from __future__ import annotations

from datetime import UTC

from hypothesis import given
from hypothesis import strategies as st

from cadenza import ErrorInfo, Result, Task, Usage
from cadenza._messages import SCHEMA_VERSION

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ids = st.text(min_size=1, max_size=12)
times = st.datetimes(timezones=st.just(UTC))
usages = st.builds(
    Usage,
    input_tokens=st.integers(0, 10**9), output_tokens=st.integers(0, 10**9), cache_read_tokens=st.integers(0, 10**6),
    cache_write_tokens=st.integers(0, 10**6), model_calls=st.integers(0, 1000),
    cost_usd=st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
)
tasks = st.builds(
    Task, task_id=ids, run_id=ids, parent_task_id=st.none() | ids, step_id=st.none() | ids, sender=ids, recipient=ids,
    instruction=st.text(), input=json_values, context=st.dictionaries(ids, json_values, max_size=4),
    priority=st.integers(-10, 10), attempt=st.integers(1, 10), deadline=st.none() | times, depth=st.integers(0, 5),
)
results = st.builds(
    Result, task_id=ids, run_id=ids, agent=ids, status=st.sampled_from(["success", "failure", "partial"]),
    output=json_values, error=st.none() | st.builds(ErrorInfo, type=ids, message=st.text(), retryable=st.booleans()),
    usage=usages, started_at=times, finished_at=times,
)


@given(tasks)
def test_task_json_round_trip(task: Task) -> None:
    assert Task.model_validate_json(task.model_dump_json()) == task


@given(results)
def test_result_json_round_trip(result: Result) -> None:
    assert Result.model_validate_json(result.model_dump_json()) == result


def test_messages_carry_a_schema_version_and_kind() -> None:
    dumped = Task(task_id="t", run_id="r", sender="u", recipient="a", instruction="i").model_dump()
    assert dumped["schema_version"] == SCHEMA_VERSION and dumped["kind"] == "task"


@given(usages, usages)
def test_usage_adds_up_field_by_field(a: Usage, b: Usage) -> None:
    total = a + b
    assert total.model_calls == a.model_calls + b.model_calls
    assert total.total_tokens == a.total_tokens + b.total_tokens
    assert total.cost_usd == a.cost_usd + b.cost_usd


def test_an_error_says_its_code_and_stored_errors_without_one_get_it_from_their_type() -> None:
    from cadenza import ApprovalRequired, BudgetExceeded, ErrorCode, ErrorInfo
    from cadenza._errors import Rejection, StaleMessage

    assert ErrorInfo.from_exception(BudgetExceeded("spent")).code is ErrorCode.BUDGET_EXCEEDED
    assert ErrorInfo.from_exception(StaleMessage(Rejection("stale", "old"))).code is ErrorCode.STALE_MESSAGE
    assert ErrorInfo.from_exception(ApprovalRequired("wait", approval_id="apr_1")).code is ErrorCode.APPROVAL_REQUIRED
    assert ErrorInfo.from_exception(KeyError("x")).code is ErrorCode.INTERNAL

    stored = '{"type": "BudgetExceeded", "message": "the run budget is spent", "retryable": false}'
    assert ErrorInfo.model_validate_json(stored).code is ErrorCode.BUDGET_EXCEEDED
    assert ErrorInfo.model_validate_json('{"type": "RunFailed", "message": "m"}').code is ErrorCode.RUN_FAILED
    assert ErrorInfo.model_validate_json('{"type": "ValueError", "message": "m"}').code is ErrorCode.INTERNAL
    round_trip = ErrorInfo.from_exception(BudgetExceeded("spent"))
    assert ErrorInfo.model_validate_json(round_trip.model_dump_json()) == round_trip
