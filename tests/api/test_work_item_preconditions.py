"""If-Match on every write to a work item: a stale version is refused with 412 and writes
nothing; the version the client saw is accepted and the answer carries the new ETag. For
dependency edits the version is the waiting item's (`{id}`), which the edit leaves as it is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2 as httpx
from starlette.testclient import TestClient

from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import POSITION, agent, refused, start
from tests.api.test_work_items_api import FENCE, at, create, setup

STALE = {"If-Match": '"99"'}


def matching(version: int) -> dict[str, str]:
    return {"If-Match": f'"{version}"'}


def stale_then_current(
    runtime: Runtime, send: Callable[[dict[str, str]], httpx.Response], version: int
) -> httpx.Response:
    """Send with a stale If-Match (412, nothing written), then with the current version."""
    problem = refused(runtime, lambda: send(STALE), 412, "version-mismatch").json()
    assert (problem["expected_version"], problem["current_version"]) == (99, version)
    refused(runtime, lambda: send({"If-Match": f'W/"{version}"'}), 412)  # weak never matches
    return send(matching(version))


def written(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json())


def test_claim_release_archive_and_unarchive_honour_if_match(
    runtime: Runtime, client: TestClient
) -> None:
    boss = setup(runtime, client)
    item = create(client, boss, "Guarded")
    path = f"/v1/work-items/{item['id']}"
    alice = agent(runtime, "alice")
    session = start(client, alice)["id"]

    claim = stale_then_current(
        runtime,
        lambda h: client.post(
            f"{path}/claim", json={"session_id": session}, headers={**alice, **h}
        ),
        1,
    )
    claimed = written(claim)
    assert claim.headers["ETag"] == f'"{claimed["version"]}"' == '"3"'  # claimed, in progress

    release = stale_then_current(
        runtime, lambda h: client.post(f"{path}/release", headers={**alice, FENCE: "1", **h}), 3
    )
    assert written(release)["claim"] is None
    assert release.headers["ETag"] == '"5"'  # released, open again

    archive = stale_then_current(
        runtime, lambda h: client.post(f"{path}/archive", headers={**boss, **h}), 5
    )
    assert written(archive)["archived"] is True and archive.headers["ETag"] == '"6"'

    unarchive = stale_then_current(
        runtime, lambda h: client.post(f"{path}/unarchive", headers={**boss, **h}), 6
    )
    assert written(unarchive)["archived"] is False and unarchive.headers["ETag"] == '"7"'
    read = client.get(path, headers=at(boss, unarchive.headers[POSITION]))
    assert read.headers["ETag"] == '"7"'


def test_dependency_edits_honour_the_waiting_items_version(
    runtime: Runtime, client: TestClient
) -> None:
    boss = setup(runtime, client)
    waits, first = create(client, boss, "Waits"), create(client, boss, "First")
    edge = f"/v1/work-items/{waits['id']}/dependencies/{first['id']}"

    added = stale_then_current(runtime, lambda h: client.put(edge, headers={**boss, **h}), 1)
    assert written(added, 201)["depends_on"] == [first["id"]]
    assert added.headers["ETag"] == '"1"'  # the plan changed, the item did not
    again = client.put(edge, headers={**boss, **matching(1)})
    assert (again.status_code, again.headers["ETag"]) == (200, '"1"')

    # The other item's version does not count: only the waiting item's is compared.
    client.post(f"/v1/work-items/{first['id']}/archive", headers=boss)
    removed = stale_then_current(runtime, lambda h: client.delete(edge, headers={**boss, **h}), 1)
    assert written(removed)["depends_on"] == [] and removed.headers["ETag"] == '"1"'


def test_a_write_under_a_stale_version_is_refused_after_the_item_moved_on(
    runtime: Runtime, client: TestClient
) -> None:
    """The client read version 1; a coordinator then blocked the item: every write the
    client sends with If-Match "1" is refused, whichever route it takes."""
    boss = setup(runtime, client)
    item = create(client, boss, "Moved on")
    other = create(client, boss, "Other")
    path = f"/v1/work-items/{item['id']}"
    moved = client.post(
        f"{path}/transition", json={"to": "blocked", "reason": "vendor"}, headers=boss
    )
    assert moved.headers["ETag"] == '"2"'
    alice = agent(runtime, "alice")
    session = start(client, alice)["id"]
    seen = {**boss, **matching(1)}
    sends = [
        lambda: client.post(f"{path}/claim", json={"session_id": session}, headers=seen),
        lambda: client.post(f"{path}/release", headers=seen),
        lambda: client.post(f"{path}/archive", headers=seen),
        lambda: client.post(f"{path}/unarchive", headers=seen),
        lambda: client.put(f"{path}/dependencies/{other['id']}", headers=seen),
        lambda: client.delete(f"{path}/dependencies/{other['id']}", headers=seen),
        lambda: client.post(f"{path}/transition", json={"to": "open"}, headers=seen),
    ]
    for send in sends:
        assert refused(runtime, send, 412).json()["current_version"] == 2
