"""Pagination cursors are the server's own: signed with the deployment's key, refused when
forged, altered, nested or out of range, and valid across restarts and processes of one store."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.application.readmodels import Cursor, Cursors
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.secrets import KEY_FILE, SECRETS_TABLE, cursor_key
from agentledger.infrastructure.settings import Settings
from agentledger.interfaces.http.app import create_app
from tests.api.helpers import CONSISTENT_WITH, agent, assert_problem
from tests.conftest import bearer, issue_token
from tests.support.helpers import run_threads

Headers = dict[str, str]

# Each list route, the filters its cursors are bound to (with no query parameters), and a
# key the range check must refuse: log positions are 1 .. 2**63-1, names at most 256 long.
LISTS: dict[str, tuple[dict[str, Any], list[Any]]] = {
    "/v1/sessions": ({"agent_id": None, "status": None}, [0, -1, 2**63, True, "5"]),
    "/v1/projects": ({"archived": None}, ["x" * 257, 5]),
    "/v1/projects/apollo/entries": (
        {
            "project": "apollo",
            "agent_id": None,
            "status": None,
            "since": None,
            "until": None,
            "q": None,
            "meta": [],
        },
        [0, 2**63],
    ),
    "/v1/work-items": (
        {
            "project": None,
            "kind": None,
            "status": None,
            "parent_id": None,
            "assignee": None,
            "to_role": None,
            "archived": None,
        },
        [0, 2**63],
    ),
}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def seeded(rt: Runtime, client: TestClient) -> tuple[Headers, int]:
    """Two of everything each list shows, so every list has a second page."""
    boss = bearer(issue_token(rt, "user:boss", "coordinator"))
    alice = agent(rt, "alice")
    for name in ("apollo", "gemini"):
        assert client.post("/v1/projects", json={"name": name}, headers=boss).status_code == 201
    sid = client.post("/v1/sessions", json={}, headers=alice).json()["id"]
    client.post("/v1/sessions", json={}, headers=alice)
    last = 0
    for n in range(2):
        entry = {"message": f"m{n}", "session_id": sid}
        assert client.post("/v1/projects/apollo/entries", json=entry, headers=alice).is_success
        body = {"project": "apollo", "kind": "task", "title": f"t{n}"}
        last = client.post("/v1/work-items", json=body, headers=boss).json()["position"]
    return {**boss, CONSISTENT_WITH: str(last)}, last


def second_page(client: TestClient, headers: Headers, path: str) -> str:
    first = client.get(path, params={"limit": "1"}, headers=headers)
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    assert cursor, path
    return str(cursor)


@pytest.mark.parametrize("path", list(LISTS))
def test_a_cursor_the_server_did_not_sign_is_400(
    runtime: Runtime, client: TestClient, path: str
) -> None:
    headers, _ = seeded(runtime, client)
    filters, _ = LISTS[path]
    issued = second_page(client, headers, path)
    content, _, signature = issued.partition(".")
    nested = b64(b"[" * 5_000 + b"]" * 5_000)  # once a RecursionError: 500
    unsigned = b64(json.dumps({"k": 1, "f": filters}).encode())  # once trusted as it was
    foreign = Cursors(b"another deployment's key").encode(Cursor(1, filters))
    altered = b64(json.dumps({"k": 1, "f": filters}, sort_keys=True).encode()) + "." + signature
    # The same bytes spelt otherwise: the signature's last character differs only in the
    # bits unpadded base64 leaves spare (16 bytes use 2 of its 6), so it decodes the same.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = alphabet[alphabet.index(signature[-1]) ^ 1]
    respelt = f"{content}.{signature[:-1]}{spare}"
    refused = (nested, f"{nested}.{signature}", unsigned, foreign, altered, content, ".", respelt)
    for cursor in refused:
        response = client.get(path, params={"cursor": cursor}, headers=headers)
        assert_problem(response, 400, "invalid-cursor")
    assert client.get(path, params={"cursor": issued}, headers=headers).status_code == 200


@pytest.mark.parametrize("path", list(LISTS))
def test_a_signed_cursor_outside_the_keys_range_is_400(
    runtime: Runtime, client: TestClient, settings: Settings, path: str
) -> None:
    """Signed with the deployment's own key, so only the range check can refuse these."""
    headers, _ = seeded(runtime, client)
    filters, bad_keys = LISTS[path]
    cursors = Cursors(cursor_key(settings))
    for key in bad_keys:
        cursor = cursors.encode(Cursor(key, filters))
        response = client.get(path, params={"cursor": cursor}, headers=headers)
        assert_problem(response, 400, "invalid-cursor")


@contextmanager
def serving(settings: Settings) -> Iterator[tuple[Runtime, TestClient]]:
    rt = build_runtime(settings, ManualClock())
    rt.start_runners()
    try:
        with TestClient(create_app(rt), raise_server_exceptions=False) as client:
            yield rt, client
    finally:
        rt.close()


def pages_continue(client: TestClient, headers: Headers, cursors: dict[str, str]) -> None:
    for path, cursor in cursors.items():
        response = client.get(path, params={"limit": "1", "cursor": cursor}, headers=headers)
        assert response.status_code == 200, (path, response.text)
        assert len(response.json()["items"]) == 1, path


def test_cursors_survive_a_restart(settings: Settings) -> None:
    with serving(settings) as (rt, client):
        headers, _ = seeded(rt, client)
        issued = {path: second_page(client, headers, path) for path in LISTS}
    with serving(settings) as (_rt, client):
        pages_continue(client, headers, issued)


def test_two_runtimes_on_one_store_accept_each_others_cursors(settings: Settings) -> None:
    with serving(settings) as (first, one), serving(settings) as (_second, other):
        headers, _ = seeded(first, one)
        pages_continue(other, headers, {path: second_page(one, headers, path) for path in LISTS})


def test_racing_processes_make_one_key(settings: Settings) -> None:
    if settings.uses_postgres:  # the schema exists before anything is stored in it
        with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{settings.postgres_schema}"')
    keys: list[bytes] = []
    run_threads([lambda: keys.append(cursor_key(settings)) for _ in range(8)])
    assert len(keys) == 8 and len(set(keys)) == 1 and len(keys[0]) == 32
    if settings.uses_postgres:
        with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
            count = conn.execute(
                f'SELECT count(*) FROM "{settings.postgres_schema}".{SECRETS_TABLE}'
            ).fetchone()
        assert count == (1,)
    else:
        path = settings.data_dir / KEY_FILE
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert sorted(p.name for p in settings.data_dir.iterdir() if KEY_FILE in p.name) == [
            KEY_FILE
        ]


def test_a_configured_secret_signs_the_cursors(settings: Settings) -> None:
    configured = settings.model_copy(update={"cursor_secret": SecretStr("s" * 32)})
    assert cursor_key(configured) == b"s" * 32
    with serving(settings) as (rt, client):
        headers, _ = seeded(rt, client)
        stored_key_cursor = second_page(client, headers, "/v1/sessions")
    with serving(configured) as (_rt, client):
        stale = client.get("/v1/sessions", params={"cursor": stored_key_cursor}, headers=headers)
        assert_problem(stale, 400, "invalid-cursor")
        pages_continue(
            client, headers, {"/v1/sessions": second_page(client, headers, "/v1/sessions")}
        )
