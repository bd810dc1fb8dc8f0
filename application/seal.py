"""The seal: a hash chain over the log, in position order, that makes changing the past evident.

Each stored event gets a digest of its bytes as stored (topic, aggregate id, version, state)
and a link: the hash of the previous link and that digest. Changing, removing, inserting or
reordering a sealed event changes every link from there on, so recomputing the chain from the
stored events and comparing it with the sealed links finds the first place it breaks.

Gaps in the positions are not events: a transaction that failed can leave a position unused,
and the seal never saw anything there. Only positions the seal holds (and positions up to
its head that it does not hold) are compared.

Someone able to rewrite the events *and* the seal's tables can recompute the whole chain. A
checkpoint (position and link) published outside the store — printed in a report, exported,
sent elsewhere — closes that: `verify` checks the recomputed chain against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from eventsourcing.persistence import Notification

GENESIS = "0" * 64  # the link before the first event
DEFAULT_CHECKPOINT_EVERY = 1000
T = TypeVar("T")


@dataclass(frozen=True)
class SealedLink:
    position: int
    digest: str  # of the event's stored bytes
    link: str  # of the previous link and this digest


@dataclass(frozen=True)
class Checkpoint:
    position: int
    link: str
    events: int  # events sealed up to here
    sealed_at: datetime

    def published(self) -> str:
        """How a checkpoint is written down to be checked later: `POSITION:LINK`."""
        return f"{self.position}:{self.link}"


@dataclass(frozen=True)
class Breach:
    """The first place the recomputed chain and the seal disagree."""

    position: int
    # "altered", "removed", "inserted", "reordered", "chain-rewritten" (the seal itself was
    # changed) or "not-sealed-yet" (a published checkpoint beyond the seal's head)
    kind: str
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    sealed_head: SealedLink | None  # the last event the seal holds
    checked: int  # sealed events recomputed and found as sealed
    unsealed: int  # events after the sealed head, not sealed yet
    checkpoints: int  # checkpoints compared
    breach: Breach | None
    published: str | None = None  # the published checkpoint compared, if one was given


class SealLinks(Protocol):
    """The seal's own storage, as `verify` reads it."""

    def links(self, after: int, limit: int) -> list[SealedLink]: ...

    def checkpoints(self) -> list[Checkpoint]: ...

    def positions_of(self, digest: str) -> list[int]: ...


def digest_of(stored: Notification) -> str:
    """The hash of the event as stored. Each part is length-prefixed, so no two different
    events (a topic ending where a state begins) can give the same bytes."""
    h = hashlib.sha256()
    for part in (
        stored.topic.encode(),
        str(stored.originator_id).encode(),
        str(stored.originator_version).encode(),
        _bytes(stored.state),
    ):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _bytes(state: object) -> bytes:
    # A row changed by hand may come back as text rather than bytes: hash it all the same.
    if isinstance(state, str):
        return state.encode()
    assert isinstance(state, bytes | bytearray | memoryview)
    return bytes(state)


def link_of(previous: str, digest: str) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + bytes.fromhex(digest)).hexdigest()


def seal(stored: Iterable[Notification], previous: str) -> list[SealedLink]:
    """Links for events following the link `previous`, in the order given."""
    links = []
    for notification in stored:
        digest = digest_of(notification)
        previous = link_of(previous, digest)
        links.append(SealedLink(notification.id, digest, previous))
    return links


def parse_published(text: str) -> tuple[int, str]:
    """`POSITION:LINK`, as `Checkpoint.published` writes it."""
    position, _, link = text.strip().partition(":")
    if not position.isdigit() or len(link) != 64 or any(c not in "0123456789abcdef" for c in link):
        raise ValueError("a checkpoint is POSITION:LINK, the link 64 lowercase hex digits")
    return int(position), link


class _Ahead(Generic[T]):
    """An iterator one can look a few items into without taking them."""

    def __init__(self, items: Iterator[T]) -> None:
        self._items = items
        self._buffer: list[T] = []

    def peek(self, k: int = 0) -> T | None:
        while len(self._buffer) <= k:
            item = next(self._items, None)
            if item is None:
                return None
            self._buffer.append(item)
        return self._buffer[k]

    def pop(self) -> T | None:
        item = self.peek()
        if item is not None:
            self._buffer.pop(0)
        return item


