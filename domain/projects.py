"""Projects: named bodies of work. The id derives from the name, so a name is unique by design:
two concurrent creates of one name collide on the same aggregate id and version, and only one
can be saved."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from agentledger.domain.errors import InvalidValue, ProjectArchived
from agentledger.domain.events import EventContext, LedgerAggregate
from agentledger.domain.text import clean_optional_text

PROJECT_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_DESCRIPTION = 2000


def validate_project_name(name: str) -> str:
    if not PROJECT_NAME_PATTERN.fullmatch(name):
        raise InvalidValue(
            "project name must be a slug: 1-64 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (case-sensitive)",
            field="name",
        )
    return name


def project_id(name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"agentledger:project:{name}")


class Project(LedgerAggregate):
    if TYPE_CHECKING:  # set by events' apply(); not constructor arguments
        name: str
        description: str | None
        archived: bool

    class ProjectCreated(LedgerAggregate.Created):
        name: str
        description: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.name = self.name
            aggregate.description = self.description
            aggregate.archived = False

    class ProjectArchived(LedgerAggregate.Event):
        name: str
        reason: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.archived = True

    @classmethod
    def create(cls, ctx: EventContext, name: str, description: str | None = None) -> Project:
        description = clean_optional_text(description, "description", MAX_DESCRIPTION)
        name = validate_project_name(name)
        return cls._begin(
            cls.ProjectCreated, ctx, project_id(name), name=name, description=description
        )

    def archive(self, ctx: EventContext, reason: str | None = None) -> bool:
        """Archive; archiving an archived project changes nothing (and writes nothing)."""
        if self.archived:
            return False
        reason = clean_optional_text(reason, "reason", 1000)
        self._record(self.ProjectArchived, ctx, name=self.name, reason=reason)
        return True

    def ensure_open(self) -> None:
        if self.archived:
            raise ProjectArchived(self.name)
