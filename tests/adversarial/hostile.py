"""Hostile py-libp2p peers for the adversarial suite: real hosts (Noise, Yamux) that open streams
on a node's protocols and write what an attacker would. Nothing here is a mock: the node under
test sees an ordinary libp2p connection from a fresh identity."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

import trio
from libp2p.custom_types import TProtocol
from libp2p.utils.varint import encode_uvarint

from federation.host import info_from_addr, make_host


def garbage(n: int = 100) -> bytes:
    """A varint length, then random bytes: what killed py-libp2p's pubsub reader (issue 12 #1)."""
    return encode_uvarint(n) + os.urandom(n)


@asynccontextmanager
async def hostile_host(seed: bytes | None = None):
    """A started libp2p host with a fresh (or given) identity; it listens nowhere."""
    host = make_host(seed or os.urandom(32))
    async with host.run([]):
        yield host


async def connect(host, addr: str, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        await host.connect(info_from_addr(addr))


async def send_on(host, addr: str, protocol: str, payload: bytes, *, linger: float = 0.3) -> bool:
    """Open `protocol` to the peer at addr and write payload. False if the stream could not even
    be opened or written (the node refused us: also fine for the node)."""
    pid = info_from_addr(addr).peer_id
    try:
        with trio.fail_after(10):
            stream = await host.new_stream(pid, [TProtocol(protocol)])
            await stream.write(payload)
    except Exception:
        return False
    with trio.move_on_after(linger):  # let the node read it; we do not care what it answers
        try:
            await stream.read(65536)
        except Exception:
            pass
    try:
        await stream.reset()
    except Exception:
        pass
    return True
