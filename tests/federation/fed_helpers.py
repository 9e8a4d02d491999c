"""Shared helpers for the federation tests (a plain module: no package, no name clash)."""

from contextlib import asynccontextmanager

import pytest
import trio

from federation import Federation, IntentFailed, market  # noqa: E402
from federation.config import FederationConfig  # noqa: E402

ECHO_CAPS = {"models": {"chat": ["echo"]}, "prices": {"chat": 10}, "cpu": {"cores": 2, "ram": 2**30}}


def seed(i: int) -> bytes:
    return bytes([i % 256]) * 31 + bytes([(i * 7 + 3) % 256])


async def echo_handler(peer_id, request, send):
    await send({"type": "accepted", "price": 10})
    text = request.get("inputs", {}).get("text", "")
    for word in str(text).split():
        await send({"type": "chunk", "data": word})
    await send({"type": "result", "output": {"text": text}, "units": len(str(text).split())})


async def wait_until(cond, timeout=10.0, interval=0.02):
    """Poll a condition with a bound (no sleeps as synchronisation)."""
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(interval)


def route_order(fed, kind, model, max_price=None, exclude=()):
    """The order the daemon would try workers in: `federation.market.route` (the only routing
    policy, docs/protocol.md §6) over the federation's typed view; strict (no tie bands) so tests
    are deterministic."""
    offers = [p.offer(kind, model, 1000) for p in fed.offers(kind)]
    return market.route(offers, max_price, exclude=exclude, kind=kind, model=model, price_band=0, latency_band_ms=0)


async def run_routed(fed, request, on_event=None, timeout=10.0, attempts=3):
    """Drive the seam the daemon uses (Federation.request_intent) down route_order's list, one
    attempt per worker within one deadline, telling on_event of each failover; the daemon's own
    loop (mtor_node/network.py run_remote) is unit-tested in tests/test_remote_failover.py."""
    kind, model = request["kind"], request["model"]
    tried, last = [], None
    with trio.fail_after(timeout):
        for _ in range(attempts):
            plan = route_order(fed, kind, model, request.get("max_price"), exclude=tried)
            if not plan.ok:
                break
            peer = plan.best.peer_id
            tried.append(peer)
            try:
                return await fed.request_intent(peer, request, on_event, timeout)
            except IntentFailed as exc:
                if not exc.retryable:
                    raise
                last = exc
                if on_event is not None:
                    await on_event({"type": "failover", "from": peer, "code": exc.code, "message": exc.message})
    raise IntentFailed(last.code if last else "no_candidates", last.message if last else f"no peer serves {kind}/{model}",
                       False)


class Net:
    def __init__(self, nursery):
        self.nursery = nursery
        self.feds = []
        self.scopes = {}

    async def start(self, fed):
        async def runner(task_status=trio.TASK_STATUS_IGNORED):
            with trio.CancelScope() as cs:
                self.scopes[fed.peer_id] = cs
                await fed.run(task_status=task_status)

        with trio.fail_after(10):
            await self.nursery.start(runner)
        self.feds.append(fed)
        return fed

    async def stop(self, fed):
        self.scopes[fed.peer_id].cancel()

    async def spawn(self, n, *, first_seed=1, caps=ECHO_CAPS, handler=echo_handler, **kw):
        kw.setdefault("announce_interval", 0.5)
        out = []
        for i in range(n):
            peers = [self.feds[0].listen_addrs[0]] if self.feds else []
            fed = Federation(seed(first_seed + i), FederationConfig(peers=peers, **kw))
            if caps is not None:
                fed.set_capabilities(caps)
            if handler is not None:
                fed.set_intent_handler(handler)
            out.append(await self.start(fed))
        return out


@asynccontextmanager
async def _network():
    async with trio.open_nursery() as nursery:
        net = Net(nursery)
        try:
            yield net
        finally:
            nursery.cancel_scope.cancel()


@pytest.fixture
def network():
    return _network
