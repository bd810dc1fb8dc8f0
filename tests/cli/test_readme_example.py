"""The README promises: `make run` serves, says how to get a first token, its example works."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.cli.shell import ROOT, free_port, marked_blocks, run_script, sqlite_env


def readme_example(port: int) -> str:
    blocks = marked_blocks((ROOT / "README.md").read_text(), "readme-example")
    assert len(blocks) == 1, "README lost its example block"
    return blocks[0].replace("127.0.0.1:8080", f"127.0.0.1:{port}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str], dict[str, str]]]:
    port = free_port()
    env = sqlite_env(tmp_path / "data")
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not answer /healthz in 60 s"
            time.sleep(0.2)
        yield port, process, env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


def test_make_run_serves_and_the_readme_example_works(
    served: tuple[int, subprocess.Popen[str], dict[str, str]], tmp_path: Path
) -> None:
    port, process, env = served
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
    result = run_script(readme_example(port), env, tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert '"status":"active"' in result.stdout
    assert '"renewed":false' in result.stdout
    assert '"status":"completed"' in result.stdout
    os.killpg(process.pid, signal.SIGTERM)
    output, _ = process.communicate(timeout=10)
    assert "agentledger tokens issue --principal user:admin --role admin" in output
