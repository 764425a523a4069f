"""Who sent a message: per-run agent identities, signed envelopes, and replay protection.

The runtime makes one `Keyring` per run and issues every agent instance an `AgentIdentity`
for it. Each `Task`, `Result` (and later peer message) that crosses between agents travels in
an `Envelope` sealed with its sender's key (a `LocalEnvelope` while it stays in the process that
sealed it: serialised and signed only when needed as data); the receiving side of the runtime
opens it, and each check that fails raises its own `SecurityError` naming the claimed sender
and nonce:

    SecurityError            an envelope was refused (``reason`` says which kind, for the audit log)
    ├── ForgedSender         forged: the key is another agent's, or the payload claims another sender
    │   └── UnknownAgent     forged: the key id (or identity) was not issued by this run's keyring
    ├── TamperedMessage      tampered: the signature does not cover these exact fields and bytes
    ├── ReplayedMessage      replayed: this nonce was opened before
    ├── StaleMessage         stale: issued outside the time window (too old, or from the future)
    ├── WrongRun             wrong_run: the envelope belongs to another run
    ├── WrongRecipient       wrong_recipient: it was addressed to someone else
    ├── WrongKind            wrong_kind: a task where a result was expected, or the like
    └── MalformedMessage     malformed: the envelope or its payload does not parse

What this defends, honestly: the keys live in the keyring, never on an identity, and the
keyring refuses to be pickled, so shipping work to another process or machine cannot carry
them along; a backend running a worker elsewhere is to give it its own key and no other (so
a compromised worker can sign only as itself). Inside one Python process any code can reach
any memory (``keyring._keys`` is one attribute away), so in-process the boundary stops
accidental misuse and messages forged *from data* -- a model's output, a tool's result, a bus
or store entry that claims to be a Task from the lead -- not hostile code in the same interpreter.

Replays: every nonce opened is remembered until an envelope that old would be refused as
stale anyway, so the cache holds about two windows' worth of nonces however long the run.

Time: the keyring's clock never moves backwards. When the wall clock steps back (an NTP
correction), the keyring carries on from where it was, counting only the clock's forward
movement from then on, so envelopes sealed after the step are as fresh as those sealed
before it instead of all looking older than the window. A replay is still refused by its
nonce, and one from long ago by its age on this clock that never went back.

Scheme: HMAC-SHA256 with a random 256-bit key per agent instance (stdlib ``hmac``, ``secrets``).
The verifier is always the runtime, which issued every key anyway, so public-key signatures
would buy nothing here. ``bench/bench_security.py`` measured, per seal plus open of a 1 KB Task
on a 2-core machine, about 21 us with HMAC (8 of them the JSON serialisation that any message
crossing a process pays, about 4 the two HMACs) against about 105 us with Ed25519, whose sign
and verify alone (~30 + ~70 us) cost more than a whole step of the executor (~35-40 us). HMAC has no
non-repudiation: the runtime can make any agent's signature, which is acceptable because the
runtime is what runs the agents. Ed25519 becomes right when a party must verify without being
able to sign (peers checking each other over a bus with no runtime in between, or an auditor
checking stored envelopes offline); a key is a `SigningKey`, so it can be added as one more
implementation (the benchmark has one), chosen per keyring by ``key_factory``. The algorithm is
taken from the key the verifier holds, never from the envelope.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NoReturn, Protocol, TypeVar, overload

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, ValidationError

from .._errors import (
    ConfigError,
    ForgedSender,
    MalformedMessage,
    Rejection,
    RejectReason,
    ReplayedMessage,
    SecurityError,
    StaleMessage,
    TamperedMessage,
    UnknownAgent,
    WrongKind,
    WrongRecipient,
    WrongRun,
)
from .._ids import RunId, ScopePath
from .._trusted import TrustedBuilder

__all__ = (
    "BINDINGS",
    "WorkerKey",
    "AgentIdentity",
    "Envelope",
    "EnvelopeKind",
    "ForgedSender",
    "HmacKey",
    "Keyring",
    "LocalEnvelope",
    "MalformedMessage",
    "RejectReason",
    "Rejection",
    "ReplayedMessage",
    "SecurityError",
    "Sealed",
    "SigningKey",
    "StaleMessage",
    "TamperedMessage",
    "UnknownAgent",
    "WrongKind",
    "WrongRecipient",
    "WrongRun",
)

M = TypeVar("M", bound=BaseModel)

EnvelopeKind = Literal["task", "result", "message"]

BINDINGS: Mapping[str, Mapping[str, str]] = {
    "task": {"kind": "kind", "run_id": "run_id", "sender": "sender", "recipient": "recipient"},
    "result": {"kind": "kind", "run_id": "run_id", "sender": "agent"},
    "message": {"kind": "kind", "run_id": "run_id", "sender": "sender", "recipient": "recipient"},
}
"""Per envelope kind, which payload field must equal which envelope field (envelope field -> payload field).

