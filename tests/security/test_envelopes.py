"""Attacks on signed envelopes are refused, each for its own reason; genuine envelopes always pass."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, field_serializer

from cadenza import PeerMessage, Result, Task
from cadenza._errors import CadenzaError, ConfigError
from cadenza._ids import AgentId, RunId, ScopePath
from cadenza.security._identity import (
    AgentIdentity,
    Envelope,
    ForgedSender,
    Keyring,
    MalformedMessage,
    Rejection,
    ReplayedMessage,
    SecurityError,
    StaleMessage,
    TamperedMessage,
    UnknownAgent,
    WrongKind,
    WrongRecipient,
    WrongRun,
    _signing_input,
)

RUN = "run_alpha"
TRACE = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "vendor=1"}
T0 = 1_800_000_000.25


class Clock:
    """Wall-clock seconds that only move when the test says."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Run:
    clock: Clock
    keyring: Keyring
    rejections: list[Rejection]
    lead: AgentIdentity
    researcher: AgentIdentity
    writer: AgentIdentity

    def task(self, sender: str = "lead", recipient: str = "lead/researcher", **extra: Any) -> Task:
        return Task(task_id="task_1", run_id=self.keyring.run_id, sender=sender, recipient=recipient,  # type: ignore[arg-type]
                    instruction='Find "sources" on X, naïvely \\ carefully ✓', **extra)

    def result(self, agent: str = "lead/researcher") -> Result:
        now = datetime.fromtimestamp(self.clock.now, UTC)
        return Result(task_id="task_1", run_id=self.keyring.run_id, agent=agent, status="success",  # type: ignore[arg-type]
                      output={"summary": "three papers"}, started_at=now, finished_at=now)

    def sealed_task(self, **extra: Any) -> Envelope:
        return self.keyring.seal(self.lead, "lead/researcher", self.task(**extra), trace=TRACE)


def make_run(run_id: str = RUN, *, clock: Clock | None = None, window: float = 60.0) -> Run:
    clock = clock or Clock()
    rejections: list[Rejection] = []
    keyring = Keyring(run_id, clock=clock, window=window, on_reject=rejections.append)
    return Run(clock, keyring, rejections, keyring.issue("lead"), keyring.issue("lead/researcher"),
               keyring.issue("lead/writer"))


@pytest.fixture
def run() -> Run:
    return make_run()


def forge(run: Run, identity: AgentIdentity, **fields: Any) -> Envelope:
    """An envelope signed with ``identity``'s real key over any fields at all: what a worker holding its own key can make."""
    key = run.keyring._keys[identity.key_id].key
    values: dict[str, Any] = {
        "kind": "task", "run_id": run.keyring.run_id, "sender": identity.agent, "recipient": "lead/researcher",
        "key_id": identity.key_id, "nonce": os.urandom(16).hex(),
        "issued_at": datetime.fromtimestamp(run.clock.now, UTC), "trace": None, "payload": "{}",
    }
    values.update(fields)
    return Envelope(**values, signature=key.sign(_signing_input(**values)).hex())


def refused(run: Run, error: type[SecurityError], reason: str, envelope: Envelope | str | bytes, **kwargs: Any) -> SecurityError:
    """Open ``envelope``, expecting exactly ``error``; check the audit callback saw the same rejection."""
    before = len(run.rejections)
    kwargs.setdefault("recipient", "lead/researcher")
    with pytest.raises(error) as caught:
        run.keyring.open(envelope, **kwargs)
    exc = caught.value
    assert type(exc) is error and exc.reason == reason and isinstance(exc, CadenzaError)
    assert run.rejections[before:] == [exc.rejection]
    return exc


# -- genuine envelopes


