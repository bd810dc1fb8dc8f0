"""The API fuzzed from its own OpenAPI document: schemathesis, a property-based fuzzer, against
a live `serve` with an admin's and an agent's token, a bounded number of examples per route.
Every route is exercised; not one answer may be a 5xx, or a status, content type, header or
body the document does not allow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings
from tests.conftest import issue_token
from tests.support.processes import serving

FUZZER = str(Path(sys.executable).with_name("schemathesis"))
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)
EXAMPLES = 3  # per route and phase: enough to find a class of mistake, cheap enough for CI
OPERATIONS = 71


def test_no_5xx_and_nothing_the_document_does_not_allow(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=None)
    rt = build_runtime(settings)
    try:
        tokens = {
            "admin": issue_token(rt, "user:admin", "admin"),
            "agent": issue_token(rt, "agent:fuzz", "agent", "worker:reviewer"),
        }
    finally:
        rt.close()
    with serving(settings) as base:
        for who, token in tokens.items():
            command = [
                *(FUZZER, "run", f"{base}/openapi.json", "-H", f"Authorization: Bearer {token}"),
                *("-n", str(EXAMPLES), "--phases", "examples,fuzzing", "--checks", CHECKS),
                *("--seed", "1", "--workers", "2", "--no-color"),
            ]
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=600,
            )
            report = done.stdout[-4000:]
            assert done.returncode == 0, (who, report)
            tested = re.search(r"Tested: (\d+)", done.stdout)
            counts = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
            assert tested and int(tested.group(1)) == OPERATIONS, (who, report)
            assert counts and counts.group(1) == counts.group(2), (who, report)
            assert int(counts.group(1)) >= 2 * OPERATIONS, (who, report)  # examples ran
