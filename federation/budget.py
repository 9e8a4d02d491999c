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

log = logging.getLogger(__name__)


def _ips(ma: multiaddr.Multiaddr) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    out = []
    for proto in ("ip4", "ip6"):
        try:
            v = ma.value_for_protocol(proto)
        except Exception:
            v = None
        if v:
            out.append(ipaddress.ip_address(v))
    return out


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
