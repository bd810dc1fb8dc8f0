"""Request and response shapes of the HTTP API. Unknown fields are refused everywhere."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    WithJsonSchema,
)

from agentledger.application.entries import EntryView
from agentledger.application.projects import ProjectView
from agentledger.application.selections import SelectionView
from agentledger.application.sessions import SessionView
from agentledger.domain.metadata import MAX_KEY_LENGTH, MAX_KEYS, MAX_TOTAL_BYTES
from agentledger.domain.names import AGENT_ID_PATTERN
from agentledger.domain.projects import PROJECT_NAME_PATTERN
from agentledger.domain.work_items import KIND_PATTERN, ROLE_PATTERN

W = TypeVar("W", bound=BaseModel)

# --- identifiers -----------------------------------------------------------------------------
# Every body, query and path field that names something uses one of these, so a control
# character (NUL above all, which PostgreSQL cannot store) is refused alike on both stores, and
# the OpenAPI document shows each pattern. The domain checks the same rules again.

NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f]*$"
MAX_REFERENCE_LENGTH = 256

ProjectName = Annotated[
    str,
    Field(
        pattern=PROJECT_NAME_PATTERN.pattern,
        description="Unique, case-sensitive slug: 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit.",
    ),
]
# A project named to be looked up: a name that could not have been created is simply not
# found (404), but control characters and overlong text are refused (422).
ProjectRef = Annotated[
    str,
    Field(
        max_length=MAX_REFERENCE_LENGTH,
        pattern=NO_CONTROL_PATTERN,
        description="A project's name.",
    ),
]
AgentId = Annotated[
    str,
    Field(
        pattern=AGENT_ID_PATTERN.pattern,
        description="1-128 letters, digits, '.', '_' or '-', starting with a letter or digit.",
    ),
]
Kind = Annotated[
    str,
    Field(
        pattern=KIND_PATTERN.pattern,
        description="project, epic, task, research or session; other lowercase slugs "
        "(1-32 characters) are allowed too.",
    ),
]
RoleName = Annotated[
    str,
    Field(
        pattern=ROLE_PATTERN.pattern,
        description="A role agents take: 1-64 letters, digits, '.', '_' or '-'.",
    ),
]

# Free text the log stores (`domain.text`): tab and line breaks allowed, other controls not.
_TEXT = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
TEXT_PATTERN = f"^{_TEXT}*$"
# The same, with at least one character that is not white space (titles, messages).
NON_BLANK_TEXT_PATTERN = rf"^{_TEXT}*[^\s\x00-\x1f\x7f]{_TEXT}*$"


def text(max_length: int, *, required: bool = False) -> Any:
    """A bounded free-text field, with the domain's rules in the OpenAPI document;
    `required` text must also not be blank."""
    if required:
        return Field(min_length=1, max_length=max_length, pattern=NON_BLANK_TEXT_PATTERN)
    return Field(default=None, max_length=max_length, pattern=TEXT_PATTERN)


def _integral(value: object) -> object:
    """JSON does not tell 3 from 3.0 and JSON Schema's integer takes both; strings and
    booleans stay refused (strict models)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_integral)]
MetadataKey = Annotated[str, Field(min_length=1, max_length=MAX_KEY_LENGTH, pattern=TEXT_PATTERN)]
MetadataText = Annotated[str, Field(max_length=MAX_TOTAL_BYTES, pattern=TEXT_PATTERN)]
MetadataValue = MetadataText | int | float | bool | None


def metadata_schema(values: dict[str, Any]) -> WithJsonSchema:
    """An object's keys as the domain checks them, in `propertyNames` (pydantic would put
    the key pattern in `patternProperties`, which lets other keys through)."""
    keys = {"minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": TEXT_PATTERN}
    return WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_KEYS,
            "propertyNames": keys,
            "additionalProperties": values,
        }
    )


_SCALAR = {
    "anyOf": [
        {"type": "string", "maxLength": MAX_TOTAL_BYTES, "pattern": TEXT_PATTERN},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
    ]
}
# A flat object (`domain.metadata`); its total size is checked by the domain.
Metadata = Annotated[
    dict[MetadataKey, MetadataValue], Field(max_length=MAX_KEYS), metadata_schema(_SCALAR)
]


# The rule of each text path parameter (ids are UUIDs, see `HttpCall.path_uuid`).
PATH_RULES: dict[str, TypeAdapter[str]] = {
    "name": TypeAdapter(ProjectRef),
    "agent_id": TypeAdapter(AgentId),
}
UUID_PATH_PARAMETERS = ("session_id", "id", "other_id")

# ISO 8601 / RFC 3339 with a zone; pydantic alone would also take a number of seconds.
_ZONED_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})"
)


def _iso_text(value: object) -> object:
    if isinstance(value, str) and _ZONED_TIME.fullmatch(value):
        return value
    raise ValueError("must be an ISO 8601 time with a zone, e.g. 2026-11-22T01:19:38Z")


ZonedTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]


