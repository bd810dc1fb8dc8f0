"""Handover documents: what an agent leaves its successor, one per session, revised in place.

A document is stored with the result of checking it, passed or not, the way an orchestrator's
handover agent checks its documents: the mandatory sections are there, nothing is left as a
placeholder, and the work items it points at exist. A failing document is kept (its author
sees what to fix, a reviewer sees what was left); only a passing one goes with a handoff.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from agentledger.domain.errors import InvalidValue
from agentledger.domain.events import EventContext, LedgerAggregate
from agentledger.domain.text import clean_text

MAX_SUMMARY = 4000
MAX_NOTES = 16_000
MAX_ITEM_TEXT = 1000  # one next step, file or open question
MAX_LIST = 50  # next steps, files to read, open questions
MAX_WORK_ITEMS = 100
# What an unfinished template leaves behind: `{{name}}`, `TODO:`, a `TBD`.
PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\bTODO:|\bTBD\b", re.DOTALL)
RULES = ("summary-present", "next-steps-present", "no-placeholders", "work-items-exist")
TEXT_SECTIONS = ("summary", "notes")
LIST_SECTIONS = ("next_steps", "files_to_read", "open_questions")


def handover_id(session_id: UUID) -> UUID:
    """A session's one handover document (revised in place)."""
    return uuid5(NAMESPACE_URL, f"agentledger:handover:{session_id}")


@dataclass(frozen=True)
class Document:
    summary: str
    next_steps: tuple[str, ...]
    files_to_read: tuple[str, ...]
    open_questions: tuple[str, ...]
    notes: str
    work_item_ids: tuple[UUID, ...]

    @classmethod
    def of(
        cls,
        *,
        summary: str,
        next_steps: Sequence[str],
        files_to_read: Sequence[str],
        open_questions: Sequence[str],
        notes: str,
        work_item_ids: Sequence[UUID],
    ) -> Document:
        """The document, bounded and cleaned (an empty section is allowed here: checking it
        is `check`'s business, which reports it rather than refusing it)."""
        return cls(
            summary=clean_text(summary.strip(), "summary", MAX_SUMMARY) if summary else "",
            next_steps=_entries(next_steps, "next_steps"),
            files_to_read=_entries(files_to_read, "files_to_read"),
            open_questions=_entries(open_questions, "open_questions"),
            notes=clean_text(notes, "notes", MAX_NOTES) if notes else "",
            work_item_ids=_ids(work_item_ids),
        )

    def fields(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "next_steps": list(self.next_steps),
            "files_to_read": list(self.files_to_read),
            "open_questions": list(self.open_questions),
            "notes": self.notes,
            "work_item_ids": list(self.work_item_ids),
        }


def check(document: Document, missing_items: Collection[UUID]) -> list[dict[str, str]]:
    """Each rule the document fails, as {rule, detail} (none: it passed). `missing_items`:
    those of its work items that do not exist."""
    failures: list[dict[str, str]] = []
    if not document.summary:
        failures.append({"rule": "summary-present", "detail": "the summary is empty"})
    if not document.next_steps:
        failures.append({"rule": "next-steps-present", "detail": "no next steps are listed"})
    for where, text in _texts(document):
        found = PLACEHOLDER.search(text)
        if found:
            failures.append(
                {"rule": "no-placeholders", "detail": f"{where} holds '{found.group(0)[:60]}'"}
            )
    if missing_items:
        named = ", ".join(sorted(map(str, missing_items)))
        failures.append({"rule": "work-items-exist", "detail": f"no such work item: {named}"})
    return failures


class Handover(LedgerAggregate):
    if TYPE_CHECKING:  # set by events' apply(); not constructor arguments
        session_id: UUID
        agent_id: str
        project: str | None
        summary: str
        next_steps: list[str]
        files_to_read: list[str]
        open_questions: list[str]
        notes: str
        work_item_ids: list[UUID]
        failures: list[dict[str, str]]

    class HandoverWritten(LedgerAggregate.Created):
        session_id: UUID
        agent_id: str
        project: str | None
        summary: str
        next_steps: list[str]
        files_to_read: list[str]
        open_questions: list[str]
        notes: str
        work_item_ids: list[UUID]
        failures: list[dict[str, str]]

        def apply(self, aggregate: Any) -> None:
            aggregate.session_id = self.session_id
            aggregate.agent_id = self.agent_id
            _take(aggregate, self)

    class HandoverRevised(LedgerAggregate.Event):
        project: str | None
        summary: str
        next_steps: list[str]
        files_to_read: list[str]
        open_questions: list[str]
        notes: str
        work_item_ids: list[UUID]
        failures: list[dict[str, str]]

        def apply(self, aggregate: Any) -> None:
            _take(aggregate, self)

    @classmethod
    def write(
        cls,
        ctx: EventContext,
        *,
        session_id: UUID,
        agent_id: str,
        project: str | None,
        document: Document,
        failures: list[dict[str, str]],
    ) -> Handover:
        return cls._begin(
            cls.HandoverWritten,
            ctx,
            handover_id(session_id),
            session_id=session_id,
            agent_id=agent_id,
            project=project,
            failures=failures,
            **document.fields(),
        )

    def revise(
        self,
        ctx: EventContext,
        *,
        project: str | None,
        document: Document,
        failures: list[dict[str, str]],
    ) -> bool:
        """A new version, unless nothing changed (then nothing is written)."""
        new = {"project": project, "failures": failures, **document.fields()}
        if all(getattr(self, name) == value for name, value in new.items()):
            return False
        self._record(self.HandoverRevised, ctx, **new)
        return True

    @property
    def passed(self) -> bool:
        return not self.failures

    def failed_rules(self) -> list[str]:
        return sorted({f["rule"] for f in self.failures})


def _take(aggregate: Any, event: Any) -> None:
    for name in ("project", "summary", "notes", "failures"):
        setattr(aggregate, name, getattr(event, name))
    for name in (*LIST_SECTIONS, "work_item_ids"):
        setattr(aggregate, name, list(getattr(event, name)))
    aggregate.failures = [dict(f) for f in event.failures]


def _entries(values: Sequence[str], field: str) -> tuple[str, ...]:
    if len(values) > MAX_LIST:
        raise InvalidValue(f"{field} has {len(values)} entries; at most {MAX_LIST}", field)
    cleaned = (clean_text(v.strip(), field, MAX_ITEM_TEXT) for v in values)
    return tuple(v for v in cleaned if v)


def _ids(values: Sequence[UUID]) -> tuple[UUID, ...]:
    if len(values) > MAX_WORK_ITEMS:
        raise InvalidValue(
            f"work_item_ids has {len(values)} entries; at most {MAX_WORK_ITEMS}", "work_item_ids"
        )
    return tuple(dict.fromkeys(values))  # each once, in the order given


def _texts(document: Document) -> list[tuple[str, str]]:
    found = [(name, getattr(document, name)) for name in TEXT_SECTIONS]
    for name in LIST_SECTIONS:
        found += [(f"{name}[{n}]", text) for n, text in enumerate(getattr(document, name))]
    return found
