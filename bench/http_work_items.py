"""Work items over HTTP, on SQLite and PostgreSQL: building a 1,200-item, 5-level plan, reading
one item, a root's whole hierarchy and the project's list, the status report, and claim-next
under 16 concurrent agents (every item claimed exactly once), and by one agent alone.

Each measured call records the server-side time (`Server-Timing: app;dur=<ms>`) and the
client-side wall time. Not part of the test suite.

    .venv/bin/python -m bench.http_work_items [--quick] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2 as httpx

from bench.harness import DEFAULT_DATABASE_URL, issue_token, served, store_environments, summarise
from bench.http_client import Reply

CONSISTENT_WITH = "AgentLedger-Consistent-With"
POSITION = "AgentLedger-Position"
_SERVER_TIMING = re.compile(r"(?:^|,)\s*app;dur=([0-9.]+)")
# Per root: how many items sit at each level (root = level 0, deepest = 5 levels below it).
LEVELS = (1, 3, 6, 12, 24, 54)  # 100 items per root
STATUS_MIX = ("in_progress", "in_review", "done", "blocked", "cancelled")
PATHS = {  # the transitions that take an open item to each status
    "in_progress": ("in_progress",),
    "in_review": ("in_progress", "in_review"),
    "done": ("in_progress", "in_review", "done"),
    "blocked": ("blocked",),
    "cancelled": ("cancelled",),
}


def server_seconds(response: httpx.Response | Reply) -> float | None:
    """The server's own time on the request, from `Server-Timing: app;dur=<ms>`."""
    match = _SERVER_TIMING.search(response.headers.get("server-timing", ""))
    return float(match.group(1)) / 1000 if match else None


class Timings:
    """Server-side and client-side durations per measured operation (thread-safe), and every
    response outside the expected statuses."""

    def __init__(self) -> None:
        self.server: dict[str, list[float]] = {}
        self.client: dict[str, list[float]] = {}
        self.unexpected: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str, response: httpx.Response, wall: float) -> None:
        server = server_seconds(response)
        with self._lock:
            self.client.setdefault(name, []).append(wall)
            if server is not None:
                self.server.setdefault(name, []).append(server)
            else:
                self.unexpected[f"{name}: no Server-Timing header"] += 1

    def odd(self, name: str, response: httpx.Response) -> None:
        with self._lock:
            self.unexpected[f"{name}: {response.status_code}"] += 1

    def report(self, *names: str) -> dict[str, Any]:
        server = summarise({n: self.server.get(n, []) for n in names})
        client = summarise({n: self.client.get(n, []) for n in names})
        return {n: {"server": server.get(n), "client": client.get(n)} for n in names if n in client}


class Api:
    """One bearer token's client; `call` times a request and checks its status."""

    def __init__(self, base: str, token: str, timings: Timings) -> None:
        self.client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        self.timings = timings

    def call(
        self, name: str, method: str, url: str, expect: tuple[int, ...] = (200, 201), **kw: Any
    ) -> httpx.Response:
        t0 = time.perf_counter()
        response = self.client.request(method, url, **kw)
        wall = time.perf_counter() - t0
        self.timings.add(name, response, wall)
        if response.status_code not in expect:
            self.timings.odd(name, response)
        return response

    def ok(self, name: str, method: str, url: str, **kw: Any) -> httpx.Response:
        response = self.call(name, method, url, **kw)
        assert response.status_code in (200, 201), f"{method} {url}: {response.text}"
        return response

    def caught_up(self, url: str, position: int, **kw: Any) -> httpx.Response:
        """An untimed read that waits for the read models to reach `position` (the server
        waits up to its consistency timeout, then answers 503: ask again)."""
        deadline = time.monotonic() + 120
        while True:
            response = self.client.get(url, headers={CONSISTENT_WITH: str(position)}, **kw)
            if response.status_code != 503 or time.monotonic() > deadline:
                assert response.status_code == 200, f"GET {url}: {response.text}"
                return response
            self.timings.unexpected["catch-up read: 503 (retried)"] += 1

    def close(self) -> None:
        self.client.close()


def position_of(response: httpx.Response) -> int:
    return int(response.headers[POSITION])


# --- 1. the plan ---------------------------------------------------------------------------


