"""How MCP tools reach AgentLedger: through its own HTTP API, so a tool call is judged by the
very route an HTTP client would call — its validation, authorisation, idempotency record and
problem types — and no rule exists twice.

Inside `serve` (and `agentledger mcp` on a local store) the API is the app itself, called in
process (ASGI, no socket); `agentledger mcp --url` reaches a running server over the network,
so one service stays the writer.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx2 as httpx
from starlette.types import ASGIApp

from agentledger.interfaces.http.call import (
    CONSISTENT_WITH_HEADER,
    FENCE_HEADER,
    IDEMPOTENCY_KEY_HEADER,
    IF_MATCH_HEADER,
    IF_NONE_MATCH_HEADER,
    POSITION_HEADER,
)
from agentledger.interfaces.http.problems import PROBLEM_BASE

# A long-poll (check_inbox with wait) answers within its own bound (at most 60 s); this only
# keeps a lost server from holding a tool call forever.
REQUEST_TIMEOUT_SECONDS = 90.0
# Callers whose read-your-writes position is remembered (one per token, least recent dropped).
MAX_CALLERS = 4096


class Refused(Exception):
    """The API refused the call: its problem document (RFC 9457), passed on to the model."""

    def __init__(self, problem: dict[str, Any]) -> None:
        self.problem = problem
        super().__init__(f"{problem.get('title')}: {problem.get('detail')}")


def seg(value: object) -> str:
    """A value as one path segment: `/`, `?` and the like escaped, and `.` / `..` too (a
    client would otherwise resolve them to another route)."""
    quoted = quote(str(value), safe="")
    return quoted.replace(".", "%2E") if quoted in {".", ".."} else quoted


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> Refused:
    """A refusal made here (before the API is called), shaped as the API shapes its own."""
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    return Refused({**body, **extra})


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any  # the parsed JSON, or the text of a markdown answer; None for 204

    @property
    def position(self) -> int | None:
        raw = self.headers.get(POSITION_HEADER)
        return int(raw) if raw and raw.isdigit() else None


class Api:
    """The HTTP API, as one `httpx` client: in process or over the network."""

    def __init__(self, client: httpx.AsyncClient, user_agent: str) -> None:
        self._client = client
        self._user_agent = user_agent
        self._known: OrderedDict[str, _Known] = OrderedDict()

    @classmethod
    def in_process(cls, app: ASGIApp, user_agent: str) -> Api:
        transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(
            transport=transport, base_url="http://agentledger", timeout=REQUEST_TIMEOUT_SECONDS
        )
        return cls(client, user_agent)

    @classmethod
    def remote(cls, url: str, user_agent: str) -> Api:
        client = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=REQUEST_TIMEOUT_SECONDS)
        return cls(client, user_agent)

    async def close(self) -> None:
        await self._client.aclose()

    def caller(self, authorization: str, forwarded: Mapping[str, str] | None = None) -> Caller:
        return Caller(self, authorization, dict(forwarded or {}))

    async def send(
        self,
        method: str,
        path: str,
        authorization: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        sent = {"Authorization": authorization, "User-Agent": self._user_agent, **(headers or {})}
        seen = self.known(authorization).position
        if method == "GET" and seen is not None:
            # Read your own writes: the read models have caught up with everything this caller
            # wrote (or read) before, as an HTTP client asks with the same header.
            sent.setdefault(CONSISTENT_WITH_HEADER, str(seen))
        try:
            response = await self._client.request(
                method,
                path,
                params={k: v for k, v in (params or {}).items() if v is not None},
                content=None if body is None else json.dumps(body).encode(),
                headers={**sent, **({} if body is None else {"Content-Type": "application/json"})},
            )
        except httpx.TransportError as exc:
            raise problem(
                503,
                "store-unavailable",
                "AgentLedger is unavailable",
                f"could not reach the AgentLedger API: {type(exc).__name__}; retry later "
                "(with the same idempotency_key, a retried write is applied once)",
            ) from None
        answer = _answer(response)
        if answer.position is not None:
            known = self.known(authorization)
            known.position = max(answer.position, known.position or 0)
        if answer.status >= 400:
            raise Refused(_problem_of(response, answer))
        return answer

    def known(self, authorization: str) -> _Known:
        """What this process remembers of a caller (its token), the least recent forgotten."""
        known = self._known.get(authorization)
        if known is None:
            known = self._known[authorization] = _Known()
            while len(self._known) > MAX_CALLERS:
                self._known.popitem(last=False)
        self._known.move_to_end(authorization)
        return known


@dataclass
class _Known:
    position: int | None = None  # the furthest log position its calls have seen
    me: dict[str, Any] | None = None  # `GET /v1/me`: who the token is (it does not change)


@dataclass
class Caller:
    """One tool call's caller: its credentials (the token of the MCP request, or the one
    `agentledger mcp` was given) and the trace headers it came with."""

    api: Api
    authorization: str
    forwarded: dict[str, str] = field(default_factory=dict)

    async def get(self, path: str, **params: Any) -> Answer:
        return await self.api.send(
            "GET", path, self.authorization, params=params, headers=self.forwarded
        )

    async def write(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        expected_version: int | None = None,
        fence: int | None = None,
        idempotency_key: str | None = None,
    ) -> Answer:
        headers = dict(self.forwarded)
        if expected_version == 0:
            headers[IF_NONE_MATCH_HEADER] = "*"  # "nothing there yet": the first write
        elif expected_version is not None:
            headers[IF_MATCH_HEADER] = f'"{expected_version}"'
        if fence is not None:
            headers[FENCE_HEADER] = str(fence)
        if idempotency_key is not None:
            headers[IDEMPOTENCY_KEY_HEADER] = idempotency_key
        return await self.api.send(
            method, path, self.authorization, body=dict(body or {}), headers=headers
        )

    async def me(self) -> dict[str, Any]:
        known = self.api.known(self.authorization)
        if known.me is None:
            known.me = (await self.get("/v1/me")).body
        return known.me

    async def agent_id(self, named: str | None) -> str:
        """The agent named, else the token's own (a tool acting for "me")."""
        if named is not None:
            return named
        mine = (await self.me())["agent_id"]
        if mine is None:
            raise problem(
                422,
                "validation-error",
                "Invalid request",
                "this token is not an agent's: name the agent_id",
                errors=[{"loc": ["arguments", "agent_id"], "msg": "required", "type": "missing"}],
            )
        return str(mine)

    async def session_id(self, named: Any, agent_id: str | None = None) -> str:
        """The session named, else the agent's current one: its newest live session."""
        if named is not None:
            return str(named)
        agent = await self.agent_id(agent_id)
        page = (await self.get("/v1/sessions", agent_id=agent, status="active", limit=1)).body
        if not page["items"]:
            raise problem(
                409,
                "no-live-session",
                "No live session",
                f"{agent} has no live session: call start_session first (or name session_id)",
            )
        return str(page["items"][0]["id"])


def _answer(response: httpx.Response) -> Answer:
    if response.status_code == 204 or not response.content:
        body: Any = None
    elif response.headers.get("content-type", "").startswith("text/"):
        body = response.text
    else:
        try:
            body = response.json()
        except ValueError:
            body = response.text
    return Answer(response.status_code, response.headers, body)


def _problem_of(response: httpx.Response, answer: Answer) -> dict[str, Any]:
    if isinstance(answer.body, dict) and "type" in answer.body:
        return dict(answer.body)
    return {
        "type": "about:blank",
        "title": response.reason_phrase or "Error",
        "status": response.status_code,
        "detail": str(answer.body)[:500],
    }
