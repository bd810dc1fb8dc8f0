"""Work items: what callers import. The use cases live in the modules of this package:
`shapes` (what the use cases take and give), `commands` (writes), `claiming` (claims by name
and claim-next), `queries` (reads), `facts` (what the writes load for the domain's rules),
`claim_board` (claim-next's spreading of callers), and `service` (all of them on one object)."""

from agentledger.application.work_items.claiming import WorkItemClaims
from agentledger.application.work_items.commands import WorkItemCommands
from agentledger.application.work_items.queries import WorkItemQueries
from agentledger.application.work_items.service import WorkItemService
from agentledger.application.work_items.shapes import (
    INCLUDES,
    Claim,
    Dependencies,
    ItemDetail,
    ItemReadiness,
    NewWorkItem,
    WorkItemView,
)

__all__ = [
    "INCLUDES",
    "Claim",
    "Dependencies",
    "ItemDetail",
    "ItemReadiness",
    "NewWorkItem",
    "WorkItemClaims",
    "WorkItemCommands",
    "WorkItemQueries",
    "WorkItemService",
    "WorkItemView",
]
