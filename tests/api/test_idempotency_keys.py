"""Idempotency-Key on writes: a request sent again with its key is answered as the first time
(Idempotent-Replayed: true) and writes nothing more; on PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
from starlette.testclient import TestClient

from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import TRACE
from tests.conftest import bearer, issue_token

Headers = dict[str, str]
KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
ITEM = {"project": "apollo", "kind": "task", "title": "Lexer"}


def boss(rt: Runtime, name: str = "user:boss") -> Headers:
    return bearer(issue_token(rt, name, "coordinator"))


def setup(rt: Runtime, client: TestClient) -> Headers:
    headers = boss(rt)
    assert client.post("/v1/projects", json={"name": "apollo"}, headers=headers).status_code == 201
    return headers


def keyed(headers: Headers, key: str) -> Headers:
    return {**headers, KEY: key}


def answer(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    """What a replay must repeat: status, body and headers (but the replay mark, and what
    describes each request itself: its trace id and its Server-Timing)."""
    own = {REPLAYED.lower(), TRACE.lower(), "server-timing"}
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() not in own}
    return response.status_code, response.content, headers


def items_titled(rt: Runtime, title: str) -> list[Any]:
    from agentledger.domain.work_items import WorkItem

    found = []
    for notification in rt.ledger.read_log(0, 10_000):
        event = rt.ledger.to_event(notification)
        if isinstance(event, WorkItem.WorkItemCreated) and event.title == title:
            found.append(event)
    return found


def test_a_create_sent_again_with_its_key_is_answered_the_same_and_writes_nothing(
    runtime: Runtime, client: TestClient
) -> None:
    headers = setup(runtime, client)
    first = client.post("/v1/work-items", json=ITEM, headers=keyed(headers, "k-1"))
    assert first.status_code == 201, first.text
    assert REPLAYED not in first.headers
    head = runtime.ledger.head_position()

    again = client.post("/v1/work-items", json=ITEM, headers=keyed(headers, "k-1"))
    assert again.headers[REPLAYED] == "true"
    assert answer(again) == answer(first)
    assert runtime.ledger.head_position() == head
    assert len(items_titled(runtime, "Lexer")) == 1
