"""Circuit Relay v2: the service (HOP) when we are public, reservations when we are not, and
dialing peers through a relay (docs/nat.md §1.2).

py-libp2p's CircuitV2Protocol (HOP on the relay, STOP on the others) and CircuitV2Transport (dial
through a relay, reservations) work on TCP+Noise+Yamux; this module drives them. Their stream
handlers are re-registered through the stream guard (`set_safe_handler`). Outbound relayed dials
are upgraded here: py-libp2p applies the pnet PSK to inbound relayed connections but not to
outbound ones. The swarm drops /p2p-circuit addresses when it dials, so `dial_relayed` dials them.

py-libp2p 0.8.1 has no public API for three things used below: the raw HOP/STOP stream handlers,
making one reservation, and its reservation table; those attributes are named where used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from .addrs import tcp_port_of
from .config import ReachConfig
from .conn import connections_to, direct_peers, is_circuit
from .errors import NetError, map_libp2p_errors
from .host import info_from_addr, set_safe_handler

log = logging.getLogger(__name__)

RESERVE_TIMEOUT = 8.0
RETRY_AFTER_S = 10.0  # a relay that refused a reservation is not asked again for this long
MAX_CIRCUIT_TRIES = 4  # circuit addresses tried per relayed dial


@dataclass
class Reservation:
    addr: str  # the relay's multiaddr with /p2p/
    expires: float  # wall clock
    since: float = field(default_factory=time.time)


class Relay:
    """Relay service and client over one host. `candidates()` gives relay multiaddrs to try
    (configured peers, bootstrap); `on_addrs_changed()` is called when our relayed addresses
    change (the Federation re-announces)."""

    def __init__(self, host: Any, psk: bytes | None, peer_id: str, cfg: ReachConfig, *,
                 candidates: Callable[[], list[str]], on_addrs_changed: Callable[[], None]) -> None:
        self.host = host
        self.psk = psk
        self.peer_id = peer_id
        self.cfg = cfg
        self.candidates = candidates
        self.on_addrs_changed = on_addrs_changed
        self.reservations: dict[str, Reservation] = {}  # relay peer -> reservation
        self.failures: dict[str, float] = {}  # relay addr -> retry-not-before (monotonic)
        self.offering = False
        self.dialing: set[str] = set()  # peers we are dialing through a relay (DCUtR's A side)
        self.counters = {"relay_dials": 0, "relay_dial_failures": 0, "reservations": 0}
        self.protocol: Any = None
        self.transport: Any = None

    def _limits(self) -> Any:
        from libp2p.relay.circuit_v2.resources import RelayLimits

        return RelayLimits(duration=int(self.cfg.relay_duration_s), data=int(self.cfg.relay_max_bytes),
                           max_circuit_conns=int(self.cfg.relay_max_circuits),
                           max_reservations=int(self.cfg.relay_max_reservations),
                           reservation_ttl=int(self.cfg.reservation_ttl_s))

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve STOP (and HOP when configured "on") until cancelled."""
        from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
        from libp2p.relay.circuit_v2.protocol import STOP_PROTOCOL_ID, CircuitV2Protocol
        from libp2p.relay.circuit_v2.transport import CircuitV2Transport
        from libp2p.tools.anyio_service import background_trio_service

        limits = self._limits()
        self.protocol = CircuitV2Protocol(self.host, limits=limits, allow_hop=False)
        # roles without CLIENT: the transport would otherwise make a reservation at the relay
        # on every dial; we reserve explicitly, only when we are not reachable.
        self.transport = CircuitV2Transport(self.host, self.protocol,
                                            RelayConfig(roles=RelayRole.STOP, limits=limits))
        async with background_trio_service(self.protocol):
            # the protocol registered its STOP handler raw: wrap it (federation/guard.py)
            set_safe_handler(self.host, STOP_PROTOCOL_ID, self.protocol._handle_stop_stream)
            if self.cfg.relay_service == "on":
                self.set_service(True)
            task_status.started()
            await trio.sleep_forever()

    # ---------------------------------------------------------------- service (HOP)
    def set_service(self, on: bool) -> None:
        from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP

        if on == self.offering or self.cfg.relay_service == "off":
            return
        if on:
            set_safe_handler(self.host, HOP, self.protocol._handle_hop_stream)
            log.info("offering relay service (reservations %d, circuits %d, %d s, %d bytes)",
                     self.cfg.relay_max_reservations, self.cfg.relay_max_circuits,
                     self.cfg.relay_duration_s, self.cfg.relay_max_bytes)
        else:
            try:
                self.host.remove_stream_handler(HOP)
            except Exception:
                pass
        self.offering = on

    def active_reservations(self) -> int:
        """Reservations we granted as a relay (py-libp2p keeps them in its resource manager)."""
        try:
            return len(self.protocol.resource_manager._reservations)
        except Exception:
            return 0

    # ---------------------------------------------------------------- client (reservations)
    def relay_addrs(self) -> list[str]:
        """Relay multiaddrs (with /p2p/): the configured relays, then `candidates()`, then any
        directly connected peer we know a dialable address of."""
        out: list[str] = []
        for a in list(self.cfg.relays) + list(self.candidates()):
            if "/p2p/" in a and not is_circuit(a) and a not in out:
                out.append(a)
        ps = self.host.get_peerstore()
        for pid in direct_peers(self.host):
            try:
                known = list(ps.addrs(pid))
            except Exception:
                known = []
            for ma in known:
                s = str(ma)
                if is_circuit(s) or not tcp_port_of(s):
                    continue
                full = s if "/p2p/" in s else f"{s}/p2p/{pid.to_base58()}"
                if full not in out:
                    out.append(full)
        return out

    async def keep_reservations(self) -> None:
        now = time.time()
        for rid, r in list(self.reservations.items()):
            if r.expires - now < 60 or not connections_to(self.host, ID.from_base58(rid)):
                self.reservations.pop(rid, None)  # re-reserve below (also after the relay went away)
                self.on_addrs_changed()
        if len(self.reservations) >= self.cfg.max_relays:
            return
        for addr in self.relay_addrs():
            if len(self.reservations) >= self.cfg.max_relays:
                break
            try:
                rid = info_from_addr(addr).peer_id.to_base58()
            except Exception:
                continue
            if rid in self.reservations or rid == self.peer_id:
                continue
            if self.failures.get(addr, 0) > time.monotonic():
                continue
            if not await self.reserve(addr):
                self.failures[addr] = time.monotonic() + RETRY_AFTER_S

    def drop_reservations(self) -> None:
        """Reachable directly now: stop announcing relayed addresses."""
        self.reservations.clear()

    async def reserve(self, addr: str) -> bool:
        """Reserve a slot at the relay `addr` (with /p2p/)."""
        from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP

        try:
            with map_libp2p_errors(), trio.fail_after(RESERVE_TIMEOUT):
                info = info_from_addr(addr)
                await self.host.connect(info)
                stream = await self.host.new_stream(info.peer_id, [HOP])
                try:
                    ok = await self.transport._make_reservation(stream, info.peer_id)  # no public API
                finally:
                    try:
                        await stream.close()
                    except Exception:
                        pass
        except NetError as exc:
            log.debug("reservation at %s failed: %s", addr, exc)
            return False
        if not ok:
            return False
        rid = info.peer_id.to_base58()
        expires = self.transport._reservations.get(info.peer_id) or (time.time() + 600)
        base = addr.split("/p2p/")[0]
        self.reservations[rid] = Reservation(f"{base}/p2p/{rid}", float(expires))
        self.counters["reservations"] += 1
        log.info("reserved a relay slot at %s (expires in %.0f s)", rid[:16], expires - time.time())
        self.on_addrs_changed()
        return True

    def relayed_addrs(self) -> list[str]:
        return [f"{r.addr}/p2p-circuit/p2p/{self.peer_id}" for r in self.reservations.values()]

    # ---------------------------------------------------------------- dialing through relays
    async def dial_relayed(self, peer_id: str, circuit_addrs: list[str], timeout: float = 8.0) -> bool:
        """Connect to peer_id through one of its circuit addresses; True when connected."""
        self.dialing.add(peer_id)
        try:
            dest = ID.from_base58(peer_id)
            for addr in circuit_addrs[:MAX_CIRCUIT_TRIES]:
                if await self._dial_one(dest, peer_id, addr, timeout):
                    return True  # DCUtR's A: the other side opens /libp2p/dcutr
            return False
        finally:
            self.dialing.discard(peer_id)

    async def _dial_one(self, dest: ID, peer_id: str, addr: str, timeout: float) -> bool:
        from libp2p.security.pnet.protector import new_protected_conn

        try:
            relay_info = info_from_addr(addr.split("/p2p-circuit")[0])
        except Exception as exc:
            self.counters["relay_dial_failures"] += 1
            log.debug("relayed dial %s: bad address: %r", addr, exc)
            return False
        if relay_info.peer_id.to_base58() == self.peer_id:
            return False
        self.counters["relay_dials"] += 1
        try:
            with map_libp2p_errors(), trio.fail_after(timeout):
                raw = await self.transport.dial_peer_info(PeerInfo(dest, []), relay_info=relay_info)
                if self.psk is not None:
                    # py-libp2p protects inbound relayed connections with the PSK but not
                    # outbound ones: do it here or the two sides never agree
                    raw = new_protected_conn(raw, self.psk.hex())
                await self.host.upgrade_outbound_connection(raw, dest)
        except NetError as exc:
            self.counters["relay_dial_failures"] += 1
            log.debug("relayed dial %s failed: %s", addr, exc)
            return False
        log.info("connected to %s via relay %s", peer_id[:16], relay_info.peer_id.to_base58()[:16])
        return True

    def snapshot(self) -> list[dict]:
        return [{"peer": rid, "addr": r.addr, "expires_in_s": round(r.expires - time.time())}
                for rid, r in self.reservations.items()]
