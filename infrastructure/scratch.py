"""Scratch read models: the same tables and queries as the live ones, in an in-memory SQLite
database of their own, for projecting the past (`application/past_status.py`) and thrown
away after."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from eventsourcing.sqlite import SQLiteFactory, SQLiteTrackingRecorder
from eventsourcing.utils import Environment

from agentledger.application.projections import (
    Projection,
    ProjectsProjection,
    SelectionsProjection,
    SessionsProjection,
    WorkItemsProjection,
)
from agentledger.infrastructure.readmodels.base import ReadModel
from agentledger.infrastructure.readmodels.projects import ProjectsReadModel
from agentledger.infrastructure.readmodels.selections import SelectionsReadModel
from agentledger.infrastructure.readmodels.sessions import SessionsReadModel
from agentledger.infrastructure.readmodels.stores import SQLiteReadModelStore
from agentledger.infrastructure.readmodels.work_items import WorkItemsTable

M = TypeVar("M", bound=ReadModel)


class ScratchReadModels:
    def __init__(self) -> None:
        self._datastores: list[Any] = []
        self.items = self._open(WorkItemsTable)
        self.projects = self._open(ProjectsReadModel)
        self.sessions = self._open(SessionsReadModel)
        self.selections = self._open(SelectionsReadModel)
        self._by_projection: dict[type, ReadModel] = {
            WorkItemsProjection: self.items,
            ProjectsProjection: self.projects,
            SessionsProjection: self.sessions,
            SelectionsProjection: self.selections,
        }

    def apply(self, projection: Projection, batch: list[tuple[Any, int]], position: int) -> None:
        self._by_projection[type(projection)].process(batch, position, projection)

    def close(self) -> None:
        for datastore in self._datastores:
            datastore.close()

    def _open(self, read_model: type[M]) -> M:
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": f"file:scratch-{uuid.uuid4().hex}?mode=memory&cache=shared",
            "CREATE_TABLE": "y",
        }
        datastore = SQLiteFactory(Environment(read_model.name, env)).datastore
        self._datastores.append(datastore)
        store = SQLiteReadModelStore(
            SQLiteTrackingRecorder(datastore), read_model.name, read_model.tables
        )
        store.create_tables()
        return read_model(store)