def test_a_task_and_a_result_round_trip(run: Run) -> None:
    task = run.task()
    envelope = run.keyring.seal(run.lead, "lead/researcher", task, trace=TRACE)
    assert (envelope.kind, envelope.sender, envelope.recipient, envelope.trace) == ("task", "lead", "lead/researcher", TRACE)
    assert len(envelope.nonce) == 32 and envelope.issued_at == datetime.fromtimestamp(T0, UTC)
    assert run.keyring.open(envelope, recipient="lead/researcher", expected_kind="task", model=Task) == task

    result = run.result()
    back = run.keyring.seal(run.researcher, "lead", result)
    wire = back.model_dump_json()  # as it arrives from another process
    assert run.keyring.open(wire, recipient="lead", expected_kind="result", model=Result) == result
    assert run.rejections == []


def test_without_a_model_the_payload_comes_back_as_json(run: Run) -> None:
    opened = run.keyring.open(run.sealed_task(), recipient=None)
    assert isinstance(opened, dict) and opened["sender"] == "lead" and str(opened["instruction"]).startswith("Find")


class _Note(BaseModel):
    """A peer message: any model, with no kind of its own."""

    text: str


def test_peer_messages_need_their_kind_said() -> None:
    run = make_run()
    with pytest.raises(ConfigError, match="kind"):
        run.keyring.seal(run.researcher, "lead/writer", _Note(text="hello"))


def peer_message(sender: str = "researcher", recipient: str = "writer") -> PeerMessage:
    return PeerMessage(message_id="msg_1", run_id=RunId(RUN), group=ScopePath("lead"), sender=AgentId(sender),
                       recipient=AgentId(recipient), round=0, content="hello", sent_at=datetime.now(UTC))


def test_a_peer_message_is_sealed_and_opened_like_a_task() -> None:
    run = make_run()
    message = peer_message()
    envelope = run.keyring.seal(run.researcher, "lead/writer", message)
    assert envelope.kind == "message"
    assert run.keyring.open(envelope, recipient="lead/writer", expected_kind="message", model=PeerMessage) == message


@pytest.mark.parametrize(("sender", "recipient", "claim"), [("writer", "writer", "sender"),
                                                           ("researcher", "lead", "recipient")])
def test_a_peer_message_naming_another_sender_or_recipient_is_forged(sender: str, recipient: str, claim: str) -> None:
    run = make_run()
    with pytest.raises(ForgedSender, match=f"message's {claim} is"):
        run.keyring.seal(run.researcher, "lead/writer", peer_message(sender, recipient))


# -- forged senders


def test_an_agent_cannot_seal_a_task_naming_another_sender(run: Run) -> None:
    with pytest.raises(ForgedSender, match="sender is 'lead'"):
        run.keyring.seal(run.researcher, "lead/writer", run.task(sender="lead", recipient="lead/writer"))
    assert [r.reason for r in run.rejections] == ["forged"]


def test_a_payload_naming_another_sender_than_the_envelope_is_forged(run: Run) -> None:
    # The researcher signs, with its own real key, an envelope from itself whose Task claims to be the lead's.
    envelope = forge(run, run.researcher, recipient="lead/writer",
                     payload=run.task(sender="lead", recipient="lead/writer").model_dump_json())
    exc = refused(run, ForgedSender, "forged", envelope, recipient="lead/writer", model=Task)
    assert "sender is 'lead'" in str(exc) and exc.rejection.sender == "lead/researcher"
    # and without a model, from the raw JSON
    envelope = forge(run, run.researcher, recipient="lead/writer",
                     payload=run.task(sender="lead", recipient="lead/writer").model_dump_json())
    refused(run, ForgedSender, "forged", envelope, recipient="lead/writer")


def test_a_result_naming_another_agent_is_forged(run: Run) -> None:
    envelope = forge(run, run.writer, kind="result", recipient="lead", payload=run.result(agent="lead/researcher").model_dump_json())
    exc = refused(run, ForgedSender, "forged", envelope, recipient="lead", model=Result)
    assert "agent is 'lead/researcher'" in str(exc)


