"""Refused commands, recorded for the audit: who asked for what, on which target, and why not.

A refusal is written as an event of its own (`CommandRefusal`), never on the target, whose
version therefore does not move. It is written through group commit, in the refused request,
before the refusal is answered: a refusal a client has seen is in the log, unless the store
failed at that very moment (then the refusal is still answered, and the loss counted).
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from uuid import UUID

from agentledger.application.clock import Clock
from agentledger.application.commands import CommandRunner, context_of
from agentledger.application.context import RequestContext
from agentledger.domain.events import EventContext
from agentledger.domain.refusals import CommandRefusal

log = logging.getLogger("agentledger.refusals")
# The refusals recorded: the statuses of a command the state, a rule or a precondition turned
# down. A 400/413/415/422 of the request itself is a client's mistake about the format, a 401
# is counted (in metrics), and a 404 names nothing to refuse.
AUDITED_STATUSES = frozenset({403, 409, 412, 422, 428})


@dataclass(frozen=True)
class Refusal:
    command: str  # the operation, as the API names it
    target: str  # what it named (the request path)
    target_id: UUID | None  # the aggregate the path names, if it names one by id
    problem: str  # the problem type's slug
    status: int
    detail: str


class RefusalLog:
    def __init__(self, commands: CommandRunner, clock: Clock) -> None:
        self._commands = commands
        self._clock = clock
        self._lock = threading.Lock()
        self.recorded = 0
        self.lost = 0  # refusals answered but not written (the store failed meanwhile)

    def record(self, request: RequestContext, refusal: Refusal) -> int | None:
        """Write the refusal; its position, or None if the store failed (logged, counted)."""
        ctx = EventContext(
            actor=request.principal.name,
            trace_id=request.trace_id,
            causation=refusal.command,
            command_id=f"{random.getrandbits(128):032x}",
            occurred_at=self._clock.now(),
            **context_of(request, None),
        )
        aggregate = CommandRefusal.record(
            ctx,
            UUID(int=random.getrandbits(128), version=4),
            target=refusal.target,
            target_id=None if refusal.target_id is None else str(refusal.target_id),
            problem=refusal.problem,
            status=refusal.status,
            detail=refusal.detail,
        )
        try:
            position = self._commands.store_new(aggregate)
        except Exception:
            log.warning(
                "a refusal of %s was answered but not recorded", refusal.command, exc_info=True
            )
            with self._lock:
                self.lost += 1
            return None
        with self._lock:
            self.recorded += 1
        return position
