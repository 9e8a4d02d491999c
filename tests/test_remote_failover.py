"""The broker's remote path (RemoteRouter.plan / run_remote) against an in-memory federation.

The fake stands at the one seam the daemon uses to reach workers, `Federation.request_intent`, and
gives `Federation.offers` from a real PeerTable (httpx's MockTransport is the model): no libp2p,
no sockets. Routing is `federation.market.route` (docs/protocol.md §6); the failover loop is the
daemon's (mtor_node/remote_router.py run_remote), the only one.
"""

from __future__ import annotations

from typing import Awaitable, Callable

import pytest
import trio

from federation import IntentFailed
from federation.peers import PeerTable, PeerView
from mtor_node import remote_router as router_mod
from mtor_node.backends import BackendError
from mtor_node.intents import Intent
from mtor_node.payments import Payments
from mtor_node.remote_router import RemoteRouter

Answer = Callable[[dict, Callable[[dict], Awaitable[None]] | None], Awaitable[dict]]


class FakeFederation:
    """In memory: peers announce into a real PeerTable; `request_intent` runs a scripted answer."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.peer_id = "me"
        self.peers = PeerTable(ttl=60)
        self.answers: dict[str, Answer] = {}
        self.calls: list[str] = []
        self.requests: list[dict] = []
        self.counters = {"failovers": 0}
        self.stats = {"connected_peers": 0}
        self.dht = None

    def announce(self, peer_id: str, price: int, answer: Answer) -> None:
        self.peers.record_announcement(peer_id, {"models": {"chat": ["echo"]}, "prices": {"chat": price}, "ttl": 60})
        self.peers.get(peer_id).connected = True  # proven and reachable
        self.answers[peer_id] = answer

    def offers(self, kind: str | None = None) -> list[PeerView]:
        return list(self.peers.views(kind, exclude={self.peer_id}))

    async def request_intent(self, peer_id: str, request: dict, on_event=None, timeout: float = 60.0) -> dict:
        assert timeout > 0
        self.calls.append(peer_id)
        self.requests.append(request)
        return await self.answers[peer_id](request, on_event)


def fails(code: str, **kw: object) -> Answer:
    async def answer(request: dict, on_event) -> dict:
        raise IntentFailed(code, f"{code} from the fake", **kw)

    return answer


def serves(text: str) -> Answer:
    async def answer(request: dict, on_event) -> dict:
        await on_event({"type": "accepted", "price": 1})
        await on_event({"type": "chunk", "data": text})
        return {"type": "result", "output": {"text": text}, "units": 1}

    return answer


@pytest.fixture
def net() -> RemoteRouter:
    """The broker's router on a node without a ledger (free work) and without a local worker."""
    fed = FakeFederation()

    async def no_back_pressure(peer: bytes) -> None:
        return None

    payments = Payments(fed, None, None, {}, lambda: None)  # type: ignore[arg-type]
    return RemoteRouter(fed, "me", payments, lambda *a: None, no_back_pressure)  # type: ignore[arg-type]


def chat(**kw: object) -> Intent:
    return Intent(kind="chat", model="echo", messages=[{"role": "user", "content": "hi"}], timeout=10, **kw)


async def run(net: RemoteRouter, intent: Intent) -> tuple[dict, str, list[dict]]:
    events: list[dict] = []

    async def emit(event: dict) -> None:
        events.append(event)

    with trio.fail_after(5):
        result, peer = await net.run_remote(intent, emit)
    return result, peer, events


async def test_cheapest_first_then_failover_in_price_order(net):
    fed = net.fed
    # announced dearest first: the table's order must not matter
    fed.announce("dear", 5000, serves("from dear"))
    fed.announce("mid", 2000, fails("disconnected"))
    fed.announce("cheap", 1000, fails("worker_error"))
    intent = chat(max_price=10**9)
    assert [o.peer_id for o in net.plan(intent).order] == ["cheap", "mid", "dear"]
    assert net.quote(intent)["peer"] == "cheap"
    result, peer, events = await run(net, intent)
    assert fed.calls == ["cheap", "mid", "dear"]
    assert peer == "dear" and result["text"] == "from dear" and result["cost"] == 0
    failovers = [e for e in events if e["type"] == "failover"]
    assert [(f["from"], f["code"]) for f in failovers] == [("cheap", "worker_error"), ("mid", "disconnected")]
    assert {"type": "chunk", "text": "from dear"} in events
    assert fed.counters["failovers"] == 2
    assert {r["id"] for r in fed.requests} == {intent.id}  # one intent, one id on every worker


async def test_the_cheapest_that_answers_is_the_only_one_asked(net):
    fed = net.fed
    fed.announce("dear", 5000, serves("dear"))
    fed.announce("cheap", 1000, serves("cheap"))
    _, peer, events = await run(net, chat())
    assert fed.calls == ["cheap"] and peer == "cheap"
    assert not [e for e in events if e["type"] == "failover"]


async def test_at_most_max_attempts_workers(net):
    fed = net.fed
    for i in range(router_mod.MAX_ATTEMPTS + 1):
        fed.announce(f"w{i}", 1000 * 2**i, fails("timeout"))
    with pytest.raises(BackendError) as ei:
        await run(net, chat(max_price=10**9))
    assert fed.calls == [f"w{i}" for i in range(router_mod.MAX_ATTEMPTS)]
    assert ei.value.code == "timeout"


async def test_a_final_error_is_not_failed_over(net):
    fed = net.fed
    fed.announce("cheap", 1000, fails("bad_request", retryable=False))
    fed.announce("dear", 5000, serves("dear"))
    with pytest.raises(BackendError) as ei:
        await run(net, chat(max_price=10**9))
    assert fed.calls == ["cheap"] and ei.value.code == "bad_request"


async def test_no_max_price_never_fails_over_to_a_dearer_worker(net):
    # the user's limit is then the first quote, what they were shown (docs/economy.md §3)
    fed = net.fed
    fed.announce("cheap", 1000, fails("worker_error"))
    fed.announce("dear", 5000, serves("dear"))
    with pytest.raises(BackendError):
        await run(net, chat())
    assert fed.calls == ["cheap"]


async def test_a_moved_price_within_the_limit_asks_the_same_worker_again(net):
    fed = net.fed
    asked: list[int | None] = []

    async def moved_once(request: dict, on_event) -> dict:
        asked.append(request["max_price"])
        if len(asked) == 1:
            raise IntentFailed("price", "price moved", price=1500)
        return await serves("cheap")(request, on_event)

    fed.announce("cheap", 1000, moved_once)
    fed.announce("dear", 5000, serves("dear"))
    _, peer, _ = await run(net, chat(max_price=10**9))
    assert fed.calls == ["cheap", "cheap"] and peer == "cheap"


async def test_nobody_serves(net):
    with pytest.raises(BackendError) as ei:
        await run(net, chat())
    assert ei.value.code in ("no_candidates", "no_model") and net.fed.calls == []
    assert not net.can_serve(chat())