def test_a_task_addressed_in_its_payload_to_someone_else_is_forged(run: Run) -> None:
    envelope = forge(run, run.lead, recipient="lead/researcher",
                     payload=run.task(recipient="lead/writer").model_dump_json())
    refused(run, ForgedSender, "forged", envelope, model=Task)


def test_the_key_of_agent_a_with_sender_b_is_forged(run: Run) -> None:
    relabelled = run.keyring.seal(run.researcher, "lead", run.result()).model_copy(update={"sender": "lead/writer"})
    exc = refused(run, ForgedSender, "forged", relabelled, recipient="lead")
    assert "belongs to 'lead/researcher', not 'lead/writer'" in str(exc)
    # even signed correctly with A's key over sender B
    signed = forge(run, run.researcher, sender="lead/writer", kind="result", recipient="lead",
                   payload=run.result(agent="lead/writer").model_dump_json())
    refused(run, ForgedSender, "forged", signed, recipient="lead")


def test_an_unknown_key_id_is_refused(run: Run) -> None:
    envelope = run.sealed_task().model_copy(update={"key_id": "key_" + "0" * 16})
    exc = refused(run, UnknownAgent, "forged", envelope)
    assert isinstance(exc, ForgedSender) and exc.rejection.key_id == "key_" + "0" * 16


def test_a_look_alike_identity_built_from_a_seen_key_id_cannot_seal(run: Run) -> None:
    envelope = run.sealed_task()
    fake = AgentIdentity(envelope.sender, envelope.key_id, envelope.run_id)
    assert fake == run.lead  # equal by value, but not the handle the keyring issued
    with pytest.raises(UnknownAgent):
        run.keyring.seal(fake, "lead/researcher", run.task())


def test_a_revoked_identity_neither_seals_nor_opens(run: Run) -> None:
    in_flight = run.keyring.seal(run.writer, "lead", run.result(agent="lead/writer"))
    run.keyring.revoke(run.writer)
    with pytest.raises(UnknownAgent):
        run.keyring.seal(run.writer, "lead", run.result(agent="lead/writer"))
    refused(run, UnknownAgent, "forged", in_flight, recipient="lead")


def test_identities_expose_no_key_and_the_keyring_does_not_pickle(run: Run) -> None:
    values = [getattr(run.lead, f.name) for f in dataclasses.fields(run.lead)]
    assert [f.name for f in dataclasses.fields(run.lead)] == ["agent", "key_id", "run_id"]
    assert all(isinstance(v, str) for v in values) and not hasattr(run.lead, "__dict__")
    secret = run.keyring._keys[run.lead.key_id].key._secret  # type: ignore[attr-defined]
    assert secret.hex() not in repr(run.keyring) + repr(run.keyring._keys[run.lead.key_id].key)
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps(run.keyring)


# -- tampering


def _plus_one_us(env: Envelope) -> dict[str, Any]:
    return {"issued_at": env.issued_at + timedelta(microseconds=1)}


def _flip_payload_byte(env: Envelope) -> dict[str, Any]:
    i = env.payload.index("sources")
    return {"payload": env.payload[:i] + "S" + env.payload[i + 1 :]}


TAMPERINGS: dict[str, Callable[[Envelope], dict[str, Any]]] = {
    "payload byte": _flip_payload_byte,
    "recipient": lambda env: {"recipient": "lead/writer"},
    "trace": lambda env: {"trace": {**TRACE, "traceparent": TRACE["traceparent"][:-1] + "0"}},
    "trace removed": lambda env: {"trace": None},
    "trace emptied": lambda env: {"trace": {}},
    "issued_at by 1 us": _plus_one_us,
    "nonce": lambda env: {"nonce": "f" + env.nonce[1:] if env.nonce[0] != "f" else "e" + env.nonce[1:]},
    "kind": lambda env: {"kind": "message"},
    "signature": lambda env: {"signature": ("0" if env.signature[0] != "0" else "1") + env.signature[1:]},
    "signature truncated": lambda env: {"signature": env.signature[:-2]},
    "boundary between trace and payload": lambda env: {
        "trace": {**TRACE, "tracestate": TRACE["tracestate"] + env.payload[0]}, "payload": env.payload[1:]},
}


