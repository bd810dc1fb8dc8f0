"""Wake projection runners the moment any process commits events (PostgreSQL LISTEN).

The event store's recorder sends NOTIFY on its channel inside every insert transaction; this
listener turns those into nudges, so runners need not wait for their next poll when another
process (a second `serve`, the CLI) wrote. Polling remains the fallback if the connection drops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

import psycopg
from psycopg import sql

log = logging.getLogger("agentledger.wakeups")

# PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more; past this the topics are left
# out, which wakes every runner.
TOPICS_IN_PAYLOAD = 7000

# Told of a commit: where (None: not known) and the topics of what it wrote (None: not known).
Wake = Callable[[int | None, frozenset[str] | None], None]


def commit_payload(origin: str, topics: Iterable[str]) -> str:
    """A commit's NOTIFY payload: the committing process, then the stored topics of its events,
    so a listener wakes only the runners that follow one of them."""
    listed = ",".join(sorted(set(topics)))
    return origin if len(listed) > TOPICS_IN_PAYLOAD else f"{origin}\n{listed}"


def read_payload(payload: str) -> tuple[str, frozenset[str] | None]:
    """The origin and topics in a payload `commit_payload` wrote (no topics, from anything
    else: the library's own NOTIFY has an empty payload)."""
    origin, separated, listed = payload.partition("\n")
    return origin, frozenset(listed.split(",")) if separated else None


class NotifyListener:
    """LISTENs on the event store's channel on a connection of its own, and calls `on_commit`
    with the topics of each notification (reconnecting after a failure), but those from `own`:
    this process's own commits, whose runners were woken by the commit itself. Woken twice,
    fourteen runners met the second time with a read of their own that found nothing."""

    def __init__(
        self,
        conninfo: str,
        channel: str,
        on_commit: Wake,
        connect_timeout: int,
        own: str | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._on_commit = on_commit
        self._own = own
        self._connect_timeout = connect_timeout
        self._stop = threading.Event()
        self.listening = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._listen_forever, name="listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _listen_forever(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
                ) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    # Commits made before LISTEN took effect are found by the reads this
                    # wakes; `listening` then means nothing before it is left unseen.
                    self._on_commit(None, None)
                    self.listening.set()
                    while not self._stop.is_set():
                        # A short timeout keeps the stop flag checked; one nudge per wake-up
                        # is enough, runners read everything new in batches.
                        for notify in conn.notifies(timeout=0.1, stop_after=1):
                            origin, topics = read_payload(notify.payload)
                            if self._own is None or origin != self._own:
                                self._on_commit(None, topics)
            except Exception:  # keep listening whatever happened; polling covers the gap
                self.listening.clear()
                log.warning("commit listener failed; reconnecting", exc_info=True)
                self._stop.wait(1.0)
