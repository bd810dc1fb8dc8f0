"""What "ready" means, defined once: open, unclaimed, not archived (nor its project), every
dependency done.

The ready queue, an item's readiness reasons and claim-next all use this one definition.
Reasons are returned, not just a yes/no, so a client can see why an item is not ready.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from agentledger.domain.work_items import WorkStatus


@dataclass(frozen=True)
class Reason:
    """Why an item is not ready: `code` is one of status, archived, project_archived,
    claimed_by, blocked_by."""

    code: str
    status: str | None = None  # the item's status (status) or the dependency's (blocked_by)
    agent_id: str | None = None  # claimed_by
    item_id: UUID | None = None  # blocked_by

    def __str__(self) -> str:
        detail = self.agent_id or self.item_id or self.status
        return self.code if detail is None else f"{self.code}:{detail}"


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: tuple[Reason, ...]


def readiness(
    *,
    status: str,
    archived: bool,
    claimed_by: str | None,
    dependencies: Mapping[UUID, str],
    project_archived: bool = False,
) -> Readiness:
    """`claimed_by` is the agent holding a live claim (None if unclaimed or the holder's lease
    has lapsed); `dependencies` maps each dependency's id to its status."""
    reasons: list[Reason] = []
    if status != WorkStatus.OPEN.value:
        reasons.append(Reason("status", status=status))
    if archived:
        reasons.append(Reason("archived"))
    if project_archived:
        reasons.append(Reason("project_archived"))
    if claimed_by is not None:
        reasons.append(Reason("claimed_by", agent_id=claimed_by))
    reasons.extend(
        Reason("blocked_by", status=dependency_status, item_id=dependency)
        for dependency, dependency_status in sorted(dependencies.items(), key=lambda d: str(d[0]))
        if dependency_status != WorkStatus.DONE.value
    )
    return Readiness(not reasons, tuple(reasons))
