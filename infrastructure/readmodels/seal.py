"""The seal's tables: a link per sealed event, and a checkpoint every so many events.

Unlike a read model, the seal is never rebuilt from the log: recomputing it would seal
whatever the log holds now, tampered or not. `audit verify` recomputes the chain on the side
and compares it with these rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from agentledger.application.seal import Checkpoint, SealedLink
from agentledger.infrastructure.readmodels.base import ReadModel, Table

LINKS = Table.of("links", SealedLink, key=("position",), not_null=("digest", "link"))
CHECKPOINTS = Table.of("checkpoints", Checkpoint, key=("position",), not_null=("link",))


class SealTables(ReadModel):
    name = "seal_v1"
    tables = (LINKS, CHECKPOINTS)

    def append(
        self, links: Sequence[SealedLink], checkpoints: Sequence[Checkpoint], position: int
    ) -> None:
        """Links and checkpoints with the position sealed, in one transaction."""
        with self._store.transaction(commit=True) as cursor:
            for table, rows in ((LINKS, links), (CHECKPOINTS, checkpoints)):
                if rows:
                    encoded = [table.encode_row(asdict(row)) for row in rows]
                    self._store.insert_rows(cursor, table.name, list(table.columns), encoded)
            self._store.record_position(cursor, position)

    def head(self) -> SealedLink | None:
        row = self.select_one("links", "SELECT * FROM {links} ORDER BY position DESC LIMIT 1", {})
        return None if row is None else SealedLink(**row)

    def count(self) -> int:
        with self.reading() as cursor:
            cursor.execute(self.sql("SELECT count(*) AS n FROM {links}"))
            row = cursor.fetchone()
        return int(row["n"])

    def links(self, after: int, limit: int) -> list[SealedLink]:
        statement = (
            "SELECT * FROM {links} WHERE position > %(after)s ORDER BY position LIMIT %(limit)s"
        )
        rows = self.select("links", statement, {"after": after, "limit": limit})
        return [SealedLink(**r) for r in rows]

    def checkpoints(self) -> list[Checkpoint]:
        rows = self.select("checkpoints", "SELECT * FROM {checkpoints} ORDER BY position", {})
        return [Checkpoint(**r) for r in rows]

    def positions_of(self, digest: str) -> list[int]:
        statement = "SELECT * FROM {links} WHERE digest = %(digest)s ORDER BY position"
        return [r["position"] for r in self.select("links", statement, {"digest": digest})]
