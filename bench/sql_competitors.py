"""The two reference competitors, as raw psycopg on the same PostgreSQL:

- `floor`: every command is one INSERT of an event-shaped row (~300 bytes) plus COMMIT: the
  physical limit one durable command per transaction can approach;
- `crud`: the commands as the systems AgentLedger replaces do them: plain tables updated in
  place with a version check (`UPDATE ... WHERE version = %s`), no event log.

Each lives in a throwaway schema, dropped on close; each client has its own connection.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from typing import Any

import psycopg

from bench.core import Operation, Stop

# An event row's state as the event store would hold it: ~300 bytes of JSON.
EVENT_STATE = (
    b'{"timestamp":"2026-11-22T02:25:00.000000+00:00","actor":"agent:bench-7",'
    b'"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","causation":"entries.append",'
    b'"command_id":"8f14e45fceea167a5a36dedd4bea2543","project":"bench-a",'
    b'"agent_id":"bench-7","message":"step 1234","status":"info","metadata":{"i":1234}}'
)
_ids = itertools.count(1)


def free_connections(url: str, margin: int = 6) -> int:
    """Connections the server can still accept, keeping a margin for everyone else. A server
    that is full for a moment (the previous cell's pools still shrinking) is asked again."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return _free_connections(url, margin)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _free_connections(url: str, margin: int) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - (SELECT count(*) FROM pg_stat_activity)"
        ).fetchone()
    return int(row[0]) - margin if row else 0


def shared(conns: list[psycopg.Connection[Any]], clients: int) -> list[Any]:
    """`clients` handles over `conns`: a client takes its connection's lock per command."""
    locks = [threading.Lock() for _ in conns]
    return [(conns[i % len(conns)], locks[i % len(conns)]) for i in range(clients)]


def throwaway_schema(prefix: str) -> str:
    return f"bench_{prefix}_{random.getrandbits(32):08x}"


