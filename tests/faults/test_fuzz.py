"""The API fuzzed from its own OpenAPI document: schemathesis, a property-based fuzzer, against
a live `serve` with an admin's and an agent's token, a bounded number of examples per route.
Every route is exercised; not one answer may be a 5xx, or a status, content type, header or
body the document does not allow."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings
from tests.conftest import issue_token
from tests.support.figures import report
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


def fuzz(
    base: str, token: str, workdir: Path, seed: int, only: set[str] | None = None
) -> tuple[dict[str, str], int]:
    """One schemathesis run; its JUnit report read back as {operation: outcome}, where an outcome
    is "passed", "skipped: <why>", or the failure text, and how many cases it generated. `only`
    narrows the run to those operations."""
    report = workdir / f"fuzz-{seed}.xml"
    command = [
        *(FUZZER, "run", f"{base}/openapi.json", "-H", f"Authorization: Bearer {token}"),
        *("-n", str(EXAMPLES), "--phases", "examples,fuzzing", "--checks", CHECKS),
        *("--seed", str(seed), "--workers", "2", "--no-color"),
        *("--report", "junit", "--report-junit-path", str(report)),
    ]
    for name in sorted(only or ()):
        command += ["--include-name", name]
    # Run in a scratch directory: schemathesis keeps a crash cache in its working directory.
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=workdir)
    assert report.exists(), done.stdout[-4000:] + done.stderr[-2000:]
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).iter("testcase"):
        problems = [*case.iter("failure"), *case.iter("error")]
        skipped = next(case.iter("skipped"), None)
        if problems:
            outcomes[case.get("name", "")] = "\n".join(
                p.get("message") or p.text or "" for p in problems
            )
        elif skipped is not None:
            outcomes[case.get("name", "")] = f"skipped: {skipped.get('message') or skipped.text}"
        else:
            outcomes[case.get("name", "")] = "passed"
    generated = re.search(r"(\d+) generated", done.stdout)
    return outcomes, int(generated.group(1)) if generated else 0


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
            outcomes, cases = fuzz(base, token, tmp_path, seed=1)
            assert len(outcomes) == OPERATIONS, (who, sorted(outcomes))
            # On a loaded machine schemathesis may skip an operation it ran out of time for; such
            # an operation is fuzzed again on its own, so every route is still exercised.
            untested = {name for name, outcome in outcomes.items() if outcome.startswith("skipped")}
            if untested:
                again, more = fuzz(base, token, tmp_path, seed=2, only=untested)
                outcomes |= again
                cases += more
            failed = {name: outcome for name, outcome in outcomes.items() if outcome != "passed"}
            assert failed == {}, (who, failed)
            assert cases >= OPERATIONS, (who, cases)
            report(
                f"OpenAPI fuzzing with the {who}'s token",
                operations=len(outcomes),
                fuzzed_again_alone=len(untested),
                cases=cases,
                failed=0,
            )
