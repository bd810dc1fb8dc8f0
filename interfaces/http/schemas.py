"""Request and response shapes of the HTTP API. Unknown fields are refused everywhere."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import MISSING, fields
from datetime import datetime
from typing import Annotated, Any, Literal, Self, TypeVar, get_type_hints
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    WithJsonSchema,
    create_model,
)

from agentledger.application.entries import EntryView
from agentledger.application.projects import ProjectView
from agentledger.application.readmodels import MAX_CURSOR_LENGTH
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

# An X-Request-ID the service takes as a request's trace id; trace ids it makes are of it too.
TRACE_ID_PATTERN = r"^[A-Za-z0-9._:/+=-]{1,128}$"
TraceId = Annotated[
    str,
    Field(
        pattern=TRACE_ID_PATTERN,
        description="A trace id as the service records it (a traceparent's trace id, an "
        "X-Request-ID, or one it made up; see AgentLedger-Trace-Id).",
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


# The document shows a cursor's form; the server itself checks it (400 `invalid-cursor` for
# one it did not issue, whatever its form), so a malformed one is not a 422 either.
CursorToken = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": MAX_CURSOR_LENGTH,
            "pattern": r"^[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+$",
            "description": "The `next_cursor` of the previous page, as it was given.",
        }
    ),
]


# The rule of each text path parameter (ids are UUIDs, see `HttpCall.path_uuid`).
ProjectionName = Annotated[
    str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="e.g. work_items_v4")
]
PATH_RULES: dict[str, TypeAdapter[str]] = {
    "projection": TypeAdapter(ProjectionName),
    "name": TypeAdapter(ProjectRef),
    "agent_id": TypeAdapter(AgentId),
    "other_agent_id": TypeAdapter(AgentId),
}
UUID_PATH_PARAMETERS = ("session_id", "id", "other_id", "handover_id", "message_id", "thread_id")

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


class Out(Strict):
    """A response of an application value (a query's or command's view): each field read by
    name from the value's attribute, nested responses too."""

    @classmethod
    def of(cls, value: object) -> Self:
        return cls.model_validate(value, from_attributes=True)


def response_model(
    name: str,
    shape: type,
    *,
    described: Mapping[str, str] | None = None,
    types: Mapping[str, Any] | None = None,
) -> type[Out]:
    """The response model of `shape`, an application dataclass: its fields in their order,
    with their types and defaults, so a field added there is in the response (and the
    OpenAPI document) with no edit here. `described`: what the OpenAPI document says of a
    field; `types`: a field's type as the response has it (a nested response model)."""
    described, types = described or {}, types or {}
    hints = get_type_hints(shape)
    declared: dict[str, Any] = {}
    for f in fields(shape):
        if f.default_factory is not MISSING:
            info = Field(default_factory=f.default_factory, description=described.get(f.name))
        elif f.default is not MISSING:
            info = Field(default=f.default, description=described.get(f.name))
        else:
            info = Field(description=described.get(f.name))
        declared[f.name] = (types.get(f.name, hints[f.name]), info)
    unknown = (described.keys() | types.keys()) - declared.keys()
    if unknown:
        raise TypeError(f"{name}: {shape.__name__} has no field {', '.join(sorted(unknown))}")
    return create_model(name, __base__=Out, __module__=__name__, **declared)


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
    role: RoleName | None = Field(
        default=None,
        description="The role the session acts in: it sees and claims work items routed to "
        "this role. The token needs worker:<role> (or the caller is a coordinator).",
    )


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
    include_archived: bool = Field(
        default=False, description="Also sessions put away by `agentledger sessions archive`."
    )
    limit: int = Field(default=50, ge=1, le=500)
    cursor: CursorToken | None = None


# --- responses -------------------------------------------------------------------------------


SessionOut = response_model("SessionOut", SessionView)


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
    cursor: CursorToken | None = None


ProjectOut = response_model("ProjectOut", ProjectView)


class ProjectWritten(ProjectOut):
    position: int


class ProjectPage(Strict):
    items: list[ProjectOut]
    next_cursor: str | None
    position: int


class SelectProject(Strict):
    project: ProjectRef
    session_id: LooseUUID = Field(description="An active session of this agent.")


SelectionOut = response_model(
    "SelectionOut",
    SelectionView,
    described={"cleared_reason": "Why the selection is empty: 'cleared' or 'project_archived'."},
)


class SelectionWritten(SelectionOut):
    position: int


class AppendEntry(Strict):
    message: str = text(4000, required=True)
    status: EntryStatusName = "info"
    metadata: Metadata = Field(default_factory=dict)
    session_id: LooseUUID
    work_item_id: LooseUUID | None = Field(
        default=None, description="The work item this entry reports on (same project)."
    )


class ListEntriesQuery(Query):
    """Plus any number of `meta.<key>=<value>` parameters (exact match on a metadata value)."""

    agent_id: AgentId | None = None
    status: EntryStatusName | None = None
    since: ZonedTime | None = Field(default=None, description="Inclusive, ISO 8601 with zone.")
    until: ZonedTime | None = Field(default=None, description="Exclusive, ISO 8601 with zone.")
    q: str | None = Field(
        default=None, max_length=200, pattern=NO_CONTROL_PATTERN, description="Substring, any case."
    )
    work_item_id: UUID | None = Field(default=None, description="Entries about this item.")
    limit: int = Field(default=50, ge=1, le=500)
    cursor: CursorToken | None = None


EntryOut = response_model(
    "EntryOut", EntryView, described={"position": "The entry's position in the log."}
)


class EntryPage(Strict):
    items: list[EntryOut]
    next_cursor: str | None
    position: int
