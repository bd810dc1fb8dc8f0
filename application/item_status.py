"""What a caller polls to follow one work item (an orchestrator that sent a task to a role):
the item with what `include=` asked for, its approvals with their decisions, and the latest
progress-log entries that report on it."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from agentledger.application.approvals import ApprovalView
from agentledger.application.clock import Clock
from agentledger.application.consistency import Consistency
from agentledger.application.entries import EntryView
from agentledger.application.readmodels import ApprovalsReader, EntriesReader, EntryFilter, Read
from agentledger.application.work_items import ItemDetail, WorkItemService

LATEST_ENTRIES = 10


@dataclass(frozen=True)
class ItemStatus:
    detail: ItemDetail
    approvals: list[ApprovalView]  # oldest request first
    entries: list[EntryView]  # newest first, at most LATEST_ENTRIES


class ItemStatusQuery:
    def __init__(
        self,
        work_items: WorkItemService,
        approvals: ApprovalsReader,
        entries: EntriesReader,
        clock: Clock,
        consistency: Consistency,
    ) -> None:
        self._work_items = work_items
        self._approvals = approvals
        self._entries = entries
        self._clock = clock
        self._consistency = consistency

    def get(
        self,
        item_id: UUID,
        include: frozenset[str] = frozenset(),
        consistent_with: int | None = None,
    ) -> Read[ItemStatus]:
        """The answer reflects the log up to the position it names: the least of the three
        read models' (each has reached `consistent_with`, when given)."""
        read = self._work_items.get(item_id, include, consistent_with)
        positions = [
            read.position,
            self._consistency.wait(self._approvals, consistent_with),
            self._consistency.wait(self._entries, consistent_with),
        ]
        now = self._clock.now()
        approvals = [ApprovalView.of_row(r, now) for r in self._approvals.for_item(item_id)]
        about = EntryFilter(project=read.value.item.project, work_item_id=item_id)
        entries = self._entries.list(about, limit=LATEST_ENTRIES, before_position=None)
        return Read(ItemStatus(read.value, approvals, entries), min(positions))
