"""Start-up on a store that cannot serve: one line saying what is wrong and what to do, exit
code 1, no traceback (unless `--debug`). Each case is made for real: an immutable SQLite file
or directory (`chattr +i`, which binds root too), a full filesystem (a small loop-mounted
one), and on PostgreSQL a closed port, a missing database, an unknown role, a read-only
database and tables that are not AgentLedger's (in databases this test creates)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.cli.shell import free_port
from tests.support.processes import CLI

SERVE_SECONDS = 20  # it fails at once; a server that starts instead is killed


def serve(env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *options, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=SERVE_SECONDS,
    )


def sqlite_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env["AGENTLEDGER_DATA_DIR"] = str(data_dir)
    return env


def postgres_env(url: str, schema: str = "public") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AGENTLEDGER_DATA_DIR"}
    env.update(DATABASE_URL=url, AGENTLEDGER_POSTGRES_SCHEMA=schema)
    return env


def assert_one_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    made = subprocess.run(
        [CLI, "projects", "list"], env=sqlite_env(data), capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    return data


def test_a_read_only_sqlite_store_is_one_line(sqlite_store: Path) -> None:
    env = sqlite_env(sqlite_store)
    with immutable(sqlite_store / "events.sqlite"):
        line = assert_one_line(serve(env), "read-only", "events.sqlite", "writable")
        debugged = serve(env, "--debug")
    assert "Traceback" in debugged.stderr  # asked for
    assert line.startswith("Error: the store in")
    with immutable(sqlite_store):  # the directory itself: nothing can be created in it
        assert_one_line(serve(env), "read-only")


def test_a_full_disk_is_one_line(tmp_path: Path) -> None:
    image, mount = tmp_path / "fs.img", tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["truncate", "-s", "8M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        data = mount / "data"
        assert subprocess.run([CLI, "projects", "list"], env=sqlite_env(data)).returncode == 0
        filler = mount / "filler"
        # 1 KiB at a time until the filesystem refuses (root's reserved blocks included).
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1k"], capture_output=True)
        assert_one_line(serve(sqlite_env(data)), "full", "free some space")
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_postgres_problems_are_one_line_each(postgres_url: str) -> None:
    params = psycopg.conninfo.conninfo_to_dict(postgres_url)
    host, port = params.get("host", "127.0.0.1"), params.get("port", 5432)
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    assert_one_line(serve(postgres_env(closed)), "unreachable", "DATABASE_URL")
    missing = f"postgresql://{params.get('user', 'postgres')}@{host}:{port}/no_such_db_here"
    assert_one_line(serve(postgres_env(missing)), "no such database")
    stranger = f"postgresql://no_such_role_here@{host}:{port}/postgres"
    assert_one_line(serve(postgres_env(stranger)), "refused the credentials")


@pytest.fixture
def own_database(postgres_url: str) -> Iterator[str]:
    name = f"agentledger_startup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = psycopg.conninfo.conninfo_to_dict(postgres_url)
    user, host, port = params.get("user", "postgres"), params.get("host"), params.get("port")
    yield f"postgresql://{user}@{host}:{port}/{name}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_read_only_postgres_is_one_line(own_database: str) -> None:
    name = own_database.rsplit("/", 1)[1]
    with psycopg.connect(own_database, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    assert_one_line(serve(postgres_env(own_database)), "read-only", "primary")


def test_tables_that_are_not_agentledgers_are_one_line(own_database: str) -> None:
    with psycopg.connect(own_database, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA other")
        conn.execute("CREATE TABLE other.agentledger_events (id int, something text)")
    assert_one_line(serve(postgres_env(own_database, "other")), "not this version", "schema")