@pytest.mark.parametrize("name", TAMPERINGS)
def test_tampering_with_any_field_is_detected(run: Run, name: str) -> None:
    envelope = run.sealed_task()
    changed = envelope.model_copy(update=TAMPERINGS[name](envelope))
    assert changed != envelope
    recipient = changed.recipient  # open as the tampered addressee: the signature is checked first
    exc = refused(run, TamperedMessage, "tampered", changed, recipient=recipient)
    assert exc.rejection.nonce == changed.nonce and exc.rejection.sender == "lead"
    assert run.keyring.open(envelope, recipient="lead/researcher", model=Task).sender == "lead"  # nonce not burnt


def test_a_wrongly_typed_field_in_an_unvalidated_envelope_is_tampering_not_a_crash(run: Run) -> None:
    envelope = run.sealed_task().model_copy(update={"trace": {"traceparent": 7}})
    refused(run, TamperedMessage, "tampered", envelope)


def test_field_boundaries_cannot_shift() -> None:
    at = datetime.fromtimestamp(T0, UTC)

    def encode(**changes: Any) -> bytes:
        fields: dict[str, Any] = {"kind": "task", "run_id": "r", "sender": "lead/a", "recipient": "b", "key_id": "k",
                                  "nonce": "n", "issued_at": at, "trace": None, "payload": "{}"}
        return _signing_input(**{**fields, **changes})

    variants = [
        encode(), encode(sender="lead/", recipient="ab"), encode(sender="lead/ab", recipient=""),
        encode(trace={}), encode(trace={"a": "bc"}), encode(trace={"ab": "c"}), encode(trace={"a": "b", "c": ""}),
        encode(trace={"a": "b"}, payload="c{}"), encode(kind="taskr", run_id=""),
        encode(key_id="kn", nonce=""), encode(issued_at=at + timedelta(microseconds=1)),
        encode(payload="{}\udc80"), encode(payload="{}\udc81"),
    ]
    assert len(set(variants)) == len(variants)
    same_instant = at.astimezone(timezone(timedelta(hours=2)))
    assert encode(issued_at=same_instant) == encode()  # one spelling per instant


# -- replay, time, run, recipient, kind


def test_the_same_envelope_twice_is_a_replay(run: Run) -> None:
    envelope = run.sealed_task()
    run.keyring.open(envelope, recipient="lead/researcher")
    exc = refused(run, ReplayedMessage, "replayed", envelope)
    assert envelope.nonce in str(exc) and "'lead'" in str(exc)
    refused(run, ReplayedMessage, "replayed", envelope.model_dump_json())  # a copy off the wire too


def test_too_old_and_too_new_are_stale_but_the_window_edges_pass(run: Run) -> None:
    old, edge = run.sealed_task(), run.sealed_task()
    run.clock.now += 60.0
    assert run.keyring.open(edge, recipient="lead/researcher", model=Task)
    run.clock.now += 0.001
    exc = refused(run, StaleMessage, "stale", old)
    assert "ago" in str(exc)

    # a sender whose clock is ahead of the receiver's
    now = run.clock.now
    ahead = forge(run, run.lead, issued_at=datetime.fromtimestamp(now + 60.0, UTC), payload=run.task().model_dump_json())
    assert run.keyring.open(ahead, recipient="lead/researcher")
    too_far = forge(run, run.lead, issued_at=datetime.fromtimestamp(now + 60.5, UTC), payload=run.task().model_dump_json())
    assert "in the future" in str(refused(run, StaleMessage, "stale", too_far))


