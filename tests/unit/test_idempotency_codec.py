"""The stored outcome of an idempotency key: JSON by field name that reads back equal, for
every outcome type a command returns, and that builds nothing but plain values and the
application's own dataclasses."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pickle
import pkgutil
import sys
import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

import agentledger.application
from agentledger.application.commands import Outcome
from agentledger.application.idempotency_codec import (
    UnencodableOutcome,
    UnreadableOutcome,
    decode_outcome,
    encode_outcome,
)
from agentledger.application.sessions import Heartbeat, SessionView
from agentledger.domain.readiness import Readiness


def _application_modules() -> list[types.ModuleType]:
    package = agentledger.application
    names = pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    return [importlib.import_module(info.name) for info in names]


def outcome_types() -> set[Any]:
    """What every command of the application returns: `T` of each `Outcome[T]` a function or
    method of an application module is annotated to return (so a new command is found)."""
    found: set[Any] = set()
    for module in _application_modules():
        for _, member in inspect.getmembers(module):
            if getattr(member, "__module__", None) != module.__name__:
                continue
            functions = [member] if inspect.isfunction(member) else []
            if inspect.isclass(member):
                functions = [
                    f
                    for _, f in inspect.getmembers(member, inspect.isfunction)
                    if f.__module__ == module.__name__
                ]
            for function in functions:
                # Only the application's own functions, and only where an Outcome is named.
                if "Outcome" in str(function.__annotations__.get("return", "")):
                    returned = typing.get_type_hints(function)["return"]
                    found |= set(_outcomes_in(returned))
    return found


def _outcomes_in(hint: Any) -> list[Any]:
    if typing.get_origin(hint) is Outcome:
        (value,) = typing.get_args(hint)
        return [] if isinstance(value, typing.TypeVar) else [value]
    return [o for arg in typing.get_args(hint) for o in _outcomes_in(arg)]


def sample(hint: Any) -> Any:
    """A value of the type `hint`, every field filled (optional ones too)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return {"text": "x", "n": 3, "share": 0.25, "yes": False, "none": None, "list": [1, "a"]}
    if origin in (types.UnionType, typing.Union):
        return sample(next(a for a in args if a is not type(None)))
    if origin is list:
        return [sample(args[0]), sample(args[0])]
    if origin is tuple:
        return tuple(sample(a) for a in args if a is not Ellipsis)
    if origin is dict:
        return {"first": sample(args[1]), "second": sample(args[1])}
    scalars = {str: "text", int: 7, float: 1.5, bool: True, type(None): None}
    if hint in scalars:
        return scalars[hint]
    if hint is UUID:
        return uuid4()
    if hint is datetime:  # not UTC, with microseconds: both must come back
        return datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return hint(**{f.name: sample(hints[f.name]) for f in dataclasses.fields(hint)})
    raise AssertionError(f"no sample for {hint!r}: teach this test (and the codec) the type")


def test_the_enumeration_finds_the_write_views() -> None:
    names = {getattr(t, "__name__", str(t)) for t in outcome_types()}
    known = {"SessionView", "Heartbeat", "ProjectView", "SelectionView", "EntryView"}
    assert known | {"WorkItemView", "Dependencies", "IssuedToken", "UUID"} <= names


@pytest.mark.parametrize(
    "kind", sorted(outcome_types(), key=str), ids=lambda kind: getattr(kind, "__name__", str(kind))
)
def test_every_outcome_type_reads_back_equal(kind: Any) -> None:
    value = sample(kind)
    decoded, written = decode_outcome(encode_outcome(value, 3))
    assert (decoded, written) == (value, 3)
    assert type(decoded) is type(value)


def test_plain_values_and_times_read_back_exactly() -> None:
    moment = datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    value = [None, 0, -1, 2**70, 0.1, "", "é\x00", True, (1, "a"), {"$": "dict"}, moment]
    decoded, _ = decode_outcome(encode_outcome(value, 0))
    assert decoded == value
    assert [type(v) for v in decoded] == [type(v) for v in value]
    assert decoded[-1].utcoffset() == timedelta(0) and decoded[-1].isoformat() == moment.isoformat()


def _tampered(type_name: str, fields: dict[str, Any] | None = None) -> bytes:
    stored = json.loads(encode_outcome(sample(Heartbeat), 1))
    stored["value"]["type"] = type_name
    if fields is not None:
        stored["value"]["fields"] = fields
    return json.dumps(stored).encode()


@pytest.mark.parametrize(
    "type_name",
    [
        "this:Zen",  # outside the application (and importing it would print)
        "agentledger.application.not_a_module:View",  # not loaded: never imported
        "agentledger.application.idempotency:_Current",  # private
        "agentledger.application.work_items.shapes:Readiness",  # imported there, not its own
        "agentledger.application.commands:CommandRunner",  # not a dataclass
        "agentledger.application.sessions:SessionView.__class__",
        "agentledger.application.sessions",
    ],
)
def test_a_tampered_type_name_is_refused_and_nothing_imported(
    type_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = set(sys.modules)
    with pytest.raises(UnreadableOutcome):
        decode_outcome(_tampered(type_name))
    assert set(sys.modules) == loaded
    assert capsys.readouterr().out == ""


def test_a_dataclass_is_built_only_from_exactly_its_fields() -> None:
    name = "agentledger.application.sessions:Heartbeat"
    with pytest.raises(UnreadableOutcome):
        decode_outcome(_tampered(name, {"renewed": True}))
    with pytest.raises(UnreadableOutcome):
        decode_outcome(_tampered(name, {"renewed": True, "session": None, "extra": 1}))


@pytest.mark.parametrize(
    "stored",
    [
        pickle.dumps((sample(SessionView), 1)),  # this table's unreleased first format
        b"not json",
        b'{"value": 1}',
        b'{"value": 1, "events_written": "1"}',
        b'{"value": {"$": "set", "items": []}, "events_written": 1}',
        b'{"value": {"$": "uuid", "value": 5}, "events_written": 1}',
        b'{"value": {"no": "tag"}, "events_written": 1}',
    ],
)
def test_anything_the_codec_did_not_write_is_unreadable(stored: bytes) -> None:
    with pytest.raises(UnreadableOutcome):
        decode_outcome(stored)


@pytest.mark.parametrize(
    "value",
    [
        Decimal("1.5"),
        {1: "int key"},
        {"a", "b"},
        float("nan"),
        Readiness(True, ()),  # a domain dataclass: not an outcome the application returns
    ],
    ids=["decimal", "int-keys", "set", "nan", "dataclass"],  # a set's str() varies by process
)
def test_a_value_the_codec_does_not_know_is_refused_when_stored(value: Any) -> None:
    with pytest.raises((UnencodableOutcome, ValueError)):
        encode_outcome(value, 1)
