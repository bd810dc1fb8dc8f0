"""The rules every request meets before it reaches a use case, each found broken once: names
match whole, control characters never reach a store, only an empty body is empty, fixed paths
win over item ids, times carry a zone, unknown parameters are refused, and one 401 for all."""

from __future__ import annotations

from functools import partial
from typing import Any
from uuid import uuid4

import pytest
from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.application.context import RequestContext, local_operator
from agentledger.domain.errors import InvalidValue
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import CONSISTENT_WITH, agent, assert_problem, refused, start
from tests.conftest import bearer, issue_token

Headers = dict[str, str]
JSON = {"content-type": "application/json"}
INVALID = "validation-error"


def boss(rt: Runtime) -> Headers:
    return bearer(issue_token(rt, "user:boss", "coordinator"))


def project(client: TestClient, headers: Headers, name: str = "apollo") -> None:
    assert client.post("/v1/projects", json={"name": name}, headers=headers).status_code == 201


def item(client: TestClient, headers: Headers, **fields: Any) -> dict[str, Any]:
    body = {"project": "apollo", "kind": "task", "title": "Lexer", **fields}
    response = client.post("/v1/work-items", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


# --- names match whole -----------------------------------------------------------------------


def test_a_trailing_newline_is_not_part_of_a_name(runtime: Runtime, client: TestClient) -> None:
    """`$` also matches before a final newline: `p1\\n` once passed as the name `p1` was
    checked, was committed, and then broke the Location header so no response came back."""
    alice, coordinator = agent(runtime, "alice"), boss(runtime)
    project(client, coordinator)
    sid = start(client, alice)["id"]
    refusals = [
        partial(client.post, "/v1/projects", json={"name": "p1\n"}, headers=alice),
        partial(client.post, "/v1/sessions", json={"agent_id": "bob\n"}, headers=coordinator),
        partial(
            client.post,
            "/v1/work-items",
            json={"project": "apollo", "kind": "task\n", "title": "t"},
            headers=coordinator,
        ),
        partial(
            client.post,
            "/v1/work-items",
            json={"project": "apollo", "kind": "task", "title": "t", "to_role": "dev\n"},
            headers=coordinator,
        ),
        partial(
            client.post,
            "/v1/work-items/claim-next",
            json={"session_id": sid, "kind": "task\n"},
            headers=alice,
        ),
        partial(client.get, "/v1/sessions", params={"agent_id": "alice\n"}, headers=alice),
        partial(client.get, "/v1/agents/alice%0A/project", headers=alice),
    ]
    for send in refusals:
        refused(runtime, send, 422, INVALID)
    assert client.get("/v1/projects/p1", headers=alice).status_code == 404


@pytest.mark.parametrize(
    ("principal", "roles"),
    [("agent:mallory\n", ["agent"]), ("user:mallory", ["coordinator\n"])],
    ids=["principal", "role"],
)
def test_a_token_for_a_name_with_a_trailing_newline_is_not_issued(
    runtime: Runtime, principal: str, roles: list[str]
) -> None:
    head = runtime.ledger.head_position()
    with pytest.raises(InvalidValue):
        runtime.access.issue(RequestContext(local_operator("tester"), "t"), principal, roles)
    assert runtime.ledger.head_position() == head


# --- control characters never reach a store --------------------------------------------------


def test_control_characters_in_identifiers_are_422_on_both_stores(
    runtime: Runtime, client: TestClient
) -> None:
    """PostgreSQL cannot store NUL (it answered 500) while SQLite looked the name up (404):
    both stores now refuse it before any lookup, with the field named."""
    alice, coordinator = agent(runtime, "alice"), boss(runtime)
    project(client, coordinator)
    sid = start(client, alice)["id"]
    for field in ("to_role", "project", "kind"):
        body = {"session_id": sid, field: "a\u0000"}
        response = refused(
            runtime,
            partial(client.post, "/v1/work-items/claim-next", json=body, headers=alice),
            422,
            INVALID,
        )
        assert ["body", field] in [e["loc"] for e in response.json()["errors"]]
    for path in (
        "/v1/projects/a%00",
        "/v1/projects/a%00/entries",
        "/v1/projects/a%00/status",
        "/v1/projects/a%00/status.md",
        "/v1/agents/a%00/project",
    ):
        problem = assert_problem(client.get(path, headers=alice), 422, INVALID)
        assert problem["errors"][0]["loc"][0] == "path", path
    writes = [
        partial(client.post, "/v1/projects/a%00/archive", headers=coordinator),
        partial(
            client.post,
            "/v1/projects/a%00/entries",
            json={"message": "m", "session_id": sid},
            headers=alice,
        ),
        partial(
            client.put,
            "/v1/agents/alice/project",
            json={"project": "a\u0000", "session_id": sid},
            headers={**alice, "If-None-Match": "*"},
        ),
        partial(
            client.post,
            "/v1/work-items",
            json={"project": "a\u0000", "kind": "task", "title": "t"},
            headers=coordinator,
        ),
    ]
    for send in writes:
        refused(runtime, send, 422, INVALID)
    assert_problem(
        client.get("/v1/work-items", params={"assignee": "a\u0000"}, headers=alice), 422, INVALID
    )


def test_known_kind_metadata_is_strict_and_free_of_control_characters(
    runtime: Runtime, client: TestClient
) -> None:
    coordinator = boss(runtime)
    project(client, coordinator)
    for kind, metadata in [
        ("session", {"minutes": "30"}),  # text is not a number
        ("session", {"minutes": True}),
        ("session", {"agenda": "a\u0000b"}),
        ("task", {"trace_id": "t\u0000"}),
        ("project", {"repository": "https://example.org/\u0000"}),
    ]:
        body = {"project": "apollo", "kind": kind, "title": "t", "metadata": metadata}
        problem = refused(
            runtime,
            partial(client.post, "/v1/work-items", json=body, headers=coordinator),
            422,
            INVALID,
        ).json()
        assert ["body", "metadata"] in [e["loc"] for e in problem["errors"]], metadata
    made = item(client, coordinator, kind="session", metadata={"minutes": 30, "agenda": "plan"})
    assert made["metadata"] == {"minutes": 30, "agenda": "plan"}


# --- bodies, paths, times, parameters --------------------------------------------------------


def test_only_an_empty_body_counts_as_no_body(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    for raw in (b"\x0c", b"\x0b", b" \n"):
        for path in ("/v1/sessions", f"/v1/sessions/{sid}/heartbeat"):
            send = partial(client.post, path, content=raw, headers={**alice, **JSON})
            refused(runtime, send, 400, "malformed-json")
    assert client.post("/v1/sessions", content=b"", headers={**alice, **JSON}).status_code == 201


def allowed(response: Any) -> list[str]:
    return [m.strip() for m in response.headers["Allow"].split(",")]


def test_fixed_paths_win_over_item_ids_and_allow_tells_the_truth(
    runtime: Runtime, client: TestClient
) -> None:
    coordinator = boss(runtime)
    project(client, coordinator)
    made = item(client, coordinator)
    claim_next = refused(
        runtime,
        partial(client.get, "/v1/work-items/claim-next", headers=coordinator),
        405,
        "method-not-allowed",
    )
    assert allowed(claim_next) == ["POST"]
    options = client.options("/v1/work-items/claim-next", headers=coordinator)
    assert (options.status_code, allowed(options)) == (405, ["POST"])
    ready = refused(
        runtime, partial(client.patch, "/v1/work-items/ready", json={}, headers=coordinator), 405
    )
    assert allowed(ready) == ["GET", "HEAD"]
    one = client.options(f"/v1/work-items/{made['id']}", headers=coordinator)
    assert allowed(one) == ["GET", "HEAD", "PATCH"]
    assert allowed(client.options("/v1/sessions", headers=coordinator)) == ["GET", "HEAD", "POST"]
    assert client.get("/v1/work-items/ready", headers=coordinator).status_code == 200
    assert client.get(f"/v1/work-items/{made['id']}", headers=coordinator).status_code == 200


def test_times_need_iso_8601_with_a_zone(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    project(client, alice)
    for name in ("since", "until"):
        for value in ("1700000000", "1700000000.5", "2026-11-22T01:19:38", "2026-11-22"):
            problem = assert_problem(
                client.get("/v1/projects/apollo/entries", params={name: value}, headers=alice),
                422,
                INVALID,
            )
            assert ["query", name] in [e["loc"] for e in problem["errors"]], value
        for value in ("2026-11-22T01:19:38Z", "2026-11-22T01:19:38.5+01:00"):
            ok = client.get("/v1/projects/apollo/entries", params={name: value}, headers=alice)
            assert ok.status_code == 200, ok.text


def test_routes_without_parameters_refuse_any(runtime: Runtime, client: TestClient) -> None:
    alice, coordinator = agent(runtime, "alice"), boss(runtime)
    project(client, coordinator)
    sid = start(client, alice)["id"]
    made = item(client, coordinator)
    for path in (
        f"/v1/sessions/{sid}",
        "/v1/projects/apollo",
        "/v1/projects/apollo/status",
        "/v1/agents/alice/project",
        f"/v1/work-items/{made['id']}/readiness",
        "/healthz",
    ):
        problem = assert_problem(client.get(path, params={"bogus": "1"}, headers=alice), 422)
        assert problem["errors"][0]["loc"] == ["query", "bogus"], path
    for path in ("/v1/sessions", f"/v1/sessions/{sid}/heartbeat"):
        send = partial(client.post, path, params={"bogus": "1"}, headers=alice)
        refused(runtime, send, 422, INVALID)


def test_a_malformed_agent_id_in_the_selection_path_is_422(
    runtime: Runtime, client: TestClient
) -> None:
    alice = agent(runtime, "alice")
    path = "/v1/agents/not%20an%20id/project"
    sends = [
        partial(client.get, path, headers=alice),
        partial(client.put, path, json={"project": "x", "session_id": str(uuid4())}, headers=alice),
        partial(client.delete, path, headers={**alice, "If-Match": '"1"'}),
    ]
    for send in sends:
        problem = refused(runtime, send, 422, INVALID).json()
        assert ["path", "agent_id"] in [e["loc"] for e in problem["errors"]]


def test_one_401_detail_for_every_token_that_does_not_authenticate(
    runtime: Runtime, client: TestClient
) -> None:
    """Telling "revoked" from "never issued" would let a caller probe which secrets existed."""
    secret = issue_token(runtime, "agent:alice", "agent")
    token_id = runtime.access.authenticate(secret).token_id
    assert token_id is not None
    runtime.access.revoke(RequestContext(local_operator("tester"), "revoke"), token_id)
    details = {
        name: assert_problem(client.get("/v1/sessions", headers=bearer(token)), 401)["detail"]
        for name, token in {
            "revoked": secret,
            "never issued": "alt_" + "x" * 43,
            "malformed": "not-a-token",
        }.items()
    }
    assert len(set(details.values())) == 1, details


def test_updating_the_metadata_of_an_ended_session_says_so_plainly(
    runtime: Runtime, client: TestClient
) -> None:
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    assert client.post(f"/v1/sessions/{sid}/complete", headers=alice).status_code == 200
    problem = refused(
        runtime,
        partial(client.patch, f"/v1/sessions/{sid}", json={"metadata": {"k": 1}}, headers=alice),
        409,
        "session-terminated",
    ).json()
    assert problem["detail"] == "cannot update metadata from status 'completed'"


# --- metadata filters ------------------------------------------------------------------------


@pytest.mark.parametrize("count", [17, 999])
def test_metadata_filters_are_bounded(runtime: Runtime, client: TestClient, count: int) -> None:
    """999 filters once made SQLite fail ("too many SQL variables") and the client was told
    the store was unavailable; past 16 the request itself is refused."""
    alice = agent(runtime, "alice")
    project(client, alice)
    params = {f"meta.k{i}": "v" for i in range(count)}
    problem = assert_problem(
        client.get("/v1/projects/apollo/entries", params=params, headers=alice), 422, INVALID
    )
    assert problem["errors"][0]["loc"] == ["query", "meta.*"]
    sixteen = {f"meta.k{i}": "v" for i in range(16)}
    # Consistent with the project just created: a lagging read model would not know it yet.
    fresh = {**alice, CONSISTENT_WITH: str(runtime.ledger.head_position())}
    ok = client.get("/v1/projects/apollo/entries", params=sixteen, headers=fresh)
    assert ok.status_code == 200, ok.text


# --- If-Match on project archive -------------------------------------------------------------


def test_project_archive_honours_if_match(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    coordinator = boss(runtime)
    project(client, coordinator)
    archive = partial(client.post, "/v1/projects/apollo/archive")
    for tag in ('"99"', '"2"', 'W/"1"'):
        stale = refused(
            runtime,
            partial(archive, headers={**coordinator, "If-Match": tag}),
            412,
            "version-mismatch",
        ).json()
        assert stale["current_version"] == 1
    refused(
        runtime,
        partial(archive, headers={**coordinator, "If-Match": "one"}),
        400,
        "invalid-precondition",
    )
    assert client.get("/v1/projects/apollo", headers=coordinator).json()["archived"] is False
    done = archive(headers={**coordinator, "If-Match": '"1"'})
    assert done.status_code == 200, done.text
    assert (done.json()["archived"], done.headers["ETag"]) == (True, '"2"')
    refused(
        runtime,
        partial(archive, headers={**coordinator, "If-Match": '"1"'}),
        412,
        "version-mismatch",
    )