def test_a_clock_stepped_back_past_the_window_refuses_no_honest_envelope(run: Run) -> None:
    before = run.sealed_task()
    run.keyring.open(before, recipient="lead/researcher")
    in_flight = run.sealed_task()
    run.clock.now -= 3600.0  # an NTP correction: an hour back
    for _ in range(100):  # every envelope sealed after the step opens, as does the one in flight across it
        run.clock.now += 0.5
        assert run.keyring.open(run.sealed_task(), recipient="lead/researcher", model=Task)
    assert run.keyring.open(in_flight, recipient="lead/researcher", model=Task)
    assert run.rejections == []

    refused(run, ReplayedMessage, "replayed", before)  # replays stay refused: by nonce ...
    run.clock.now += 30.0
    old = forge(run, run.lead, issued_at=before.issued_at, payload=run.task().model_dump_json())
    assert "ago" in str(refused(run, StaleMessage, "stale", old))  # ... and by age, on a clock that never went back
    theirs = make_run("run_other", clock=run.clock)
    refused(run, WrongRun, "wrong_run", theirs.sealed_task())


def test_an_envelope_of_another_run_is_refused() -> None:
    ours, theirs = make_run("run_alpha"), make_run("run_beta")
    envelope = theirs.keyring.seal(theirs.researcher, "lead", theirs.result())
    exc = refused(ours, WrongRun, "wrong_run", envelope, recipient="lead")
    assert exc.rejection.run_id == "run_beta" and "run_beta" in str(exc)
    # the same-named agent of the other run, relabelled as ours: its key is not one of ours
    relabelled = forge(theirs, theirs.researcher, run_id="run_alpha", kind="result", recipient="lead",
                       payload=ours.result().model_dump_json())
    refused(ours, UnknownAgent, "forged", relabelled, recipient="lead")


def test_a_keyring_of_the_same_run_id_does_not_know_the_other_keys() -> None:
    # e.g. the process was restarted and the run resumed with a fresh keyring
    before, after = make_run(), make_run()
    envelope = before.keyring.seal(before.researcher, "lead", before.result())
    refused(after, UnknownAgent, "forged", envelope, recipient="lead")


def test_an_envelope_for_someone_else_is_refused(run: Run) -> None:
    envelope = run.sealed_task()
    exc = refused(run, WrongRecipient, "wrong_recipient", envelope, recipient="lead/writer")
    assert "addressed to 'lead/researcher'" in str(exc)
    assert run.keyring.open(envelope, recipient="lead/researcher")  # the right one still gets it


def test_a_task_where_a_result_is_expected_is_refused(run: Run) -> None:
    refused(run, WrongKind, "wrong_kind", run.sealed_task(), expected_kind="result")


def test_malformed_envelopes_and_payloads_are_refused(run: Run) -> None:
    refused(run, MalformedMessage, "malformed", b"{not json")
    exc = refused(run, MalformedMessage, "malformed", '{"sender": "lead", "nonce": "ab", "kind": 3}')
    assert (exc.rejection.sender, exc.rejection.nonce, exc.rejection.kind) == ("lead", "ab", None)  # as claimed
    bad_payload = forge(run, run.lead, payload='{"task_id": 3}')
    exc = refused(run, MalformedMessage, "malformed", bad_payload, model=Task)
    assert "task_id" in str(exc) and exc.rejection.sender == "lead" and exc.rejection.nonce == bad_payload.nonce
    not_json = forge(run, run.lead, payload="{")
    refused(run, MalformedMessage, "malformed", not_json)


def test_bad_configuration_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Keyring(RUN, window=0)
    with pytest.raises(ConfigError):
        Keyring(RUN, bindings={"task": {"snder": "sender"}})
    keyring = Keyring(RUN)
    with pytest.raises(ConfigError):
        keyring.issue("")
    lead = keyring.issue("lead")
    with pytest.raises(ConfigError, match="trace"):
        keyring.seal(lead, "w", Task(task_id="t", run_id=RUN, sender="lead", recipient="w", instruction="x"),  # type: ignore[arg-type]
                     trace={"traceparent": 1})  # type: ignore[dict-item]


# -- no false rejections, and a bounded replay cache


