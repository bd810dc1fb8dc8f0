"""Outputs are built from rows and aggregates by field name: a field added to both sides is
copied with no constructor to edit, and one the source lacks is an error, not a silent gap."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from agentledger.application.shapes import by_name, values_by_name


@dataclass(frozen=True)
class Row:
    id: int
    title: str
    holder: str | None
    estimate: int  # the field "added" to the row and the view alike


@dataclass(frozen=True)
class View:
    id: int
    title: str
    assignee: str | None
    estimate: int
    depth: int | None = None  # only some sources know it


def test_fields_of_the_same_name_are_copied_and_the_rest_given() -> None:
    view = by_name(View, Row(1, "Lexer", "alice", 5), assignee="alice")
    assert view == View(id=1, title="Lexer", assignee="alice", estimate=5, depth=None)


def test_a_field_with_a_default_is_read_when_the_source_has_it() -> None:
    @dataclass
    class Deep:
        id: int = 2
        title: str = "Parser"
        estimate: int = 3
        depth: int = 4

    assert by_name(View, Deep(), assignee=None).depth == 4


def test_a_field_the_source_lacks_and_nobody_gives_is_an_error() -> None:
    with pytest.raises(AttributeError, match="assignee"):
        by_name(View, Row(1, "Lexer", None, 5))


def test_a_given_value_wins_over_the_source() -> None:
    assert by_name(View, Row(1, "Lexer", None, 5), assignee=None, title="Other").title == "Other"


def test_a_given_name_that_is_no_field_is_refused() -> None:
    with pytest.raises(TypeError, match="assigne"):
        by_name(View, Row(1, "Lexer", None, 5), assignee=None, assigne="typo")


def test_values_by_name_fill_defaults_the_source_lacks() -> None:
    values = values_by_name(View, Row(1, "Lexer", None, 5), assignee=None)
    assert values == {"id": 1, "title": "Lexer", "assignee": None, "estimate": 5, "depth": None}