def build_plan(api: Api, project: str, roots: int, rng: random.Random) -> dict[str, Any]:
    """`roots` trees of 100 items, 5 levels deep, created level by level; dependencies on
    earlier items; ~40% of the items moved to another status."""
    api.ok("create_project", "POST", "/v1/projects", json={"name": project})
    by_level: list[list[tuple[str, int]]] = []  # per level: (item id, its root's index)
    order: list[str] = []
    last = 0
    started = time.perf_counter()
    for level, per_root in enumerate(LEVELS):
        current: list[tuple[str, int]] = []
        for root in range(roots):
            parents = [p for p, r in by_level[level - 1] if r == root] if level else [None]
            for n in range(per_root):
                body = {
                    "project": project,
                    "kind": "epic" if level == 0 else "task",
                    "title": f"L{level} r{root} #{n}",
                    "priority": rng.randint(-5, 5),
                    "parent_id": parents[n % len(parents)],
                }
                response = api.ok("create_item", "POST", "/v1/work-items", json=body)
                item_id = response.json()["id"]
                current.append((item_id, root))
                order.append(item_id)
                last = position_of(response)
        by_level.append(current)
    create_seconds = time.perf_counter() - started

    dependencies = refused = 0
    started = time.perf_counter()
    for index in range(10, len(order)):
        if rng.random() < 0.2:
            other = order[rng.randrange(index)]
            response = api.call(
                "add_dependency",
                "PUT",
                f"/v1/work-items/{order[index]}/dependencies/{other}",
                expect=(200, 201, 409),
            )
            if response.status_code == 409:
                refused += 1
                continue
            assert response.status_code in (200, 201), response.text
            dependencies += 1
            last = position_of(response)
    dependency_seconds = time.perf_counter() - started

    moved: Counter[str] = Counter()
    transitions = 0
    started = time.perf_counter()
    for item_id in rng.sample(order, round(0.4 * len(order))):
        target = rng.choice(STATUS_MIX)
        for step in PATHS[target]:
            body = {"to": step, "reason": "waits for a vendor" if step == "blocked" else None}
            response = api.ok(
                "transition", "POST", f"/v1/work-items/{item_id}/transition", json=body
            )
            last = position_of(response)
            transitions += 1
        moved[target] += 1
    transition_seconds = time.perf_counter() - started

    return {
        "roots": [i for i, _ in by_level[0]],
        "order": order,
        "deepest": [i for i, _ in by_level[-1]],
        "last_position": last,
        "summary": {
            "items": len(order),
            "levels_below_root": len(LEVELS) - 1,
            "dependencies": dependencies,
            "dependencies_refused_409": refused,
            "moved": dict(sorted(moved.items())),
            "items_per_second": round(len(order) / create_seconds, 1),
            "dependencies_per_second": round(dependencies / dependency_seconds, 1),
            "transitions_per_second": round(transitions / transition_seconds, 1),
            "build_seconds": round(create_seconds + dependency_seconds + transition_seconds, 1),
        },
    }


# --- 2-4. reads ----------------------------------------------------------------------------


