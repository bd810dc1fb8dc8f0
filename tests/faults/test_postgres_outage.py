"""PostgreSQL stopped under load, as an operator would see it: `agentledger serve` on a
throwaway cluster of this test's own (never the shared server), sixteen clients appending
with idempotency keys and retrying every 503 with the same key, and the cluster killed
(`pg_ctl stop -m immediate`) for a while, twice.

The outages: 10 s, then 60 s, then 3 s. What must hold: no request takes longer than the
bound (`request_timeout_seconds` plus one lock wait); while the store is down writes answer
503 `store-unavailable` with `Retry-After`, nothing else, and so do reads (the read models
live in the same server), which otherwise answer with the position they reflect; the service
recovers without a restart, writes and `/readyz` alike, within a stated time, and the short
outage after the long one as fast as the first (no back-off left over); every acknowledged
write is there once, none lost, none duplicated.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest

from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings
from tests.conftest import bearer, issue_token
from tests.support.figures import report
from tests.support.postgres import Cluster
from tests.support.processes import serving

CLIENTS = 16
OUTAGES = (10.0, 60.0, 3.0)
REQUEST_TIMEOUT = 5.0
LOCK_TIMEOUT = 2.0
# What a request may take at worst: its deadline, one lock wait begun just before it, and the
# answer's way back under load.
BOUND = REQUEST_TIMEOUT + LOCK_TIMEOUT + 1.0
# How soon after the store is back every client must be writing again, and /readyz green
# (the runners try again every second while the store is out).
RECOVERY = 10.0


@dataclass
class Call:
    started: float
    seconds: float
    status: int
    retry_after: str | None
    problem: str | None = None
    key: str = ""


@dataclass
class Client:
    token: str
    session: str
    calls: list[Call] = field(default_factory=list)
    acknowledged: dict[str, str] = field(default_factory=dict)  # key -> entry id
    furthest: int = 0  # the log position of its latest acknowledged write


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    own = Cluster()
    own.start()
    yield own
    own.remove()


@pytest.fixture
def settings(cluster: Cluster, tmp_path: Path) -> Settings:
    cluster.start()  # (again, if a failed test left it stopped)
    return Settings(
        database_url=cluster.url,
        postgres_schema=f"f_{uuid.uuid4().hex[:10]}",
        data_dir=tmp_path / "unused",
        request_timeout_seconds=REQUEST_TIMEOUT,
        lock_timeout_seconds=int(LOCK_TIMEOUT),
    )


def _environment(settings: Settings) -> dict[str, str]:
    return {
        "AGENTLEDGER_REQUEST_TIMEOUT_SECONDS": str(settings.request_timeout_seconds),
        "AGENTLEDGER_LOCK_TIMEOUT_SECONDS": str(settings.lock_timeout_seconds),
    }


def test_writes_stay_bounded_through_outages_and_nothing_is_lost_or_doubled(
    cluster: Cluster, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _environment(settings).items():
        monkeypatch.setenv(name, value)
    rt = build_runtime(settings)
    try:
        admin = issue_token(rt, "user:admin", "admin")
        tokens = [issue_token(rt, f"agent:w{n:02d}", "agent") for n in range(CLIENTS)]
    finally:
        rt.close()
    with serving(settings) as base:
        with httpx.Client(base_url=base, timeout=60) as http:
            made = http.post("/v1/projects", json={"name": "apollo"}, headers=bearer(admin))
            assert made.status_code == 201, made.text
            clients = [Client(t, _session(http, t)) for t in tokens]
        stop = threading.Event()
        reads: list[Call] = []
        threads = [threading.Thread(target=_append_until, args=(base, c, stop)) for c in clients]
        threads.append(threading.Thread(target=_read_until, args=(base, admin, reads, stop)))
        for thread in threads:
            thread.start()
        outages: list[tuple[float, float]] = []
        ready_again: list[float] = []
        try:
            time.sleep(2)
            for seconds in OUTAGES:
                down = time.monotonic()
                cluster.stop("immediate")
                time.sleep(seconds)
                cluster.start()
                back = time.monotonic()
                outages.append((down, back))
                ready_again.append(_ready_after(base, back))
                _wait_for_writes_after(clients, back)
                time.sleep(2)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text  # recovered without a restart
        counts = _check_nothing_lost_or_doubled(base, admin, clients)
    calls = [call for c in clients for call in c.calls]
    longest = max(call.seconds for call in calls)
    assert longest <= BOUND, f"a request took {longest:.1f} s"
    odd = sorted({c.key for c in calls if c.status not in (201, 503)})[:3]
    assert {call.status for call in calls} <= {201, 503}, [  # each odd key's story
        [(round(c.started - outages[0][0], 2), c.status, c.problem) for c in calls if c.key == k]
        for k in odd
    ]
    unavailable = [call for call in calls if call.status == 503]
    assert unavailable, "the outages were not seen"
    assert all(call.retry_after for call in unavailable)
    # Reads answer from the read models, saying which position they reflect, or (the read
    # models being in the same stopped server) 503 store-unavailable, as quickly as writes.
    assert {r.status for r in reads} == {200, 503}, Counter(r.status for r in reads)
    assert all(r.retry_after and r.problem == "store-unavailable" for r in reads if r.status == 503)
    assert all(r.key.isdigit() for r in reads if r.status == 200)  # AgentLedger-Position
    assert max(r.seconds for r in reads) <= BOUND
    recoveries = [_recovery(clients, back) for _, back in outages]
    assert all(r <= RECOVERY for r in recoveries), recoveries
    assert all(r <= RECOVERY for r in ready_again), ready_again
    # The short outage after the long one recovers as fast as the first (no back-off left).
    assert recoveries[2] <= recoveries[0] + 2.0, recoveries
    assert ready_again[2] <= ready_again[0] + 2.0, ready_again
    report(
        "PostgreSQL stopped 10 s, 60 s, 3 s",
        **counts,
        requests=len(calls),
        answered_503=len(unavailable),
        longest_request=longest,
        longest_read=max(r.seconds for r in reads),
        writes_back_after=recoveries,
        ready_after=ready_again,
    )


def _session(http: httpx.Client, token: str) -> str:
    started = http.post("/v1/sessions", json={"ttl_seconds": 3600}, headers=bearer(token))
    assert started.status_code == 201, started.text
    return str(started.json()["id"])


def _append_until(base: str, client: Client, stop: threading.Event) -> None:
    """Append entries one after another; a 503 is retried with the same key (after its
    Retry-After), as the docs tell a client to."""
    with httpx.Client(base_url=base, timeout=60, headers=bearer(client.token)) as http:
        n = 0
        while not stop.is_set():
            key = f"{client.session}-{n}"
            body = {"message": f"entry {key}", "session_id": client.session}
            while not stop.is_set():
                began = time.monotonic()
                try:
                    answer = http.post(
                        "/v1/projects/apollo/entries", json=body, headers={"Idempotency-Key": key}
                    )
                except httpx.TransportError:  # not expected: the server stays up
                    client.calls.append(Call(began, time.monotonic() - began, 0, None))
                    continue
                client.calls.append(
                    Call(
                        began,
                        time.monotonic() - began,
                        answer.status_code,
                        answer.headers.get("Retry-After"),
                        None if answer.is_success else answer.json().get("type"),
                        key,
                    )
                )
                if answer.status_code == 201:
                    client.acknowledged[key] = answer.json()["id"]
                    client.furthest = max(client.furthest, answer.json()["position"])
                    break
                time.sleep(min(1.0, float(answer.headers.get("Retry-After") or 1)))
            n += 1


def _read_until(base: str, token: str, reads: list[Call], stop: threading.Event) -> None:
    """A reader of the entries, five times a second; `key` holds the position it reflects."""
    with httpx.Client(base_url=base, timeout=60, headers=bearer(token)) as http:
        while not stop.is_set():
            began = time.monotonic()
            answer = http.get("/v1/projects/apollo/entries", params={"limit": "1"})
            problem = None if answer.is_success else answer.json().get("type", "").rsplit("/")[-1]
            reads.append(
                Call(
                    began,
                    time.monotonic() - began,
                    answer.status_code,
                    answer.headers.get("Retry-After"),
                    problem,
                    answer.headers.get("AgentLedger-Position", ""),
                )
            )
            time.sleep(0.2)


def _ready_after(base: str, back: float) -> float:
    """Seconds from the store's return until /readyz answers 200 again."""
    while time.monotonic() - back < 60:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return time.monotonic() - back
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return float("inf")


