"""Idempotency-Key on writes: a request sent again with its key is answered as the first time
(Idempotent-Replayed: true) and writes nothing more; on PostgreSQL and SQLite."""

from __future__ import annotations

import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx2 as httpx
import psycopg
import pytest
from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.application.idempotency import scope_of
from agentledger.domain.selections import selection_id
from agentledger.domain.work_items import WorkItem
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.interfaces.http.app import create_app
from agentledger.interfaces.http.idempotency import fingerprint
from tests.api.helpers import (
    TRACE,
    agent,
    assert_problem,
    refusals_since,
    start,
    written_since,
)
from tests.conftest import bearer, issue_token
from tests.integration.test_group_commit import queued_behind_a_held_turn
from tests.support.helpers import run_threads

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


def answer(response: httpx.Response) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
    """What a replay must repeat: status, body and headers (but the replay mark, and what
    describes each request itself: its trace id and its Server-Timing)."""
    own = {REPLAYED.lower(), TRACE.lower(), "server-timing"}
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() not in own}
    return response.status_code, response.content, tuple(sorted(headers.items()))


def items_titled(rt: Runtime, title: str) -> list[Any]:
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


def create(client: TestClient, headers: Headers, key: str, **fields: Any) -> httpx.Response:
    return client.post("/v1/work-items", json={**ITEM, **fields}, headers=keyed(headers, key))


class FirstClaimHeld:
    """Holds the request that claims the key, once its claim is committed, until every other
    request has been answered: so all of them met the key while the first was in flight. Run
    one after another, the others would wait behind the held one and the wait times out."""

    def __init__(self, rt: Runtime, monkeypatch: pytest.MonkeyPatch, others: int) -> None:
        self._others = others
        self._answered = 0
        self._lock = threading.Lock()
        self._all_answered = threading.Event()
        self.held = 0
        store = rt.ledger.recorder
        real = store.claim_key  # type: ignore[attr-defined]

        def claim_key(*args: Any) -> Any:
            found = real(*args)
            if found is None:  # this request holds the key now
                with self._lock:
                    self.held += 1
                assert self._all_answered.wait(60), "the other requests never came"
            return found

        monkeypatch.setattr(store, "claim_key", claim_key)

    def answered(self) -> None:
        with self._lock:
            self._answered += 1
            if self._answered == self._others:
                self._all_answered.set()


def sixteen_at_once(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, send: Callable[[], httpx.Response]
) -> httpx.Response:
    """Send the same keyed request 16 times together: one runs, the 15 that come while it
    runs are told it is in progress (409, Retry-After). Returns the one that ran."""
    gate = FirstClaimHeld(rt, monkeypatch, others=15)
    responses: list[httpx.Response] = []

    def one() -> None:
        response = send()
        responses.append(response)
        gate.answered()

    run_threads([one for _ in range(16)])
    monkeypatch.undo()
    assert gate.held == 1
    in_progress = [r for r in responses if r.status_code == 409 and r.headers.get("Retry-After")]
    assert len(in_progress) == 15, [r.text for r in responses]
    for response in in_progress:
        assert_problem(response, 409, "idempotency-request-in-progress")
        assert int(response.headers["Retry-After"]) >= 1
    (first,) = [r for r in responses if r not in in_progress]
    assert REPLAYED not in first.headers
    return first


def assert_replayed(first: httpx.Response, send: Callable[[], httpx.Response]) -> None:
    """After completion every request with the key gets the first answer again."""
    for _ in range(3):
        again = send()
        assert again.headers[REPLAYED] == "true"
        assert answer(again) == answer(first)


