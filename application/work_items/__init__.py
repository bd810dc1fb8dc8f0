"""Work items: what callers import. The use cases live in the modules of this package: `views`
(the shapes given and taken), `commands` (writes), `queries` (reads), `facts` (what commands
load for the domain's claim rules), `claim_board` (claim-next's spreading of callers), and
`service` (commands and queries on one object)."""

from agentledger.application.work_items.commands import WorkItemCommands
from agentledger.application.work_items.queries import WorkItemQueries
from agentledger.application.work_items.service import WorkItemService
from agentledger.application.work_items.views import (
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
    "WorkItemCommands",
    "WorkItemQueries",
    "WorkItemService",
    "WorkItemView",
]
