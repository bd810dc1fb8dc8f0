"""What a work item's `metadata` may hold, per kind.

Known kinds have a pydantic model each (unknown fields refused, sizes bounded), so what agents
record about a task or an epic stays comparable across agents. A kind the ledger does not know
yet still gets the bounded flat object every other metadata field accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from agentledger.domain.errors import InvalidValue
from agentledger.domain.metadata import Metadata, validate_metadata

# Free text without control characters (tab and newlines aside), as everywhere in the log.
_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
Short = Annotated[
    str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True, pattern=_TEXT)
]
Role = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Label = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")]
Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s\x00-\x1f\x7f]{1,2000}$")]


class _KindMetadata(BaseModel):
    # Strict: "30" is not the number 30, nor true a number; dates still come as ISO text.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    labels: list[Label] = Field(default_factory=list, max_length=20)


class ProjectMetadata(_KindMetadata):
    repository: Url | None = None
    goal: Short | None = None


class EpicMetadata(_KindMetadata):
    goal: Short | None = None
    target_date: Annotated[date, Field(strict=False)] | None = None


class TaskMetadata(_KindMetadata):
    """A task routed between roles: who sent it, what it carries, which trace it belongs to."""

    from_role: Role | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    trace_id: Annotated[str, StringConstraints(max_length=128, pattern=_TEXT)] | None = None
    estimate_hours: Annotated[float, Field(ge=0, le=10_000)] | None = None


class ResearchMetadata(_KindMetadata):
    question: Short | None = None
    sources: list[Url] = Field(default_factory=list, max_length=50)


class SessionMetadata(_KindMetadata):
    """A timeboxed working session planned as an item (not an agent's lease)."""

    agenda: Short | None = None
    minutes: Annotated[int, Field(ge=1, le=24 * 60)] | None = None


MODELS: dict[str, type[_KindMetadata]] = {
    "project": ProjectMetadata,
    "epic": EpicMetadata,
    "task": TaskMetadata,
    "research": ResearchMetadata,
    "session": SessionMetadata,
}


def validate_item_metadata(kind: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata in its stored (JSON) form, or `InvalidValue` naming the first problem."""
    model = MODELS.get(kind)
    if model is None:
        flat: Metadata = validate_metadata(value)
        return dict(flat)
    try:
        parsed = model.model_validate(dict(value))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidValue(
            f"metadata for kind '{kind}': {where}: {first['msg']}", field="metadata"
        ) from None
    if model is TaskMetadata:
        validate_metadata(parsed.model_dump()["payload"])  # a bounded flat object too
    return parsed.model_dump(mode="json", exclude_defaults=True)
