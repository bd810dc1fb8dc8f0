"""What messages cost, in process on each store: a send, an inbox page, how soon a waiting
inbox read wakes after a message is sent, and sixteen agents writing to one another at once.

Run: `python -m bench.messages [--store sqlite|postgres|both]` (real PostgreSQL: DATABASE_URL or
the local server). Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

from agentledger.application.context import RequestContext
from agentledger.application.messages import NewMessage
from agentledger.application.readmodels import MessageFilter
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from bench.harness import DEFAULT_DATABASE_URL, one_store, summarise
from tests.conftest import issue_token

SENDS = 300
WAKES = 30
AGENTS, EACH = 16, 50


def _agent(rt: Runtime, name: str) -> RequestContext:
    principal = rt.access.authenticate(issue_token(rt, f"agent:{name}", "agent"))
    context = RequestContext(principal, name)
    rt.sessions.start(context)
    return context


def measure(rt: Runtime) -> dict[str, object]:
    lead, rev = _agent(rt, "lead"), _agent(rt, "rev")
    rt.catch_up()
    timings: dict[str, list[float]] = {"send": [], "inbox_page_50": [], "wake_after_send": []}
    for n in range(SENDS):
        began = time.perf_counter()
        rt.messages.send(lead, NewMessage(to="rev", type="notification", body=f"note {n}"))
        timings["send"].append(time.perf_counter() - began)
    rt.catch_up()
    for _ in range(100):
        began = time.perf_counter()
        rt.messages.inbox(rev.principal, MessageFilter("rev", unread=True), limit=50)
        timings["inbox_page_50"].append(time.perf_counter() - began)
    for n in range(WAKES):
        last = rt.read_models["messages_v1"].position()
        sent_at: list[float] = []

        def later(n: int = n, sent_at: list[float] = sent_at) -> None:
            time.sleep(0.2)
            sent_at.append(time.perf_counter())
            rt.messages.send(lead, NewMessage(to="rev", type="request", body=f"wake {n}"))

        thread = threading.Thread(target=later)
        thread.start()
        woke = rt.messages.since(rev.principal, MessageFilter("rev"), last, wait=10)
        timings["wake_after_send"].append(time.perf_counter() - sent_at[0])
        thread.join()
        assert woke, "the waiting read found nothing"
    team = [_agent(rt, f"a{n}") for n in range(AGENTS)]
    rt.catch_up()

    def write(n: int) -> None:
        for k in range(EACH):
            to = f"a{(n + 1 + k % (AGENTS - 1)) % AGENTS}"
            rt.messages.send(team[n], NewMessage(to=to, type="notification", body=f"{n}:{k}"))

    began = time.perf_counter()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(AGENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return {
        **summarise(timings),
        "sixteen_agents_800_messages": {
            "seconds": round(elapsed, 2),
            "messages_per_second": round(AGENTS * EACH / elapsed),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results = {}
    for store in stores:
        with one_store(store, url) as (settings, _env):
            rt = build_runtime(settings)
            rt.start_runners()
            try:
                results[store] = measure(rt)
            finally:
                rt.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
