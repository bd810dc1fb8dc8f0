"""docs/mcp.md as a reader uses it: one example call for every tool, each valid for the tool's
schema, and the agent's loop run as written against a server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx
import pytest

from agentledger.infrastructure.bootstrap import Runtime
from agentledger.interfaces.mcp.tools import TOOLS
from tests.conftest import issue_token
from tests.mcp.support import http_client, serving_here, structured

DOC = Path(__file__).resolve().parents[2] / "docs" / "mcp.md"
EXAMPLE = re.compile(r"^#### `(\w+)`\n```json\n(.*?)\n```", re.M | re.S)
LOOP = re.compile(r"<!-- mcp-loop:.*?-->\s*```json\n(.*?)```", re.S)


def test_every_tool_has_one_example_its_schema_accepts() -> None:
    examples = EXAMPLE.findall(DOC.read_text())
    assert sorted(name for name, _ in examples) == sorted(TOOLS)  # each once, no other
    for name, arguments in examples:
        TOOLS[name].args.model_validate_json(arguments)  # raises if the example is wrong


@pytest.fixture
def base(runtime: Runtime) -> Iterator[str]:
    with serving_here(runtime) as url:
        yield url


def test_the_agent_loop_runs_as_written(runtime: Runtime, base: str) -> None:
    admin = {"Authorization": f"Bearer {issue_token(runtime, 'user:admin', 'admin')}"}
    assert httpx.post(f"{base}/v1/projects", json={"name": "apollo"}, headers=admin).is_success
    task = {"project": "apollo", "kind": "task", "title": "Write the parser"}
    assert httpx.post(f"{base}/v1/work-items", json=task, headers=admin).is_success
    token = issue_token(runtime, "agent:alice", "agent")
    match = LOOP.search(DOC.read_text())
    assert match, "docs/mcp.md lost its agent loop"
    steps: list[dict[str, Any]] = json.loads(match.group(1))
    answers: dict[str, Any] = {}

    async def loop() -> None:
        async with http_client(base, token) as client:
            for step in steps:
                result = await client.call_tool(step["tool"], _resolved(step["arguments"], answers))
                body = structured(result)
                assert step.get("may_fail") or not result.is_error, (step, body)
                answers[step["tool"]] = body

    anyio.run(loop)
    assert answers["claim_next"]["claimed"]
    assert answers["transition"]["status"] == "done"
    assert answers["write_handover"]["passed"] is True
    assert answers["end_session"]["status"] == "completed"


def _resolved(value: Any, answers: dict[str, Any]) -> Any:
    """`$tool.path.to.field`: that field of the tool's latest answer."""
    if isinstance(value, str) and value.startswith("$"):
        tool, *path = value[1:].split(".")
        found = answers[tool]
        for key in path:
            found = found[key]
        return found
    if isinstance(value, dict):
        return {k: _resolved(v, answers) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v, answers) for v in value]
    return value
