"""ui/intake.follow_batches: the streaming APIs write what has arrived as one chunk, and end an intent
nobody reads any more exactly as follow() does."""

from __future__ import annotations

import math
import time
from contextlib import aclosing
from types import SimpleNamespace

import trio

from ui.intake import follow_batches


def fake(events):
    """A ticket reading `events` and a UI state that records cancels and outcomes."""
    seen = SimpleNamespace(cancelled=[], outcomes=[])
    state = SimpleNamespace(service=SimpleNamespace(broker=SimpleNamespace(cancel=lambda id, why: seen.cancelled.append(id))),
                            metrics=SimpleNamespace(record=lambda kind, outcome, s: seen.outcomes.append(outcome)))
    ticket = SimpleNamespace(events=events, intent=SimpleNamespace(id="i1", kind="chat"), submitted=time.monotonic())
    return state, ticket, seen


def texts(batch):
    return [e["text"] if e["type"] == "chunk" else e["type"] for e in batch]


async def test_a_backlog_is_one_batch_and_the_end_is_recorded():
    send, recv = trio.open_memory_channel(math.inf)
    state, ticket, seen = fake(recv)
    for word in "abc":
        send.send_nowait({"type": "chunk", "text": word})
    batches = []
    async with aclosing(follow_batches(state, ticket)) as it:
        async for batch in it:
            batches.append(texts(batch))
            if len(batches) == 1:
                send.send_nowait({"type": "chunk", "text": "d"})
                send.send_nowait({"type": "result", "text": "abcd"})
                send.close()
    assert batches == [["a", "b", "c"], ["d", "result"]]
    assert seen.cancelled == [] and seen.outcomes == ["done"]


async def test_one_event_at_a_time_while_the_reader_keeps_up():
    """The next event arrives only after the reader took the last one (no timing involved)."""
    send, recv = trio.open_memory_channel(math.inf)
    state, ticket, _ = fake(recv)
    later = [{"type": "chunk", "text": "b"}, {"type": "error", "code": "internal", "message": "x"}]
    send.send_nowait({"type": "chunk", "text": "a"})
    batches = []
    async with aclosing(follow_batches(state, ticket)) as it:
        async for batch in it:
            batches.append(texts(batch))
            if later:
                send.send_nowait(later.pop(0))
            else:
                send.close()
    assert batches == [["a"], ["b"], ["error"]]


async def test_a_reader_that_stops_early_cancels_the_intent():
    send, recv = trio.open_memory_channel(math.inf)
    state, ticket, seen = fake(recv)
    send.send_nowait({"type": "chunk", "text": "a"})
    async with aclosing(follow_batches(state, ticket)) as it:
        async for _ in it:
            break
    assert seen.cancelled == ["i1"] and seen.outcomes == ["abandoned"]
