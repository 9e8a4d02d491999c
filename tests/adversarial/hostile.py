"""Hostile py-libp2p peers for the adversarial suite: real hosts (Noise, Yamux) that open streams
on a node's protocols and write what an attacker would. Nothing here is a mock: the node under
test sees an ordinary libp2p connection from a fresh identity."""

from __future__ import annotations

import os
import time
from contextlib import asynccontextmanager
from typing import Any

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


def sybil_seeds(n: int, tag: int = 0) -> list[bytes]:
    return [tag.to_bytes(4, "big") + i.to_bytes(4, "big") + b"\x5a" * 24 for i in range(n)]


def forged_announcement(seed: bytes, topic: str, caps: dict, addrs_for=None) -> Any:
    """A gossip message from the identity `seed`, signed as a real node's is: the pubsub signature
    (strict signing) by its key, and the capability signature (federation.caps) by the same key."""
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX

    from federation import caps as caps_mod
    from federation.keys import Signer

    kp = create_new_key_pair(seed)
    pid = ID.from_pubkey(kp.public_key)
    signer = Signer(seed)
    assert signer.peer_id == pid.to_base58()
    ann = caps_mod.check_capabilities(caps)
    ann.update(node=signer.peer_id, addrs=addrs_for(signer.peer_id) if addrs_for else [], ts=time.time(),
               seq=int(time.time() * 1000), ttl=30)
    msg = rpc_pb2.Message(data=caps_mod.sign_announcement(ann, signer), topicIDs=[topic], from_id=pid.to_bytes(),
                          seqno=os.urandom(8))
    msg.signature = kp.private_key.sign(PUBSUB_SIGNING_PREFIX.encode() + msg.SerializeToString())
    msg.key = kp.public_key.serialize()
    return msg


async def gossip_flood(host, addr: str, topic: str, messages: list, *, per_rpc: int = 50, rate: float = 400.0) -> None:
    """Relay pre-built gossip messages to the node over one /meshsub/1.1.0 stream, as a
    connected peer that forwards what it heard would (rate: messages per second)."""
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.utils.varint import encode_varint_prefixed

    pid = info_from_addr(addr).peer_id
    with trio.fail_after(10):
        stream = await host.new_stream(pid, [TProtocol("/meshsub/1.1.0")])
        hello = rpc_pb2.RPC(subscriptions=[rpc_pb2.RPC.SubOpts(subscribe=True, topicid=topic)])
        await stream.write(encode_varint_prefixed(hello.SerializeToString()))
    for i in range(0, len(messages), per_rpc):
        rpc = rpc_pb2.RPC(publish=messages[i:i + per_rpc])
        with trio.fail_after(10):
            await stream.write(encode_varint_prefixed(rpc.SerializeToString()))
        await trio.sleep(per_rpc / rate)  # pacing the attack, not synchronisation
    return stream


class DialCounter:
    """A TCP listener on 127.0.0.1 that counts connection attempts: announce its port and see
    whether the node ever dials it."""

    def __init__(self) -> None:
        self.accepted = 0
        self.port = 0

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()

        async def handler(stream):
            self.accepted += 1
            await stream.aclose()

        await trio.serve_listeners(handler, listeners)
