"""The progress log over HTTP: appends (to a named or the selected project), filters, pages."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

import httpx2 as httpx
from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.domain.entries import LogEntry
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import (
    CONSISTENT_WITH,
    POSITION,
    TRACE,
    agent,
    assert_problem,
    refused,
    start,
    when,
)
from tests.conftest import bearer, issue_token

Headers = dict[str, str]


def coordinator(rt: Runtime) -> Headers:
    return bearer(issue_token(rt, "user:boss", "coordinator"))


def make_projects(rt: Runtime, client: TestClient, *names: str) -> None:
    boss = coordinator(rt)
    for name in names:
        response = client.post("/v1/projects", json={"name": name}, headers=boss)
        assert response.status_code == 201, response.text


def append(
    client: TestClient, headers: Headers, project: str | None, **body: Any
) -> httpx.Response:
    path = "/v1/entries" if project is None else f"/v1/projects/{project}/entries"
    return client.post(path, json=body, headers=headers)


def appended(client: TestClient, headers: Headers, project: str | None, **body: Any) -> Any:
    response = append(client, headers, project, **body)
    assert response.status_code == 201, response.text
    return response.json()


def listing(
    client: TestClient, headers: Headers, project: str, at: int | None = None, **params: Any
) -> httpx.Response:
    extra = {CONSISTENT_WITH: str(at)} if at is not None else {}
    return client.get(
        f"/v1/projects/{project}/entries", params=params, headers={**headers, **extra}
    )


def selection(rt: Runtime, client: TestClient, headers: Headers, name: str) -> httpx.Response:
    """The agent's selection as of every write so far (unasked, the read model may lag)."""
    head = {CONSISTENT_WITH: str(rt.ledger.head_position())}
    return client.get(f"/v1/agents/{name}/project", headers={**headers, **head})