def verify(
    stored: Iterator[Notification],
    sealed: Iterator[SealedLink],
    seal_links: SealLinks,
    head: SealedLink | None,
    published: tuple[int, str] | None = None,
) -> VerifyReport:
    """Recompute the chain from the stored events (`stored`, in position order) and compare
    it with the seal (`sealed`, in position order) up to its `head`, read before either (the
    seal moves on while this runs); then compare the seal's checkpoints and a `published`
    one with the recomputed links."""
    log, marks = _Ahead(stored), _Ahead(sealed)
    previous = GENESIS
    # The recomputed link at checkpoint positions only: memory stays bounded.
    wanted: dict[int, Checkpoint | None] = {
        c.position: c
        for c in seal_links.checkpoints()
        if head is not None and c.position <= head.position
    }
    if published is not None:
        wanted.setdefault(published[0], None)
    recomputed: dict[int, str] = {}
    checked = 0
    last: SealedLink | None = None

    def broken(breach: Breach) -> VerifyReport:
        return VerifyReport(False, head, checked, 0, 0, breach)

    while (
        (mark := marks.peek()) is not None and head is not None and mark.position <= head.position
    ):
        event = log.peek()
        if event is None or event.id > mark.position:
            breach = Breach(mark.position, "removed", "the event sealed here is no longer stored")
            return broken(breach)
        if event.id < mark.position:
            breach = Breach(event.id, "inserted", "an event the seal never saw is stored here")
            return broken(breach)
        digest = digest_of(event)
        link = link_of(previous, digest)
        if link != mark.link:
            return broken(_mismatch(log, marks, digest, previous, seal_links))
        log.pop()
        marks.pop()
        previous, last = link, mark
        checked += 1
        if mark.position in wanted:
            recomputed[mark.position] = link
    unsealed = 0
    while log.pop() is not None:
        unsealed += 1
    found = _checkpoint_breach(wanted, recomputed, published, last)
    return VerifyReport(
        ok=found is None,
        sealed_head=head,
        checked=checked,
        unsealed=unsealed,
        checkpoints=len([p for p in wanted if p in recomputed]),
        breach=found,
        published=None if published is None else f"{published[0]}:{published[1]}",
    )


def _mismatch(
    log: _Ahead[Notification],
    marks: _Ahead[SealedLink],
    digest: str,
    previous: str,
    seal_links: SealLinks,
) -> Breach:
    """Name what most likely happened where the chain first breaks, looking one event ahead
    on each side (an insertion or removal that renumbered the events after it shifts them by
    one)."""
    event, mark = log.peek(), marks.peek()
    assert event is not None and mark is not None
    following, next_mark = log.peek(1), marks.peek(1)
    if digest == mark.digest or link_of(previous, mark.digest) != mark.link:
        return Breach(event.id, "chain-rewritten", "the seal's own link here was changed")
    if next_mark is not None and digest == next_mark.digest:
        return Breach(
            event.id, "removed", "the event sealed here is gone; the ones after it moved up"
        )
    if following is not None and digest_of(following) == mark.digest:
        return Breach(
            event.id, "inserted", "an event the seal never saw is stored here; later ones moved"
        )
    elsewhere = [p for p in seal_links.positions_of(digest) if p != mark.position]
    if elsewhere:
        return Breach(
            event.id, "reordered", f"the event stored here was sealed at position {elsewhere[0]}"
        )
    return Breach(event.id, "altered", "the stored bytes differ from the bytes sealed")


def _checkpoint_breach(
    wanted: dict[int, Checkpoint | None],
    recomputed: dict[int, str],
    published: tuple[int, str] | None,
    last: SealedLink | None,
) -> Breach | None:
    for position in sorted(wanted):
        checkpoint = wanted[position]
        link = recomputed.get(position)
        if checkpoint is not None and link is not None and link != checkpoint.link:
            return Breach(position, "chain-rewritten", "a checkpoint disagrees with the chain")
    if published is not None:
        position, link = published
        if last is None or position > last.position:
            return Breach(position, "not-sealed-yet", "the published checkpoint is past the seal")
        if recomputed.get(position) != link:
            return Breach(
                position,
                "chain-rewritten",
                "the chain recomputed from the stored events does not reach the published "
                "checkpoint: the log or the seal was rewritten since it was published",
            )
    return None
