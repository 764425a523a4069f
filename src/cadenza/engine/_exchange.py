"""A step's Task and Result as signed envelopes, carried by a backend: the engine's side of `security._security`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._ids import ScopePath, child_path
from .._messages import Result
from ..observability._tracing import carrier
from ..security._identity import ForgedSender, Rejection
from ..security._security import RunSecurity

if TYPE_CHECKING:
    from .._messages import Task
    from .._port import RunPort
    from .._step_context import StepContext
    from .._worker import Worker
    from ..backends.base import Backend

__all__ = ("exchange",)


async def exchange(security: RunSecurity, backend: Backend, worker: Worker, task: Task, ctx: StepContext,
                   port: RunPort, *, team: ScopePath) -> Result:
    """Send ``task`` from ``team`` to ``worker`` through ``backend`` as a signed envelope; verify the reply.

    The backend gets the envelope, a `TaskOpener` and the worker's own key: enough to run the task and sign
    the Result as that worker, and nothing more. The Task's envelope is a `LocalEnvelope`: a backend opens it here, and
    it is serialised and signed only if the backend ships it elsewhere as it is.

    Raises:
        SecurityError: an envelope was refused on either side (already audited).
    """
    recipient = child_path(team, worker.name)
    envelope = security.keyring.seal_local(security.identity(team), recipient, task, trace=carrier())
    key = security.keyring.worker_key(security.identity(recipient))
    reply = await backend.deliver(worker, envelope, security.opener, key, ctx, port)
    if reply.sender != recipient:  # signed, but by someone it was not sent to
        rejection = Rejection("forged", f"the reply to a task sent to {recipient!r} is signed by {reply.sender!r}",
                              reply.sender, reply.nonce, reply.key_id, reply.run_id, reply.recipient, reply.kind)
        if security.on_reject is not None:
            security.on_reject(rejection)
        raise ForgedSender(rejection)
    return security.keyring.open(reply, recipient=team, expected_kind="result", model=Result)
