"""Every event records the whole context of the request that caused it: who (and by which
token, never its secret), in which agent session, on which trace, under which idempotency key
(hashed), from which client, as part of which command, and when."""

from __future__ import annotations

import hashlib

from starlette.testclient import TestClient

from agentledger.application.context import RequestContext, local_operator
from agentledger.domain.projects import project_id
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import events_of
from tests.conftest import bearer, issue_token


def test_a_write_records_token_session_trace_key_and_client(
    runtime: Runtime, client: TestClient
) -> None:
    secret = issue_token(runtime, "agent:alice", "agent")
    token_id = runtime.access.authenticate(secret).token_id
    headers = {
        **bearer(secret),
        "User-Agent": "coding-agent/1.4 (\x07bell)" + "x" * 400,
        "X-Request-ID": "orchestrator-7.step-3",
        "Idempotency-Key": "start-1",
    }
    started = client.post("/v1/sessions", json={"ttl_seconds": 300}, headers=headers)
    assert started.status_code == 201, started.text
    session = started.json()["id"]
    ended = client.post(
        f"/v1/sessions/{session}/complete", json={}, headers={**bearer(secret), "User-Agent": ""}
    )
    assert ended.status_code == 200, ended.text

    first, second = events_of(runtime, session)
    assert first.actor == "agent:alice" and first.actor_token == str(token_id)
    assert secret not in repr(vars(first))  # the token's id, never its secret
    assert first.acting_session == session
    assert first.trace_id == "orchestrator-7.step-3"
    assert first.causation == "sessions.start" and first.command_id
    assert first.idempotency_key_sha256 == hashlib.sha256(b"start-1").hexdigest()
    assert first.client is not None and len(first.client) == 256
    assert first.client.startswith("coding-agent/1.4 (bell)")  # control characters dropped
    assert (second.causation, second.client, second.idempotency_key_sha256) == (
        "sessions.complete",
        None,
        None,
    )
    assert second.acting_session == session and second.actor_token == str(token_id)


def test_events_of_system_work_name_no_token_or_session(runtime: Runtime) -> None:
    ctx = RequestContext(local_operator("tester"), "cli-test")
    runtime.projects.create(ctx, "apollo")
    (created,) = list(runtime.ledger.events.get(project_id("apollo")))
    assert created.actor == "system:cli:tester"
    assert (created.actor_token, created.acting_session, created.client) == (None, None, None)
