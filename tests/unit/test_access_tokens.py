"""AccessToken: principals and roles are validated; revocation is final; only a hash is kept."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from agentledger.domain.access import AccessToken, hash_secret
from agentledger.domain.errors import InvalidValue, TokenRevoked
from agentledger.domain.events import EventContext

CTX = EventContext("system:cli:op", "t", "tokens.issue", "c", datetime(2026, 1, 1, tzinfo=UTC))


# Worked out once outside the code under test: `printf 's3cret' | sha256sum`, and
# uuid5(NAMESPACE_URL, "agentledger:token:" + that hash). Comparing with hash_secret() itself
# would pass whatever it computed.
S3CRET_SHA256 = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"
S3CRET_TOKEN_ID = UUID("eaa38f91-355a-525c-acb3-0e2d1aede1e9")


def test_the_secret_hash_is_the_sha256_hex_digest_of_the_secret() -> None:
    assert hash_secret("s3cret") == S3CRET_SHA256


def test_issue_keeps_only_the_hash_and_derives_the_id_from_it() -> None:
    token = AccessToken.issue(
        CTX, principal="agent:alice", roles=["agent"], secret_hash=hash_secret("s3cret")
    )
    (issued,) = token.collect_events()
    assert token.id == S3CRET_TOKEN_ID
    assert "s3cret" not in repr(issued)
    assert issued.secret_sha256 == S3CRET_SHA256


@pytest.mark.parametrize(
    ("principal", "roles"),
    [
        ("alice", ["agent"]),
        ("agent:", ["agent"]),
        ("agent:alice", []),
        ("agent:alice", ["superuser"]),
        ("user:bob", ["agent"]),
    ],
)
def test_invalid_principals_and_roles_are_refused(principal: str, roles: list[str]) -> None:
    with pytest.raises(InvalidValue):
        AccessToken.issue(CTX, principal=principal, roles=roles, secret_hash="h")


def test_roles_may_include_approvers() -> None:
    token = AccessToken.issue(
        CTX, principal="user:rita", roles=["approver:security", "auditor"], secret_hash="h"
    )
    assert token.roles == ["approver:security", "auditor"]


def test_revocation_is_final() -> None:
    token = AccessToken.issue(CTX, principal="user:bob", roles=["coordinator"], secret_hash="h")
    token.revoke(CTX, "left the team")
    assert token.revoked
    with pytest.raises(TokenRevoked):
        token.revoke(CTX)