A Task whose ``sender`` is not the envelope's signed sender is forged even though the signature is good.
"""

_CLAIMS = ("kind", "run_id", "sender", "recipient")
"""The envelope fields a binding can tie a payload field to."""
_TAG = "cadenza-envelope/1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class Envelope(BaseModel):
    """A message in transit, signed by its sender; the signature covers every other field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    kind: EnvelopeKind
    """What the payload is: a ``task``, a ``result``, or a peer ``message``."""
    run_id: RunId
    """The run the sender's key was issued for."""
    sender: ScopePath
    """The agent path that sealed it, e.g. ``lead/researcher``."""
    recipient: ScopePath
    """The agent path it is for."""
    key_id: str
    """Which of the run's keys signed it; the verifier looks the key, and its agent, up by this."""
    nonce: str = Field(pattern=r"^[0-9a-f]{32}$")
    """128 random bits, hex: the same envelope is accepted once."""
    issued_at: AwareDatetime
    """When it was sealed; outside the keyring's window it is refused."""
    payload: str
    """The message as JSON text, so the signature covers the exact bytes the receiver parses."""
    trace: dict[str, str] | None = None
    """Trace context (W3C ``traceparent``/``tracestate``), signed too."""
    signature: str = Field(pattern=r"^[0-9a-f]+$")
    """The sender's signature over all the fields above, hex."""


_build_envelope = TrustedBuilder(Envelope)


