"""Agent context: the project an agent works on, and the progress log it writes there."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agentledger.application.projections import metadata_text
from agentledger.interfaces.http.call import META_PREFIX
from agentledger.interfaces.http.schemas import (
    AgentId,
    AppendEntry,
    EntryOut,
    EntryPage,
    ListEntriesQuery,
    Metadata,
    ProjectRef,
    SelectionOut,
    SelectionWritten,
    SelectProject,
    ZonedTime,
)
from agentledger.interfaces.mcp.api import Caller, seg
from agentledger.interfaces.mcp.tools.base import (
    ExpectedVersion,
    Mutating,
    SessionId,
    ToolArgs,
    Toolbox,
    body,
)

toolbox = Toolbox()

OtherAgent = Annotated[
    AgentId | None,
    Field(description="Another agent (coordinators). Default: you."),
]
SelectedProject = Annotated[
    ProjectRef | None, Field(description="Default: your selected project (set_project).")
]


class SetProjectArgs(Mutating):
    project: ProjectRef
    expected_version: ExpectedVersion
    session_id: SessionId = None
    agent_id: OtherAgent = None


class GetProjectArgs(ToolArgs):
    agent_id: OtherAgent = None


class AppendEntryArgs(AppendEntry, Mutating):
    session_id: SessionId = None  # type: ignore[assignment]  # optional here: found if left out
    project: SelectedProject = None


class ReadRecentArgs(ToolArgs):
    project: SelectedProject = None
    limit: int = Field(default=20, ge=1, le=500)


# The query's check reads the text before it is a time: strict mode would then refuse text.
Since = Annotated[
    ZonedTime | None, Field(strict=False, description="Inclusive, ISO 8601 with zone.")
]
Until = Annotated[
    ZonedTime | None, Field(strict=False, description="Exclusive, ISO 8601 with zone.")
]


class QueryEntriesArgs(ListEntriesQuery, ToolArgs):
    project: SelectedProject = None
    since: Since = None
    until: Until = None
    metadata: Metadata = Field(
        default_factory=dict, description="Only entries whose metadata has these values."
    )


@toolbox.tool(SelectionWritten)
async def set_project(caller: Caller, args: SetProjectArgs) -> object:
    """Switch the project you (one agent) work on. Each agent has its own selection; two
    agents on two projects never disturb each other.

    expected_version is the version of your selection you last saw (get_project; 0 if you
    never selected one). If another writer changed it since, the call is refused with
    version-mismatch and current_version / current_project: decide again and retry with
    current_version. Errors: not-found (no such project), project-archived,
    session-not-active (start_session), forbidden (another agent's selection)."""
    agent = await caller.agent_id(args.agent_id)
    session = await caller.session_id(args.session_id, agent)
    answer = await caller.write(
        "PUT",
        f"/v1/agents/{seg(agent)}/project",
        body(args, SelectProject, session_id=session),
        expected_version=args.expected_version,
        idempotency_key=args.idempotency_key,
    )
    return answer.body


@toolbox.tool(SelectionOut, read_only=True)
async def get_project(caller: Caller, args: GetProjectArgs) -> object:
    """Your current project and the selection's version (pass it to set_project as
    expected_version). Errors: not-found (no project selected yet: call set_project with
    expected_version 0)."""
    agent = await caller.agent_id(args.agent_id)
    return (await caller.get(f"/v1/agents/{seg(agent)}/project")).body


@toolbox.tool(EntryOut)
async def append_entry(caller: Caller, args: AppendEntryArgs) -> object:
    """Log progress: one entry (message, status info|success|warn|error|bug|plan, flat
    metadata) in your selected project, or in the project named. Entries are immutable and
    ordered; use them for what you did, found or decided. Link an entry to the work item it
    is about with work_item_id. Errors: no-project-selected (call set_project or name the
    project), session-not-active, validation-error (message empty or too long)."""
    session = await caller.session_id(args.session_id)
    path = "/v1/entries" if args.project is None else f"/v1/projects/{seg(args.project)}/entries"
    answer = await caller.write(
        "POST",
        path,
        body(args, AppendEntry, session_id=session),
        idempotency_key=args.idempotency_key,
    )
    return answer.body


@toolbox.tool(EntryPage, read_only=True)
async def read_recent(caller: Caller, args: ReadRecentArgs) -> object:
    """The latest entries of your selected project (or the project named), newest first:
    read them when you start or resume work to see what others did. Errors: not-found
    (no project selected, or no such project)."""
    project = await _project(caller, args.project)
    return (await caller.get(f"/v1/projects/{seg(project)}/entries", limit=args.limit)).body


@toolbox.tool(EntryPage, read_only=True)
async def query_entries(caller: Caller, args: QueryEntriesArgs) -> object:
    """Search a project's entries, newest first: by agent, status, time range (since
    inclusive, until exclusive, ISO 8601 with a zone), text (q), work item or metadata
    values. Pass next_cursor back as cursor for the next page."""
    project = await _project(caller, args.project)
    params = args.model_dump(
        mode="json", include=set(ListEntriesQuery.model_fields), exclude_none=True
    )
    params |= {META_PREFIX + key: metadata_text(v) for key, v in args.metadata.items()}
    return (await caller.get(f"/v1/projects/{seg(project)}/entries", **params)).body


async def _project(caller: Caller, named: str | None) -> str:
    if named is not None:
        return named
    agent = await caller.agent_id(None)
    return str((await caller.get(f"/v1/agents/{seg(agent)}/project")).body["project"])