class _SchemaCompetitor:
    name = "?"
    ddl: tuple[str, ...] = ()

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.schema = throwaway_schema(self.name)
        self._connections: list[psycopg.Connection[Any]] = []

    def open(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
            for statement in self.ddl:
                conn.execute(statement.format(s=f'"{self.schema}"'))

    def _connect(self, clients: int) -> list[psycopg.Connection[Any]]:
        """A connection per client, as many as the server has room for (the AgentLedger
        competitors' pools share its max_connections): beyond that, clients share them."""
        wanted = min(clients, max(1, free_connections(self.url)))
        while len(self._connections) < wanted:
            try:
                self._connections.append(psycopg.connect(self.url))
            except psycopg.OperationalError:
                # Another competitor's pool grew meanwhile: share what we have, or wait.
                if self._connections:
                    break
                free_connections(self.url)
        return self._connections[:wanted]

    def cell_extra(self, scenario: str, ops: int) -> dict[str, Any]:
        # Hand the connections back between cells: the AgentLedger competitors' pools share
        # the server's max_connections.
        used = len(self._connections)
        while self._connections:
            self._connections.pop().close()
        # One row written per command, by construction (claim-next: one row updated).
        return {"writes": ops, "connections": f"{used}"}

    def close(self) -> None:
        for conn in self._connections:
            conn.close()
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


class Floor(_SchemaCompetitor):
    name = "floor"
    ddl = (
        """CREATE TABLE {s}.bench_floor_events (
            id bigserial UNIQUE, stream uuid NOT NULL, version int NOT NULL,
            topic text NOT NULL, state bytea NOT NULL, PRIMARY KEY (stream, version))""",
    )

    def prepare(self, scenario: str, clients: int, claimable: int) -> list[Operation]:
        return [self._client(*handle) for handle in shared(self._connect(clients), clients)]

    def _client(self, conn: psycopg.Connection[Any], lock: threading.Lock) -> Operation:
        stream = uuid.UUID(int=random.getrandbits(128))
        versions = itertools.count(1)
        statement = (
            f'INSERT INTO "{self.schema}".bench_floor_events (stream, version, topic, state)'
            " VALUES (%s, %s, %s, %s)"
        )

        def op(command: str) -> None:
            with lock:
                conn.execute(
                    statement, (stream, next(versions), command, EVENT_STATE), prepare=True
                )
                conn.commit()

        return op


class Crud(_SchemaCompetitor):
    name = "crud"
    ddl = (
        """CREATE TABLE {s}.sessions (
            id uuid PRIMARY KEY, agent_id text NOT NULL, ttl_seconds int NOT NULL,
            status text NOT NULL, lease_expires_at timestamptz NOT NULL, metadata jsonb,
            version int NOT NULL, created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL)""",
        """CREATE TABLE {s}.selections (
            agent_id text PRIMARY KEY, project text, session_id uuid, version int NOT NULL,
            updated_at timestamptz NOT NULL)""",
        """CREATE TABLE {s}.entries (
            id bigserial PRIMARY KEY, project text NOT NULL, agent_id text NOT NULL,
            session_id uuid NOT NULL, message text NOT NULL, status text NOT NULL,
            metadata jsonb, created_at timestamptz NOT NULL)""",
        "CREATE INDEX ON {s}.entries (project, id DESC)",
        """CREATE TABLE {s}.work_items (
            id uuid PRIMARY KEY, project text NOT NULL, parent_id uuid, kind text NOT NULL,
            title text NOT NULL, status text NOT NULL, priority int NOT NULL,
            holder text, holder_session uuid, version int NOT NULL,
            created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)""",
        "CREATE INDEX ON {s}.work_items (project, priority DESC, created_at)"
        " WHERE status = 'open' AND holder IS NULL",
        "CREATE INDEX ON {s}.work_items (parent_id)",
    )

    def __init__(self, database_url: str) -> None:
        super().__init__(database_url)
        self._agents: list[dict[str, Any]] = []
        self._cells = itertools.count()

    def prepare(self, scenario: str, clients: int, claimable: int) -> list[Operation]:
        conns = self._connect(clients)
        s = f'"{self.schema}"'
        with conns[0].transaction():
            while len(self._agents) < clients:
                agent = f"crud-{len(self._agents)}"
                session = uuid.UUID(int=random.getrandbits(128))
                conns[0].execute(
                    f"INSERT INTO {s}.sessions VALUES (%s, %s, 600, 'active',"
                    " now() + interval '600 seconds', '{}', 1, now(), now())",
                    (session, agent),
                )
                conns[0].execute(
                    f"INSERT INTO {s}.selections VALUES (%s, 'bench-a', %s, 1, now())",
                    (agent, session),
                )
                self._agents.append({"agent": agent, "session": session, "version": 1})
            project = f"claims-{next(self._cells)}"
            if scenario in ("claim_next", "mixed"):
                with conns[0].cursor() as cur:
                    cur.executemany(
                        f"INSERT INTO {s}.work_items VALUES (%s, %s, NULL, 'task', %s, 'open',"
                        " %s, NULL, NULL, 1, now(), now())",
                        [
                            (
                                uuid.UUID(int=random.getrandbits(128)),
                                project,
                                f"ready #{n}",
                                random.randint(-5, 5),
                            )
                            for n in range(claimable)
                        ],
                    )
        conns[0].commit()
        return [
            self._client(conn, lock, self._agents[i], project)
            for i, (conn, lock) in enumerate(shared(conns, clients))
        ]

    def _client(
        self,
        conn: psycopg.Connection[Any],
        lock: threading.Lock,
        agent: dict[str, Any],
        project: str,
    ) -> Operation:
        s = f'"{self.schema}"'
        me, session = agent["agent"], agent["session"]
        flip = itertools.cycle(["bench-b", "bench-a"])
        with lock:
            session_version = [self._session_version(conn, session)]

        def session_start() -> None:
            conn.execute(
                f"INSERT INTO {s}.sessions VALUES (%s, %s, 600, 'active',"
                " now() + interval '600 seconds', '{}', 1, now(), now())",
                (uuid.UUID(int=random.getrandbits(128)), me),
                prepare=True,
            )

        def heartbeat() -> None:
            while True:
                row = conn.execute(
                    f"UPDATE {s}.sessions SET lease_expires_at = now() + ttl_seconds"
                    " * interval '1 second', version = version + 1, updated_at = now()"
                    " WHERE id = %s AND version = %s RETURNING version",
                    (session, session_version[0]),
                    prepare=True,
                ).fetchone()
                if row:
                    session_version[0] = row[0]
                    return
                session_version[0] = self._session_version(conn, session)

        def switch() -> None:
            while True:
                row = conn.execute(
                    f"UPDATE {s}.selections SET project = %s, session_id = %s,"
                    " version = version + 1, updated_at = now()"
                    " WHERE agent_id = %s AND version = %s RETURNING version",
                    (next(flip), session, me, agent["version"]),
                    prepare=True,
                ).fetchone()
                if row:
                    agent["version"] = row[0]
                    return
                agent["version"] = conn.execute(
                    f"SELECT version FROM {s}.selections WHERE agent_id = %s", (me,)
                ).fetchone()[0]  # type: ignore[index]

        def append() -> None:
            conn.execute(
                f"INSERT INTO {s}.entries (project, agent_id, session_id, message, status,"
                " metadata, created_at) VALUES ('bench-a', %s, %s, %s, 'info', %s, now())",
                (me, session, f"step {next(_ids)}", '{"i": 1}'),
                prepare=True,
            )

        def claim_next() -> None:
            while True:
                candidates = conn.execute(
                    f"SELECT id, version FROM {s}.work_items WHERE project = %s"
                    " AND status = 'open' AND holder IS NULL"
                    " ORDER BY priority DESC, created_at LIMIT 5",
                    (project,),
                    prepare=True,
                ).fetchall()
                if not candidates:
                    conn.rollback()
                    raise Stop
                for item_id, version in candidates:
                    won = conn.execute(
                        f"UPDATE {s}.work_items SET holder = %s, holder_session = %s,"
                        " version = version + 1, updated_at = now()"
                        " WHERE id = %s AND version = %s AND holder IS NULL",
                        (me, session, item_id, version),
                        prepare=True,
                    ).rowcount
                    if won:
                        return

        actions = {
            "session_start": session_start,
            "heartbeat": heartbeat,
            "switch": switch,
            "append": append,
            "claim_next": claim_next,
        }

        def op(command: str) -> None:
            with lock:
                try:
                    actions[command]()
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()

        return op

    def _session_version(self, conn: psycopg.Connection[Any], session: uuid.UUID) -> int:
        row = conn.execute(
            f'SELECT version FROM "{self.schema}".sessions WHERE id = %s', (session,)
        ).fetchone()
        conn.commit()
        assert row is not None
        return int(row[0])
