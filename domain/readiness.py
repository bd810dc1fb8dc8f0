"""What "ready" means, defined once: open, unclaimed, not archived, every dependency done.

The ready queue, an item's readiness reasons and claim-next must all use this one definition
(issue 4 groundwork: not wired yet). Reasons are returned, not just a yes/no, so a client can
see why an item is not ready.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from domain.work_items import WorkStatus


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: tuple[str, ...]


def readiness(
    *,
    status: str,
    archived: bool,
    claimed_by: str | None,
    dependencies: Mapping[UUID, str],
) -> Readiness:
    """`claimed_by` is the agent holding a live claim (None if unclaimed or the holder's lease
    has lapsed); `dependencies` maps each dependency's id to its status."""
    reasons: list[str] = []
    if status != WorkStatus.OPEN.value:
        reasons.append(f"status:{status}")
    if archived:
        reasons.append("archived")
    if claimed_by is not None:
        reasons.append(f"claimed_by:{claimed_by}")
    reasons.extend(
        f"blocked_by:{dependency}"
        for dependency, dependency_status in sorted(dependencies.items(), key=lambda d: str(d[0]))
        if dependency_status != WorkStatus.DONE.value
    )
    return Readiness(not reasons, tuple(reasons))
