"""The docs' walk-throughs run as written: every bash block, in order, as one script, against the
server the doc itself starts (`serve &`, tokens issued at once) on a fresh SQLite store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.shell import ROOT, bash_blocks, free_port, marked_blocks, run_script, sqlite_env

MARKER = "walkthrough"


@dataclass(frozen=True)
class Walkthrough:
    doc: str
    port: int  # as the doc writes it; the test serves on a free one
    data_dir: str  # as the doc writes it; the test uses its own temporary directory
    shows: tuple[str, ...]  # lines of output the doc's story depends on


WALKTHROUGHS = [
    Walkthrough(
        "handoffs.md",
        8223,
        "/tmp/agentledger-handoffs",
        shows=(
            '{"agent_id":"rev","status":"active","kind":"reviewer"}',
            "Review the token refresh claimed by rev fence 1",
            "the reply is in the request's thread\n"
            '{"sender":"agent:lead","type":"request","answered_by":"rev"}',
            '{"status":"completed"}\n{"status":409,"title":"Claim parked"}',
            "resumed with fence 2 parked_on None",
            '"passed":false,"failures":[{"rule":"no-placeholders"',
            '{"offered_to":"lead","assignee":"rev"}\n'
            '{"status":409,"title":"Offered to another agent"}',
            "lead holds it with fence 3\n",
            '{"status":"done"}',
            '{"event":"WorkItem.HandoffOffered","actor":"agent:rev"}',
            '{"items_completed":1,"messages_answered":0}',
        ),
    ),
    Walkthrough(
        "audit.md",
        8215,
        "/tmp/agentledger-audit",
        shows=(
            "403\n200\n",
            "6 agent:alice archive_project 403 forbidden\n",
            "4 agent:alice ProjectCreated\n5 agent:alice ProjectCreated\n"
            "6 agent:alice CommandRefused\n7 user:carol ProjectArchived\n",
            "ok: 7 events verified; sealed head 7",
            "FAILED at position 5: altered — the stored bytes differ from the bytes sealed\n"
            "exit code 2\n",
        ),
    ),
    Walkthrough(
        "work-items.md",
        8198,
        "/tmp/agentledger-work",
        shows=(
            '{"title":"Write the lexer","kind":"task","priority":10,"to_role":"parser-dev"}',
            '"status":428',
            '"holder":{"agent_id":"alice"',
            '"status":"in_review"',
            '"renewed":false',
            '{"status":"done","assignee":null,"claim":null,"version":6,',
            '"detail":"fence 1 does not hold the claim: the item has no live claim"',
            '{"title":"Benchmark the parser","status":"in_progress"',
            "\n204\n",
            '{"status":"open","assignee":null,"claim":null}',
            "  - [done] Write the lexer (task, ",
        ),
    ),
    Walkthrough(
        "coordinating-agents.md",
        8179,
        "/tmp/agentledger-demo",
        shows=(
            '"project":"docs"',
            '"status":428',
            '{"status":412,"detail":"expected no existing resource (If-None-Match: *); current ',
            '"detail":"expected version 1; current version is 2"',
            '{"position":20,"project":"docs","agent_id":"alice","status":"info"',
            "      1 200\n      7 412\n",
            '"archived":true,"version":2',
            '"version":5,"session_id":null,',
            '"cleared_reason":"project_archived"',
            " system:policy policy.policy_archived_project_clears_selections ",
            '"detail":"cursor was issued for different filters"',
            '"detail":"cursor is not one this server issued"',
            "agent_id=alice: 40 24 20\n",
            "meta.chapter=config&agent_id=bob: 39 18\n",
            "q=100%: 17\nq=1%0: \n",
            "bob              success Fixed the broken links",
        ),
    ),
    Walkthrough(
        "approvals.md",
        8211,
        "/tmp/agentledger-approvals",
        shows=(
            "fence 1\n",
            '{"status":"pending","approver_role":"security","requested_by":"agent:alice",'
            '"work_item_version":4}',
            '{"status":"in_review","version":5}\n{"status":409,"title":"Approval required",'
            '"approvals":[{"id":',
            '"approver_role":"security","status":"pending"}]}',
            "pending agent:alice New keys go live for every client\n",
            '{"status":403,"detail":"agent:alice needs the role approver:security to decide',
            '{"status":"rejected","decided_by":"user:sam","notes":"Keep the old keys valid',
            '{"status":409,"decision":"rejected","decided_by":"user:sam"}',
            "in_review held by alice\n  approval: rejected security by user:sam - Keep the old",
            "  entry: alice New keys generated; old ones valid for 24 h\n",
            'approved by user:sam\n{"status":"done","assignee":null}',
            '{"status":403,"title":"The requester cannot decide its own approval"}',
        ),
    ),
    Walkthrough(
        "retry-safety.md",
        8207,
        "/tmp/agentledger-retry",
        shows=(
            # a create sent twice with one key: one item, the first answer replayed
            'idempotent-replayed: true\n{"id":',
            "the same body\n1 item\n",
            '"type":"https://agentledger.dev/problems/idempotency-key-reused","detail":"this Idem',
            '{"status":428,"type":"https://agentledger.dev/problems/precondition-required"',
            '/version-mismatch","detail":"expected version 1; current version is 2",'
            '"current_version":2}',
            # re-read, then the old key with the new If-Match is refused and a new key is written
            '{"priority":10,"description":null,"version":2}\n'
            '{"status":422,"type":"https://agentledger.dev/problems/idempotency-key-reused"}\n'
            '{"priority":10,"description":"Tokens for the v2 format","version":3}\n',
            # the refused claim replayed as it was, after the item was released
            'HTTP/1.1 409 Conflict\nidempotent-replayed: true\n{"type":"https://agentledger.dev/'
            'problems/already-claimed"',
            'the same body\n{"assignee":"bob"',
            'idempotent-replayed: true\n{"status":"in_review","version":10,',
            '/invalid-transition","current_status":"in_review"}',
            '{"status":"done","version":12}\n{"status":"done","version":12}\n'
            '{"status":409,"type":"https://agentledger.dev/problems/claim-lost"}\nnot sent again\n',
        ),
    ),
]


def script_of(walk: Walkthrough, port: int, data_dir: Path) -> str:
    text = (ROOT / "docs" / walk.doc).read_text()
    blocks = marked_blocks(text, MARKER)
    assert blocks, f"{walk.doc} lost its walk-through"
    assert len(blocks) == bash_blocks(text), f"{walk.doc} has a bash block that is not run"
    script = "\n".join(blocks)
    assert f"--port {walk.port}" in script and walk.data_dir in script
    return (
        script.replace(f"--port {walk.port}", f"--port {port}")
        .replace(f"127.0.0.1:{walk.port}", f"127.0.0.1:{port}")
        .replace(walk.data_dir, str(data_dir))
    )


@pytest.mark.parametrize("walk", WALKTHROUGHS, ids=lambda w: w.doc)
def test_walkthrough_runs_as_written(walk: Walkthrough, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    script = script_of(walk, free_port(), data_dir)
    result = run_script(script, sqlite_env(), tmp_path)
    log = Path(f"{data_dir}.log")
    served = log.read_text() if log.exists() else "(no server log)"
    assert result.returncode == 0, f"{result.stderr}\n--- server log:\n{served}"
    for expected in walk.shows:
        assert expected in result.stdout, f"{expected!r} not in:\n{result.stdout}"
    assert not data_dir.exists()  # the doc cleans up after itself
