"""A refused command, kept for the audit: who asked for what, on which target, and why not.

A refusal is its own aggregate, one event long, so recording it never touches (or versions)
the aggregate the command targeted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from agentledger.domain.events import EventContext, LedgerAggregate

MAX_TARGET_LENGTH = 500
MAX_DETAIL_LENGTH = 1000


class CommandRefusal(LedgerAggregate):
    if TYPE_CHECKING:  # set by the event's apply()
        command: str
        target: str
        target_id: str | None
        problem: str
        status: int

    class CommandRefused(LedgerAggregate.Created):
        command: str  # the operation refused (its API operation id)
        target: str  # what it named (the request's path)
        target_id: str | None  # the aggregate it named, if its path names one
        problem: str  # the problem type slug (`version-mismatch`, `forbidden`, ...)
        status: int  # the HTTP status it was answered with
        detail: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.command = self.command
            aggregate.target = self.target
            aggregate.target_id = self.target_id
            aggregate.problem = self.problem
            aggregate.status = self.status

    @classmethod
    def record(
        cls,
        ctx: EventContext,
        refusal_id: UUID,
        *,
        target: str,
        target_id: str | None,
        problem: str,
        status: int,
        detail: str | None,
    ) -> CommandRefusal:
        return cls._begin(
            cls.CommandRefused,
            ctx,
            refusal_id,
            command=ctx.causation,
            target=target[:MAX_TARGET_LENGTH],
            target_id=target_id,
            problem=problem,
            status=status,
            detail=detail[:MAX_DETAIL_LENGTH] if detail else None,
        )
