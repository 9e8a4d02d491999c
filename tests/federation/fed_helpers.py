"""Shared helpers for the federation tests (a plain module: no package, no name clash)."""

from contextlib import asynccontextmanager

import pytest
import trio

from federation import Federation  # noqa: E402

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
            fed = Federation(seed(first_seed + i), peers=peers, **kw)
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