def _signing_input(
    kind: str, run_id: str, sender: str, recipient: str, key_id: str, nonce: str,
    issued_at: datetime, trace: Mapping[str, str] | None, payload: str,
) -> bytes:
    """Every field, in a fixed order, behind a header of their lengths: no boundary can shift.

    The trace is a count (empty for none, so ``None`` and ``{}`` differ) and then its sorted keys
    and values; the time is whole microseconds since the epoch, one spelling per instant.
    """
    micros = str((issued_at - _EPOCH) // _MICROSECOND)
    if trace is None:
        count = extra = ""
        lengths = ""
    else:
        items = sorted(trace.items())
        count = str(len(items))
        extra = "".join([k + v for k, v in items])
        lengths = "".join([f",{len(k)},{len(v)}" for k, v in items])
    head = (f"{_TAG}\n{len(kind)},{len(run_id)},{len(sender)},{len(recipient)},{len(key_id)},{len(nonce)},"
            f"{len(micros)},{len(count)}{lengths},{len(payload)}\n")
    # surrogatepass: str -> bytes stays one-to-one even for a lone surrogate smuggled into a field
    return f"{head}{kind}{run_id}{sender}{recipient}{key_id}{nonce}{micros}{count}{extra}{payload}".encode(
        "utf-8", "surrogatepass")


class SigningKey(Protocol):
    """One agent instance's key: signs what it sends and checks what claims to be from it."""

    def sign(self, data: bytes) -> bytes:
        """The signature of ``data``."""
        ...

    def verify(self, data: bytes, signature: bytes) -> bool:
        """Whether ``signature`` was made over ``data`` by this key."""
        ...


class HmacKey:
    """HMAC-SHA256 with 256 random bits; the comparison takes constant time."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @classmethod
    def generate(cls) -> HmacKey:
        """A fresh random key."""
        return cls(secrets.token_bytes(32))

    def sign(self, data: bytes) -> bytes:
        """The 32-byte HMAC of ``data``."""
        return hmac.digest(self._secret, data, "sha256")

    def verify(self, data: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is the HMAC of ``data``."""
        return hmac.compare_digest(hmac.digest(self._secret, data, "sha256"), signature)

    def export(self) -> bytes:
        """The secret, for the one process that runs this key's agent (`WorkerKey.to_json`)."""
        return self._secret

    def __repr__(self) -> str:
        return "HmacKey(<secret>)"


class _LazyKey:
    """A key made when it first signs or verifies: in a run that stays in one process, most keys never do
    (`LocalEnvelope`), and a 1,000-agent team would otherwise draw 1,000 random secrets to start."""

    __slots__ = ("_factory", "_key")

    def __init__(self, factory: Callable[[], SigningKey]) -> None:
        self._factory = factory
        self._key: SigningKey | None = None

    def made(self) -> SigningKey:
        """The key itself, made now if it was not yet."""
        if self._key is None:
            self._key = self._factory()
        return self._key

    def sign(self, data: bytes) -> bytes:
        return self.made().sign(data)

    def verify(self, data: bytes, signature: bytes) -> bool:
        return self.made().verify(data, signature)

    def __repr__(self) -> str:
        return f"_LazyKey({'made' if self._key is not None else 'not made yet'})"


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    """An opaque handle on one agent instance's key in one run; the key itself stays in the keyring.

    Only the object `Keyring.issue` returned is accepted by `Keyring.seal`: a look-alike built
    from a key id seen on an envelope is refused.
    """

    agent: ScopePath
    """The agent path, e.g. ``lead/researcher``."""
    key_id: str
    """Names the key on the envelopes this identity seals."""
    run_id: RunId
    """The run it was issued for."""


_ERRORS: dict[RejectReason, type[SecurityError]] = {
    "forged": ForgedSender, "tampered": TamperedMessage, "replayed": ReplayedMessage, "stale": StaleMessage,
    "wrong_run": WrongRun, "wrong_recipient": WrongRecipient, "wrong_kind": WrongKind, "malformed": MalformedMessage,
}


def _names(value: object, claim: str) -> bool:
    """Whether a payload's sender or recipient field names the envelope's agent: its whole path, or (messages carry
    plain agent names) the last segment of it, ``architect`` for ``lead/build/architect``."""
    if value == claim:
        return True
    return isinstance(value, str) and bool(value) and "/" not in value and claim.rpartition("/")[2] == value


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(map(str, first['loc'])) or 'the value'}: {first['msg']}"
    return str(exc)


