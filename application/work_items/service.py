"""The work-items service the interfaces call: its commands, claims and queries on one object."""

from __future__ import annotations

from agentledger.application.clock import Clock
from agentledger.application.commands import CommandRunner
from agentledger.application.consistency import Consistency
from agentledger.application.readmodels import Cursors, WorkItemsReader
from agentledger.application.work_items.claiming import WorkItemClaims
from agentledger.application.work_items.commands import WorkItemCommands
from agentledger.application.work_items.handoffs import WorkItemHandoffs
from agentledger.application.work_items.queries import WorkItemQueries


class WorkItemService(WorkItemCommands, WorkItemClaims, WorkItemHandoffs, WorkItemQueries):
    def __init__(
        self,
        commands: CommandRunner,
        reader: WorkItemsReader,
        clock: Clock,
        consistency: Consistency,
        cursors: Cursors,
    ) -> None:
        WorkItemCommands.__init__(self, commands, reader, clock)
        WorkItemClaims.__init__(self, commands, reader, clock)
        WorkItemHandoffs.__init__(self, commands, reader, clock)
        WorkItemQueries.__init__(self, reader, clock, consistency, cursors)
