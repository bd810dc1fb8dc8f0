"""The CLI tests' fixture: the `agentledger` command pointed at the test's store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from agentledger.infrastructure.settings import Settings
from agentledger.interfaces.cli.main import cli


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Invoke the CLI with the environment pointing at this test's store."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("AGENTLEDGER_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
        monkeypatch.setenv("AGENTLEDGER_POSTGRES_SCHEMA", settings.postgres_schema)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    yield invoke