def measure_reads(
    api: Api, project: str, plan: dict[str, Any], calls: int, status_calls: int, rng: random.Random
) -> dict[str, Any]:
    last = plan["last_position"]
    order, roots = plan["order"], plan["roots"]
    # Untimed: every endpoint once, after the read models have caught up with the last write.
    api.caught_up(f"/v1/work-items/{order[-1]}", last)
    listed = api.caught_up("/v1/work-items", last, params={"project": project, "limit": 500})
    api.caught_up(f"/v1/projects/{project}/status", last)
    api.caught_up(f"/v1/projects/{project}/status.md", last)
    checks: dict[str, Any] = {"first_list_page": len(listed.json()["items"])}

    for item_id in (rng.choice(order) for _ in range(calls)):
        api.ok("get_item", "GET", f"/v1/work-items/{item_id}")
    everything = "ancestors,children,descendants,dependencies,claim"
    for item_id in (rng.choice(order) for _ in range(calls)):
        api.ok("get_item_all_includes", "GET", f"/v1/work-items/{item_id}?include={everything}")
    for item_id in (rng.choice(plan["deepest"]) for _ in range(calls)):
        api.ok("get_leaf_with_ancestors", "GET", f"/v1/work-items/{item_id}?include=ancestors")

    sizes = set()
    for n in range(max(len(roots), calls // 5)):
        response = api.ok(
            "get_root_descendants",
            "GET",
            f"/v1/work-items/{roots[n % len(roots)]}",
            params={"include": "descendants"},
        )
        sizes.add(len(response.json()["descendants"]))
    checks["descendants_per_root"] = sorted(sizes)

    walks: dict[str, list[float]] = {"server": [], "client": []}
    seen = 0
    for _ in range(max(3, status_calls // 4)):
        cursor, server, wall, seen = None, 0.0, 0.0, 0
        while True:
            params: dict[str, Any] = {"project": project, "limit": 500}
            if cursor:
                params["cursor"] = cursor
            t0 = time.perf_counter()
            response = api.ok("list_page_500", "GET", "/v1/work-items", params=params)
            wall += time.perf_counter() - t0
            server += server_seconds(response) or 0.0
            page = response.json()
            seen += len(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        walks["server"].append(server)
        walks["client"].append(wall)
    checks["listed_items"] = seen

    for _ in range(status_calls):
        api.ok("status_json", "GET", f"/v1/projects/{project}/status")
    for _ in range(status_calls):
        response = api.ok("status_md", "GET", f"/v1/projects/{project}/status.md")
    checks["status_md_bytes"] = len(response.content)

    results = api.timings.report(
        "get_item",
        "get_item_all_includes",
        "get_leaf_with_ancestors",
        "get_root_descendants",
        "list_page_500",
        "status_json",
        "status_md",
    )
    whole = summarise(walks)
    results["list_whole_project"] = {"server": whole["server"], "client": whole["client"]}
    results["checks"] = checks
    return results


# --- 5. claim-next -------------------------------------------------------------------------


def measure_claims(
    env: dict[str, str],
    base: str,
    boss: Api,
    items: int,
    agents: int,
    rng: random.Random,
    project: str,
) -> dict[str, Any]:
    """A fresh project of `items` ready items; `agents` agents, each with its own token and
    session, loop claim-next until 204. Checks that every item was claimed exactly once."""
    boss.ok("create_project", "POST", "/v1/projects", json={"name": project})
    created: set[str] = set()
    last = 0
    for n in range(items):
        body = {
            "project": project,
            "kind": "task",
            "title": f"ready #{n}",
            "priority": rng.randint(-5, 5),
        }
        response = boss.ok("create_item", "POST", "/v1/work-items", json=body)
        created.add(response.json()["id"])
        last = position_of(response)
    ready = boss.caught_up("/v1/work-items/ready", last, params={"project": project, "limit": 500})
    ready_before = len(ready.json()["items"])

    timings = Timings()
    clients = []
    for i in range(agents):
        api = Api(base, issue_token(env, f"agent:{project}-{i}", "agent"), timings)
        session = api.ok("start_session", "POST", "/v1/sessions", json={"ttl_seconds": 3600})
        clients.append((api, session.json()["id"]))

    claimed: list[str] = []
    per_agent: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(agents + 1)

    def work(api: Api, session_id: str) -> None:
        mine: list[str] = []
        failures = 0
        barrier.wait()
        while failures < 20:
            t0 = time.perf_counter()
            response = api.client.post(
                "/v1/work-items/claim-next", json={"session_id": session_id, "project": project}
            )
            wall = time.perf_counter() - t0
            api.timings.add("claim_next", response, wall)
            if response.status_code == 201:
                api.timings.add("claim_next_201", response, wall)
                mine.append(response.json()["id"])
            elif response.status_code == 204:
                api.timings.add("claim_next_204", response, wall)
                break
            else:
                api.timings.odd("claim_next", response)
                failures += 1
        with lock:
            claimed.extend(mine)
            per_agent.append(len(mine))

    threads = [threading.Thread(target=work, args=c) for c in clients]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    for api, _ in clients:
        api.close()

    distinct = set(claimed)
    duplicates = len(claimed) - len(distinct)
    check = {
        "items": items,
        "ready_before": ready_before,
        "claims": len(claimed),
        "distinct_claimed": len(distinct),
        "duplicates": duplicates,
        "unclaimed": len(created - distinct),
        "foreign": len(distinct - created),
        "ok": duplicates == 0 and distinct == created,
    }
    results: dict[str, Any] = timings.report("claim_next", "claim_next_201", "claim_next_204")
    results["agents"] = agents
    results["claims_per_second"] = round(len(claimed) / elapsed, 1)
    results["seconds"] = round(elapsed, 2)
    results["claims_per_agent"] = sorted(per_agent)
    results["check"] = check
    if timings.unexpected:
        results["unexpected_responses"] = dict(timings.unexpected)
    return results


# --- driver --------------------------------------------------------------------------------


def measure(env: dict[str, str], args: argparse.Namespace, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    with served(env) as base:
        timings = Timings()
        boss = Api(base, issue_token(env, "user:bench-coordinator", "coordinator"), timings)
        try:
            plan = build_plan(boss, "bench-plan", args.roots, rng)
            results: dict[str, Any] = {"build": plan["summary"]}
            results["build"]["writes"] = timings.report(
                "create_item", "add_dependency", "transition"
            )
            results["reads"] = measure_reads(
                boss, "bench-plan", plan, args.calls, args.status_calls, rng
            )
            results["claim_next"] = measure_claims(
                env, base, boss, args.claim_items, args.agents, rng, "bench-claims"
            )
            # The same path without contention, to tell the call's own cost from the race's.
            results["claim_next_1_agent"] = measure_claims(
                env, base, boss, max(1, args.claim_items // 4), 1, rng, "bench-claims-solo"
            )
            if timings.unexpected:
                results["unexpected_responses"] = dict(timings.unexpected)
            return results
        finally:
            boss.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--calls", type=int, help="single-item reads (default 500, quick 100)")
    parser.add_argument("--status-calls", type=int, help="status reports (default 100, quick 20)")
    parser.add_argument("--claim-items", type=int, help="ready items (default 400, quick 100)")
    parser.add_argument("--roots", type=int, default=12, help="trees of 100 items each")
    parser.add_argument("--agents", type=int, default=16, help="concurrent claim-next clients")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--store", choices=("sqlite", "postgres"), help="only this store")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args()
    args.calls = args.calls or (100 if args.quick else 500)
    args.status_calls = args.status_calls or (20 if args.quick else 100)
    args.claim_items = args.claim_items or (100 if args.quick else 400)
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        store_environments(args.database_url, Path(tmp)) as envs,
    ):
        for store, env in envs.items():
            if args.store in (None, store):
                results[store] = measure(env, args, args.seed)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
