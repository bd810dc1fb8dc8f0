"""The HTTP edge: uvicorn's protocol with the limits a service exposed to clients it does not
control needs, and uvicorn does not keep on its own: the request line's and the headers' size
and count, and the time to send the headers and then the body. A connection that never sends
a byte is closed when its header time runs out, so slow or silent clients cannot hold the
process's connections (their number is capped by uvicorn's `limit_concurrency`, which answers
503 beyond it; idle keep-alive by its `timeout_keep_alive`).

Each refusal answers with its status (414, 431, 408) and a problem document (RFC 9457) whose
type is the reason, closes the connection, and counts in `agentledger_http_edge_refusals{reason}`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from agentledger.infrastructure.metrics import EDGE_REFUSALS
from agentledger.infrastructure.settings import Settings
from agentledger.interfaces.http.problems import PROBLEM_BASE

_DETAILS = {
    "url-too-long": "the request line is longer than the server takes (AGENTLEDGER_MAX_URL_BYTES)",
    "headers-too-large": "the headers are too large for the server (AGENTLEDGER_MAX_HEADER_BYTES)",
    "too-many-headers": "more headers than the server takes (AGENTLEDGER_MAX_HEADERS)",
    "header-timeout": "the headers did not arrive in time (AGENTLEDGER_HEADER_TIMEOUT_SECONDS)",
    "body-timeout": "the body did not arrive in time (AGENTLEDGER_BODY_TIMEOUT_SECONDS)",
}
_REASONS = {
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


@dataclass(frozen=True)
class EdgeLimits:
    max_url_bytes: int
    max_header_bytes: int
    max_headers: int
    header_seconds: float
    body_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> EdgeLimits:
        return cls(
            settings.max_url_bytes,
            settings.max_header_bytes,
            settings.max_headers,
            settings.header_timeout_seconds,
            settings.body_timeout_seconds,
        )


@cache
def configured_limits() -> EdgeLimits:
    """This process's limits, from its settings (each `serve --workers` process reads its own)."""
    return EdgeLimits.of(Settings())


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, bounded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = configured_limits()
        self._timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._header_count = 0
        self._in_request = False  # bytes of a request arrived, and its answer is not sent
        self._since = 0.0  # when the connection was made (the loop's clock)
        self._refused = False  # answered by the edge: the parser's further callbacks are void

    # --- the time allowed for each part of a request ------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._since = self.loop.time()
        super().connection_made(transport)
        self._expect("header-timeout", self.limits.header_seconds)  # silent clients too
        if self._full():
            self._evict_an_idle_connection()

    def _evict_an_idle_connection(self) -> None:
        """At the cap, the longest-idle connection (one with no request under way: a silent
        or a kept-alive one) is closed to make room, so that idle clients cannot lock out
        those with a request to send."""
        idle = [
            c
            for c in self.connections
            if isinstance(c, EdgeProtocol) and c is not self and not c._in_request
        ]
        if idle:
            oldest = min(idle, key=lambda c: c._since)
            EDGE_REFUSALS.labels("evicted-idle").inc()
            oldest._cancel()
            oldest.transport.close()
            # Closing completes on a later turn of the loop: count it gone now, or the
            # request that made room would still find the process full.
            self.connections.discard(oldest)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._header_count = 0
        self._in_request = True
        if self._timer is None:  # a pipelined request: the time runs from its first byte
            self._expect("header-timeout", self.limits.header_seconds)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._expect("body-timeout", self.limits.body_seconds)
        if self._full():
            self._evict_an_idle_connection()  # a request to serve beats an idle connection
            if self._full():
                EDGE_REFUSALS.labels("over-capacity").inc()  # uvicorn answers it 503
        super().on_headers_complete()

    def _full(self) -> bool:
        limit = self.limit_concurrency
        return limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._cancel()  # the request is in: the application's time is its own bound
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._in_request = False
        super().on_response_complete()  # arms uvicorn's keep-alive timer for idle connections
        if not self.transport.is_closing():
            self._expect("header-timeout", self.limits.header_seconds + self.timeout_keep_alive)

    # --- sizes ----------------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        super().on_url(url)
        if len(self.url) > self.limits.max_url_bytes:
            self._refuse(414, "url-too-long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._header_bytes += len(name) + len(value) + 4
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refuse(431, "too-many-headers")
        elif self._header_bytes > self.limits.max_header_bytes:
            self._refuse(431, "headers-too-large")
        else:
            super().on_header(name, value)

    def data_received(self, data: bytes) -> None:
        if self._refused or self.transport.is_closing():
            return  # refused: what follows is not read
        super().data_received(data)

    # --- refusing -------------------------------------------------------------------------

    def _expect(self, reason: str, seconds: float) -> None:
        self._cancel()
        self._timer = self.loop.call_later(seconds, self._timed_out, reason)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self, reason: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            return  # answering already: the response is the application's to finish
        if reason == "header-timeout" and not self._in_request:
            EDGE_REFUSALS.labels("idle-timeout").inc()
            self.transport.close()  # an idle or silent connection: no request to answer
            return
        self._refuse(408, reason)

    def _refuse(self, status: int, reason: str) -> None:
        EDGE_REFUSALS.labels(reason).inc()
        self._refused = True
        self._cancel()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the application, if it started, stops reading
            self.cycle.message_event.set()
        body = json.dumps(
            {
                "type": PROBLEM_BASE + reason,
                "title": _REASONS[status].decode(),
                "status": status,
                "detail": _DETAILS[reason],
            }
        ).encode()
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n"
        ) % (status, _REASONS[status], len(body))
        self.transport.write(head + body)
        self.transport.close()
