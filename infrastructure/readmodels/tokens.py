"""The tokens read model: who holds access, granted by whom, revoked when. Never the secret."""

from __future__ import annotations

from agentledger.application.readmodels import TokenRow
from agentledger.infrastructure.readmodels.base import ReadModel, Table

TOKENS = Table.of(
    "tokens",
    TokenRow,
    key=("id",),
)


class TokensReadModel(ReadModel):
    name = "tokens_v1"
    tables = (TOKENS,)

    def list(self, *, include_revoked: bool) -> list[TokenRow]:
        where = "" if include_revoked else "WHERE revoked_at IS NULL"
        statement = f"SELECT * FROM {{tokens}} {where} ORDER BY issued_at, id"
        return [TokenRow(**r) for r in self.select("tokens", statement, {})]