def _claims_in(raw: str | bytes) -> dict[str, str | None]:
    """What an unparseable envelope claims to be, as far as it can be read, for the audit record."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    fields = ("sender", "nonce", "key_id", "run_id", "recipient", "kind")
    return {f: data[f] for f in fields if isinstance(data.get(f), str)}


def _trace_of(trace: Mapping[str, str] | None) -> dict[str, str] | None:
    if trace is None:
        return None
    tr = dict(trace)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in tr.items()):
        raise ConfigError(f"trace context maps strings to strings (W3C traceparent, tracestate), not {tr!r}")
    return tr


def _signed(kind: EnvelopeKind, run_id: RunId, sender: ScopePath, recipient: ScopePath, key_id: str, nonce: str,
            issued_at: datetime, trace: dict[str, str] | None, message: BaseModel, key: SigningKey) -> Envelope:
    """The envelope of these claims and ``message``, serialised and signed by ``key``."""
    payload = message.model_dump_json()
    data = _signing_input(kind, run_id, sender, recipient, key_id, nonce, issued_at, trace, payload)
    return _build_envelope(kind=kind, run_id=run_id, sender=sender, recipient=recipient, key_id=key_id, nonce=nonce,
                           issued_at=issued_at, payload=payload, trace=trace, signature=key.sign(data).hex())


def _sealed(identity: AgentIdentity, key: SigningKey, recipient: str, kind: EnvelopeKind, message: BaseModel,
            issued_at: datetime, trace: Mapping[str, str] | None) -> Envelope:
    """``message`` signed by ``key`` as ``identity``, with a fresh nonce."""
    return _signed(kind, identity.run_id, identity.agent, ScopePath(recipient), identity.key_id, os.urandom(16).hex(),
                   issued_at, _trace_of(trace), message, key)


class LocalEnvelope:
    """An envelope that has not left the process that sealed it: every claim of one, and the message itself.

    Its JSON payload and signature are made, once, when it is needed as data: by `envelope`, by reading ``payload``
    or ``signature``, by dumping it or by pickling it (which gives an `Envelope`). The keyring that sealed it opens
    it without them (`Keyring.open`), so a Task and a Result that never leave the run's process are neither
    serialised nor signed, while every check but the signature's still runs on their claims (run, key, sender,
    recipient, kind, time, nonce, the payload's fields). One that was not sealed by the keyring opening it, or was
    opened already, is made into an `Envelope` and checked in full. The signature covers the message as it is when
    the envelope is made: in one process, code that changes a message after sealing it is the interpreter's own
    code, which signing does not defend against (see the module's note).
    """

    __slots__ = ("_envelope", "_key", "issued_at", "key_id", "kind", "message", "nonce", "recipient", "run_id",
                 "sender", "trace")

    def __init__(self, identity: AgentIdentity, key: SigningKey, recipient: str, kind: EnvelopeKind,
                 message: BaseModel, issued_at: datetime, trace: Mapping[str, str] | None) -> None:
        self.kind = kind
        self.run_id = identity.run_id
        self.sender = identity.agent
        self.recipient = ScopePath(recipient)
        self.key_id = identity.key_id
        self.nonce = os.urandom(16).hex()
        self.issued_at = issued_at
        self.trace = _trace_of(trace)
        self.message = message
        self._key = key
        self._envelope: Envelope | None = None

    def envelope(self) -> Envelope:
        """This envelope as data: serialised and signed (the first time it is asked for)."""
        if self._envelope is None:
            self._envelope = _signed(self.kind, self.run_id, self.sender, self.recipient, self.key_id, self.nonce,
                                     self.issued_at, self.trace, self.message, self._key)
        return self._envelope

    @property
    def payload(self) -> str:
        return self.envelope().payload

    @property
    def signature(self) -> str:
        return self.envelope().signature

    def model_dump_json(self, **options: Any) -> str:
        """`Envelope.model_dump_json` of `envelope`: what a backend sends elsewhere."""
        return self.envelope().model_dump_json(**options)

    def model_dump(self, **options: Any) -> dict[str, Any]:
        """`Envelope.model_dump` of `envelope`."""
        return self.envelope().model_dump(**options)

    def model_copy(self, **options: Any) -> Envelope:
        """`Envelope.model_copy` of `envelope` (an altered copy is a new object: checked in full when opened)."""
        return self.envelope().model_copy(**options)

    def __reduce__(self) -> tuple[Callable[[str], Envelope], tuple[str]]:
        return Envelope.model_validate_json, (self.model_dump_json(),)

    def __repr__(self) -> str:
        return f"LocalEnvelope({self.kind} {self.sender!r} -> {self.recipient!r}, nonce {self.nonce})"


Sealed = Envelope | LocalEnvelope
"""What sealing hands over: an `Envelope`, or a `LocalEnvelope` that has not left its process."""


class WorkerKey:
    """One agent instance's own key, for the process that runs it: it seals as that agent, and as no other.

    The runtime that issued it (the `Keyring`) verifies what it seals. It travels to a worker process as JSON
    (`to_json`); the keyring it came from never leaves the run's process.
    """

    __slots__ = ("_here", "_key", "identity")

    def __init__(self, identity: AgentIdentity, key: SigningKey, here: _SealedHere | None = None) -> None:
        """``here`` is the keyring's record of what was sealed in its process, when this key stays in that process."""
        self.identity = identity
        self._key = key
        self._here = here

    def __repr__(self) -> str:
        return f"WorkerKey({self.identity.agent!r}, {self.identity.key_id})"

    def seal(self, recipient: str, message: BaseModel, *, trace: Mapping[str, str] | None = None) -> Envelope:
        """``message`` (a Result, say) from this key's agent to ``recipient``, signed now."""
        kind = _worker_kind(message)
        envelope = _sealed(self.identity, self._key, recipient, kind, message, datetime.fromtimestamp(time.time(), UTC),
                           trace)
        if self._here is not None:
            self._here[envelope.nonce] = (envelope, message, False)
        return envelope

    def seal_local(self, recipient: str, message: BaseModel) -> Sealed:
        """`seal`, for a message the keyring that lent this key opens in this process: a `LocalEnvelope` (an
        `Envelope` from a key that came from another process, which no keyring here can open as its own)."""
        if self._here is None:
            return self.seal(recipient, message)
        envelope = LocalEnvelope(self.identity, self._key, recipient, _worker_kind(message), message,
                                 datetime.fromtimestamp(time.time(), UTC), None)
        self._here[envelope.nonce] = (envelope, message, False)
        return envelope

    def to_json(self) -> dict[str, str]:
        """The key as JSON, for the worker process that runs its agent (and only that one).

        Raises:
            ConfigError: the key cannot be exported (only HMAC keys are).
        """
        key = self._key.made() if isinstance(self._key, _LazyKey) else self._key
        if not isinstance(key, HmacKey):
            raise ConfigError(f"the key of {self.identity.agent!r} is a {type(key).__name__}, which does not "
                              "travel to another process")
        return {"agent": self.identity.agent, "key_id": self.identity.key_id, "run_id": self.identity.run_id,
                "secret": key.export().hex()}

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> WorkerKey:
        """A key read back from `to_json`."""
        identity = AgentIdentity(ScopePath(data["agent"]), data["key_id"], RunId(data["run_id"]))
        return cls(identity, HmacKey(bytes.fromhex(data["secret"])))


def _worker_kind(message: BaseModel) -> EnvelopeKind:
    kind = getattr(message, "kind", None)
    if kind not in ("task", "result", "message"):
        raise ConfigError(f"a worker seals tasks, results and peer messages, not a {type(message).__name__}")
    return kind  # type: ignore[no-any-return]


_SealedHere = dict[str, tuple["Envelope | LocalEnvelope", BaseModel, bool]]
"""Envelopes sealed in the keyring's own process and not yet opened, by nonce, each with the message it carries and
whether the message's fields were checked against the envelope's when it was sealed."""


@dataclass(slots=True)
class _Entry:
    identity: AgentIdentity
    lazy: _LazyKey
    """The key, made when it first signs or verifies."""

    @property
    def key(self) -> SigningKey:
        return self.lazy.made()


class Keyring:
    """The keys of one run, held by the runtime: issues identities, seals and opens envelopes.

    Not thread-safe: like the rest of the runtime it lives on one event loop.

    Args:
        run_id: the run; envelopes of any other run are refused.
        window: seconds an envelope may be older, or newer, than the clock and still be opened.
        clock: wall-clock seconds since the epoch (envelopes cross machines); tests pass their own.
        on_reject: called with each `Rejection` before the `SecurityError` is raised, for the audit log.
        key_factory: makes each new identity's key (HMAC-SHA256 by default).
        bindings: which payload fields must agree with the envelope, per kind (`BINDINGS`).
    """

    def __init__(
        self,
        run_id: str,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.time,
        on_reject: Callable[[Rejection], None] | None = None,
        key_factory: Callable[[], SigningKey] = HmacKey.generate,
        bindings: Mapping[str, Mapping[str, str]] = BINDINGS,
    ) -> None:
        if not window > 0:
            raise ConfigError(f"the envelope window must be a positive number of seconds, not {window!r}")
        self.run_id = RunId(run_id)
        self.window = float(window)
        self._clock = clock
        self._on_reject = on_reject
        self._key_factory = key_factory
        try:
            self._bindings = {kind: tuple((_CLAIMS.index(e), p) for e, p in fields.items())
                              for kind, fields in bindings.items()}
        except ValueError:
            raise ConfigError(f"bindings name envelope fields among {_CLAIMS}, not {dict(bindings)!r}") from None
        self._keys: dict[str, _Entry] = {}
        self._seen: dict[int, set[str]] = {}  # nonces by window-wide bucket of their issued_at
        self._high = float("-inf")  # the latest time: the stale bound never moves back
        self._behind = 0.0  # how far the clock has stepped back below ``_high``: added to each reading
        self._floor = -(2**62)  # buckets below this were dropped
        self._here: _SealedHere = {}

    def __repr__(self) -> str:
        return f"Keyring(run_id={self.run_id!r}, identities={len(self._keys)})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Keyring holds every agent's key and is never pickled: send a worker its own key only")

    def issue(self, agent_path: str) -> AgentIdentity:
        """A new identity, with a new key, for one instance of ``agent_path`` in this run."""
        if not agent_path or not isinstance(agent_path, str):
            raise ConfigError(f"an identity needs an agent path such as 'lead/researcher', not {agent_path!r}")
        identity = AgentIdentity(ScopePath(agent_path), "key_" + secrets.token_hex(8), self.run_id)
        self._keys[identity.key_id] = _Entry(identity, _LazyKey(self._key_factory))
        return identity

    def revoke(self, identity: AgentIdentity) -> None:
        """Forget ``identity``'s key (a spawned agent was cleaned up): its envelopes are refused from now on."""
        entry = self._keys.get(identity.key_id)
        if entry is not None and entry.identity is identity:
            del self._keys[identity.key_id]

    @property
    def remembered_nonces(self) -> int:
        """How many nonces the replay cache holds: at most those issued within about two windows."""
        return sum(map(len, self._seen.values()))

    @property
    def unopened(self) -> int:
        """How many envelopes sealed in this process wait to be opened here: at most those of about two windows."""
        return len(self._here)

    def seal(
        self,
        identity: AgentIdentity,
        recipient: str,
        message: BaseModel,
        *,
        kind: EnvelopeKind | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> Envelope:
        """``message`` from ``identity`` to ``recipient``, signed; ``kind`` defaults to a Task's, Result's or
        PeerMessage's own."""
        kind, key = self._sealing(identity, recipient, message, kind)
        envelope = _sealed(identity, key, recipient, kind, message, datetime.fromtimestamp(self._now(), UTC), trace)
        self._here[envelope.nonce] = (envelope, message, True)
        return envelope

    def seal_local(self, identity: AgentIdentity, recipient: str, message: BaseModel, *,
                   trace: Mapping[str, str] | None = None) -> LocalEnvelope:
        """`seal`, for a message this keyring opens in this process (a step's Task): a `LocalEnvelope`, serialised
        and signed only if it is ever needed as data."""
        kind, key = self._sealing(identity, recipient, message, None)
        envelope = LocalEnvelope(identity, key, recipient, kind, message, datetime.fromtimestamp(self._now(), UTC),
                                 trace)
        self._here[envelope.nonce] = (envelope, message, True)
        return envelope

    def _sealing(self, identity: AgentIdentity, recipient: str, message: BaseModel,
                 kind: EnvelopeKind | None) -> tuple[EnvelopeKind, SigningKey]:
        """The kind of envelope ``message`` travels in and ``identity``'s key, once its fields are checked."""
        if kind is None:
            kind = getattr(message, "kind", None)
            if kind not in ("task", "result", "message"):
                raise ConfigError(f"say which kind of envelope a {type(message).__name__} travels in (kind='message'?)")
        key = self._key_of(identity, recipient=recipient, kind=kind)
        self._check_bindings(message, kind, (kind, self.run_id, identity.agent, recipient))
        return kind, key

    def worker_key(self, identity: AgentIdentity) -> WorkerKey:
        """``identity``'s own key, for the worker that acts as it (in this process or another).

        Raises:
            UnknownAgent: ``identity`` was not issued by this keyring, or was revoked.
        """
        return WorkerKey(identity, self._key_of(identity), self._here)

    def _key_of(self, identity: AgentIdentity, **claims: str) -> SigningKey:
        """The key of ``identity`` (made when it first signs), if this keyring issued that very handle and has not
        revoked it.

        Raises:
            UnknownAgent: it did not (``claims`` are what the refused use said, for the audit log).
        """
        entry = self._keys.get(identity.key_id)
        if entry is None or entry.identity is not identity:
            self._reject("forged", f"the identity {identity.agent!r} ({identity.key_id}) was not issued by this "
                         f"keyring of run {self.run_id!r}, or was revoked", error=UnknownAgent,
                         claims={"sender": identity.agent, "key_id": identity.key_id, "run_id": identity.run_id,
                                 **claims})
        return entry.lazy

    @overload
    def open(self, envelope: Sealed | str | bytes, *, recipient: str | None,
             expected_kind: EnvelopeKind | None = None) -> JsonValue: ...
    @overload
    def open(self, envelope: Sealed | str | bytes, *, recipient: str | None,
             expected_kind: EnvelopeKind | None = None, model: type[M]) -> M: ...

    def open(
        self,
        envelope: Sealed | str | bytes,
        *,
        recipient: str | None,
        expected_kind: EnvelopeKind | None = None,
        model: type[BaseModel] | None = None,
    ) -> JsonValue | BaseModel:
        """The verified payload: parsed JSON, or an instance of ``model``.

        ``envelope`` may be the JSON of one, as it arrives from a bus or another process.
        ``recipient=None`` skips only the recipient check (the runtime reading for itself).
        Each failed check raises its `SecurityError` after ``on_reject`` has seen the `Rejection`;
        a nonce is used up once the signature, the addressing and the time have been checked.

        The very envelope object this keyring (or a `WorkerKey` it lent in this process) sealed, an `Envelope` or a
        `LocalEnvelope`, is opened without checking a signature or parsing a payload: nothing outside the process has
        touched it, so the message it carries is the one sealed, and that message is returned (as a run without
        signing hands it over). Every other check still runs. Any other object, a copy or the same JSON included,
        is checked in full.
        """
        env = envelope if isinstance(envelope, (Envelope, LocalEnvelope)) else self._parsed(envelope)
        nonce = env.nonce
        here = self._here.pop(nonce, None)
        if here is not None and (here[0] is not envelope or type(here[1]) is not model):
            here = None  # another object under a nonce sealed here (a copy, perhaps altered): checked in full
        if here is None and isinstance(env, LocalEnvelope):
            env = env.envelope()  # sealed by another keyring, or opened already: checked in full, as data
        if env.run_id != self.run_id:
            self._reject("wrong_run", f"envelope of run {env.run_id!r}, not {self.run_id!r}", env)
        entry = self._keys.get(env.key_id)
        if entry is None:
            self._reject("forged", f"key {env.key_id!r} was not issued in run {self.run_id!r} (or was revoked)",
                         env, error=UnknownAgent)
        if entry.identity.agent != env.sender:
            self._reject("forged", f"key {env.key_id!r} belongs to {entry.identity.agent!r}, not {env.sender!r}", env)
        if here is None:
            self._check_signature(env, entry.key)
        if recipient is not None and env.recipient != recipient:
            self._reject("wrong_recipient", f"addressed to {env.recipient!r}, opened by {recipient!r}", env)
        if expected_kind is not None and env.kind != expected_kind:
            self._reject("wrong_kind", f"a {env.kind} where a {expected_kind} was expected", env)
        self._check_time_and_nonce(env)
        if here is not None:
            _, message, checked = here
            if not checked:
                self._check_bindings(message, env.kind, (env.kind, env.run_id, env.sender, env.recipient), env)
            return message
        return self._parse(env, model)

    def _parsed(self, raw: str | bytes) -> Envelope:
        try:
            return Envelope.model_validate_json(raw)
        except ValidationError as exc:
            self._reject("malformed", f"not an envelope: {_first_error(exc)}", claims=_claims_in(raw))

    def _check_signature(self, env: Sealed, key: SigningKey) -> None:
        try:
            data = _signing_input(env.kind, env.run_id, env.sender, env.recipient, env.key_id, env.nonce,
                                  env.issued_at, env.trace, env.payload)
            good = key.verify(data, bytes.fromhex(env.signature))
        except (TypeError, ValueError, AttributeError):  # fields of the wrong type, in an unvalidated Envelope
            good = False
        if not good:
            self._reject("tampered", "the signature does not match the envelope's fields", env)

    def _now(self) -> float:
        """The clock plus every step back it has taken so far: never less than a time already used."""
        reading = self._clock() + self._behind
        if reading < self._high:
            self._behind += self._high - reading
            return self._high
        self._high = reading
        return reading

    def _check_time_and_nonce(self, env: Sealed) -> None:
        now = self._now()
        floor = int((now - self.window) // self.window)  # every bucket below holds only stale nonces
        if floor > self._floor:
            for bucket in [b for b in self._seen if b < floor]:
                del self._seen[bucket]
            self._floor = floor
            oldest = floor * self.window  # what was sealed here but never opened here (sent away) is stale by now
            for gone in [n for n, (sealed, _, _) in self._here.items() if sealed.issued_at.timestamp() < oldest]:
                del self._here[gone]
        issued = env.issued_at.timestamp()
        if self._high - issued > self.window:
            self._reject("stale", f"issued {self._high - issued:.1f} s ago, outside the {self.window:g} s window", env)
        if issued - now > self.window:
            self._reject("stale", f"issued {issued - now:.1f} s in the future, outside the {self.window:g} s window", env)
        # A replay carries the same signed issued_at, so it always lands in the bucket its original did.
        bucket = int(issued // self.window)
        seen = self._seen.get(bucket)
        if seen is None:
            seen = self._seen[bucket] = set()
        elif env.nonce in seen:
            self._reject("replayed", "this nonce was already opened", env)
        seen.add(env.nonce)

    def _parse(self, env: Sealed, model: type[BaseModel] | None) -> JsonValue | BaseModel:
        payload: JsonValue | BaseModel
        try:
            payload = json.loads(env.payload) if model is None else model.model_validate_json(env.payload)
        except (ValueError, RecursionError) as exc:  # ValidationError is a ValueError
            self._reject("malformed", f"the payload is not a valid {model.__name__ if model else 'JSON'}: "
                         f"{_first_error(exc)}", env)
        self._check_bindings(payload, env.kind, (env.kind, env.run_id, env.sender, env.recipient), env)
        return payload

    def _check_bindings(self, payload: object, kind: str, claims: tuple[str, str, str, str],
                        env: Sealed | None = None) -> None:
        """The payload's own kind, run, sender and recipient fields must say what the envelope says."""
        pairs = self._bindings.get(kind)
        if not pairs:
            return
        values = payload if isinstance(payload, dict) else getattr(payload, "__dict__", {})
        for index, field in pairs:
            value = values.get(field)
            if value != claims[index] and not _names(value, claims[index]):
                detail = f"the {kind}'s {field} is {value!r} but the envelope's {_CLAIMS[index]} is {claims[index]!r}"
                if env is not None:
                    self._reject("forged", detail, env)
                self._reject("forged", detail, claims=dict(zip(_CLAIMS, claims, strict=True)))

    def _reject(self, reason: RejectReason, detail: str, env: Sealed | None = None, *,
                error: type[SecurityError] | None = None, claims: Mapping[str, str | None] | None = None) -> NoReturn:
        if env is not None:
            claims = {"sender": env.sender, "nonce": env.nonce, "key_id": env.key_id, "run_id": env.run_id,
                      "recipient": env.recipient, "kind": env.kind}
        rejection = Rejection(reason, detail, **(claims or {}))
        if self._on_reject is not None:
            self._on_reject(rejection)
        raise (error or _ERRORS[reason])(rejection)
