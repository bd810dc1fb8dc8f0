"""/v1/projections: every read model, the seal and the policies with their versions and
positions (auditors and admins); a read model verified against its replay (admins)."""

from __future__ import annotations

from starlette.testclient import TestClient

from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import agent, assert_problem
from tests.conftest import bearer, issue_token


def test_projections_are_listed_with_version_and_position(
    runtime: Runtime, client: TestClient
) -> None:
    auditor = bearer(issue_token(runtime, "user:ann", "auditor"))
    runtime.catch_up()
    response = client.get("/v1/projections", headers=auditor)
    assert response.status_code == 200, response.text
    found = {p["name"]: p for p in response.json()["projections"]}
    assert found["work_items_v4"]["version"] == 4
    assert found["seal_v1"]["kind"] == "projection"
    assert found["policy_session_end_releases_claims"]["kind"] == "policy"
    assert all(p["head"] >= p["position"] >= 0 for p in found.values())
    assert set(found) == {r.name for r in runtime.runners.all()}
    assert_problem(client.get("/v1/projections", headers=agent(runtime, "alice")), 403)


def test_an_admin_verifies_a_read_model(runtime: Runtime, client: TestClient) -> None:
    admin = bearer(issue_token(runtime, "user:root", "admin"))
    auditor = bearer(issue_token(runtime, "user:ann", "auditor"))
    runtime.catch_up()
    response = client.get("/v1/projections/tokens_v1/verification", headers=admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["identical"] is True and body["rows"] == 2 and body["shown"] == []
    missing = client.get("/v1/projections/nope_v1/verification", headers=admin)
    assert_problem(missing, 404, "not-found")
    bad = client.get("/v1/projections/DROP%20TABLE/verification", headers=admin)
    assert_problem(bad, 422, "validation-error")
    assert_problem(client.get("/v1/projections/tokens_v1/verification", headers=auditor), 403)
