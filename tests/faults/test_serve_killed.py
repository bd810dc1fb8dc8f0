"""`agentledger serve` killed with SIGKILL under sixteen clients, then started again on the
same store and port. Each client appends entries with an idempotency key and sends a request
whose answer it did not get (connection lost, 503, 409 in progress) again with the same key,
as the docs tell it to. Afterwards: every acknowledged write is there, once; nothing is there
twice; no answer was a 5xx other than 503."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx

from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings
from tests.cli.shell import free_port
from tests.conftest import bearer, issue_token
from tests.support.figures import report
from tests.support.helpers import wait_until
from tests.support.processes import answers, start_cli

CLIENTS = 16


@dataclass
class Client:
    token: str
    session: str = ""
    acknowledged: dict[str, str] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    furthest: int = 0
    longest: float = 0.0  # seconds, its slowest request


def _serve(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    server = start_cli(settings, "serve", "--port", str(port))
    wait_until(lambda: answers(f"http://127.0.0.1:{port}/readyz"), timeout=60)
    return server


def test_a_killed_server_loses_and_doubles_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=None)
    rt = build_runtime(settings)
    try:
        admin = issue_token(rt, "user:admin", "admin")
        clients = [Client(issue_token(rt, f"agent:k{n:02d}", "agent")) for n in range(CLIENTS)]
    finally:
        rt.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(settings, port)
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            made = http.post("/v1/projects", json={"name": "apollo"}, headers=bearer(admin))
            assert made.status_code == 201, made.text
            for client in clients:
                started = http.post(
                    "/v1/sessions", json={"ttl_seconds": 3600}, headers=bearer(client.token)
                )
                client.session = started.json()["id"]
        stop = threading.Event()
        threads = [threading.Thread(target=_append, args=(base, c, stop)) for c in clients]
        for thread in threads:
            thread.start()
        time.sleep(3)
        before = sum(len(c.acknowledged) for c in clients)
        os.killpg(server.pid, signal.SIGKILL)
        killed = time.monotonic()
        server.wait(30)
        time.sleep(1)
        server = _serve(settings, port)
        wait_until(lambda: sum(len(c.acknowledged) for c in clients) > before, 60)
        recovered = time.monotonic()
        wait_until(lambda: sum(len(c.acknowledged) for c in clients) > before + 100, 60)
        stop.set()
        for thread in threads:
            thread.join(60)
        counts = _check(base, admin, clients)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    statuses = sum((c.statuses for c in clients), Counter())
    assert set(statuses) <= {0, 201, 409, 503}, statuses  # 0: the connection was lost
    assert statuses[0] >= 1, "no request was cut by the kill"
    report(
        "serve killed with SIGKILL under 16 clients",
        **counts,
        requests=sum(statuses.values()),
        cut_by_the_kill=statuses[0],
        longest_request=max(c.longest for c in clients),
        writing_again_after=recovered - killed,
    )


def _append(base: str, client: Client, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=30, headers=bearer(client.token)) as http:
        n = 0
        while not stop.is_set():
            key = f"{client.session}-{n}"
            body = {"message": f"entry {key}", "session_id": client.session}
            while True:  # until this key is acknowledged: a retry with the same key
                began = time.monotonic()
                try:
                    answer = http.post(
                        "/v1/projects/apollo/entries", json=body, headers={"Idempotency-Key": key}
                    )
                except httpx.TransportError:
                    client.statuses[0] += 1
                    time.sleep(0.2)
                    continue
                finally:
                    client.longest = max(client.longest, time.monotonic() - began)
                client.statuses[answer.status_code] += 1
                if answer.status_code == 201:
                    client.acknowledged[key] = answer.json()["id"]
                    client.furthest = max(client.furthest, answer.json()["position"])
                    break
                time.sleep(min(2.0, float(answer.headers.get("Retry-After") or 1)))
            n += 1


def _check(base: str, admin: str, clients: list[Client]) -> dict[str, int]:
    headers = {
        **bearer(admin),
        "AgentLedger-Consistent-With": str(max(c.furthest for c in clients)),
    }
    messages: list[str] = []
    ids: list[str] = []
    cursor: str | None = None
    with httpx.Client(base_url=base, timeout=60, headers=headers) as http:
        while True:
            params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
            answer = http.get("/v1/projects/apollo/entries", params=params)
            if answer.status_code == 503:  # the read model still catching up after the restart
                time.sleep(0.5)
                continue
            page = answer.json()
            messages += [item["message"] for item in page["items"]]
            ids += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    doubled = [m for m, n in Counter(messages).items() if n > 1]
    assert doubled == [], f"written twice: {doubled[:5]}"
    acknowledged = {e for c in clients for e in c.acknowledged.values()}
    assert acknowledged <= set(ids), "an acknowledged write is missing"
    return {"acknowledged": len(acknowledged), "found": len(ids), "lost": 0, "duplicated": 0}
