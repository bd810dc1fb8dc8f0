"""Who is asking and on behalf of which request: built by interfaces, read by use cases."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from agentledger.application.errors import Forbidden
from agentledger.domain.access import WORKER_PREFIX, Role


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]
    token_id: UUID | None = None

    @property
    def agent_id(self) -> str | None:
        kind, _, rest = self.name.partition(":")
        return rest if kind == "agent" else None

    def has_any_role(self, *roles: str) -> bool:
        return Role.ADMIN in self.roles or any(role in self.roles for role in roles)

    def require_any_role(self, *roles: str) -> None:
        if not self.has_any_role(*roles):
            raise Forbidden(f"{self.name} needs one of the roles: {', '.join(roles)}")

    def roles_granted(self) -> frozenset[str]:
        """The `worker:<role>` roles of the token: the roles its agent may act in."""
        return frozenset(r for r in self.roles if r.startswith(WORKER_PREFIX))

    @property
    def may_act_for_other_agents(self) -> bool:
        return self.has_any_role(Role.COORDINATOR)


SYSTEM_SWEEPER = Principal("system:sweeper", frozenset({Role.ADMIN}))
SYSTEM_POLICY = Principal("system:policy", frozenset({Role.ADMIN}))


def local_operator(os_user: str) -> Principal:
    """The operator running the CLI on the server: trusted by having the store's credentials."""
    return Principal(f"system:cli:{os_user}", frozenset({Role.ADMIN}))


@dataclass(frozen=True)
class RequestContext:
    principal: Principal
    trace_id: str
    idempotency_key: str | None = field(default=None)
    client: str | None = None  # the caller's software (its User-Agent), bounded