def select(
    rt: Runtime, client: TestClient, headers: Headers, name: str, project: str, sid: str
) -> Any:
    current = selection(rt, client, headers, name)
    precondition = (
        {"If-Match": current.headers["ETag"]}
        if current.status_code == 200
        else {"If-None-Match": "*"}
    )
    response = client.put(
        f"/v1/agents/{name}/project",
        json={"project": project, "session_id": sid},
        headers={**headers, **precondition},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_append_to_a_named_project_records_who_where_and_when(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    make_projects(runtime, client, "apollo")
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    clock.advance(42)

    response = append(
        client,
        {**alice, "X-Request-ID": "log-1"},
        "apollo",
        message="booster stacked",
        status="success",
        metadata={"task": "T-1", "attempt": 2, "flaky": False, "ratio": 0.5, "note": None},
        session_id=sid,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["project"] == "apollo"
    assert body["agent_id"] == "alice"
    assert body["session_id"] == sid
    assert body["status"] == "success"
    assert body["message"] == "booster stacked"
    assert body["metadata"] == {
        "task": "T-1",
        "attempt": 2,
        "flaky": False,
        "ratio": 0.5,
        "note": None,
    }
    assert when(body["created_at"]) == clock.now()
    assert int(response.headers[POSITION]) == body["position"] == runtime.ledger.head_position()
    assert response.headers[TRACE] == "log-1"
    (event,) = runtime.ledger.events.get(uuid.UUID(body["id"]))
    assert isinstance(event, LogEntry.EntryAppended)
    assert (event.actor, event.trace_id, event.project) == ("agent:alice", "log-1", "apollo")

    # The status defaults to info.
    plain = appended(client, alice, "apollo", message="second", session_id=sid)
    assert (plain["status"], plain["metadata"]) == ("info", {})

    read = listing(client, alice, "apollo", plain["position"])
    assert read.status_code == 200, read.text
    assert int(read.headers[POSITION]) == read.json()["position"] >= plain["position"]
    items = read.json()["items"]
    assert len(items) == 2
    for item, written in zip(items, (plain, body), strict=True):
        assert set(item) >= set(written) - {"position"}
        assert item == {k: written[k] for k in item}
    assert read.json()["next_cursor"] is None


def test_append_to_the_selected_project(runtime: Runtime, client: TestClient) -> None:
    make_projects(runtime, client, "apollo", "gemini")
    alice, bob = agent(runtime, "alice"), agent(runtime, "bob")
    sid = start(client, alice)["id"]
    bobs = start(client, bob)["id"]

    problem = refused(
        runtime,
        lambda: append(client, alice, None, message="where?", session_id=sid),
        409,
        "no-project-selected",
    ).json()
    assert problem["agent_id"] == "alice"

    select(runtime, client, alice, "alice", "gemini", sid)
    select(runtime, client, bob, "bob", "apollo", bobs)
    entry = appended(client, alice, None, message="on gemini", session_id=sid)
    assert (entry["project"], entry["agent_id"], entry["session_id"]) == ("gemini", "alice", sid)
    assert appended(client, bob, None, message="on apollo", session_id=bobs)["project"] == "apollo"

    select(runtime, client, alice, "alice", "apollo", sid)
    assert appended(client, alice, None, message="moved", session_id=sid)["project"] == "apollo"

    version = selection(runtime, client, alice, "alice").headers["ETag"]
    cleared = client.delete("/v1/agents/alice/project", headers={**alice, "If-Match": version})
    assert cleared.status_code == 200, cleared.text
    refused(
        runtime,
        lambda: append(client, alice, None, message="nowhere", session_id=sid),
        409,
        "no-project-selected",
    )

    head = runtime.ledger.head_position()
    on_gemini = listing(client, alice, "gemini", head).json()["items"]
    on_apollo = listing(client, alice, "apollo", head).json()["items"]
    assert [e["message"] for e in on_gemini] == ["on gemini"]
    assert [e["message"] for e in on_apollo] == ["moved", "on apollo"]


def test_invalid_entries_are_refused_and_write_nothing(
    runtime: Runtime, client: TestClient
) -> None:
    make_projects(runtime, client, "apollo")
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    select(
        runtime, client, alice, "alice", "apollo", sid
    )  # so /v1/entries gets as far as the entry
    invalid: list[dict[str, Any]] = [
        {"message": "x", "status": "fatal", "session_id": sid},
        {"message": "x", "status": "INFO", "session_id": sid},
        {"message": "x", "status": None, "session_id": sid},
        {"message": "x", "metadata": {"nested": {"a": 1}}, "session_id": sid},
        {"message": "x", "metadata": {"list": [1, 2]}, "session_id": sid},
        {"message": "x", "metadata": "flat?", "session_id": sid},
        {"message": "x", "metadata": {f"k{i}": i for i in range(65)}, "session_id": sid},
        {"message": "x", "metadata": {"big": "v" * 9000}, "session_id": sid},
        {"message": "x", "metadata": {"": 1}, "session_id": sid},
        {"message": "", "session_id": sid},
        {"message": "   ", "session_id": sid},
        {"message": "m" * 4001, "session_id": sid},
        {"message": 7, "session_id": sid},
        {"message": "x"},
        {"message": "x", "session_id": "not-a-uuid"},
        {"message": "x", "session_id": sid, "project": "apollo"},
    ]
    for body in invalid:
        for project in ("apollo", None):
            refused(
                runtime,
                partial(client.post, _path(project), json=body, headers=alice),
                422,
                "validation-error",
            )
    refused(
        runtime,
        lambda: client.post(_path("apollo"), json=["x"], headers=alice),
        422,
        "validation-error",
    )
    # Only agents write progress entries.
    boss = coordinator(runtime)
    refused(
        runtime,
        lambda: append(client, boss, "apollo", message="x", session_id=sid),
        403,
        "forbidden",
    )
    refused(runtime, lambda: append(client, {}, "apollo", message="x", session_id=sid), 401)
    assert listing(client, alice, "apollo").json()["items"] == []


def _path(project: str | None) -> str:
    return "/v1/entries" if project is None else f"/v1/projects/{project}/entries"


def test_the_session_must_be_the_agents_own_live_lease(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    make_projects(runtime, client, "apollo")
    alice, bob = agent(runtime, "alice"), agent(runtime, "bob")
    live = start(client, alice, ttl_seconds=3600)["id"]
    select(runtime, client, alice, "alice", "apollo", live)
    short = start(client, alice, ttl_seconds=60)["id"]
    pending = start(client, alice, status="pending", ttl_seconds=3600)["id"]
    completed = start(client, alice, ttl_seconds=3600)["id"]
    assert client.post(f"/v1/sessions/{completed}/complete", headers=alice).status_code == 200
    bobs = start(client, bob, ttl_seconds=3600)["id"]
    clock.advance(61)

    for project in ("apollo", None):
        send = partial(append, client, alice, project, message="x")
        expired = refused(runtime, partial(send, session_id=short), 409, "session-expired")
        assert expired.json()["session_id"] == short
        foreign = refused(runtime, partial(send, session_id=bobs), 409, "session-not-owned")
        assert foreign.json()["owner"] == "bob"
        refused(runtime, partial(send, session_id=pending), 409, "session-not-active")
        refused(runtime, partial(send, session_id=completed), 409, "session-terminated")
        missing = refused(runtime, partial(send, session_id=str(uuid.uuid4())), 404, "not-found")
        assert missing.json()["resource"] == "session"
    assert listing(client, alice, "apollo").json()["items"] == []
    # The live session still writes.
    assert appended(client, alice, None, message="ok", session_id=live)["project"] == "apollo"


def test_unknown_and_archived_projects_take_no_entries(
    runtime: Runtime, client: TestClient
) -> None:
    make_projects(runtime, client, "apollo", "gemini")
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    appended(client, alice, "apollo", message="before", session_id=sid)
    select(runtime, client, alice, "alice", "apollo", sid)
    archived = client.post("/v1/projects/apollo/archive", headers=coordinator(runtime))
    assert archived.status_code == 200, archived.text

    # Through the selection, at once: archived (or, once the policy ran, no longer selected).
    head = runtime.ledger.head_position()
    via_selection = append(client, alice, None, message="after", session_id=sid)
    assert via_selection.status_code == 409, via_selection.text
    assert via_selection.json()["type"].rsplit("/", 1)[1] in (
        "project-archived",
        "no-project-selected",
    )
    # Wait for the policy to clear alice's selection, so nothing else writes from here on.
    deadline = time.monotonic() + 10
    while client.get("/v1/agents/alice/project", headers=alice).json()["project"] is not None:
        assert time.monotonic() < deadline, "the policy never cleared the selection"
        time.sleep(0.01)
    assert not any(
        isinstance(runtime.ledger.to_event(n), LogEntry.EntryAppended)
        for n in runtime.ledger.read_log(after=head, limit=100)
    )
    problem = refused(
        runtime,
        lambda: append(client, alice, "apollo", message="after", session_id=sid),
        409,
        "project-archived",
    ).json()
    assert problem["project"] == "apollo"
    refused(
        runtime,
        lambda: append(client, alice, None, message="after", session_id=sid),
        409,
        "no-project-selected",
    )
    refused(
        runtime,
        lambda: append(client, alice, "zeus", message="x", session_id=sid),
        404,
        "not-found",
    )
    refused(
        runtime,
        lambda: append(client, alice, "bad%20name", message="x", session_id=sid),
        404,
        "not-found",
    )
    seen = listing(client, alice, "apollo", runtime.ledger.head_position())
    assert [e["message"] for e in seen.json()["items"]] == ["before"]
    assert_problem(listing(client, alice, "zeus"), 404, "not-found")


# --- filters --------------------------------------------------------------------------------

# (agent, status, message, metadata) in the order they are appended, a minute apart.
LOG: list[tuple[str, str, str, dict[str, Any]]] = [
    ("alice", "plan", "Plan the deploy", {"task": "T-1", "attempt": 1}),
    ("bob", "info", "reading the parser", {"task": "T-2"}),
    ("carol", "info", "coverage at 50% now", {"task": "T-3", "ratio": 0.5}),
    ("alice", "success", "DEPLOYED to staging", {"task": "T-1", "attempt": 2, "flaky": False}),
    ("bob", "bug", "found a_b in the lexer", {"task": "T-2", "flaky": True}),
    ("carol", "warn", "coverage at 500 lines", {"task": "T-3"}),
    ("alice", "error", "deploy failed on axb", {"task": "T-1", "attempt": 3, "flaky": True}),
    ("bob", "info", "all done!", {"task": "T-2", "note": None}),
    ("carol", "plan", "next: Redeploy the docs", {"task": "T-4", "attempt": 1}),
    ("alice", "info", "waiting for review", {}),
    ("bob", "warn", "slow test in parser", {"task": "T-2", "ratio": 2.25}),
    ("carol", "success", "docs deployed", {"task": "T-4", "flaky": False}),
    ("alice", "bug", "Null pointer in PARSER", {"task": "T-5", "attempt": 1, "flaky": True}),
    ("bob", "error", "parser crashed", {"task": "T-2", "attempt": 3}),
    ("carol", "info", "100% coverage", {"task": "T-3", "ratio": 1.5}),
    ("alice", "plan", "plan b: roll back", {"task": "T-5"}),
    ("bob", "success", "parser fixed", {"task": "T-2", "attempt": 4, "flaky": False}),
    ("carol", "warn", "flaky deploy step", {"task": "T-4", "flaky": True}),
    ("alice", "info", "a%b is not a_b", {"task": "T-5", "note": "true"}),
    ("bob", "info", "lunch", {"mood": "good"}),
    ("carol", "bug", "deploy script wrong", {"task": "T-4", "attempt": 2}),
    ("alice", "success", "rolled back", {"task": "T-5", "attempt": 2}),
    ("bob", "plan", "refactor the Parser", {"task": "T-6"}),
    ("carol", "error", "docs build failed", {"task": "T-4", "attempt": 3, "flaky": True}),
    ("alice", "info", "escape ! char", {"task": "T-5"}),
    ("bob", "info", "PARSER_V2 merged", {"task": "T-6", "attempt": 1}),
    ("carol", "success", "deployed at last", {"task": "T-4", "attempt": 4}),
    ("alice", "warn", "disk at 90%", {"task": "T-7", "ratio": 0.9}),
    ("bob", "bug", "regression in parser", {"task": "T-6", "flaky": False}),
    ("carol", "info", "wrapping up", {"task": "T-4"}),
]


@dataclass
class Logged:
    index: int
    id: str
    agent: str
    status: str
    message: str
    metadata: dict[str, Any]
    created_at: datetime


def json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def test_filters_return_exactly_the_matching_entries_newest_first(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    make_projects(runtime, client, "apollo", "other")
    callers = {name: agent(runtime, name) for name in ("alice", "bob", "carol")}
    sessions = {name: start(client, h, ttl_seconds=3600)["id"] for name, h in callers.items()}
    logged: list[Logged] = []
    for i, (who, status, message, metadata) in enumerate(LOG):
        clock.advance(60)
        body = appended(
            client,
            callers[who],
            "apollo",
            message=message,
            status=status,
            metadata=metadata,
            session_id=sessions[who],
        )
        assert when(body["created_at"]) == clock.now()
        logged.append(Logged(i, body["id"], who, status, message, metadata, clock.now()))
        if i % 5 == 0:  # look-alikes in another project must never leak in
            appended(
                client,
                callers[who],
                "other",
                message=message,
                status=status,
                metadata=metadata,
                session_id=sessions[who],
            )
    head = runtime.ledger.head_position()
    ids = {entry.index: entry.id for entry in logged}

    def query(**params: Any) -> list[str]:
        response = listing(client, callers["alice"], "apollo", head, limit=500, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["next_cursor"] is None
        return [item["id"] for item in page["items"]]

    def expected(
        agent_id: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        q: str | None = None,
        meta: dict[str, str] | None = None,
    ) -> list[str]:
        return [
            e.id
            for e in reversed(logged)
            if (agent_id is None or e.agent == agent_id)
            and (status is None or e.status == status)
            and (since is None or e.created_at >= since)
            and (until is None or e.created_at < until)
            and (q is None or q.lower() in e.message.lower())
            and all(
                k in e.metadata and json_text(e.metadata[k]) == v for k, v in (meta or {}).items()
            )
        ]

    def check(params: dict[str, Any], **oracle: Any) -> list[str]:
        got = query(**params)
        assert got == expected(**oracle), params
        return got

    everything = query()
    assert everything == [e.id for e in reversed(logged)]
    full = listing(client, callers["alice"], "apollo", head, limit=500).json()["items"]
    for item, entry in zip(full, reversed(logged), strict=True):
        assert item["agent_id"] == entry.agent
        assert item["session_id"] == sessions[entry.agent]
        assert item["project"] == "apollo"
        assert item["status"] == entry.status
        assert item["message"] == entry.message
        assert item["metadata"] == entry.metadata
        assert when(item["created_at"]) == entry.created_at

    check({"agent_id": "bob"}, agent_id="bob")
    assert check({"agent_id": "dave"}, agent_id="dave") == []
    check({"status": "bug"}, status="bug")
    assert query(status="bug") == [ids[28], ids[20], ids[12], ids[4]]
    check({"agent_id": "carol", "status": "success"}, agent_id="carol", status="success")

    t = [e.created_at for e in logged]
    assert query(since=t[10].isoformat()) == [ids[i] for i in range(29, 9, -1)]  # inclusive
    assert query(until=t[10].isoformat()) == [ids[i] for i in range(9, -1, -1)]  # exclusive
    window = {"since": t[10].isoformat(), "until": t[15].isoformat()}
    assert query(**window) == [ids[i] for i in range(14, 9, -1)]
    check({"since": (t[10] + timedelta(seconds=1)).isoformat()}, since=t[10] + timedelta(seconds=1))
    # The same instant written in another zone is the same instant.
    plus_two = t[10].astimezone(timezone(timedelta(hours=2))).isoformat()
    assert query(since=plus_two) == query(since=t[10].isoformat())
    assert query(since=t[29].isoformat(), until=t[29].isoformat()) == []
    assert query(until=t[0].isoformat()) == []

    assert query(q="deploy") == expected(q="deploy")
    assert set(query(q="deploy")) >= {ids[0], ids[3], ids[6], ids[8], ids[11]}
    assert query(q="PARSER") == query(q="parser") == expected(q="parser")
    assert ids[25] in query(q="parser")  # "PARSER_V2 merged"
    # % and _ are literal characters, not wildcards.
    assert query(q="50%") == [ids[2]]
    assert query(q="0%") == [ids[27], ids[14], ids[2]]
    assert query(q="a_b") == [ids[18], ids[4]]
    assert query(q="a%b") == [ids[18]]
    assert query(q="r_v") == [ids[25]]
    assert query(q="%") == expected(q="%")
    assert query(q="_") == [ids[25], ids[18], ids[4]]
    assert query(q="!") == [ids[24], ids[7]]
    assert query(q="no such words") == []

    assert query(**{"meta.task": "T-2"}) == expected(meta={"task": "T-2"})
    assert query(**{"meta.attempt": "3"}) == [ids[23], ids[13], ids[6]]
    assert query(**{"meta.attempt": "3.0"}) == []
    assert query(**{"meta.flaky": "true"}) == [ids[23], ids[17], ids[12], ids[6], ids[4]]
    assert query(**{"meta.flaky": "True"}) == []
    assert query(**{"meta.flaky": "false"}) == [ids[28], ids[16], ids[11], ids[3]]
    assert query(**{"meta.ratio": "0.5"}) == [ids[2]]
    assert query(**{"meta.ratio": "2.25"}) == [ids[10]]
    assert query(**{"meta.note": "null"}) == [ids[7]]
    assert query(**{"meta.note": "true"}) == [ids[18]]  # the string "true"
    assert query(**{"meta.mood": "good"}) == [ids[19]]
    assert query(**{"meta.missing": "x"}) == []
    check({"meta.task": "T-4", "meta.attempt": "2"}, meta={"task": "T-4", "attempt": "2"})
    assert query(**{"meta.task": "T-4", "meta.attempt": "2"}) == [ids[20]]

    check(
        {"agent_id": "alice", "q": "deploy", "meta.flaky": "true"},
        agent_id="alice",
        q="deploy",
        meta={"flaky": "true"},
    )
    assert query(agent_id="alice", q="deploy", **{"meta.flaky": "true"}) == [ids[6]]
    check(
        {"status": "info", "since": t[5].isoformat(), "q": "%"},
        status="info",
        since=t[5],
        q="%",
    )
    assert query(status="info", since=t[5].isoformat(), q="%") == [ids[18], ids[14]]
    check(
        {"agent_id": "bob", "status": "info", "until": t[20].isoformat(), "meta.task": "T-2"},
        agent_id="bob",
        status="info",
        until=t[20],
        meta={"task": "T-2"},
    )
    assert query(
        agent_id="bob", status="info", until=t[20].isoformat(), **{"meta.task": "T-2"}
    ) == [
        ids[7],
        ids[1],
    ]
    check(
        {"q": "parser", "since": t[12].isoformat(), "until": t[26].isoformat(), "status": "bug"},
        q="parser",
        since=t[12],
        until=t[26],
        status="bug",
    )

    # Filters are validated.
    bad_queries: list[dict[str, Any]] = [
        {"status": "fatal"},
        {"since": "2026-01-01T00:00:00"},  # no zone
        {"until": "yesterday"},
        {"agent_id": "not an id"},
        {"limit": "0"},
        {"limit": "501"},
        {"colour": "red"},
        {"q": "x" * 201},
    ]
    for params in bad_queries:
        assert_problem(listing(client, callers["alice"], "apollo", **params), 422)


def test_pages_stay_exact_while_entries_are_appended(runtime: Runtime, client: TestClient) -> None:
    make_projects(runtime, client, "busy")
    alice, bob = agent(runtime, "alice"), agent(runtime, "bob")
    sessions = {"alice": start(client, alice)["id"], "bob": start(client, bob)["id"]}
    callers = {"alice": alice, "bob": bob}
    # id -> (position, agent) of every entry ever acknowledged.
    positions: dict[str, tuple[int, str]] = {}
    lock = threading.Lock()
    for i in range(40):
        who = "alice" if i % 3 else "bob"
        body = appended(client, callers[who], "busy", message=f"pre {i}", session_id=sessions[who])
        positions[body["id"]] = (body["position"], who)

    stop = threading.Event()
    failures: list[str] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            who = "alice" if n % 2 else "bob"
            response = append(
                client, callers[who], "busy", message=f"live {n}", session_id=sessions[who]
            )
            if response.status_code != 201:
                failures.append(response.text)
                return
            with lock:
                positions[response.json()["id"]] = (response.json()["position"], who)
            n += 1

    def appended_count() -> int:
        with lock:
            return len(positions)

    def wait_for_more(than: int) -> None:
        deadline = time.monotonic() + 10
        while appended_count() <= than and time.monotonic() < deadline and not failures:
            time.sleep(0.001)
        assert appended_count() > than, "the writer stalled"

    def page_through(**params: Any) -> tuple[list[str], int, int]:
        """All pages' ids, the position of the first page's newest entry, and pages read."""
        first = listing(client, alice, "busy", runtime.ledger.head_position(), limit=7, **params)
        assert first.status_code == 200, first.text
        page = first.json()
        ids = [item["id"] for item in page["items"]]
        with lock:
            newest = positions[ids[0]][0]
        pages = 1
        while page["next_cursor"] is not None:
            wait_for_more(appended_count())  # a new entry lands between every two pages
            response = listing(client, alice, "busy", limit=7, cursor=page["next_cursor"], **params)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["items"]) <= 7
            ids += [item["id"] for item in page["items"]]
            pages += 1
        return ids, newest, pages

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_for_more(40)
        everything, newest, pages = page_through()
        alices, alices_newest, alice_pages = page_through(agent_id="alice")
    finally:
        stop.set()
        thread.join(30)
    assert failures == []
    assert not thread.is_alive()

    def existing(up_to: int, who: str | None = None) -> list[str]:
        rows = [(p, i) for i, (p, a) in positions.items() if p <= up_to and who in (None, a)]
        return [i for _, i in sorted(rows, reverse=True)]

    assert len(everything) == len(set(everything)), "duplicates across pages"
    assert everything == existing(newest)
    assert len(everything) >= 41 and pages == -(-len(everything) // 7)
    assert len(alices) == len(set(alices))
    assert alices == existing(alices_newest, "alice")
    assert alice_pages == -(-len(alices) // 7)
    later = [p for p, _ in positions.values() if p > alices_newest]
    assert alice_pages >= 3
    assert len(later) >= alice_pages - 2, "entries were appended while paging"

    # Afterwards, the whole log reads back complete.
    final = listing(client, alice, "busy", runtime.ledger.head_position(), limit=500).json()
    assert [item["id"] for item in final["items"]] == existing(
        max(p for p, _ in positions.values())
    )


def test_a_cursor_only_works_with_the_filters_it_was_issued_for(
    runtime: Runtime, client: TestClient
) -> None:
    make_projects(runtime, client, "apollo", "gemini")
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    for i in range(5):
        appended(client, alice, "apollo", message=f"a {i}", status="info", session_id=sid)
        appended(client, alice, "gemini", message=f"g {i}", status="info", session_id=sid)
    head = runtime.ledger.head_position()
    first = listing(client, alice, "apollo", head, agent_id="alice", status="info", limit=2)
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    # The same filters go on.
    following = listing(
        client, alice, "apollo", limit=2, cursor=cursor, agent_id="alice", status="info"
    )
    assert following.status_code == 200, following.text
    assert [e["message"] for e in following.json()["items"]] == ["a 2", "a 1"]

    for other in (
        {"agent_id": "bob", "status": "info"},
        {"status": "info"},
        {"agent_id": "alice", "status": "info", "q": "a"},
        {"agent_id": "alice", "status": "info", "meta.k": "v"},
        {"agent_id": "alice", "status": "info", "since": "2020-01-01T00:00:00Z"},
    ):
        assert_problem(
            listing(client, alice, "apollo", limit=2, cursor=cursor, **other),
            400,
            "invalid-cursor",
        )
    assert_problem(
        listing(client, alice, "gemini", limit=2, cursor=cursor, agent_id="alice", status="info"),
        400,
        "invalid-cursor",
    )
    assert_problem(listing(client, alice, "apollo", cursor="not-a-cursor"), 400, "invalid-cursor")


def test_q_ignores_case_beyond_ascii_too(runtime: Runtime, client: TestClient) -> None:
    make_projects(runtime, client, "apollo")
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    school = appended(client, alice, "apollo", message="Back to ÉCOLE Ärger", session_id=sid)
    appended(client, alice, "apollo", message="plain ascii", session_id=sid)
    head = runtime.ledger.head_position()

    def found(q: str) -> list[str]:
        response = listing(client, alice, "apollo", head, q=q)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert found("back to") == [school["id"]]
    assert found("ÉCOLE") == [school["id"]]  # the exact spelling
    assert found("école") == [school["id"]]  # any case
    assert found("Écol") == [school["id"]]
    assert found("ärger") == [school["id"]]
