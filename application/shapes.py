"""One shape built from another by field name: a query's output from a read-model row or an
aggregate, a row from the event that creates it. A field added to both sides flows through
with no constructor to edit; only what is computed or named otherwise is spelled out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, Field, fields
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

S = TypeVar("S", bound="DataclassInstance")
_ABSENT = object()


def by_name(shape: type[S], source: object, **given: Any) -> S:
    """A `shape` (a dataclass) whose fields are `given`, or else read from `source` by name.
    A field with a default that `source` does not have keeps its default; one without a
    default that `source` does not have is an error (AttributeError), not a silent None."""
    return shape(**values_by_name(shape, source, **given))


def values_by_name(shape: type[DataclassInstance], source: object, **given: Any) -> dict[str, Any]:
    """The values of every field of `shape`, as `by_name` finds them, without building it:
    what a projection inserts as a row."""
    plan = _plan(shape, frozenset(given))
    values = dict(zip(plan.required, plan.read(source), strict=True))
    for f in plan.optional:
        value = getattr(source, f.name, _ABSENT)
        values[f.name] = _default(f) if value is _ABSENT else value
    values.update(given)
    return values


class _Plan:
    """How to read one shape's fields from a source when `given` names the others: the
    required ones in one C-level getter (outputs are built a row at a time, 1,200 of them for
    a whole hierarchy), the ones with defaults one by one."""

    def __init__(self, shape: type[DataclassInstance], given: frozenset[str]) -> None:
        declared = fields(shape)
        unknown = given - {f.name for f in declared}
        if unknown:
            raise TypeError(f"{shape.__name__} has no field {', '.join(sorted(unknown))}")
        read = [f for f in declared if f.name not in given]
        self.required = tuple(f.name for f in read if _required(f))
        self.optional = tuple(f for f in read if not _required(f))
        self.read = _getter(self.required)


_PLANS: dict[tuple[type, frozenset[str]], _Plan] = {}


def _plan(shape: type[DataclassInstance], given: frozenset[str]) -> _Plan:
    plan = _PLANS.get((shape, given))
    if plan is None:
        plan = _PLANS[shape, given] = _Plan(shape, given)
    return plan


def _default(f: Field[Any]) -> Any:
    return f.default if f.default_factory is MISSING else f.default_factory()


def _required(f: Field[Any]) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _getter(names: tuple[str, ...]) -> Callable[[object], tuple[Any, ...]]:
    if len(names) > 1:
        return attrgetter(*names)
    return lambda source: tuple(getattr(source, name) for name in names)
