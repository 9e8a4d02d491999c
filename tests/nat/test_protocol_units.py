"""The NAT protocol modules alone, without a libp2p host: PEX and AutoNAT handlers on
`trio.testing.memory_stream_pair`, and the one mapping of py-libp2p's errors (federation/errors.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.network.exceptions import SwarmException
from libp2p.peer.id import ID
from libp2p.stream_muxer.exceptions import MuxedStreamReset

from federation.autonat import AutoNAT
from federation.errors import NetError, ProtocolViolation, StreamFailed, TimedOut, Unreachable, map_libp2p_errors
from federation.pex import PeerExchange
from federation.wire import FrameError

def _peer() -> ID:
    return ID.from_pubkey(create_new_key_pair().public_key)


ME, SERVER, OTHER, THIRD = _peer(), _peer(), _peer(), _peer()


@dataclass
class MemStream:
    """The slice of py-libp2p's INetStream the handlers use, over one end of a memory stream."""

    end: Any
    peer: ID
    remote: tuple[str, int] | None = None

    @property
    def muxed_conn(self) -> Any:
        return self

    @property
    def peer_id(self) -> ID:
        return self.peer

    def get_transport_addresses(self) -> list:
        return []

    def get_remote_address(self) -> tuple[str, int] | None:
        return self.remote

    async def read(self, n: int) -> bytes:
        return await self.end.receive_some(n)

    async def write(self, data: bytes) -> None:
        await self.end.send_all(data)

    async def close(self) -> None:
        await self.end.aclose()


class FakeHost:
    """new_stream hands one end of a memory stream to the caller and serves the other."""

    def __init__(self, me: ID, handler: Any, connections: dict | None = None, known: dict | None = None) -> None:
        self.me, self.handler = me, handler
        self.connections = connections or {}  # network.connections
        self.known = known or {}  # peerstore addresses

    def addrs(self, pid: ID) -> list:
        return self.known.get(pid, [])

    def get_id(self) -> ID:
        return self.me

    def get_network(self) -> Any:
        return self

    def get_peerstore(self) -> Any:
        return self

    def get_addrs(self) -> list:
        return []

    async def new_stream(self, pid: ID, protocols: list) -> MemStream:
        ours, theirs = trio.testing.memory_stream_pair()
        trio.lowlevel.spawn_system_task(self.handler, MemStream(theirs, self.me, ("198.51.100.7", 4001)))
        return MemStream(ours, pid)


async def test_pex_answer_is_bounded_validated_and_never_us() -> None:
    # the server knows OTHER (two addresses, one invalid), THIRD (announced only) and the asker
    server_host = FakeHost(SERVER, None, connections={OTHER: [object()], THIRD: [object()], ME: [object()]},
                           known={OTHER: ["/ip4/10.0.0.2/tcp/4001", "/ip4/0.0.0.0/tcp/1"]})
    server = PeerExchange(server_host, announced_addrs=lambda p: ["/ip4/10.0.0.3/tcp/4001"] if p == THIRD.to_base58() else [])
    client = PeerExchange(FakeHost(ME, server.serve), announced_addrs=lambda p: [])
    with trio.fail_after(5):
        learned = dict(await client.exchange(SERVER))
    assert ME.to_base58() not in learned  # the asker is excluded by the server, and ourselves by us
    assert learned[OTHER.to_base58()] == ["/ip4/10.0.0.2/tcp/4001"]  # 0.0.0.0 dropped
    assert learned[THIRD.to_base58()] == ["/ip4/10.0.0.3/tcp/4001"]
    assert client.learned == 2


async def test_autonat_server_refuses_without_ports_and_dials_back_only_the_observed_ip(monkeypatch) -> None:
    dialed: list[tuple[str, int]] = []

    async def probe(ip: str, port: int, psk: Any, timeout: float) -> bool:
        dialed.append((ip, port))
        raise OSError("connection refused")

    monkeypatch.setattr("federation.autonat.probe_realm", probe)
    server = AutoNAT(FakeHost(SERVER, None), None, listen_ports=lambda: [], on_change=lambda s: None)
    changes: list[str] = []
    client = AutoNAT(FakeHost(ME, server.serve), None, listen_ports=lambda: [4001, 4002], on_change=changes.append)
    with trio.fail_after(5):
        status = await client.check([SERVER])
    assert dialed == [("198.51.100.7", 4001), ("198.51.100.7", 4002)]  # the IP it saw, nothing else
    assert status == "private" and changes == ["private"]
    assert client.answers[SERVER.to_base58()]["observed"] == "198.51.100.7"
    assert client.public_ip() == "198.51.100.7"
    assert server.served == 1


@pytest.mark.parametrize("raised, expected", [
    (trio.TooSlowError(), TimedOut),
    (OSError("refused"), Unreachable),
    (SwarmException("all dials failed"), Unreachable),
    (MuxedStreamReset("reset"), StreamFailed),
    (FrameError("oversized", "9 > 8"), ProtocolViolation),
    (KeyError("py-libp2p internals"), NetError),
    (ExceptionGroup("nursery", [OSError("inner")]), Unreachable),
])
def test_libp2p_errors_are_mapped_once(raised: Exception, expected: type) -> None:
    with pytest.raises(expected) as info:
        with map_libp2p_errors():
            raise raised
    assert type(info.value) is expected
    assert info.value.cause is not None and info.value.__cause__ is raised


async def test_cancellation_is_not_an_error() -> None:
    with trio.move_on_after(0.01) as scope:
        with map_libp2p_errors():
            await trio.sleep_forever()
    assert scope.cancelled_caught