def test_sixteen_concurrent_requests_with_one_key_create_one_item(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = setup(runtime, client)
    first = sixteen_at_once(runtime, monkeypatch, lambda: create(client, headers, "k-16"))
    assert first.status_code == 201, first.text
    assert len(items_titled(runtime, "Lexer")) == 1
    assert_replayed(first, lambda: create(client, headers, "k-16"))
    assert len(items_titled(runtime, "Lexer")) == 1


def test_a_precondition_write_is_replayed_with_its_precondition(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = setup(runtime, client)
    assert client.post("/v1/projects", json={"name": "gemini"}, headers=headers).status_code == 201
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]

    def switch(key: str, precondition: Headers, project: str = "apollo") -> httpx.Response:
        return client.put(
            "/v1/agents/alice/project",
            json={"project": project, "session_id": sid},
            headers={**keyed(alice, key), **precondition},
        )

    first = switch("s-1", {"If-None-Match": "*"})
    assert first.status_code == 200, first.text
    events = len(list(runtime.ledger.events.get(selection_id("alice"))))
    again = switch("s-1", {"If-None-Match": "*"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert answer(again) == answer(first)
    # The same key with another precondition is another request: refused, nothing written.
    other = switch("s-1", {"If-Match": '"1"'})
    assert_problem(other, 422, "idempotency-key-reused")
    assert len(list(runtime.ledger.events.get(selection_id("alice")))) == events

    def switch_to_gemini() -> httpx.Response:
        return switch("s-2", {"If-Match": '"1"'}, "gemini")

    switched = sixteen_at_once(runtime, monkeypatch, switch_to_gemini)
    assert switched.status_code == 200 and switched.json()["project"] == "gemini"
    assert len(list(runtime.ledger.events.get(selection_id("alice")))) == events + 1
    # Replayed with its precondition, although the version it names is no longer current.
    assert_replayed(switched, switch_to_gemini)
    assert len(list(runtime.ledger.events.get(selection_id("alice")))) == events + 1


def test_a_refusal_is_replayed_as_it_was_given(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = setup(runtime, client)
    head = runtime.ledger.head_position()

    def create_apollo() -> httpx.Response:
        return client.post("/v1/projects", json={"name": "apollo"}, headers=keyed(headers, "p"))

    refusal = sixteen_at_once(runtime, monkeypatch, create_apollo)
    problem = assert_problem(refusal, 409, "project-exists")
    assert_replayed(refusal, create_apollo)
    # Not decided again: the problem names the first request's trace.
    again = create_apollo()
    assert again.json()["trace_id"] == problem["trace_id"] != again.headers[TRACE]
    # Refused once, and recorded once for the audit: the replays are answers, not refusals.
    assert written_since(runtime, head) == []
    assert [e.trace_id for e in refusals_since(runtime, head)] == [problem["trace_id"]]


def test_a_missing_precondition_is_a_refusal_replayed_too(
    runtime: Runtime, client: TestClient
) -> None:
    setup(runtime, client)
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    body = {"project": "apollo", "session_id": sid}
    first = client.put("/v1/agents/alice/project", json=body, headers=keyed(alice, "428"))
    assert_problem(first, 428, "precondition-required")
    again = client.put("/v1/agents/alice/project", json=body, headers=keyed(alice, "428"))
    assert again.headers[REPLAYED] == "true"
    assert answer(again) == answer(first)


def test_validation_and_authorisation_failures_are_not_stored(
    runtime: Runtime, client: TestClient
) -> None:
    headers = setup(runtime, client)
    bad = create(client, headers, "v", title="")
    assert_problem(bad, 422, "validation-error")
    assert create(client, headers, "v").status_code == 201  # the key was not spent
    nobody = bearer(issue_token(runtime, "user:auditor", "auditor"))
    assert_problem(create(client, nobody, "w"), 403)
    assert create(client, headers, "w").status_code == 201


def test_the_key_with_another_body_is_refused_and_writes_nothing(
    runtime: Runtime, client: TestClient
) -> None:
    headers = setup(runtime, client)
    assert create(client, headers, "b").status_code == 201
    head = runtime.ledger.head_position()
    assert_problem(create(client, headers, "b", title="Parser"), 422, "idempotency-key-reused")
    assert runtime.ledger.head_position() == head
    # The same JSON in other bytes is the same request.
    same = client.post(
        "/v1/work-items",
        content=b'{"title": "Lexer", "kind": "task",  "project": "apollo"}',
        headers={**keyed(headers, "b"), "Content-Type": "application/json"},
    )
    assert same.headers["Idempotent-Replayed"] == "true"


def test_another_principal_with_the_same_key_is_independent(
    runtime: Runtime, client: TestClient
) -> None:
    headers = setup(runtime, client)
    other = boss(runtime, "user:other")
    mine = create(client, headers, "shared")
    theirs = create(client, other, "shared", title="Parser")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]


def test_keys_must_be_short_printable_text(runtime: Runtime, client: TestClient) -> None:
    headers = setup(runtime, client)
    for key in ("", "x" * 256, "tab\there"):
        assert_problem(create(client, headers, key), 400, "invalid-idempotency-key")
    assert create(client, headers, "x" * 255).status_code == 201
    assert create(client, headers, '"quoted"').status_code == 201


def test_without_the_header_writes_are_not_deduplicated(
    runtime: Runtime, client: TestClient
) -> None:
    headers = setup(runtime, client)
    for _ in range(2):
        response = client.post("/v1/work-items", json=ITEM, headers=headers)
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response.headers
    assert len(items_titled(runtime, "Lexer")) == 2


def test_a_key_expires_and_then_behaves_as_new(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    headers = setup(runtime, client)
    assert create(client, headers, "e").status_code == 201
    clock.advance(runtime.settings.idempotency_ttl_seconds - 1)
    assert create(client, headers, "e").headers["Idempotent-Replayed"] == "true"
    clock.advance(2)
    fresh = create(client, headers, "e")
    assert fresh.status_code == 201 and "Idempotent-Replayed" not in fresh.headers
    assert len(items_titled(runtime, "Lexer")) == 2
    assert create(client, headers, "gone").status_code == 201
    clock.advance(runtime.settings.idempotency_ttl_seconds + 1)
    assert runtime.idempotency.remove_expired() == 2
    assert runtime.idempotency.remove_expired() == 0


def test_a_key_held_by_a_process_that_died_is_free_once_its_mark_expires(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    headers = setup(runtime, client)
    # A process claimed the key and died: its in-flight mark is all that is left of it.
    scope = scope_of("user:boss", "POST", "/v1/work-items", "dead")
    now = clock.now().timestamp()
    until = now + runtime.settings.idempotency_in_flight_seconds
    print_ = fingerprint(json.dumps(ITEM).encode(), {})
    store = runtime.ledger.recorder
    assert store.claim_key(scope, print_, "t", now, until, now + 99999) is None  # type: ignore[attr-defined]
    blocked = create(client, headers, "dead")
    assert_problem(blocked, 409, "idempotency-request-in-progress")
    assert int(blocked.headers["Retry-After"]) == int(
        runtime.settings.idempotency_in_flight_seconds
    )
    clock.advance(runtime.settings.idempotency_in_flight_seconds)
    assert create(client, headers, "dead").status_code == 201
    assert create(client, headers, "dead").headers["Idempotent-Replayed"] == "true"
    assert len(items_titled(runtime, "Lexer")) == 1


_HOLDING_PROCESS = """
import json, sys, threading
from starlette.testclient import TestClient
from agentledger.application.commands import UnitOfWork
from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings
from agentledger.interfaces.http.app import create_app

decided = UnitOfWork.changed

def changed(uow):
    found = decided(uow)
    if found:  # the key is claimed and the command decided: hang here until killed
        print("holding", flush=True)
        threading.Event().wait()
    return found

UnitOfWork.changed = changed
runtime = build_runtime(Settings())
with TestClient(create_app(runtime)) as client:
    client.post("/v1/work-items", json=json.loads(sys.argv[1]), headers=json.loads(sys.argv[2]))
"""


def _store_environment(rt: Runtime) -> dict[str, str]:
    """What another process needs to open this runtime's store."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if rt.settings.uses_postgres:
        env["DATABASE_URL"] = rt.settings.database_url or ""
        env["AGENTLEDGER_POSTGRES_SCHEMA"] = rt.settings.postgres_schema
    else:
        env["AGENTLEDGER_DATA_DIR"] = str(rt.settings.data_dir)
    return env


def test_a_process_killed_holding_the_key_blocks_it_only_until_its_mark_expires(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    clock.set(datetime.now(UTC))  # the other process claims on the system clock
    headers = setup(runtime, client)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDING_PROCESS, json.dumps(ITEM), json.dumps(keyed(headers, "k"))],
        env=_store_environment(runtime),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    finally:
        holder.kill()
        holder.wait(30)
    assert holder.returncode == -signal.SIGKILL

    blocked = create(client, headers, "k")
    assert_problem(blocked, 409, "idempotency-request-in-progress")
    assert items_titled(runtime, "Lexer") == []
    # Past the mark (and whatever the other process took to start), the key is free.
    clock.advance(runtime.settings.idempotency_in_flight_seconds + 60)
    retry = create(client, headers, "k")
    assert retry.status_code == 201 and REPLAYED not in retry.headers, retry.text
    assert create(client, headers, "k").headers[REPLAYED] == "true"
    assert len(items_titled(runtime, "Lexer")) == 1


def test_a_replay_survives_a_restart(runtime: Runtime, client: TestClient) -> None:
    headers = setup(runtime, client)
    first = create(client, headers, "r")
    assert first.status_code == 201
    second = build_runtime(runtime.settings, clock=runtime.clock)
    try:
        with TestClient(create_app(second), raise_server_exceptions=False) as other:
            again = create(other, headers, "r")
    finally:
        second.close()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert answer(again) == answer(first)


def _inject_fault(rt: Runtime) -> Callable[[], None]:
    """Make the key's completion fail inside the command's transaction, after its events are
    inserted (a trigger on the key table); returns how to remove the fault."""
    if rt.settings.uses_postgres:
        schema = rt.settings.postgres_schema
        with psycopg.connect(rt.settings.database_url or "", autocommit=True) as conn:
            conn.execute(
                f'CREATE FUNCTION "{schema}".fault() RETURNS trigger LANGUAGE plpgsql AS '
                "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$"
            )
            conn.execute(
                f'CREATE TRIGGER fault BEFORE UPDATE ON "{schema}".agentledger_idempotency '
                f"FOR EACH ROW WHEN (NEW.state = 'done') EXECUTE FUNCTION \"{schema}\".fault()"
            )

        def heal() -> None:
            with psycopg.connect(rt.settings.database_url or "", autocommit=True) as conn:
                conn.execute(f'DROP TRIGGER fault ON "{schema}".agentledger_idempotency')

        return heal
    path = rt.settings.data_dir / "events.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        # A runtime error (malformed JSON), no constraint violation (which would read as a
        # version conflict); switched off by data, not by dropping the trigger, so no
        # connection can go on seeing an old schema.
        conn.execute("CREATE TABLE fault (active INTEGER)")
        conn.execute("INSERT INTO fault VALUES (1)")
        conn.execute(
            "CREATE TRIGGER fault BEFORE UPDATE ON agentledger_idempotency "
            "WHEN NEW.state = 'done' AND EXISTS (SELECT 1 FROM fault) "
            "BEGIN SELECT json('injected fault'); END"
        )
        conn.commit()

    def heal_sqlite() -> None:
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("DELETE FROM fault")
            conn.commit()

    return heal_sqlite


def _key_rows(rt: Runtime) -> int:
    if rt.settings.uses_postgres:
        with psycopg.connect(rt.settings.database_url or "") as conn:
            table = f'"{rt.settings.postgres_schema}".agentledger_idempotency'
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    else:
        with closing(sqlite3.connect(rt.settings.data_dir / "events.sqlite")) as conn:
            row = conn.execute("SELECT count(*) FROM agentledger_idempotency").fetchone()
    assert row is not None
    return int(row[0])


def test_a_transaction_failing_after_its_events_leaves_neither_events_nor_a_key(
    runtime: Runtime, client: TestClient
) -> None:
    headers = setup(runtime, client)
    keys_before = _key_rows(runtime)
    heal = _inject_fault(runtime)
    failed = create(client, headers, "crash", title="Doomed")
    assert failed.status_code == 500, failed.text
    assert items_titled(runtime, "Doomed") == []
    assert _key_rows(runtime) == keys_before
    heal()

    retry = create(client, headers, "crash", title="Doomed")
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry.headers
    assert create(client, headers, "crash", title="Doomed").headers[REPLAYED] == "true"
    assert len(items_titled(runtime, "Doomed")) == 1


def _inject_conflicts(rt: Runtime) -> Callable[[], None]:
    """Make every insert of events fail as a lost race does (a unique violation: the runner
    sees a version conflict, re-runs, and in the end gives up); returns how to heal."""
    events = rt.ledger.recorder.events_table_name  # type: ignore[attr-defined]
    if rt.settings.uses_postgres:
        schema, url = rt.settings.postgres_schema, rt.settings.database_url or ""
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                f'CREATE FUNCTION "{schema}".conflict() RETURNS trigger LANGUAGE plpgsql AS '
                "$$ BEGIN RAISE EXCEPTION 'injected conflict' USING ERRCODE = 'unique_violation';"
                " END $$"
            )
            conn.execute(
                f'CREATE TRIGGER conflict BEFORE INSERT ON "{schema}"."{events}" '
                f'FOR EACH ROW EXECUTE FUNCTION "{schema}".conflict()'
            )

        def heal() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP TRIGGER conflict ON "{schema}"."{events}"')

        return heal
    path = rt.settings.data_dir / "events.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE conflict (active INTEGER)")
        conn.execute("INSERT INTO conflict VALUES (1)")
        conn.execute(
            f"CREATE TRIGGER conflict BEFORE INSERT ON {events} "
            "WHEN EXISTS (SELECT 1 FROM conflict) "
            "BEGIN SELECT RAISE(ABORT, 'injected conflict'); END"
        )
        conn.commit()

    def heal_sqlite() -> None:
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("DELETE FROM conflict")
            conn.commit()

    return heal_sqlite


def test_a_concurrency_conflict_is_not_stored_and_the_retry_runs(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent writers winning every attempt is no answer to the request: the key is
    left free, and the same request with the same key then runs (once)."""
    monkeypatch.setattr("agentledger.application.commands.MAX_ATTEMPTS", 3)
    headers = setup(runtime, client)
    keys_before = _key_rows(runtime)
    heal = _inject_conflicts(runtime)
    lost = create(client, headers, "race", title="Contested")
    heal()
    assert_problem(lost, 409, "concurrency-conflict")
    assert items_titled(runtime, "Contested") == []
    assert _key_rows(runtime) == keys_before

    retry = create(client, headers, "race", title="Contested")
    assert retry.status_code == 201 and REPLAYED not in retry.headers, retry.text
    again = create(client, headers, "race", title="Contested")
    assert again.headers[REPLAYED] == "true" and answer(again) == answer(retry)
    assert len(items_titled(runtime, "Contested")) == 1


def test_group_commit_writes_each_keyed_command_with_its_own_record(
    runtime: Runtime, client: TestClient
) -> None:
    """Commands queued behind one turn share a transaction; each one's key still answers
    with its own response."""
    callers = [agent(runtime, f"a{n}") for n in range(8)]
    assert runtime.commands.committer is not None
    transactions = runtime.commands.committer.transactions
    firsts: dict[int, httpx.Response] = {}

    def begin(n: int) -> None:
        firsts[n] = client.post("/v1/sessions", json={}, headers=keyed(callers[n], "same"))

    queued_behind_a_held_turn(runtime, [partial(begin, n) for n in range(8)])
    assert runtime.commands.committer.transactions == transactions + 1
    assert {r.status_code for r in firsts.values()} == {201}
    for n, first in firsts.items():
        again = client.post("/v1/sessions", json={}, headers=keyed(callers[n], "same"))
        assert again.headers[REPLAYED] == "true"
        assert answer(again) == answer(first)


_OTHER_PROCESS = """
import json, sys
from starlette.testclient import TestClient
from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings
from agentledger.interfaces.http.app import create_app

runtime = build_runtime(Settings())
try:
    with TestClient(create_app(runtime)) as client:
        body, headers = json.loads(sys.argv[1]), json.loads(sys.argv[2])
        r = client.post("/v1/work-items", json=body, headers=headers)
        print(json.dumps({"status": r.status_code, "body": r.text, "headers": dict(r.headers)}))
finally:
    runtime.close()
"""


# Several server processes share a database on PostgreSQL only: this one runs there alone.
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_another_process_on_the_same_database_replays_the_answer(
    system_runtime: Runtime,
) -> None:
    """On the system clock: the other process has no manual clock to share."""
    runtime = system_runtime
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        headers = setup(runtime, client)
        first = create(client, headers, "p2")
    assert first.status_code == 201
    env = {
        **os.environ,
        "DATABASE_URL": runtime.settings.database_url or "",
        "AGENTLEDGER_POSTGRES_SCHEMA": runtime.settings.postgres_schema,
    }
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, json.dumps(ITEM), json.dumps(keyed(headers, "p2"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    other = json.loads(done.stdout.strip().splitlines()[-1])
    assert other["headers"].get("idempotent-replayed") == "true", other
    assert (other["status"], other["body"]) == (201, first.text)
    assert other["headers"]["location"] == first.headers["Location"]
    assert len(items_titled(runtime, "Lexer")) == 1


def test_a_claim_next_is_replayed_with_its_item_once_the_queue_is_empty(
    runtime: Runtime, client: TestClient
) -> None:
    headers = setup(runtime, client)
    position = create(client, headers, "item").json()["position"]
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    body = {"session_id": sid, "project": "apollo"}
    wait = {"AgentLedger-Consistent-With": str(position)}
    assert client.get("/v1/work-items/ready", headers={**alice, **wait}).status_code == 200
    first = client.post("/v1/work-items/claim-next", json=body, headers=keyed(alice, "next"))
    assert first.status_code == 201, first.text
    again = client.post("/v1/work-items/claim-next", json=body, headers=keyed(alice, "next"))
    assert again.headers[REPLAYED] == "true"
    assert answer(again) == answer(first)


def _forget_rendered_answers(rt: Runtime) -> None:
    """What a process dying between its events' commit and storing its rendered answer
    leaves: the outcome the events' transaction wrote, no answer."""
    statement = "UPDATE {} SET response = NULL"
    if rt.settings.uses_postgres:
        with psycopg.connect(rt.settings.database_url or "", autocommit=True) as conn:
            table = f'"{rt.settings.postgres_schema}".agentledger_idempotency'
            conn.execute(statement.format(table))
        return
    with closing(sqlite3.connect(rt.settings.data_dir / "events.sqlite")) as conn:
        conn.execute(statement.format("agentledger_idempotency"))
        conn.commit()


def test_without_its_rendered_answer_a_replay_renders_the_stored_outcome_again(
    runtime: Runtime, client: TestClient
) -> None:
    headers = setup(runtime, client)
    first = create(client, headers, "half")
    assert first.status_code == 201
    head = runtime.ledger.head_position()
    _forget_rendered_answers(runtime)
    again = create(client, headers, "half")
    assert again.headers[REPLAYED] == "true"
    assert answer(again) == answer(first)
    assert runtime.ledger.head_position() == head
    assert len(items_titled(runtime, "Lexer")) == 1


def test_every_write_route_renders_its_stored_outcome_as_it_answered(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    """Each view a write returns goes through the stored outcome's JSON and back: with the
    rendered answers gone, every replay is still the first answer (and writes nothing)."""
    clock.advance(0.123457)  # times with microseconds, which must survive the round trip
    boss_ = setup(runtime, client)
    alice = agent(runtime, "alice")
    sent: list[tuple[str, str, Headers, Any, httpx.Response]] = []

    def send(
        method: str, path: str, caller: Headers, body: Any = None, **headers: str
    ) -> httpx.Response:
        all_headers = {**keyed(caller, f"every-{len(sent)}"), **headers}
        response = client.request(method, path, json=body, headers=all_headers)
        assert response.status_code in {200, 201}, (method, path, response.text)
        sent.append((method, path, all_headers, body, response))
        return response

    send("POST", "/v1/projects", boss_, {"name": "gemini"})
    a = send(
        "POST",
        "/v1/work-items",
        boss_,
        {**ITEM, "metadata": {"estimate_hours": 1.5, "payload": {"a": "x"}}},
    ).json()["id"]
    b = send("POST", "/v1/work-items", boss_, {**ITEM, "title": "Parser"}).json()["id"]
    sid = send("POST", "/v1/sessions", alice, {"metadata": {"task": "x"}}).json()["id"]
    s = f"/v1/sessions/{sid}"
    send("PATCH", s, alice, {"metadata": {"task": None, "k": True}})
    send("POST", f"{s}/heartbeat", alice, {})
    pending = send("POST", "/v1/sessions", alice, {"status": "pending"}).json()["id"]
    send("POST", f"/v1/sessions/{pending}/activate", alice, {})
    send("POST", f"/v1/sessions/{pending}/fail", alice, {"reason": "gone"})
    selection = {"project": "apollo", "session_id": sid}
    send("PUT", "/v1/agents/alice/project", alice, selection, **{"If-None-Match": "*"})
    send("POST", "/v1/projects/apollo/entries", alice, {"message": "hi", "session_id": sid})
    send("POST", "/v1/entries", alice, {"message": "again", "session_id": sid})
    claimed = send("POST", f"/v1/work-items/{a}/claim", alice, {"session_id": sid}).json()
    held = {"AgentLedger-Fence": str(claimed["claim"]["fence"])}
    item = f"/v1/work-items/{a}"
    version = {"If-Match": f'"{claimed["version"]}"'}
    send("PATCH", item, alice, {"title": "Lexer 2"}, **held, **version)
    send("PUT", f"{item}/dependencies/{b}", alice, None, **held)
    send("DELETE", f"{item}/dependencies/{b}", alice, None, **held)
    send("POST", f"{item}/transition", alice, {"to": "in_review"}, **held)
    send("POST", f"{item}/release", alice, {}, **held)
    send("POST", f"/v1/work-items/{b}/archive", boss_, {})
    send("POST", f"/v1/work-items/{b}/unarchive", boss_, {})
    send("DELETE", "/v1/agents/alice/project", alice, None, **{"If-Match": '"1"'})
    send("POST", f"{s}/complete", alice, {"reason": "done"})
    send("POST", "/v1/projects/gemini/archive", boss_, {})
    head = runtime.ledger.head_position()

    _forget_rendered_answers(runtime)
    for method, path, headers, body, first in sent:
        again = client.request(method, path, json=body, headers=headers)
        assert again.headers.get(REPLAYED) == "true", (method, path, again.text)
        assert answer(again) == answer(first), (method, path)
    assert runtime.ledger.head_position() == head


def test_a_stored_outcome_it_cannot_read_fails_the_replay_and_never_runs_it_again(
    runtime: Runtime, client: TestClient
) -> None:
    """A row not written by this codec (here a pickle, as this unreleased table first held
    them) builds nothing: the replay fails (500), and the command, done once, is not redone."""
    headers = setup(runtime, client)
    assert create(client, headers, "old").status_code == 201
    head = runtime.ledger.head_position()
    _forget_rendered_answers(runtime)
    stale = pickle.dumps(({"what": "a view"}, 1))
    if runtime.settings.uses_postgres:
        with psycopg.connect(runtime.settings.database_url or "", autocommit=True) as conn:
            table = f'"{runtime.settings.postgres_schema}".agentledger_idempotency'
            conn.execute(f"UPDATE {table} SET outcome = %s", (stale,))
    else:
        with closing(sqlite3.connect(runtime.settings.data_dir / "events.sqlite")) as conn:
            conn.execute("UPDATE agentledger_idempotency SET outcome = ?", (stale,))
            conn.commit()
    for _ in range(2):
        assert_problem(create(client, headers, "old"), 500, "internal-error")
    assert runtime.ledger.head_position() == head
    assert len(items_titled(runtime, "Lexer")) == 1