async def test_twenty_thousand_genuine_envelopes_opened_out_of_order_all_pass() -> None:
    clock, window, step = Clock(), 10.0, 0.004  # 250 envelopes per simulated second: 80 s, eight windows
    run = make_run(clock=clock, window=window)
    workers = [run.keyring.issue(f"lead/w{i}") for i in range(99)]
    rng = random.Random(7)
    pool: list[tuple[float, Envelope]] = []  # (deliver at, envelope): each one delayed up to 5 s
    producing = len(workers) + 1
    peak = 0
    opened: list[Task | Result] = []

    async def produce(identity: AgentIdentity, count: int) -> None:
        nonlocal producing
        for i in range(count):
            if identity is run.lead:
                worker = workers[i % len(workers)]
                message: Task | Result = run.task(recipient=worker.agent)
                envelope = run.keyring.seal(run.lead, worker.agent, message, trace=TRACE if i % 2 else None)
            else:
                envelope = run.keyring.seal(identity, "lead", run.result(agent=identity.agent))
            pool.append((clock.now + rng.uniform(0.0, 5.0), envelope))
            clock.now += step
            await asyncio.sleep(0)
        producing -= 1

    async def deliver() -> None:
        nonlocal peak
        while producing or pool:
            due = [item for item in pool if item[0] <= clock.now]
            pool[:] = [item for item in pool if item[0] > clock.now]
            rng.shuffle(due)
            for _, envelope in due:
                if envelope.recipient == "lead":
                    opened.append(run.keyring.open(envelope, recipient="lead", expected_kind="result", model=Result))
                else:
                    opened.append(run.keyring.open(envelope, recipient=envelope.recipient, expected_kind="task",
                                                   model=Task))
                peak = max(peak, run.keyring.remembered_nonces)
            if not producing:
                clock.now += 0.1
            await asyncio.sleep(0)

    await asyncio.gather(deliver(), produce(run.lead, 200), *(produce(w, 200) for w in workers))
    assert len(opened) == 20_000 and run.rejections == []
    assert sum(isinstance(m, Task) for m in opened) == 200
    # Nonces of at most the last two windows are kept (250 a second), not all 20,000.
    assert 2_000 < peak <= 2 * window / step + 100
    run.clock.now += 3 * window
    assert run.keyring.open(run.sealed_task(), recipient="lead/researcher")
    assert run.keyring.remembered_nonces == 1


def test_a_forgotten_nonce_stays_refused_even_when_the_clock_steps_back(run: Run) -> None:
    envelope = run.sealed_task()
    run.keyring.open(envelope, recipient="lead/researcher")
    run.clock.now += 200.0
    run.keyring.open(run.sealed_task(), recipient="lead/researcher")  # prunes the old nonce
    assert run.keyring.remembered_nonces == 1
    run.clock.now = T0 + 1.0  # the wall clock is set back
    refused(run, StaleMessage, "stale", envelope)


# -- random tampering of the serialised envelope


def _never_accepted(run: Run, original: Envelope, changed: bytes) -> None:
    try:
        parsed = Envelope.model_validate_json(changed)
    except ValidationError:
        parsed = None
    if parsed == original:  # the same envelope spelt another way (an escape's hex case): nothing changed
        return
    with pytest.raises(SecurityError):
        run.keyring.open(changed, recipient="lead/researcher", model=Task)


def test_flipping_bits_of_any_byte_is_refused() -> None:
    run = make_run()
    template = run.sealed_task(input={"quote": 'a "b" \\ c\u0007'})
    length = len(template.model_dump_json().encode())
    for i in range(length):
        for mask in (0x01, 0x20, 0x80):
            original = run.sealed_task(input={"quote": 'a "b" \\ c\u0007'})
            raw = bytearray(original.model_dump_json().encode())
            assert len(raw) == length
            raw[i] ^= mask
            _never_accepted(run, original, bytes(raw))
    assert len(run.rejections) > 2.9 * length


