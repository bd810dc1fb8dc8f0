"""The embedded store's disk misbehaving under a running `serve`: its files made read-only
(`chattr +i`, which binds root too) and then writable again, and its filesystem (a small
loop-mounted one of this test's own) filled and then freed. While it lasts, writes answer 503
`store-unavailable` with `Retry-After` and reads answer from the read models; afterwards every
write succeeds again, without a restart, and `/readyz` is green."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings
from tests.conftest import bearer, issue_token
from tests.support.figures import report
from tests.support.processes import serving

WRITES = 30
RECOVERY = 10.0


@pytest.fixture
def loop_disk(tmp_path: Path) -> Iterator[Path]:
    image, mount = tmp_path / "fs.img", tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["truncate", "-s", "24M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


class Writer:
    def __init__(self, base: str, settings: Settings) -> None:
        rt = build_runtime(settings)
        try:
            admin, agent = (
                issue_token(rt, "user:admin", "admin"),
                issue_token(rt, "agent:w", "agent"),
            )
        finally:
            rt.close()
        self.http = httpx.Client(base_url=base, timeout=30, headers=bearer(agent))
        made = self.http.post("/v1/projects", json={"name": "apollo"}, headers=bearer(admin))
        assert made.status_code == 201, made.text
        started = self.http.post("/v1/sessions", json={"ttl_seconds": 3600})
        self.session = started.json()["id"]
        self.furthest = 0  # the log position of the latest acknowledged write
        self.acknowledged: list[str] = []  # entry ids
        self.longest = 0.0

    def burst(self, count: int = WRITES) -> Counter[int]:
        statuses: Counter[int] = Counter()
        for n in range(count):
            began = time.monotonic()
            answer = self.http.post(
                "/v1/projects/apollo/entries",
                json={"message": f"entry {n}", "session_id": self.session},
            )
            self.longest = max(self.longest, time.monotonic() - began)
            statuses[answer.status_code] += 1
            if answer.status_code == 503:
                assert answer.headers.get("Retry-After"), answer.headers
            else:
                assert answer.status_code == 201, answer.text
                self.furthest = max(self.furthest, answer.json()["position"])
                self.acknowledged.append(answer.json()["id"])
        return statuses

    def read_reflects_every_acknowledged_write(self) -> None:
        """Reads still answer from the read models, saying which log position they reflect."""
        headers = {"AgentLedger-Consistent-With": str(self.furthest)}
        answer = self.http.get("/v1/projects/apollo/entries", params={"limit": 1}, headers=headers)
        assert answer.status_code == 200, answer.text
        assert int(answer.headers["AgentLedger-Position"]) >= self.furthest

    def check_and_report(self, fault: str, refused: int, recovered: float, ready: float) -> None:
        """Every acknowledged write is there, once; the figures printed."""
        found: list[str] = []
        cursor: str | None = None
        while True:
            params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
            headers = {"AgentLedger-Consistent-With": str(self.furthest)}
            page = self.http.get("/v1/projects/apollo/entries", params=params, headers=headers)
            assert page.status_code == 200, page.text
            found += [item["id"] for item in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        lost = set(self.acknowledged) - set(found)
        duplicated = len(found) - len(set(found))
        assert (lost, duplicated) == (set(), 0)
        report(
            fault,
            acknowledged=len(self.acknowledged),
            found=len(found),
            lost=len(lost),
            duplicated=duplicated,
            refused_503=refused,
            longest_request=self.longest,
            writes_back_after=recovered,
            ready_after=ready,
        )

    def until_all_succeed(self) -> float:
        """Seconds until a whole burst of writes succeeds again."""
        began = time.monotonic()
        while self.burst(5) != Counter({201: 5}):
            assert time.monotonic() - began < RECOVERY, "writes did not recover"
            time.sleep(0.2)
        return time.monotonic() - began


def test_read_only_files_then_writable_again(loop_disk: Path) -> None:
    settings = Settings(data_dir=loop_disk / "data", database_url=None)
    with serving(settings) as base:
        writer = Writer(base, settings)
        assert writer.burst() == Counter({201: WRITES})
        files = sorted(str(p) for p in settings.data_dir.glob("events.sqlite*"))
        subprocess.run(["chattr", "+i", *files], check=True)
        try:
            refused = writer.burst()[503]
            assert refused >= 1  # refused while read-only, as 503s
            writer.read_reflects_every_acknowledged_write()
        finally:
            subprocess.run(["chattr", "-i", *files], check=True)
            freed = time.monotonic()
        recovered = writer.until_all_succeed()
        assert writer.burst() == Counter({201: WRITES})  # every write, not most of them
        ready = _ready_within(base, RECOVERY, since=freed)
        writer.check_and_report("SQLite files read-only, then writable", refused, recovered, ready)


def test_a_full_disk_then_freed(loop_disk: Path) -> None:
    settings = Settings(data_dir=loop_disk / "data", database_url=None)
    with serving(settings) as base:
        writer = Writer(base, settings)
        assert writer.burst() == Counter({201: WRITES})
        filler = loop_disk / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1k"], capture_output=True)
        try:
            refused = writer.burst(200)[503]
            assert refused >= 1  # the WAL soon needs a block it cannot get
            writer.read_reflects_every_acknowledged_write()
        finally:
            filler.unlink()
            freed = time.monotonic()
        recovered = writer.until_all_succeed()
        assert writer.burst() == Counter({201: WRITES})
        ready = _ready_within(base, RECOVERY, since=freed)
        writer.check_and_report("SQLite disk full, then freed", refused, recovered, ready)


def _ready_within(base: str, seconds: float, since: float) -> float:
    """Seconds from `since` until `/readyz` is green again (the runners try again every second
    while the store is out)."""
    while httpx.get(f"{base}/readyz", timeout=10).status_code != 200:
        assert time.monotonic() - since < seconds, httpx.get(f"{base}/readyz", timeout=10).text
        time.sleep(0.2)
    return time.monotonic() - since
