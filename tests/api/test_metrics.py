"""GET /metrics: the Prometheus text format (parsed with the client's own parser); request
counts move as requests are served, by route template, never by raw path; commands by
operation and outcome, conflict retries, group-commit batch sizes, the log's pool and the
active sessions move as commands run."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from agentledger.application.commands import UnitOfWork
from agentledger.domain.events import EventContext
from agentledger.domain.sessions import AgentSession
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import agent, start
from tests.support.helpers import agent_context


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
    running = ("agentledger_projection_state", (("name", "sessions_v3"), ("state", "running")))
    assert after[running] == 1.0


def _value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return float(samples.get((name, tuple(sorted(labels.items()))), 0.0))


def _commands(samples: dict, command: str, outcome: str) -> float:  # type: ignore[type-arg]
    return _value(samples, "agentledger_commands_total", command=command, outcome=outcome)


def test_commands_are_counted_by_operation_and_outcome(
    runtime: Runtime, client: TestClient
) -> None:
    alice = agent(runtime, "alice")
    before = _samples(client)
    session = start(client, alice)
    malformed = client.post("/v1/sessions", json={"ttl_seconds": "soon"}, headers=alice)
    assert malformed.status_code == 422, malformed.text
    ended = f"/v1/sessions/{session['id']}/complete"
    assert client.post(ended, headers=alice).status_code == 200
    again = client.post(ended, headers=alice)
    assert again.status_code == 409, again.text
    slug = again.json()["type"].rsplit("/", 1)[1]
    replayed = {**alice, "Idempotency-Key": "start-once"}
    for _ in range(2):  # the replay ran nothing, so it is not counted again
        assert client.post("/v1/sessions", json={}, headers=replayed).status_code == 201
    client.get(f"/v1/sessions/{session['id']}", headers=alice)  # a read is no command
    after = _samples(client)

    def moved(command: str, outcome: str) -> float:
        return _commands(after, command, outcome) - _commands(before, command, outcome)

    assert moved("start_session", "accepted") == 2
    assert moved("start_session", "refused:validation-error") == 1
    assert moved("complete", "accepted") == 1
    assert moved("complete", f"refused:{slug}") == 1
    assert not any(
        name == "agentledger_commands_total" and dict(labels)["command"] == "get_session"
        for name, labels in after
    )


def test_each_transaction_group_commit_writes_is_observed_with_its_size(
    runtime: Runtime, client: TestClient
) -> None:
    alice = agent(runtime, "alice")
    count = "agentledger_group_commit_batch_size_count"
    before = _samples(client)
    for _ in range(3):
        start(client, alice)
    after = _samples(client)
    # Requests one after another are written alone: three transactions of one command.
    assert _value(after, count) - _value(before, count) == 3
    total = "agentledger_group_commit_batch_size_sum"
    assert _value(after, total) - _value(before, total) == 3
    one = "agentledger_group_commit_batch_size_bucket"
    assert _value(after, one, le="1.0") - _value(before, one, le="1.0") == 3


def test_a_command_that_loses_a_race_is_rerun_and_the_retry_counted(
    runtime: Runtime, client: TestClient
) -> None:
    alice = agent_context(runtime, "alice")
    session_id = runtime.sessions.start(alice).value.id
    raced: list[bool] = []

    def decide(uow: UnitOfWork, ctx: EventContext) -> None:
        session = uow.get(AgentSession, session_id, "session")
        if not raced:  # another writer commits first, so this attempt's save conflicts
            raced.append(True)
            runtime.sessions.update_metadata(alice, session_id, {"by": "the other writer"})
        session.update_metadata(ctx, {"by": "the raced command"})

    retries = "agentledger_command_conflict_retries_total"
    before = _value(_samples(client), retries, command="tests.raced")
    runtime.commands.run(alice, "tests.raced", decide)
    after = _value(_samples(client), retries, command="tests.raced")
    assert after - before == 1
    assert runtime.commands.read(AgentSession, session_id, "session").metadata == {
        "by": "the raced command"
    }


def test_sessions_active_follows_the_read_model(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    active = "agentledger_sessions_active"
    runtime.catch_up()
    assert _value(_samples(client), active) == 0
    first, second = start(client, alice), start(client, alice)
    runtime.catch_up()
    assert _value(_samples(client), active) == 2
    assert client.post(f"/v1/sessions/{first['id']}/complete", headers=alice).status_code == 200
    runtime.catch_up()
    assert _value(_samples(client), active) == 1
    assert second["status"] == "active"


def test_the_log_pool_is_reported(runtime: Runtime, client: TestClient, backend: str) -> None:
    start(client, agent(runtime, "alice"))
    samples = _samples(client)
    pool = "agentledger_store_pool_connections"
    in_use, idle, most = (_value(samples, pool, state=s) for s in ("in_use", "idle", "max"))
    assert (pool, (("state", "max"),)) in samples
    assert in_use >= 0 and idle >= 0 and 0 < in_use + idle <= most
    if backend == "postgres":
        settings = runtime.settings
        assert most == settings.pool_size + settings.pool_max_overflow
