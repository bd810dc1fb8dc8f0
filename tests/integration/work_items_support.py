"""Agents, sessions and work items for integration tests, through the application layer."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from agentledger.application.context import RequestContext
from agentledger.application.work_items import NewWorkItem, WorkItemView
from agentledger.domain.work_items import WorkItem
from agentledger.infrastructure.bootstrap import Runtime
from tests.conftest import issue_token


class Team:
    def __init__(self, rt: Runtime, project: str = "apollo") -> None:
        self.rt = rt
        self.project = project
        boss = rt.access.authenticate(issue_token(rt, "user:boss", "coordinator"))
        self.boss = RequestContext(boss, "boss")
        self._agents: dict[str, RequestContext] = {}
        rt.projects.create(self.boss, project)

    def agent(self, name: str, *roles: str) -> RequestContext:
        """`agent:<name>` with the agent role and `roles` (e.g. worker:reviewer)."""
        if name not in self._agents:
            token = issue_token(self.rt, f"agent:{name}", "agent", *roles)
            self._agents[name] = RequestContext(self.rt.access.authenticate(token), name)
        return self._agents[name]

    def session(self, name: str, ttl_seconds: int = 600, role: str | None = None) -> UUID:
        """A session of `name` (acting in `role`, whose worker role its token is given)."""
        agent = self.agent(name, *([f"worker:{role}"] if role else []))
        return self.rt.sessions.start(agent, ttl_seconds=ttl_seconds, role=role).value.id

    def item(self, title: str, parent: UUID | None = None, **fields: Any) -> WorkItemView:
        new = NewWorkItem(
            project=self.project,
            kind=fields.pop("kind", "task"),
            title=title,
            parent_id=parent,
            **fields,
        )
        return self.rt.work_items.create(self.boss, new).value

    def events(self, item_id: UUID) -> list[Any]:
        return list(self.rt.ledger.events.get(item_id))

    def releases(self, item_id: UUID) -> list[Any]:
        return [e for e in self.events(item_id) if isinstance(e, WorkItem.ClaimReleased)]

    def claims(self, item_id: UUID) -> list[Any]:
        return [e for e in self.events(item_id) if isinstance(e, WorkItem.WorkItemClaimed)]
