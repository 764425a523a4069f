"""``cadenza audit show`` and ``verify`` over an audit log written through `AuditLog` into a SQLite store."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner, Result

from cadenza.cli import app
from cadenza.security._audit import AuditKind, AuditLog
from cadenza.stores import PutRun, RunRow, Write, open_store

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
RUN = "run-7"
EVENTS: list[tuple[AuditKind, str, str, dict[str, object]]] = [
    ("run.started", "cadenza", RUN, {"process": 1}),
    ("agent.spawned", "lead", "critic", {"scope": "lead"}),
    ("message.sent", "lead", "lead/critic", {"message_id": "m1", "digest": "ab" * 32}),
    ("message.rejected", "lead/critic", "lead", {"message_id": "m2", "reason": "replayed"}),
    ("tool.called", "lead/critic", "search", {"arguments_digest": "cd" * 32, "outcome": "ok"}),
    ("tool.denied", "lead/critic", "send_mail", {"arguments_digest": "ef" * 32, "reason": "not granted"}),
    ("approval.requested", "lead/writer", "ap-1", {"tool": "publish"}),
    ("approval.decided", "user", "ap-1", {"approved": True, "by": "ana", "note": "fine — ünïcode"}),
]


def invoke(store: Path, *args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, ["--store", str(store), *args])


def seed(store: Path, *, audited: bool = True) -> None:
    """A run, with an audit log of every kind unless ``audited`` is False."""
    writes: list[Write] = [PutRun(RunRow(RUN, "research", "a goal", "success", T0, T0 + timedelta(seconds=3)))]
    if audited:
        log = AuditLog(RUN, write=lambda *w: writes.extend(w))
        for i, (kind, actor, subject, detail) in enumerate(EVENTS):
            log.append(kind, actor, subject, detail, at=T0 + timedelta(milliseconds=250 * i))

    async def go() -> None:
        async with open_store(str(store)) as s:
            await s.apply(writes)

    asyncio.run(go())


def tamper(store: Path, sql: str) -> None:
    with closing(sqlite3.connect(store, isolation_level=None)) as conn:
        conn.execute(sql)


def test_show_lists_every_record_in_order(store_path: Path) -> None:
    seed(store_path)

    result = invoke(store_path, "audit", "show", RUN)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"audit log of {RUN}: {len(EVENTS)} records"
    assert lines[1].split() == ["seq", "time", "kind", "actor", "subject", "detail"]
    rows = lines[2:]
    assert [row.split()[3] for row in rows] == [kind for kind, *_ in EVENTS]
    assert [int(row.split()[0]) for row in rows] == list(range(len(EVENTS)))
    local = (T0 + timedelta(milliseconds=250)).astimezone()
    assert f"{local:%Y-%m-%d %H:%M:%S}.250" in rows[1]
    assert "send_mail" in rows[5] and '{"arguments_digest":"efef' in rows[5]
    assert '{"approved":true,"by":"ana","note":"fine — ünïcode"}' in rows[7]
    assert "…" in rows[2]  # a long detail is shortened in the table


def test_show_json_has_every_field_of_every_record_and_the_head(store_path: Path) -> None:
    seed(store_path)

    result = invoke(store_path, "audit", "show", RUN, "--json")

    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    records = doc["records"]
    assert doc["run_id"] == RUN and len(records) == len(EVENTS)
    assert set(records[0]) == {"seq", "at", "kind", "actor", "subject", "detail", "prev_hash", "hash"}
    assert [(r["kind"], r["actor"], r["subject"], r["detail"]) for r in records] == EVENTS
    assert datetime.fromisoformat(records[1]["at"]) == T0 + timedelta(milliseconds=250)
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(records))
    assert doc["head"] == {"seq": len(EVENTS) - 1, "hash": records[-1]["hash"]}


def test_verify_an_intact_log_exits_0_and_prints_its_head(store_path: Path) -> None:
    seed(store_path)

    result = invoke(store_path, "audit", "verify", RUN)

    assert result.exit_code == 0, result.output
    first, second = result.output.splitlines()
    assert first == f"audit log of {RUN}: {len(EVENTS)} records, chain intact"
    head = json.loads(invoke(store_path, "audit", "show", RUN, "--json").output)["head"]
    assert second.startswith(f"head: seq {len(EVENTS) - 1}, sha256 {head['hash']} ")


def test_verify_a_tampered_log_exits_1_naming_the_first_bad_record(store_path: Path) -> None:
    seed(store_path)
    tamper(store_path, f"UPDATE audit SET detail_json = '{{\"approved\":false}}' WHERE run_id = '{RUN}' AND seq = 7")
    tamper(store_path, f"UPDATE audit SET kind = 'tool.called' WHERE run_id = '{RUN}' AND seq = 5")

    result = invoke(store_path, "audit", "verify", RUN)

    assert result.exit_code == 1, result.output
    first, second = result.output.splitlines()
    assert first.startswith(f"audit log of {RUN}: {len(EVENTS)} records, chain broken at seq 5: record seq 5 ")
    assert "was altered" in first
    assert second == "records before seq 5 are intact; from seq 5 on the log cannot be trusted"


def test_verify_names_a_record_removed_from_the_end(store_path: Path) -> None:
    seed(store_path)
    tamper(store_path, f"DELETE FROM audit WHERE run_id = '{RUN}' AND seq = {len(EVENTS) - 1}")

    result = invoke(store_path, "audit", "verify", RUN)

    assert result.exit_code == 1, result.output
    assert f"chain broken at seq {len(EVENTS) - 1}: record seq {len(EVENTS) - 1} was removed from the end" \
        in result.output


def test_a_run_without_audit_records(store_path: Path) -> None:
    seed(store_path, audited=False)

    shown = invoke(store_path, "audit", "show", RUN)
    verified = invoke(store_path, "audit", "verify", RUN)

    assert shown.exit_code == 0 and shown.output == f"run {RUN} has no audit records\n"
    assert json.loads(invoke(store_path, "audit", "show", RUN, "--json").output) == \
        {"run_id": RUN, "head": None, "records": []}
    assert verified.exit_code == 0 and verified.output == f"audit log of {RUN}: 0 records, chain intact\n"


def test_an_unknown_run_exits_2(store_path: Path, tmp_path: Path) -> None:
    seed(store_path)
    missing = tmp_path / "never-created.db"

    for store in (store_path, missing):
        for args in (("show", "nope"), ("show", "nope", "--json"), ("verify", "nope")):
            result = invoke(store, "audit", *args)
            assert result.exit_code == 2, (store, args, result.output)
            assert "nope" in result.output and result.output.startswith("error: ")
    assert not missing.exists()


def test_export_includes_the_audit_log_and_its_head(store_path: Path) -> None:
    seed(store_path)

    result = invoke(store_path, "export", RUN)

    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [r["kind"] for r in doc["audit"]] == [kind for kind, *_ in EVENTS]
    assert doc["audit"][7]["detail"] == EVENTS[7][3]
    assert doc["audit_head"] == {"seq": len(EVENTS) - 1, "hash": doc["audit"][-1]["hash"]}


def test_audit_help_lists_show_and_verify(store_path: Path) -> None:
    result = invoke(store_path, "audit", "--help")

    assert result.exit_code == 0
    assert "show" in result.output and "verify" in result.output
    assert "audit" in invoke(store_path, "--help").output
