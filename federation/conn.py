"""Small helpers over py-libp2p connections and streams that several protocols share
(the intent protocol, hole punching, the Federation): closing for real, resetting, relayed or not.
"""

from __future__ import annotations

from typing import Any

import trio


def is_circuit(addr: Any) -> bool:
    return "/p2p-circuit" in str(addr)


def conn_is_relayed(conn: Any) -> bool:
    try:
        addrs = conn.get_transport_addresses() or []
    except Exception:
        addrs = []
    if any(is_circuit(a) for a in addrs):
        return True
    try:
        return getattr(conn.get_connection_type(), "name", "") == "RELAYED"
    except Exception:
        return False


async def hard_close(conn: Any) -> None:
    """Close a connection down to its socket.

    py-libp2p's SwarmConn.close skips the muxer when it marked the wrapper as sharing its
    muxed connection with another one; the socket then stays open and the remote never
    learns that we left (its stream reads hang until a timeout). Close every layer.
    """
    muxed = getattr(conn, "muxed_conn", None)
    for layer in (muxed, getattr(muxed, "secured_conn", None)):
        if layer is None:
            continue
        try:
            with trio.move_on_after(0.5):
                await layer.close()
        except Exception:
            pass


async def reset_stream(stream: Any) -> None:
    """Reset a stream, bounded and best effort: the peer may already be gone."""
    try:
        with trio.move_on_after(1):
            await stream.reset()
    except Exception:
        pass


def connections_to(host: Any, peer: Any) -> list:
    """The host's open connections to `peer` (an ID), [] when none."""
    try:
        return list(host.get_network().connections.get(peer) or [])
    except Exception:
        return []


def has_direct(host: Any, peer: Any) -> bool:
    """Is at least one connection to `peer` (an ID) a direct, not relayed, one?"""
    return any(not conn_is_relayed(c) for c in connections_to(host, peer))


def direct_peers(host: Any) -> list:
    """Peers (IDs) the host holds a direct connection to: AutoNAT servers, relay and PEX partners."""
    return [pid for pid, conns in list(host.get_network().connections.items())
            if any(not conn_is_relayed(c) for c in conns or [])]
