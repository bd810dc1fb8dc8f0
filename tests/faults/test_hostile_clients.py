"""Clients that misbehave at the HTTP edge of a live `serve`, sent as raw bytes over sockets:
oversized request lines and headers, too many headers, headers and bodies sent too slowly,
connections that never send a byte and more of them than the process takes. Each is refused
with its status (414, 431, 408) or closed, counted in the metrics, and a normal client's
latency stays within twice its unloaded p99 meanwhile."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings
from tests.conftest import issue_token
from tests.support.figures import report
from tests.support.processes import serving

HEADER_SECONDS = 1.0
BODY_SECONDS = 1.0
MAX_CONNECTIONS = 40


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The edge is the same whatever the store: the embedded one."""
    return Settings(data_dir=tmp_path / "data", database_url=None)


@pytest.fixture
def base(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AGENTLEDGER_HEADER_TIMEOUT_SECONDS", str(HEADER_SECONDS))
    monkeypatch.setenv("AGENTLEDGER_BODY_TIMEOUT_SECONDS", str(BODY_SECONDS))
    monkeypatch.setenv("AGENTLEDGER_MAX_CONNECTIONS", str(MAX_CONNECTIONS))
    with serving(settings) as url:
        yield url


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1") else 0


def _send(base: str, request: bytes) -> int:
    with _connect(base) as sock:
        sock.sendall(request)
        raw = _answer(sock)
    if _status(raw) >= 400:  # a problem document, as every refusal of the API
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"content-type: application/problem+json" in head.lower(), head
        assert json.loads(body)["status"] == _status(raw)
    return _status(raw)


def test_oversized_and_overlong_requests_are_refused(base: str) -> None:
    assert _send(base, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") == 200
    big = b"x-big: " + b"a" * 20_000 + b"\r\n"
    assert _send(base, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n") == 431
    many = b"".join(b"x-h%d: 1\r\n" % n for n in range(100))
    assert _send(base, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n") == 431
    path = b"/healthz?" + b"q" * 10_000
    assert _send(base, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n") == 414
    counted = _refusals(base)
    assert counted["headers-too-large"] >= 1 and counted["too-many-headers"] >= 1
    assert counted["url-too-long"] >= 1


def test_slow_headers_slow_bodies_and_silent_connections_are_cut(base: str) -> None:
    with _connect(base) as slow_head:
        slow_head.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        began = time.monotonic()
        assert _status(_answer(slow_head)) == 408
        assert time.monotonic() - began < HEADER_SECONDS + 2
    with _connect(base) as slow_body:
        slow_body.sendall(
            b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"ttl'
        )
        assert _status(_answer(slow_body)) == 408
    silent = [_connect(base) for _ in range(10)]
    try:
        began = time.monotonic()
        assert all(_answer(s) == b"" for s in silent)  # closed, with nothing to answer
        assert time.monotonic() - began < HEADER_SECONDS + 2
    finally:
        for s in silent:
            s.close()
    counted = _refusals(base)
    assert counted["header-timeout"] >= 1 and counted["body-timeout"] >= 1
    assert counted["idle-timeout"] >= 10


def test_idle_connections_cannot_lock_others_out_and_latency_holds(
    base: str, settings: Settings
) -> None:
    rt = build_runtime(settings)
    try:
        token = issue_token(rt, "agent:normal", "agent")
    finally:
        rt.close()
    headers = {"Authorization": f"Bearer {token}"}

    def p99(http: httpx.Client) -> float:
        timings = []
        for _ in range(100):
            began = time.perf_counter()
            assert http.get("/v1/sessions", headers=headers).status_code == 200
            timings.append(time.perf_counter() - began)
        return sorted(timings)[98]

    with httpx.Client(base_url=base, timeout=10) as http:
        p99(http)  # warm
        unloaded = p99(http)
    # More silent connections than the process takes, and slow talkers among them.
    hostile = [_connect(base) for _ in range(MAX_CONNECTIONS * 2)]
    try:
        for sock in hostile[:10]:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers that never end
        with httpx.Client(base_url=base, timeout=10) as http:  # a new connection: let in
            loaded = p99(http)
    finally:
        for sock in hostile:
            sock.close()
    refused = _refusals(base)
    assert refused["evicted-idle"] >= MAX_CONNECTIONS
    # Within twice the unloaded p99 (and 5 ms, for a timer's tick on a busy 2-core machine).
    assert loaded <= 2 * unloaded + 0.005, (loaded, unloaded)
    report(
        f"{len(hostile)} silent connections (cap {MAX_CONNECTIONS}), 10 of them slow",
        normal_client_p99_unloaded=unloaded,
        loaded=loaded,
        evicted_idle=int(refused["evicted-idle"]),
    )


def _refusals(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("agentledger_http_edge_refusals_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            found[reason] = float(line.rsplit(" ", 1)[1])
    return {
        **dict.fromkeys(
            (
                "url-too-long",
                "too-many-headers",
                "headers-too-large",
                "header-timeout",
                "body-timeout",
                "idle-timeout",
                "evicted-idle",
                "over-capacity",
            ),
            0.0,
        ),
        **found,
    }
