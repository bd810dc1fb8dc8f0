"""Running the shell examples of the README and the docs as a reader would: marked bash blocks,
one script, `bash -euo pipefail`, from the repository root, on a store of their own."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def marked_blocks(text: str, marker: str) -> list[str]:
    """The ```bash blocks that follow an `<!-- <marker>: … -->` comment, in order."""
    return re.findall(rf"<!-- {re.escape(marker)}:.*?-->\s*```bash\n(.*?)```", text, re.S)


def bash_blocks(text: str) -> int:
    return len(re.findall(r"^```bash$", text, re.M))


def sqlite_env(data_dir: Path | None = None) -> dict[str, str]:
    """This process's environment on the embedded SQLite default: no PostgreSQL setting."""
    env = {**os.environ}
    for name in ("DATABASE_URL", "AGENTLEDGER_DATABASE_URL", "AGENTLEDGER_DATA_DIR"):
        env.pop(name, None)
    if data_dir is not None:
        env["AGENTLEDGER_DATA_DIR"] = str(data_dir)
    return env


def run_script(
    body: str, env: dict[str, str], workdir: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `body` as a bash script from the repository root. It runs in a process group of its
    own, ended afterwards: a server the script started in the background stops with it, even
    when the script failed before stopping it."""
    script = workdir / "example.sh"
    script.write_text(f"cd {ROOT}\n{body}")
    process = subprocess.Popen(
        ["bash", "-euo", "pipefail", str(script)],
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
