"""The load generator's HTTP client: the standard library's `http.client`, one keep-alive
connection per simulated agent.

The generator shares the machine's two cores with the server and PostgreSQL, so every
microsecond it spends per request is taken away from the server. Against `GET /healthz` at
16 clients, httpx reached about 1,250 requests/s and `http.client` about 5,900 on this VM.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import time
from email.message import Message
from typing import Any
from urllib.parse import urlencode, urlsplit

# uvicorn closes a connection idle for 5 s: reconnect before that rather than race it.
IDLE_RECONNECT_SECONDS = 2.0


class Reply:
    """What a request answered: status, headers (case-insensitive), body."""

    def __init__(self, status: int, headers: Message, content: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class Client:
    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        self._connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
        self._headers = dict(headers or {})
        self._used = time.monotonic()

    def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        if params:
            path = f"{path}?{urlencode(params)}"
        return self.request("GET", path, None, headers)

    def post(self, path: str, json: Any = None, headers: dict[str, str] | None = None) -> Reply:
        return self.request("POST", path, json, headers)

    def put(self, path: str, json: Any = None, headers: dict[str, str] | None = None) -> Reply:
        return self.request("PUT", path, json, headers)

    def request(self, method: str, path: str, json: Any, headers: dict[str, str] | None) -> Reply:
        sent = {**self._headers, **(headers or {})}
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent["Content-Type"] = "application/json"
        if time.monotonic() - self._used > IDLE_RECONNECT_SECONDS:
            self._connection.close()  # the next request opens a fresh one
        self._connection.request(method, path, body=body, headers=sent)
        response = self._connection.getresponse()
        reply = Reply(response.status, response.headers, response.read())
        self._used = time.monotonic()
        return reply

    def close(self) -> None:
        self._connection.close()