@settings(max_examples=300)
@given(data=st.data(), text=st.text(max_size=40), trace_value=st.text(max_size=10))
def test_random_byte_changes_are_never_accepted(data: st.DataObject, text: str, trace_value: str) -> None:
    run = make_run()
    original = run.keyring.seal(run.lead, "lead/researcher", run.task(input=text), trace={"tracestate": trace_value})
    raw = bytearray(original.model_dump_json().encode())
    i = data.draw(st.integers(0, len(raw) - 1), label="position")
    raw[i] = data.draw(st.integers(0, 255).filter(lambda b: b != raw[i]), label="new byte")
    _never_accepted(run, original, bytes(raw))


def test_a_worker_key_cannot_pass_off_a_peer_message_as_another_agents() -> None:
    keyring = Keyring(RUN)  # the real clock, as a worker key seals with it
    researcher = keyring.issue("lead/researcher")
    forged = keyring.worker_key(researcher).seal("lead/writer", peer_message(sender="writer"))
    with pytest.raises(ForgedSender, match="the message's sender is 'writer'"):
        keyring.open(forged, recipient="lead/writer", expected_kind="message", model=PeerMessage)


# -- opened in the process that sealed them


def test_the_envelope_sealed_here_hands_over_its_message_and_a_copy_is_checked_in_full(run: Run) -> None:
    task = run.task()
    envelope = run.keyring.seal(run.lead, "lead/researcher", task)
    assert run.keyring.unopened == 1
    assert run.keyring.open(envelope, recipient="lead/researcher", expected_kind="task", model=Task) is task
    assert run.keyring.unopened == 0

    wire = run.keyring.seal(run.lead, "lead/researcher", task).model_dump_json()  # the same message off the wire
    opened = run.keyring.open(wire, recipient="lead/researcher", expected_kind="task", model=Task)
    assert opened == task and opened is not task
    assert run.keyring.unopened == 0 and run.rejections == []


def test_a_tampered_copy_of_an_envelope_sealed_here_is_refused_and_the_original_still_opens(run: Run) -> None:
    task = run.task()
    envelope = run.keyring.seal(run.lead, "lead/researcher", task)
    copy = envelope.model_copy(update={"payload": envelope.payload.replace("Find", "Drop")})
    refused(run, TamperedMessage, "tampered", copy, model=Task)
    opened = run.keyring.open(envelope, recipient="lead/researcher", model=Task)
    assert opened == task  # checked in full now, as the copy took its place in the record of what was sealed here


@pytest.mark.parametrize("check", ["replayed", "wrong_recipient", "wrong_kind", "forged", "stale"])
def test_every_check_but_the_signature_still_runs_on_an_envelope_sealed_here(run: Run, check: str) -> None:
    envelope = run.keyring.seal(run.lead, "lead/researcher", run.task())
    if check == "replayed":
        run.keyring.open(envelope, recipient="lead/researcher", model=Task)
        refused(run, ReplayedMessage, "replayed", envelope, model=Task)
    elif check == "wrong_recipient":
        refused(run, WrongRecipient, "wrong_recipient", envelope, recipient="lead/writer", model=Task)
    elif check == "wrong_kind":
        refused(run, WrongKind, "wrong_kind", envelope, expected_kind="result", model=Task)
    elif check == "forged":
        run.keyring.revoke(run.lead)
        refused(run, UnknownAgent, "forged", envelope, model=Task)
    else:
        run.clock.now += 61
        refused(run, StaleMessage, "stale", envelope, model=Task)


def test_a_worker_key_lent_here_hands_over_its_result_and_one_from_another_process_is_checked() -> None:
    from cadenza.security._identity import WorkerKey

    run = make_run(clock=Clock(time.time()))  # a worker key seals on the wall clock
    result = run.result()
    here = run.keyring.worker_key(run.researcher)
    assert run.keyring.open(here.seal("lead", result), recipient="lead", expected_kind="result", model=Result) is result

    elsewhere = WorkerKey.from_json(here.to_json())  # what a worker process holds
    opened = run.keyring.open(elsewhere.seal("lead", result), recipient="lead", expected_kind="result", model=Result)
    assert opened == result and opened is not result
    assert run.keyring.unopened == 0 and run.rejections == []


