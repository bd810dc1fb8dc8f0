"""GET /metrics: the Prometheus text format (parsed with the client's own parser); request
counts move as requests are served, by route template, never by raw path."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import agent, start


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _count(samples: dict, route: str, status: str) -> float:  # type: ignore[type-arg]
    key = (
        "agentledger_http_request_duration_seconds_count",
        (("method", "POST"), ("route", route), ("status", status)),
    )
    return float(samples.get(key, 0.0))


def test_metrics_parse_and_move_as_requests_are_served(
    runtime: Runtime, client: TestClient
) -> None:
    alice = agent(runtime, "alice")
    before = _samples(client)
    session = start(client, alice)
    for _ in range(3):
        client.post(f"/v1/sessions/{session['id']}/heartbeat", headers=alice)
    client.get("/v1/no/such/route/42")
    runtime.catch_up()
    after = _samples(client)
    assert _count(after, "/v1/sessions", "201") == _count(before, "/v1/sessions", "201") + 1
    heartbeat = "/v1/sessions/{session_id}/heartbeat"
    assert _count(after, heartbeat, "200") == _count(before, heartbeat, "200") + 3
    assert not any("/v1/no/such" in str(labels) for _, labels in after)
    position = ("agentledger_projection_position", (("kind", "projection"), ("name", "seal_v1")))
    assert after[position] == runtime.ledger.head_position()
    running = ("agentledger_projection_state", (("name", "sessions_v2"), ("state", "running")))
    assert after[running] == 1.0