def _wait_for_writes_after(clients: list[Client], moment: float) -> None:
    deadline = time.monotonic() + RECOVERY + BOUND
    while time.monotonic() < deadline:
        if all(any(c.started > moment and c.status == 201 for c in cl.calls) for cl in clients):
            return
        time.sleep(0.2)


def _recovery(clients: list[Client], back: float) -> float:
    """How long after the store was back every client had a write accepted again."""
    firsts = []
    for client in clients:
        done = [c.started + c.seconds for c in client.calls if c.started > back and c.status == 201]
        firsts.append(min(done) - back if done else float("inf"))
    return max(firsts)


def _check_nothing_lost_or_doubled(base: str, admin: str, clients: list[Client]) -> dict[str, int]:
    acknowledged = {key: entry for c in clients for key, entry in c.acknowledged.items()}
    furthest = str(max(c.furthest for c in clients))
    headers = {**bearer(admin), "AgentLedger-Consistent-With": furthest}
    with httpx.Client(base_url=base, timeout=60, headers=headers) as http:
        messages: list[str] = []
        ids: list[str] = []
        cursor: str | None = None
        while True:
            params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
            page = _get_caught_up(http, "/v1/projects/apollo/entries", params)
            messages += [item["message"] for item in page["items"]]
            ids += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    counted = Counter(messages)
    doubled = [m for m, n in counted.items() if n > 1]
    lost = set(acknowledged.values()) - set(ids)
    assert doubled == [], f"written twice: {doubled[:5]}"
    assert not lost, "an acknowledged write is missing"
    found_keys = {m.removeprefix("entry ") for m in messages}
    assert set(acknowledged) <= found_keys
    return {"acknowledged": len(acknowledged), "found": len(ids), "lost": 0, "duplicated": 0}


def _get_caught_up(http: httpx.Client, path: str, params: dict[str, str]) -> dict[str, object]:
    """A read once the read model has caught up (503 not-caught-up until then: after the
    outages it may lag)."""
    deadline = time.monotonic() + 60
    while True:
        answer = http.get(path, params=params)
        if answer.status_code == 200:
            return dict(answer.json())
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.5)