def test_envelopes_sealed_here_but_sent_away_are_forgotten_once_stale(run: Run) -> None:
    for _ in range(3):
        run.keyring.seal(run.lead, "lead/researcher", run.task())  # opened in another process, never here
    assert run.keyring.unopened == 3
    run.clock.now += 3 * run.keyring.window
    run.keyring.open(run.sealed_task(), recipient="lead/researcher", model=Task)
    assert run.keyring.unopened == 0


# -- local envelopes: sealed for the keyring's own process


class Unshippable(BaseModel):
    """A task-shaped message that cannot be serialised: sealing it for this process must not try."""

    kind: str = "task"
    run_id: str
    sender: str
    recipient: str
    note: str = "x"

    @field_serializer("note")
    def _refuse(self, value: str) -> str:
        raise RuntimeError("serialised")


def test_a_local_envelope_is_opened_here_without_being_serialised_or_signed(run: Run) -> None:
    message = Unshippable(run_id=run.keyring.run_id, sender="lead", recipient="lead/researcher")
    local = run.keyring.seal_local(run.lead, "lead/researcher", message)
    assert (local.kind, local.sender, local.recipient, local.run_id) == ("task", "lead", "lead/researcher", RUN)
    assert run.keyring.open(local, recipient="lead/researcher", expected_kind="task", model=Unshippable) is message
    with pytest.raises(Exception, match="serialised"):  # as data it must be serialised, and this one cannot be
        local.model_dump_json()


def test_a_local_envelope_as_data_is_a_signed_envelope_checked_in_full(run: Run) -> None:
    task = run.task()
    local = run.keyring.seal_local(run.lead, "lead/researcher", task, trace=TRACE)
    wire = local.model_dump_json()
    assert Envelope.model_validate_json(wire) == local.envelope() and local.payload == task.model_dump_json()
    opened = run.keyring.open(wire, recipient="lead/researcher", expected_kind="task", model=Task)
    assert opened == task and opened is not task
    refused(run, ReplayedMessage, "replayed", local, model=Task)  # the local object after its JSON: the same nonce

    tampered = run.keyring.seal_local(run.lead, "lead/researcher", task).model_copy(
        update={"payload": task.model_dump_json().replace("Find", "Drop")})
    refused(run, TamperedMessage, "tampered", tampered, model=Task)


def test_a_local_envelope_pickles_as_an_envelope_without_its_key(run: Run) -> None:
    local = run.keyring.seal_local(run.lead, "lead/researcher", run.task())
    data = pickle.dumps(local)
    back = pickle.loads(data)
    assert type(back) is Envelope and back == local.envelope()
    secret = run.keyring._keys[run.lead.key_id].key.export()  # type: ignore[attr-defined]
    assert secret not in data and secret.hex().encode() not in data


def test_a_local_envelope_of_another_keyring_or_opened_twice_is_refused(run: Run) -> None:
    local = run.keyring.seal_local(run.lead, "lead/researcher", run.task())
    run.keyring.open(local, recipient="lead/researcher", model=Task)
    refused(run, ReplayedMessage, "replayed", local, model=Task)

    twin = make_run()  # the same run id, its own keys
    foreign = twin.keyring.seal_local(twin.lead, "lead/researcher", twin.task())
    refused(run, UnknownAgent, "forged", foreign, model=Task)


def test_a_worker_key_from_another_process_seals_for_the_wire() -> None:
    from cadenza.security._identity import LocalEnvelope, WorkerKey

    run = make_run(clock=Clock(time.time()))
    here = run.keyring.worker_key(run.researcher)
    elsewhere = WorkerKey.from_json(here.to_json())
    assert type(here.seal_local("lead", run.result())) is LocalEnvelope
    assert type(elsewhere.seal_local("lead", run.result())) is Envelope
