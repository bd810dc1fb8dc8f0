"""Access tokens: issue (the secret is shown once), revoke, list, and authenticate a request."""

from __future__ import annotations

import builtins
import secrets
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from agentledger.application.commands import CommandRunner, Outcome, UnitOfWork
from agentledger.application.consistency import Consistency
from agentledger.application.context import Principal, RequestContext
from agentledger.application.errors import Unauthenticated
from agentledger.application.ledger import Ledger
from agentledger.application.readmodels import Read, TokenRow, TokensReader
from agentledger.domain.access import AccessToken, Role, hash_secret, token_id_for_hash
from agentledger.domain.events import EventContext

TOKEN_PREFIX = "alt_"
# One answer for every token that does not authenticate: telling "revoked" from "never issued"
# or "malformed" would let a caller probe which secrets once existed.
INVALID_TOKEN = "the bearer token is not valid: unknown, malformed or revoked"


@dataclass(frozen=True)
class IssuedToken:
    token_id: UUID
    principal: str
    roles: list[str]
    secret: str


class AccessService:
    def __init__(
        self,
        ledger: Ledger,
        commands: CommandRunner,
        reader: TokensReader,
        consistency: Consistency,
    ) -> None:
        self._ledger = ledger
        self._commands = commands
        self._reader = reader
        self._consistency = consistency

    def issue(
        self, request: RequestContext, principal: str, roles: list[str], label: str | None = None
    ) -> Outcome[IssuedToken]:
        request.principal.require_any_role(Role.ADMIN)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)

        def decide(uow: UnitOfWork, ctx: EventContext) -> IssuedToken:
            token = AccessToken.issue(
                ctx, principal=principal, roles=roles, secret_hash=hash_secret(secret), label=label
            )
            uow.add(token)
            return IssuedToken(token.id, token.principal, list(token.roles), secret)

        return self._commands.run(request, "tokens.issue", decide)

    def revoke(
        self, request: RequestContext, token_id: UUID, reason: str | None = None
    ) -> Outcome[UUID]:
        request.principal.require_any_role(Role.ADMIN)

        def decide(uow: UnitOfWork, ctx: EventContext) -> UUID:
            uow.get(AccessToken, token_id, "token").revoke(ctx, reason)
            return token_id

        return self._commands.run(request, "tokens.revoke", decide)

    def authenticate(self, secret: str) -> Principal:
        """Look the token up in the event store itself: a revocation takes effect at once."""
        if not secret.startswith(TOKEN_PREFIX):
            raise Unauthenticated(INVALID_TOKEN)
        token_id = token_id_for_hash(hash_secret(secret))
        try:
            # Read only, never changed here: the cached aggregate itself, not a deep copy
            # (a sixth of a heartbeat's server CPU went on copying this and the session).
            token: object = self._ledger.repository.get(token_id, deepcopy_from_cache=False)
        except AggregateNotFoundError:
            raise Unauthenticated(INVALID_TOKEN) from None
        if not isinstance(token, AccessToken) or token.revoked:
            raise Unauthenticated(INVALID_TOKEN)
        return Principal(token.principal, frozenset(token.roles), token.id)

    def list(
        self, include_revoked: bool = False, consistent_with: int | None = None
    ) -> Read[builtins.list[TokenRow]]:
        position = self._consistency.wait(self._reader, consistent_with)
        return Read(self._reader.list(include_revoked=include_revoked), position)

    def has_active_admin(self) -> bool:
        """Whether anyone can administer the service over HTTP (an unrevoked admin token)."""
        return any(Role.ADMIN in t.roles for t in self._reader.list(include_revoked=False))
