"""Peer budgets: what a stranger can make this node store, dial and hold in memory (issue 12).

- `AddrPolicy`: which announced addresses this node would ever dial. A multiaddr, ending in
  /p2p/<the announcer's id> (directly or after /p2p-circuit); no loopback or private address
  unless this node itself listens on one (a realm on 127.0.0.1 or a LAN keeps working).
- `bound_peerstore`: py-libp2p's peerstore holds at most `max_peers` entries and, when full,
  evicts entries without addresses first - which is the node's own key (issue 12 #2: after
  1,100 fresh identities every announcement failed with "peer ID not found"). The bound here
  never evicts a pinned peer (the node itself, connected peers, the caller's useful ones) and
  evicts the least recently seen of the others.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import multiaddr

from .addrs import ips_of

log = logging.getLogger(__name__)


def _ips(ma: multiaddr.Multiaddr) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(v) for v in ips_of(ma)]


def scope_of(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """'loopback' | 'private' (LAN, link-local, CGNAT) | 'unspecified' | 'public' | 'reserved'."""
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local or ip.is_private or (ip.version == 4 and ip in ipaddress.ip_network("100.64.0.0/10")):
        return "private"
    if ip.is_multicast or ip.is_reserved:
        return "reserved"
    return "public"


class AddrPolicy:
    """Which addresses of a peer this node may dial, given where it listens itself."""

    def __init__(self, listen_hosts: Iterable[str], *, airgap: bool = False) -> None:
        scopes = set()
        for h in listen_hosts:
            try:
                scopes.add(scope_of(ipaddress.ip_address(h)))
            except ValueError:
                scopes.add("public")  # a name: treat as public
        # a node on 0.0.0.0 serves its LAN too, but loopback stays its own machine's business
        self.allow_loopback = "loopback" in scopes
        self.allow_private = bool(scopes & {"loopback", "private", "unspecified"})
        self.airgap = airgap

    def allowed_ip(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        s = scope_of(ip)
        if s in ("unspecified", "reserved"):
            return False
        if self.airgap and s == "public":
            return False
        if s == "loopback":
            return self.allow_loopback
        if s == "private":
            return self.allow_private
        return True

    def check(self, addr: str, peer_id: str) -> str | None:
        """The reason this announced address is refused, or None if it may be dialed."""
        if not isinstance(addr, str) or len(addr) > 256:
            return "not a string"
        try:
            ma = multiaddr.Multiaddr(addr)
        except Exception:
            return "not a multiaddr"
        text = str(ma)
        if not text.endswith(f"/p2p/{peer_id}"):
            return "does not end in /p2p/<announcer>"
        if "/p2p-circuit" in text:
            relay = text.split("/p2p-circuit")[0]
            try:
                ma = multiaddr.Multiaddr(relay)
            except Exception:
                return "bad relay address"
            if "/p2p/" not in relay or relay.endswith(f"/p2p/{peer_id}"):
                return "relay address without a relay id"
        ips = _ips(ma)
        if not ips:
            try:
                ma.value_for_protocol("tcp")
            except Exception:
                return "no tcp transport"
            return None if not self.airgap else "airgap: a name, not a LAN address"
        for ip in ips:
            if not self.allowed_ip(ip):
                return f"{scope_of(ip)} address {ip} not dialable from this node"
        return None

    def filter(self, addrs: Iterable[str], peer_id: str) -> list[str]:
        return [a for a in addrs if self.check(a, peer_id) is None]


def bound_peerstore(peerstore: Any, *, max_peers: int, pinned: Callable[[Any], bool],
                    last_seen: Callable[[Any], float]) -> None:
    """Replace the peerstore's eviction (an instance attribute: py-libp2p calls
    `self._enforce_peer_limit()` when a peer is added over the limit, and from its cleanup task).

    pinned(ID) -> never evicted; last_seen(ID) -> monotonic time, oldest evicted first. Evicts
    down to 90 % of the bound at once, so a flood costs one sort per ~max_peers/10 new ids."""
    peerstore.max_peers = max_peers

    def enforce() -> None:
        data = peerstore.peer_data_map
        if len(data) <= max_peers:
            return
        target = max_peers * 9 // 10
        victims = [pid for pid in data if not _safe_pinned(pinned, pid)]
        victims.sort(key=lambda pid: _safe_seen(last_seen, pid))
        for pid in victims[: max(0, len(data) - target)]:
            peerstore.peer_record_map.pop(pid, None)
            data.pop(pid, None)

    peerstore._enforce_peer_limit = enforce


def _safe_pinned(pinned: Callable[[Any], bool], pid: Any) -> bool:
    try:
        return bool(pinned(pid))
    except Exception:
        return True  # unsure: keep it


def _safe_seen(last_seen: Callable[[Any], float], pid: Any) -> float:
    try:
        return float(last_seen(pid))
    except Exception:
        return time.monotonic()


class OverBudget(Exception):
    """A peer asked for more streams or bytes in flight than its budget allows."""


class PeerBudget:
    """Per-peer (and overall) limits on streams and bytes in flight on our framed protocols
    (issue 12 #5: 80 streams each holding 15 MiB of a 16 MiB frame took RSS 331 MB -> 1.89 GB).

    A reader reserves a frame's length (known from its 4-byte prefix) before reading its body and
    releases it once the frame is decoded; a stream holds one slot while it is served."""

    def __init__(self, *, max_streams: int = 16, max_bytes: int = 40 * 1024 * 1024,
                 max_total_bytes: int = 160 * 1024 * 1024) -> None:
        self.max_streams = max_streams
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes
        self._streams: dict[str, int] = {}
        self._bytes: dict[str, int] = {}
        self.total_bytes = 0
        self.peak_bytes = 0
        self.refused = {"streams": 0, "bytes": 0}

    def open_stream(self, peer: str) -> None:
        n = self._streams.get(peer, 0)
        if n >= self.max_streams:
            self.refused["streams"] += 1
            raise OverBudget(f"more than {self.max_streams} streams at once")
        self._streams[peer] = n + 1

    def close_stream(self, peer: str) -> None:
        n = self._streams.get(peer, 0) - 1
        if n <= 0:
            self._streams.pop(peer, None)
        else:
            self._streams[peer] = n

    def reserve(self, peer: str, n: int) -> None:
        mine = self._bytes.get(peer, 0)
        if mine + n > self.max_bytes or self.total_bytes + n > self.max_total_bytes:
            self.refused["bytes"] += 1
            raise OverBudget(f"{n} more bytes in flight would exceed the budget")
        self._bytes[peer] = mine + n
        self.total_bytes += n
        self.peak_bytes = max(self.peak_bytes, self.total_bytes)

    def release(self, peer: str, n: int) -> None:
        left = self._bytes.get(peer, 0) - n
        if left <= 0:
            self._bytes.pop(peer, None)
        else:
            self._bytes[peer] = left
        self.total_bytes = max(0, self.total_bytes - n)

    def snapshot(self) -> dict:
        return {"streams": sum(self._streams.values()), "bytes_in_flight": self.total_bytes,
                "peak_bytes": self.peak_bytes, "refused": dict(self.refused)}