class Strict(BaseModel):
    """Bodies and responses: no unknown fields, no coercion (`true` is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Query strings arrive as text: values are converted, but unknown parameters refused."""

    model_config = ConfigDict(extra="forbid")


class NoQuery(Query):
    """The query of a route that takes no parameters: any one is unknown."""


def with_position(written: type[W], resource: BaseModel, position: int) -> W:
    """What a write returns: the resource's fields plus the log position of the write."""
    return written(**resource.model_dump(), position=position)


# --- requests --------------------------------------------------------------------------------


class StartSession(Strict):
    agent_id: AgentId | None = Field(
        default=None, description="Defaults to the calling agent; coordinators may name another."
    )
    ttl_seconds: Integer | None = Field(
        default=None, ge=1, description="Lease length; default 900, clamped to 60-3600."
    )
    status: Literal["active", "pending"] = "active"
    metadata: Metadata = Field(default_factory=dict)


class PatchSession(Strict):
    metadata: Metadata = Field(
        description="JSON merge patch of the session's metadata: null removes a key."
    )


class EndSession(Strict):
    reason: str | None = text(1000)


class EmptyBody(Strict):
    pass


class ListSessionsQuery(Query):
    agent_id: AgentId | None = None
    status: Literal["pending", "active", "completed", "failed", "expired"] | None = None
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = None


# --- responses -------------------------------------------------------------------------------


class SessionOut(Strict):
    id: UUID
    agent_id: str
    status: str
    ttl_seconds: int
    lease_expires_at: datetime
    heartbeat_interval_seconds: int
    metadata: dict[str, MetadataValue]
    version: int
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    end_reason: str | None

    @classmethod
    def of(cls, view: SessionView) -> SessionOut:
        return cls(
            id=view.id,
            agent_id=view.agent_id,
            status=view.status,
            ttl_seconds=view.ttl_seconds,
            lease_expires_at=view.lease_expires_at,
            heartbeat_interval_seconds=view.heartbeat_interval_seconds,
            metadata=view.metadata,
            version=view.version,
            created_at=view.created_at,
            updated_at=view.updated_at,
            ended_at=view.ended_at,
            end_reason=view.end_reason,
        )


class SessionWritten(SessionOut):
    position: int = Field(description="Log position of the last event written (or current head).")


class HeartbeatOut(SessionWritten):
    expires_at: datetime = Field(description="When the lease lapses unless renewed again.")
    renewed: bool = Field(description="False when the renewal was too small to be written.")


class SessionPage(Strict):
    items: list[SessionOut]
    next_cursor: str | None
    position: int


class ProblemOut(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    trace_id: str | None = None


# --- projects, selections, entries -----------------------------------------------------------

LooseUUID = Annotated[UUID, Field(strict=False)]  # JSON carries ids as strings
EntryStatusName = Literal["info", "success", "warn", "error", "bug", "plan"]


class CreateProject(Strict):
    name: ProjectName
    description: str | None = text(2000)


class ArchiveProject(Strict):
    reason: str | None = text(1000)


class ListProjectsQuery(Query):
    archived: bool | None = None
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = None


class ProjectOut(Strict):
    name: str
    description: str | None
    archived: bool
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: ProjectView) -> ProjectOut:
        return cls(**asdict(view))


class ProjectWritten(ProjectOut):
    position: int


class ProjectPage(Strict):
    items: list[ProjectOut]
    next_cursor: str | None
    position: int


class SelectProject(Strict):
    project: ProjectRef
    session_id: LooseUUID = Field(description="An active session of this agent.")


class SelectionOut(Strict):
    agent_id: str
    project: str | None
    version: int
    session_id: UUID | None
    updated_at: datetime
    cleared_reason: str | None = Field(
        description="Why the selection is empty: 'cleared' or 'project_archived'."
    )

    @classmethod
    def of(cls, view: SelectionView) -> SelectionOut:
        return cls(**asdict(view))


class SelectionWritten(SelectionOut):
    position: int


class AppendEntry(Strict):
    message: str = text(4000, required=True)
    status: EntryStatusName = "info"
    metadata: Metadata = Field(default_factory=dict)
    session_id: LooseUUID


class ListEntriesQuery(Query):
    """Plus any number of `meta.<key>=<value>` parameters (exact match on a metadata value)."""

    agent_id: AgentId | None = None
    status: EntryStatusName | None = None
    since: ZonedTime | None = Field(default=None, description="Inclusive, ISO 8601 with zone.")
    until: ZonedTime | None = Field(default=None, description="Exclusive, ISO 8601 with zone.")
    q: str | None = Field(
        default=None, max_length=200, pattern=NO_CONTROL_PATTERN, description="Substring, any case."
    )
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = None


class EntryOut(Strict):
    position: int = Field(description="The entry's position in the log.")
    id: UUID
    project: str
    agent_id: str
    session_id: UUID
    status: str
    message: str
    metadata: dict[str, MetadataValue]
    created_at: datetime

    @classmethod
    def of(cls, view: EntryView) -> EntryOut:
        return cls(**asdict(view))


class EntryPage(Strict):
    items: list[EntryOut]
    next_cursor: str | None
    position: int
