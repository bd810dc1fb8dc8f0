"""Queries on a 1,200-item plan (one root, five levels below it): one work item, the root's
whole hierarchy, the project's full status report, a page of the progress log. Measured over
HTTP (client wall time, and the server's own `Server-Timing`) and through the application
layer in process (the same schema's read models), interleaved, at 1 and 16 clients."""

from __future__ import annotations

import random
from typing import Any

from agentledger.application.readmodels import EntryFilter
from agentledger.application.work_items import NewWorkItem
from bench.core import Operation, run_cell, summarise_cells

# Items per level below... the root is level 0; 1 + 4 + 16 + 64 + 256 + 859 = 1,200.
LEVELS = (1, 4, 16, 64, 256, 859)
PLAN = "bench-plan"
QUERIES = ("single_item", "hierarchy_1200", "status_report", "entries_page")


def build_plan(http: Any, log: Any = print) -> dict[str, Any]:
    """The plan, written through the setup runtime on the server's schema; waits until the
    server's read models show it. Also 100 progress-log entries for the entries page."""
    setup, rt = http.setup, http.rt
    last = rt.projects.create(setup.boss, PLAN).position
    rng = random.Random(7)
    parents: list[Any] = [None]
    ids: list[Any] = []
    for level, count in enumerate(LEVELS):
        current = []
        for n in range(count):
            new = NewWorkItem(
                project=PLAN,
                kind="epic" if level == 0 else "task",
                title=f"L{level} #{n}",
                priority=rng.randint(-5, 5),
                parent_id=parents[n % len(parents)],
            )
            outcome = rt.work_items.create(setup.boss, new)
            current.append(outcome.value.id)
            last = outcome.position
        ids += current
        parents = current
    if not http.agents:  # queries run alone (`--only queries`): no scenario made an agent yet
        http.agents.append(http._agent(0))
    agent = http.agents[0]
    client = agent["client"]
    for i in range(100):
        response = client.post(
            f"/v1/projects/{PLAN}/entries",
            json={"message": f"note {i}", "session_id": agent["session"]},
        )
        assert response.status_code == 201, response.text
    last = max(last, int(response.headers["AgentLedger-Position"]))
    http._caught_up(client, PLAN, last)
    log(f"  plan: {len(ids)} items, {len(LEVELS) - 1} levels below the root")
    return {"root": ids[0], "ids": ids}


def _http_ops(http: Any, query: str, plan: dict[str, Any], clients: int) -> list[Operation]:
    from bench.http_work_items import server_seconds

    def client_op(client: Any, seed: int) -> Operation:
        rng = random.Random(seed)

        def op(_: str) -> float | None:
            if query == "single_item":
                response = client.get(f"/v1/work-items/{rng.choice(plan['ids'])}")
            elif query == "hierarchy_1200":
                response = client.get(
                    f"/v1/work-items/{plan['root']}", params={"include": "descendants"}
                )
            elif query == "status_report":
                response = client.get(f"/v1/projects/{PLAN}/status")
            else:
                response = client.get(f"/v1/projects/{PLAN}/entries", params={"limit": 50})
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code} {response.text[:200]}")
            return server_seconds(response)

        return op

    return [client_op(a["client"], i) for i, a in enumerate(http.agents[:clients])]


def _inproc_ops(http: Any, query: str, plan: dict[str, Any], clients: int) -> list[Operation]:
    rt = http.rt

    def client_op(seed: int) -> Operation:
        rng = random.Random(seed)

        def op(_: str) -> None:
            if query == "single_item":
                rt.work_items.get(rng.choice(plan["ids"]))
            elif query == "hierarchy_1200":
                detail = rt.work_items.get(plan["root"], frozenset({"descendants"})).value
                assert len(detail.descendants) == len(plan["ids"]) - 1
            elif query == "status_report":
                rt.status.report(PLAN)
            else:
                rt.entries.list(EntryFilter(project=PLAN), limit=50)

        return op

    return [client_op(i) for i in range(clients)]


def measure(http: Any, concurrencies: list[int], rounds: int, duration: float) -> dict[str, Any]:
    plan = build_plan(http)
    competitors = {"agentledger-http": _http_ops, "agentledger-inproc": _inproc_ops}
    rows = []
    for query in QUERIES:
        for clients in concurrencies:
            cells: dict[str, list[Any]] = {name: [] for name in competitors}
            for r in range(rounds):
                names = list(competitors)
                order = names[r % 2 :] + names[: r % 2]
                for name in order:
                    ops = competitors[name](http, query, plan, clients)
                    cells[name].append(run_cell(ops, query, duration))
            for name in competitors:
                summary = summarise_cells(cells[name])
                rows.append({"query": query, "clients": clients, "competitor": name} | summary)
                print(
                    f"  {query:<15} {clients:>3} clients  {name:<18}"
                    f" p50 {summary['p50_ms']:.2f} ms  p99 {summary['p99_ms']:.2f} ms",
                    flush=True,
                )
    return {
        "queries": rows,
        "queries_note": (
            f"A plan of {len(plan['ids'])} work items under one root, five levels deep "
            f"({' + '.join(map(str, LEVELS))}), about 100 progress-log entries; the HTTP rows "
            "give the client's wall time and the server's own time (`Server-Timing`); the "
            "in-process rows call the application layer's query on the same read models. "
            "`hierarchy_1200` is `GET /v1/work-items/{root}?include=descendants` (1,199 "
            "descendants); `status_report` is `GET /v1/projects/{name}/status`; "
            "`entries_page` is 50 entries, newest first."
        ),
    }
