"""Reachability: the thin coordinator of the NAT protocols, one per module (docs/nat.md).

- `autonat.py`: are we reachable (`/mtor/autonat/1`, our own dial-back);
- `relay.py`: Circuit Relay v2 service, reservations and relayed dials;
- `dcutr.py` + `holepunch.py`: hole punching (DCUtR, started by the side that accepted the
  relayed connection, as the spec says; the older `/mtor/holepunch/1` still served);
- `pex.py`: peer exchange (`/mtor/pex/1`);
- `addrs.py`: the pure address helpers they share.

This module registers their stream handlers, runs the loop that ties them together (AutoNAT ->
relay service on/off, reservations while private), applies the connection limits, and reports
status. Like each protocol it takes the host, the realm key and callbacks, never the Federation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import multiaddr
import trio
from libp2p.peer.id import ID

from . import dcutr, holepunch
from .addrs import conn_remote_ip, tcp_port_of
from .autonat import PROTOCOL as AUTONAT_PROTOCOL
from .autonat import AutoNAT
from .config import ReachConfig
from .conn import conn_is_relayed, connections_to, direct_peers, has_direct, is_circuit
from .host import set_safe_handler
from .pex import PROTOCOL as PEX_PROTOCOL
from .pex import PeerExchange
from .relay import Relay

log = logging.getLogger(__name__)

LOOP_PERIOD_S = 2.0  # the loop runs at least this often, and at once when poked
UNKNOWN_RETRY_S = 3.0  # AutoNAT asks again this soon while the answer is unknown


async def _no_pool(peer_id: str) -> None:
    return None


class Reachability:
    """`relay_candidates()`: configured and bootstrap peer multiaddrs (relays to try);
    `announce_now()`: our addresses changed; `announced_addrs(peer)`: what a peer announced;
    `release_pooled(peer)`: reset pooled intent streams to a peer (before its relayed connection
    is dropped after a hole punch)."""

    def __init__(self, host: Any, psk: bytes | None, peer_id: str, cfg: ReachConfig, *,
                 relay_candidates: Callable[[], list[str]], announce_now: Callable[[], None],
                 announced_addrs: Callable[[str], list[str]],
                 release_pooled: Callable[[str], Awaitable[None]] = _no_pool) -> None:
        self.host = host
        self.peer_id = peer_id
        self.cfg = cfg
        self.autonat = AutoNAT(host, psk, listen_ports=self.listen_ports, on_change=lambda _status: announce_now(),
                               interval_s=cfg.autonat_interval_s)
        self.relay = Relay(host, psk, peer_id, cfg, candidates=relay_candidates, on_addrs_changed=announce_now)
        self.pex = PeerExchange(host, announced_addrs=announced_addrs)
        self.punches = holepunch.PunchLog()
        self.punch = holepunch.PunchContext(host=host, psk=psk, public_ip=self.autonat.public_ip,
                                            enabled=cfg.hole_punch, outcomes=self.punches,
                                            release_pooled=release_pooled)
        self.refused = {"refused_per_ip": 0, "refused_max_peers": 0}
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None

    # ---------------------------------------------------------------- running
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        set_safe_handler(self.host, AUTONAT_PROTOCOL, self.autonat.serve)
        if self.cfg.pex:
            set_safe_handler(self.host, PEX_PROTOCOL, self.pex.serve)
        punch = self.punch

        async def serve_holepunch(stream: Any) -> None:
            await holepunch.serve(punch, stream)

        async def serve_dcutr(stream: Any) -> None:
            await dcutr.serve(punch, stream)

        set_safe_handler(self.host, holepunch.PROTOCOL, serve_holepunch)
        set_safe_handler(self.host, dcutr.PROTOCOL, serve_dcutr)
        try:
            async with trio.open_nursery() as n:
                await n.start(self.relay.run)
                self._nursery = n
                n.start_soon(self._loop)
                task_status.started()
        finally:
            self._nursery = None

    def poke(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        next_autonat = 0.0
        while True:
            with trio.move_on_after(LOOP_PERIOD_S):
                await self._wake.wait()
            self._wake = trio.Event()
            now = time.monotonic()
            servers = direct_peers(self.host)
            if now >= next_autonat and servers:
                await self.autonat.check(servers)
                # until known, ask again soon; then at the configured interval
                next_autonat = now + (self.cfg.autonat_interval_s if self.nat_status != "unknown" else UNKNOWN_RETRY_S)
            if self.cfg.relay_service == "auto":
                self.relay.set_service(self.nat_status == "public")
            if self.cfg.relay_client and self.nat_status != "public":
                await self.relay.keep_reservations()
            elif self.nat_status == "public" and self.relay.reservations:
                self.relay.drop_reservations()

    def listen_ports(self) -> list[int]:
        """TCP ports we listen on or announce: what AutoNAT asks servers to dial back."""
        ports: list[int] = []
        announced = [multiaddr.Multiaddr(x) for x in self.cfg.announce if not is_circuit(x)]
        for a in list(self.host.get_addrs()) + announced:
            p = tcp_port_of(a)
            if p and p not in ports:
                ports.append(p)
        return ports[:8]

    # ---------------------------------------------------------------- connections
    @property
    def nat_status(self) -> str:
        return self.autonat.status

    def connection_kind(self, peer_id: str) -> str | None:
        try:
            pid = ID.from_base58(peer_id)
        except Exception:
            return None
        if not connections_to(self.host, pid):
            return None
        if has_direct(self.host, pid):
            return "direct-hole-punched" if peer_id in self.punches.direct else "direct"
        return "relayed"

    def admit(self, conn: Any) -> str | None:
        """Connection limits: the reason to refuse this new connection, or None to keep it."""
        network = self.host.get_network()
        total = sum(len(c or []) for c in network.connections.values())
        if total > self.cfg.max_peers:
            self.refused["refused_max_peers"] += 1
            return f"max peers ({self.cfg.max_peers})"
        ip = conn_remote_ip(conn)
        if ip is None or (not self.cfg.limit_loopback and (ip.startswith("127.") or ip == "::1")):
            return None
        same = sum(1 for conns in network.connections.values() for c in conns or [] if conn_remote_ip(c) == ip)
        if same > self.cfg.max_per_ip:
            self.refused["refused_per_ip"] += 1
            return f"max connections per IP ({self.cfg.max_per_ip}) from {ip}"
        return None

    def on_connection(self, pid: ID, conn: Any) -> None:
        """A new connection: if it is a relayed one we accepted, we are DCUtR's B and start."""
        peer_id = pid.to_base58()
        if not conn_is_relayed(conn) or peer_id in self.relay.dialing or self._nursery is None:
            return
        if has_direct(self.host, pid):
            return  # already direct
        if not self.cfg.hole_punch:
            self.punches.record(peer_id, "stayed-relayed", "hole punching off")
            return
        self._nursery.start_soon(dcutr.initiate, self.punch, peer_id)

    async def try_hole_punch(self, peer_id: str) -> None:
        """The older `/mtor/holepunch/1`, as its initiator (for a peer without DCUtR)."""
        await holepunch.hole_punch(self.punch, peer_id)

    # ---------------------------------------------------------------- what others ask for
    def public_observed_addrs(self) -> list[str]:
        return self.autonat.public_observed_addrs(self.peer_id)

    def relayed_addrs(self) -> list[str]:
        return self.relay.relayed_addrs()

    async def dial_relayed(self, peer_id: str, circuit_addrs: list[str], timeout: float = 8.0) -> bool:
        return await self.relay.dial_relayed(peer_id, circuit_addrs, timeout)

    async def exchange(self, pid: ID) -> list[tuple[str, list[str]]]:
        return await self.pex.exchange(pid)

    @property
    def holepunch(self) -> dict[str, dict]:
        return self.punches.attempts

    @property
    def counters(self) -> dict[str, int]:
        return {**self.relay.counters, **self.refused, "pex_learned": self.pex.learned,
                "autonat_served": self.autonat.served}

    # ---------------------------------------------------------------- status
    def status(self) -> dict:
        relays = self.relay.snapshot()
        if self.nat_status == "public":
            mode = "public"
        elif relays:
            mode = "relayed"
        else:
            mode = "private" if self.nat_status == "private" else "unknown"
        conns = {}
        for pid in list(self.host.get_network().connections):
            kind = self.connection_kind(pid.to_base58())
            if kind:
                conns[pid.to_base58()] = kind
        summary = mode
        if mode == "relayed":
            summary = "relayed via " + ", ".join(r["peer"] for r in relays)
        punched = sorted(p for p, k in conns.items() if k == "direct-hole-punched")
        if punched:
            summary += "; direct after a hole punch with " + ", ".join(punched)
        cfg = self.cfg
        return {
            "mode": mode,
            "summary": summary,
            "autonat": self.autonat.snapshot(),
            "relays": relays,
            "relayed_addrs": self.relayed_addrs(),
            "relay_service": {"mode": cfg.relay_service, "offering": self.relay.offering,
                              "max_reservations": cfg.relay_max_reservations,
                              "max_circuits": cfg.relay_max_circuits,
                              "duration_s": cfg.relay_duration_s, "max_bytes": cfg.relay_max_bytes,
                              "active_reservations": self.relay.active_reservations()},
            "relay_client": cfg.relay_client,
            "connections": conns,
            "hole_punch": {"enabled": cfg.hole_punch, "attempts": dict(self.punches.attempts)},
            "announce": list(cfg.announce),
            "limits": {"max_peers": cfg.max_peers, "max_per_ip": cfg.max_per_ip},
            "counters": self.counters,
        }
