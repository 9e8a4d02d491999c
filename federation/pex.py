"""Peer exchange (`/mtor/pex/1`): peers tell each other the addresses of their directly connected
peers; bounded (16 peers x 8 addrs) and validated (docs/nat.md §1.5).

Takes the host and one callback (the addresses a peer announced), never the Federation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from .addrs import valid_peer_addr
from .errors import map_libp2p_errors
from .wire import read_frame_bytes, unpack, write_frame

PROTOCOL = "/mtor/pex/1"
MAX_MSG = 64 * 1024
MAX_REQUEST = 1024
TIMEOUT = 5.0
MAX_PEERS = 16  # peers per answer
MAX_ADDRS = 8  # addresses per peer


class PeerExchange:
    def __init__(self, host: Any, *, announced_addrs: Callable[[str], list[str]]) -> None:
        self.host = host
        self.announced_addrs = announced_addrs  # peer id -> addresses it announced (gossip)
        self.learned = 0

    def entries(self, exclude: ID) -> list[dict]:
        """What we tell a peer: our other connected peers, each with its validated addresses."""
        ps = self.host.get_peerstore()
        out: list[dict] = []
        for pid in list(self.host.get_network().connections):
            if pid == exclude or len(out) >= MAX_PEERS:
                continue
            key = pid.to_base58()
            addrs: list[str] = []
            try:
                known = [str(ma) for ma in ps.addrs(pid)]
            except Exception:
                known = []
            for a in known + [a.split("/p2p/" + key)[0] if a.endswith(key) else a
                              for a in self.announced_addrs(key)]:
                s = valid_peer_addr(a)
                if s and s not in addrs:
                    addrs.append(s)
            if addrs:
                out.append({"id": key, "addrs": addrs[:MAX_ADDRS]})
        return out

    async def serve(self, stream: Any) -> None:
        await read_frame_bytes(stream, max_frame=MAX_REQUEST, timeout=TIMEOUT)
        await write_frame(stream, {"peers": self.entries(stream.muxed_conn.peer_id)}, max_frame=MAX_MSG,
                          timeout=TIMEOUT)
        await stream.close()

    async def exchange(self, pid: ID) -> list[tuple[str, list[str]]]:
        """Ask a peer for its peers; validated (peer id, addrs) pairs, at most MAX_PEERS.
        Raises NetError (federation/errors.py) when the peer cannot be asked."""
        with map_libp2p_errors(), trio.fail_after(TIMEOUT + 3):
            stream = await self.host.new_stream(pid, [TProtocol(PROTOCOL)])
            try:
                await write_frame(stream, {"want": MAX_PEERS}, max_frame=MAX_REQUEST, timeout=TIMEOUT)
                reply = unpack(await read_frame_bytes(stream, max_frame=MAX_MSG, timeout=TIMEOUT), MAX_MSG)
            finally:
                try:
                    await stream.close()
                except Exception:
                    pass
        out = parse_answer(reply, self.host.get_id())
        self.learned += len(out)
        return out


def parse_answer(reply: Any, me: ID) -> list[tuple[str, list[str]]]:
    """The (peer id, addrs) pairs of an answer that pass validation; never ourselves."""
    out: list[tuple[str, list[str]]] = []
    peers = reply.get("peers") if isinstance(reply, dict) else None
    for entry in (peers if isinstance(peers, list) else [])[:MAX_PEERS]:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        try:
            other = ID.from_base58(entry["id"])
        except Exception:
            continue
        if other == me:
            continue
        raw = entry.get("addrs") if isinstance(entry.get("addrs"), list) else []
        addrs = [a for a in (valid_peer_addr(x) for x in raw[:MAX_ADDRS]) if a]
        if addrs:
            out.append((entry["id"], addrs))
    return out
