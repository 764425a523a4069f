"""Signed messages in a run: each Task and Result crosses between agents inside a verified envelope.

A run that signs its messages holds one `Keyring` (``_identity``) and issues an identity per
agent instance as it first speaks: a team by its path in the run (`ScopePath`: ``lead``, or
``lead/s2`` for the team that runs step ``s2``), a worker by its team's path and its name
(``lead/s2/architect``). The executor seals each Task as its team and hands the envelope to the
backend; the worker's side opens it (checking sender, signature, run, recipient, freshness and
nonce), runs the worker and seals the Result as the worker; the team opens that. A refused
envelope fails the step with the reason (never retried) and is audited. A Task is opened in the
run's process whatever the backend, and so is a Result of a worker that runs there: those travel
as `LocalEnvelope`, checked on every claim but made into signed JSON only if they are ever
needed as data; a Result from a worker process or a Ray actor is a signed `Envelope`.

Which boundary this defends: a backend that moves work to another process or machine carries
envelopes, and a worker there could sign only as itself. In one process the keys sit in memory
that any Python code could reach: signing stops forged or altered messages that arrive as data
(from a store, a bus, a tool), not hostile code inside the interpreter.
"""

from __future__ import annotations

from collections.abc import Callable

from .._messages import Task
from ._identity import AgentIdentity, Keyring, Rejection, Sealed

__all__ = ("DEFAULT_WINDOW", "RunSecurity", "TaskOpener")

DEFAULT_WINDOW = 60.0
"""Seconds an envelope stays fresh: one older than that is refused as stale."""


class RunSecurity:
    """One run's keyring and the identities it issued, by agent path; part of the run's state."""

    def __init__(self, run_id: str, *, on_reject: Callable[[Rejection], None] | None = None,
                 window: float | None = None) -> None:
        """``on_reject`` sees each refused envelope before its error is raised (the run audits it)."""
        self.keyring = Keyring(run_id, window=DEFAULT_WINDOW if window is None else window, on_reject=on_reject)
        self.on_reject = on_reject
        self._identities: dict[str, AgentIdentity] = {}
        self.opener = TaskOpener(self)
        """What a backend is handed to open the Tasks sent to its workers: one for the run, not one a step."""

    def identity(self, path: str) -> AgentIdentity:
        """The identity of ``path`` in this run, issued on first use."""
        found = self._identities.get(path)
        if found is None:
            found = self._identities[path] = self.keyring.issue(path)
        return found

    def receive(self, envelope: Sealed) -> Task:
        """The worker's side: the Task inside ``envelope``, verified as sent to its recipient."""
        return self.keyring.open(envelope, recipient=envelope.recipient, expected_kind="task", model=Task)


class TaskOpener:
    """The worker's side of a Task envelope, checked by the runtime that issued the run's keys.

    A backend is handed this, not the keyring: it can open (verify) the task sent to its worker, and sign
    nothing. With HMAC keys only the issuer can verify, so the run's process opens the task even when the
    worker runs elsewhere, and the worker seals its Result with its own key (`WorkerKey`).
    """

    __slots__ = ("_security",)

    def __init__(self, security: RunSecurity) -> None:
        self._security = security

    def open(self, envelope: Sealed) -> Task:
        """The Task inside ``envelope``, verified as sent to its recipient.

        Raises:
            SecurityError: the envelope was refused (already audited).
        """
        return self._security.receive(envelope)
