"""Access tokens: who may call the service, with which roles. Granting access is itself audited.

Only a hash of the secret is ever stored; the aggregate id is derived from that hash so a
presented token is looked up directly, without a scan and without a read model lag.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from agentledger.domain.errors import InvalidValue, TokenRevoked
from agentledger.domain.events import EventContext, LedgerAggregate
from agentledger.domain.names import NAME
from agentledger.domain.text import clean_optional_text
from agentledger.domain.work_items import ROLE_NAME

PRINCIPAL_PATTERN = re.compile(rf"^(agent|user|service):{NAME}$")
ROLE_PATTERN = re.compile(
    r"^(agent|coordinator|auditor|admin|approver:[a-z0-9][a-z0-9_-]{0,63}"
    rf"|worker:{ROLE_NAME})$"
)
WORKER_PREFIX = "worker:"  # worker:<role>: the agent may act in that role (routed tasks)


class Role(StrEnum):
    AGENT = "agent"
    COORDINATOR = "coordinator"
    AUDITOR = "auditor"
    ADMIN = "admin"


def validate_principal(principal: str) -> str:
    if not PRINCIPAL_PATTERN.fullmatch(principal):
        raise InvalidValue(
            f"principal '{principal}' must look like agent:NAME, user:NAME or service:NAME",
            field="principal",
        )
    return principal


def validate_roles(principal: str, roles: list[str]) -> list[str]:
    if not roles:
        raise InvalidValue("a token needs at least one role", field="roles")
    for role in roles:
        if not ROLE_PATTERN.fullmatch(role):
            raise InvalidValue(
                f"unknown role '{role}': use agent, coordinator, auditor, admin, "
                "approver:NAME or worker:ROLE",
                field="roles",
            )
    if Role.AGENT in roles and not principal.startswith("agent:"):
        raise InvalidValue("the 'agent' role is only for agent:NAME principals", field="roles")
    if any(r.startswith(WORKER_PREFIX) for r in roles) and not principal.startswith("agent:"):
        raise InvalidValue("worker:ROLE roles are only for agent:NAME principals", field="roles")
    return sorted(set(roles))


def worker_role(role: str) -> str:
    """The token role that lets an agent act in `role` (start sessions in it)."""
    return f"{WORKER_PREFIX}{role}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_id_for_hash(secret_hash: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"agentledger:token:{secret_hash}")


class AccessToken(LedgerAggregate):
    if TYPE_CHECKING:  # set by events' apply(); not constructor arguments
        principal: str
        roles: list[str]
        label: str | None
        revoked: bool

    class Issued(LedgerAggregate.Created):
        principal: str
        roles: list[str]
        secret_sha256: str
        label: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.principal = self.principal
            aggregate.roles = list(self.roles)
            aggregate.label = self.label
            aggregate.revoked = False

    class Revoked(LedgerAggregate.Event):
        reason: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.revoked = True

    @classmethod
    def issue(
        cls,
        ctx: EventContext,
        *,
        principal: str,
        roles: list[str],
        secret_hash: str,
        label: str | None = None,
    ) -> AccessToken:
        principal = validate_principal(principal)
        return cls._begin(
            cls.Issued,
            ctx,
            token_id_for_hash(secret_hash),
            principal=principal,
            roles=validate_roles(principal, roles),
            secret_sha256=secret_hash,
            label=clean_optional_text(label, "label", 200),
        )

    def revoke(self, ctx: EventContext, reason: str | None = None) -> None:
        if self.revoked:
            raise TokenRevoked(f"token {self.id} is already revoked")
        self._record(self.Revoked, ctx, reason=clean_optional_text(reason, "reason", 1000))
