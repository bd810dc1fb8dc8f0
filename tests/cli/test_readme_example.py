"""The README promises: `make run` serves, says how to get a first token, its example works."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def readme_example(port: int) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- readme-example.*?-->\s*```bash\n(.*?)```", text, re.S)
    assert match, "README lost its example block"
    return match.group(1).replace("127.0.0.1:8080", f"127.0.0.1:{port}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str], dict[str, str]]]:
    port = free_port()
    env = {**os.environ, "AGENTLEDGER_DATA_DIR": str(tmp_path / "data")}
    env.pop("DATABASE_URL", None)
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
    script = tmp_path / "example.sh"
    script.write_text("set -euo pipefail\ncd " + str(ROOT) + "\n" + readme_example(port))
    result = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert '"status":"active"' in result.stdout
    assert '"renewed":false' in result.stdout
    assert '"status":"completed"' in result.stdout
    os.killpg(process.pid, signal.SIGTERM)
    output, _ = process.communicate(timeout=10)
    assert "agentledger tokens issue --principal user:admin --role admin" in output
