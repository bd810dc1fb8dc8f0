"""Many MCP clients at once, each the SDK's client over streamable HTTP: the agent-context
story (agents on their own projects, a stale expected_version refused with the current one,
16 agents x 50 append_entry calls), 16 clients draining 100 ready items with claim_next, and a
repeated idempotency_key. The writers' first commands are held until all have decided, so they
were in flight together (run one after another, the barrier would time out)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import anyio
import httpx2 as httpx
import pytest

from agentledger.application.readmodels import EntryFilter, WorkItemFilter
from agentledger.infrastructure.bootstrap import Runtime
from tests.conftest import issue_token
from tests.integration.work_items_support import Team
from tests.mcp.support import http_client, serving_here, structured
from tests.support.overlap import DecidedTogether

AGENTS = 16
APPENDS = 50
PROJECTS = ("apollo", "hermes", "zeus", "athena")


@pytest.fixture
def base(runtime: Runtime) -> Iterator[str]:
    with serving_here(runtime) as url:
        yield url


def _admin(runtime: Runtime, base: str) -> httpx.Client:
    token = issue_token(runtime, "user:admin", "admin")
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})


def _project_of(n: int) -> str:
    return PROJECTS[n % len(PROJECTS)]


def test_sixteen_agents_append_fifty_entries_each_into_their_own_projects(
    runtime: Runtime, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _admin(runtime, base) as admin:
        for project in PROJECTS:
            assert admin.post("/v1/projects", json={"name": project}).status_code == 201
    tokens = [issue_token(runtime, f"agent:a{n:02d}", "agent") for n in range(AGENTS)]
    acknowledged: dict[int, list[str]] = {n: [] for n in range(AGENTS)}
    together = DecidedTogether(AGENTS)

    async def agent(n: int, ready: anyio.Event, go: anyio.Event) -> None:
        async with http_client(base, tokens[n]) as client:
            session = structured(await client.call_tool("start_session", {}))
            selected = await client.call_tool(
                "set_project", {"project": _project_of(n), "expected_version": 0}
            )
            assert not selected.is_error, structured(selected)
            ready.set()
            await go.wait()
            for i in range(APPENDS):
                result = await client.call_tool(
                    "append_entry",
                    {"message": f"a{n:02d} step {i}", "session_id": session["id"]},
                )
                entry = structured(result)
                assert not result.is_error, entry
                assert entry["project"] == _project_of(n) and entry["agent_id"] == f"a{n:02d}"
                acknowledged[n].append(str(entry["id"]))
            # Each agent still sees its own project, whatever the others selected.
            mine = structured(await client.call_tool("get_project", {}))
            assert mine["project"] == _project_of(n)

    async def storm() -> None:
        readies = [anyio.Event() for _ in range(AGENTS)]
        go = anyio.Event()
        async with anyio.create_task_group() as group:
            for n in range(AGENTS):
                group.start_soon(agent, n, readies[n], go)
            for ready in readies:
                await ready.wait()
            together.install(monkeypatch)  # only the appends are held, not the set-up
            go.set()

    anyio.run(storm)
    assert together.all_in_flight
    ids = [entry for entries in acknowledged.values() for entry in entries]
    assert len(ids) == AGENTS * APPENDS == len(set(ids))
    listed = {
        project: runtime.entries.list(
            EntryFilter(project=project), limit=500, consistent_with=runtime.ledger.head_position()
        ).items
        for project in PROJECTS
    }
    found = {str(e.id): (e.project, e.agent_id) for items in listed.values() for e in items}
    assert set(found) == set(ids)  # exactly the 800 acknowledged, none lost, none invented
    for n, entries in acknowledged.items():
        assert {found[e] for e in entries} == {(_project_of(n), f"a{n:02d}")}
    assert Counter(len(items) for items in listed.values()) == Counter({200: 4})


def test_a_stale_expected_version_is_refused_with_the_current_one(
    runtime: Runtime, base: str
) -> None:
    with _admin(runtime, base) as admin:
        for project in ("apollo", "hermes"):
            admin.post("/v1/projects", json={"name": project})
    alpha, bob = (issue_token(runtime, f"agent:{n}", "agent") for n in ("alpha", "bob"))

    async def story() -> None:
        async with http_client(base, alpha) as a, http_client(base, bob) as b:
            for client in (a, b):
                await client.call_tool("start_session", {})
            first = structured(
                await a.call_tool("set_project", {"project": "apollo", "expected_version": 0})
            )
            other = structured(
                await b.call_tool("set_project", {"project": "hermes", "expected_version": 0})
            )
            assert (first["project"], other["project"]) == ("apollo", "hermes")  # no overlap
            moved = structured(
                await a.call_tool("set_project", {"project": "hermes", "expected_version": 1})
            )
            assert moved["version"] == 2
            # A second writer for alpha still believes version 1: refused, told what is there.
            stale = await a.call_tool("set_project", {"project": "apollo", "expected_version": 1})
            problem = structured(stale)
            assert stale.is_error and problem["status"] == 412
            assert problem["current_version"] == 2 and problem["expected_version"] == 1
            retried = await a.call_tool(
                "set_project", {"project": "apollo", "expected_version": problem["current_version"]}
            )
            assert structured(retried)["version"] == 3
            mine = structured(await b.call_tool("get_project", {}))
            assert mine["project"] == "hermes" and mine["version"] == 1  # bob's is untouched

    anyio.run(story)


def test_sixteen_clients_drain_a_hundred_ready_items_each_claimed_once(
    runtime: Runtime, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(runtime)
    items = {str(team.item(f"task {n}", priority=n % 7).id) for n in range(100)}
    tokens = [issue_token(runtime, f"agent:c{n:02d}", "agent") for n in range(AGENTS)]
    runtime.catch_up()
    won: dict[int, list[str]] = {n: [] for n in range(AGENTS)}
    together = DecidedTogether(AGENTS)

    async def drain(n: int, ready: anyio.Event, go: anyio.Event) -> None:
        async with http_client(base, tokens[n]) as client:
            await client.call_tool("start_session", {"ttl_seconds": 3600})
            ready.set()
            await go.wait()
            while True:
                result = structured(await client.call_tool("claim_next", {"project": "apollo"}))
                if not result["claimed"]:
                    return
                won[n].append(str(result["item"]["id"]))

    async def race() -> None:
        readies = [anyio.Event() for _ in range(AGENTS)]
        go = anyio.Event()
        async with anyio.create_task_group() as group:
            for n in range(AGENTS):
                group.start_soon(drain, n, readies[n], go)
            for ready in readies:
                await ready.wait()
            together.install(monkeypatch)
            go.set()

    anyio.run(race)
    claimed = [item for ids in won.values() for item in ids]
    assert len(claimed) == 100 and set(claimed) == items  # every item, none twice
    assert all(len(team.claims(UUID(item))) == 1 for item in items)  # so says the log
    assert together.all_in_flight


def test_a_repeated_idempotency_key_answers_the_first_result_and_writes_nothing(
    runtime: Runtime, base: str
) -> None:
    with _admin(runtime, base) as admin:
        admin.post("/v1/projects", json={"name": "apollo"})
    alpha = issue_token(runtime, "agent:alpha", "agent")

    async def twice() -> list[Any]:
        async with http_client(base, alpha) as client:
            await client.call_tool("start_session", {})
            create = {
                "project": "apollo",
                "kind": "task",
                "title": "Build",
                "idempotency_key": "create-build-1",
            }
            first = structured(await client.call_tool("create_work_item", create))
            head = runtime.ledger.head_position()
            again = structured(await client.call_tool("create_work_item", create))
            assert runtime.ledger.head_position() == head  # nothing more written
            changed = await client.call_tool("create_work_item", {**create, "title": "Other"})
            return [first, again, structured(changed), changed.is_error]

    first, again, changed, changed_is_error = anyio.run(twice)
    assert again == first  # the first answer, as it was
    assert changed_is_error and changed["type"].endswith("/idempotency-key-reused")
    listed = runtime.work_items.list(
        WorkItemFilter(project="apollo"), consistent_with=first["position"]
    )
    assert [item.title for item in listed.items] == ["Build"]  # created once
