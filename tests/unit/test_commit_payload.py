"""A commit's NOTIFY payload names its process and its events' topics."""

from __future__ import annotations

from agentledger.infrastructure.wakeups import TOPICS_IN_PAYLOAD, commit_payload, read_payload


def test_a_payload_gives_back_its_origin_and_topics() -> None:
    payload = commit_payload("process-1", ["a.b:C", "a.b:D", "a.b:C"])
    assert read_payload(payload) == ("process-1", frozenset({"a.b:C", "a.b:D"}))


def test_topics_too_long_for_a_notify_are_left_out_which_wakes_every_runner() -> None:
    topics = [f"agentledger.domain.module:Event{i}" for i in range(TOPICS_IN_PAYLOAD // 10)]
    payload = commit_payload("process-1", topics)
    assert len(payload.encode()) < 8000
    assert read_payload(payload) == ("process-1", None)


def test_the_librarys_own_empty_notify_names_no_topics() -> None:
    assert read_payload("") == ("", None)
