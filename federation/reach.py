"""Reachability: AutoNAT (own dial-back), Circuit Relay v2 (py-libp2p's), hole punching, peer
exchange and connection limits. See docs/nat.md for why each piece is built the way it is.

- AutoNAT (`/mtor/autonat/1`): py-libp2p 0.8.1's AutoNAT server answers every dial-back with
  success, because it "dials" with `host.connect`, which returns at once when the requester
  is already connected -- and it always is, the request came over that connection. So we ask
  peers to open a *fresh TCP connection* to our listen port at the IP they observe for us
  (never another IP: no amplification), and read the multistream header (or pnet nonce) that a
  libp2p listener writes first. Success anywhere -> public; only failures -> private.
- Relay: py-libp2p's CircuitV2Protocol (HOP on the relay, STOP on the others) and
  CircuitV2Transport (dial through a relay, reservations) work on TCP+Noise+Yamux. Their stream
  handlers are re-registered through `safe_handler`. Outbound relayed dials are upgraded here:
  py-libp2p applies the pnet PSK to inbound relayed connections but not to outbound ones.
  The swarm drops /p2p-circuit addresses when it dials, so `ensure_connected` dials them.
- Hole punching: DCUtR (`/libp2p/dcutr`, `dcutr.py`) started by the side that accepted the
  relayed connection, as the spec says, with our TCP simultaneous open behind it; the older
  `/mtor/holepunch/1` (`holepunch.py`) is still served for older nodes.
- Peer exchange (`/mtor/pex/1`): peers tell each other the addresses of their directly
  connected peers; bounded (16 peers x 8 addrs) and validated.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import multiaddr
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from .conn import conn_is_relayed, is_circuit  # noqa: F401 - conn_is_relayed: also for reach's users
from .host import info_from_addr, set_safe_handler
from .wire import read_frame_bytes, unpack, write_frame

log = logging.getLogger(__name__)

AUTONAT_PROTOCOL = "/mtor/autonat/1"
PEX_PROTOCOL = "/mtor/pex/1"
MAX_MSG = 64 * 1024
TIMEOUT = 5.0
PEX_MAX_PEERS = 16
PEX_MAX_ADDRS = 8
MAX_ADDR_LEN = 256
RELAY_SERVICE_MODES = ("auto", "on", "off")


@dataclass
class ReachConfig:
    relay_service: str = "auto"  # offer relay (HOP): "auto" = when AutoNAT says public
    relay_client: bool = True  # reserve a slot at a relay when not publicly reachable
    relays: list[str] = field(default_factory=list)  # relay multiaddrs to use first
    max_relays: int = 2  # reservations held at once
    relay_max_reservations: int = 32
    relay_max_circuits: int = 64
    relay_duration_s: int = 3600  # per relayed connection
    relay_max_bytes: int = 1 << 30  # per relayed connection
    reservation_ttl_s: int = 3600
    announce: list[str] = field(default_factory=list)  # addresses to announce instead of the listen ones
    max_peers: int = 200
    max_per_ip: int = 8
    limit_loopback: bool = False  # nodes on this machine (a local realm, tests) are not a flood from one IP
    hole_punch: bool = True
    pex: bool = True
    autonat_interval_s: float = 60.0

    def __post_init__(self) -> None:
        if self.relay_service not in RELAY_SERVICE_MODES:
            raise ValueError(f"relay_service must be one of {RELAY_SERVICE_MODES}")


def ip_of(addr: str | multiaddr.Multiaddr) -> str | None:
    try:
        ma = addr if isinstance(addr, multiaddr.Multiaddr) else multiaddr.Multiaddr(addr)
        for proto in ("ip4", "ip6"):
            try:
                v = ma.value_for_protocol(proto)
            except Exception:
                v = None
            if v:
                return v
    except Exception:
        return None
    return None


def tcp_port_of(addr: str | multiaddr.Multiaddr) -> int | None:
    try:
        ma = addr if isinstance(addr, multiaddr.Multiaddr) else multiaddr.Multiaddr(addr)
        return int(ma.value_for_protocol("tcp"))
    except Exception:
        return None


def conn_remote_ip(conn: Any) -> str | None:
    if conn_is_relayed(conn):
        return None
    for getter in (
        lambda: conn.muxed_conn.secured_conn.get_remote_address(),
        lambda: conn.get_remote_address(),
    ):
        try:
            ra = getter()
            if ra:
                return str(ra[0])
        except Exception:
            continue
    for a in _safe(lambda: conn.get_transport_addresses(), []):
        ip = ip_of(a)
        if ip:
            return ip
    return None


def _safe(fn, default):
    try:
        return fn()
    except Exception:
        return default


def valid_peer_addr(addr: Any, *, allow_local: bool = True) -> str | None:
    """A multiaddr string we accept from a peer (PEX, mDNS): parsable, short, TCP or circuit."""
    if not isinstance(addr, str) or not addr or len(addr) > MAX_ADDR_LEN:
        return None
    try:
        ma = multiaddr.Multiaddr(addr)
    except Exception:
        return None
    names = [p.name for p in ma.protocols()]
    if "tcp" not in names and "p2p-circuit" not in names:
        return None
    ip = ip_of(ma)
    if ip:
        a = ipaddress.ip_address(ip)
        if a.is_unspecified or a.is_multicast or (a.is_loopback and not allow_local):
            return None
    return str(ma)


class Reachability:
    """Owned by a Federation; uses its host, realm and nursery."""

    def __init__(self, fed: Any, config: ReachConfig) -> None:
        self.fed = fed
        self.host = fed.host
        self.cfg = config
        self.nat_status = "unknown"  # public | private | unknown (AutoNAT)
        self.autonat: dict[str, dict] = {}  # server peer -> {ok, dialed, observed, at}
        self.observed_ips: dict[str, int] = {}
        self.reservations: dict[str, dict] = {}  # relay peer -> {addr, expires}
        self.relay_failures: dict[str, float] = {}  # relay addr -> retry-not-before (monotonic)
        self.offering_relay = False
        self.holepunch: dict[str, dict] = {}  # peer -> {result, reason, at, rtt_ms}
        self.direct_after_punch: set[str] = set()
        self._relay_dialing: set[str] = set()  # peers we are dialing through a relay (DCUtR's A side)
        self.counters = {"relay_dials": 0, "relay_dial_failures": 0, "reservations": 0,
                         "refused_per_ip": 0, "refused_max_peers": 0, "pex_learned": 0,
                         "autonat_served": 0}
        self.protocol = None
        self.transport = None
        self._wake = trio.Event()

    # ------------------------------------------------------------------ setup
    def _limits(self):
        from libp2p.relay.circuit_v2.resources import RelayLimits

        return RelayLimits(duration=int(self.cfg.relay_duration_s), data=int(self.cfg.relay_max_bytes),
                           max_circuit_conns=int(self.cfg.relay_max_circuits),
                           max_reservations=int(self.cfg.relay_max_reservations),
                           reservation_ttl=int(self.cfg.reservation_ttl_s))

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
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
        set_safe_handler(self.host, AUTONAT_PROTOCOL, self._serve_autonat)
        if self.cfg.pex:
            set_safe_handler(self.host, PEX_PROTOCOL, self._serve_pex)
        from . import holepunch

        async def serve_holepunch(stream: Any) -> None:
            await holepunch.serve(self, stream)

        set_safe_handler(self.host, holepunch.PROTOCOL, serve_holepunch)
        from . import dcutr

        async def serve_dcutr(stream: Any) -> None:
            await dcutr.serve(self, stream)

        set_safe_handler(self.host, dcutr.PROTOCOL, serve_dcutr)
        async with background_trio_service(self.protocol):
            # the protocol registered its STOP handler raw: wrap it (DESIGN §12)
            set_safe_handler(self.host, STOP_PROTOCOL_ID, self.protocol._handle_stop_stream)
            if self.cfg.relay_service == "on":
                self._set_relay_service(True)
            async with trio.open_nursery() as n:
                n.start_soon(self._loop)
                task_status.started()
                await trio.sleep_forever()

    def _set_relay_service(self, on: bool) -> None:
        from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP

        if on == self.offering_relay or self.cfg.relay_service == "off":
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
        self.offering_relay = on

    def poke(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        next_autonat = 0.0
        while True:
            with trio.move_on_after(2.0):
                await self._wake.wait()
            self._wake = trio.Event()
            now = time.monotonic()
            if now >= next_autonat and self._direct_peers():
                await self.check_reachability()
                # until known, ask again soon; then at the configured interval
                next_autonat = now + (self.cfg.autonat_interval_s if self.nat_status != "unknown" else 3.0)
            if self.cfg.relay_service == "auto":
                self._set_relay_service(self.nat_status == "public")
            if self.cfg.relay_client and self.nat_status != "public":
                await self._keep_reservations()
            elif self.nat_status == "public" and self.reservations:
                self.reservations.clear()  # reachable directly now: stop announcing relayed addrs

    # ------------------------------------------------------------------ connection bookkeeping
    def _direct_peers(self) -> list[ID]:
        out = []
        for pid, conns in list(self.host.get_network().connections.items()):
            if any(not conn_is_relayed(c) for c in conns or []):
                out.append(pid)
        return out

    def connection_kind(self, peer_id: str) -> str | None:
        try:
            conns = self.host.get_network().connections.get(ID.from_base58(peer_id)) or []
        except Exception:
            return None
        if not conns:
            return None
        if any(not conn_is_relayed(c) for c in conns):
            return "direct-hole-punched" if peer_id in self.direct_after_punch else "direct"
        return "relayed"

    def admit(self, conn: Any) -> str | None:
        """Connection limits: the reason to refuse this new connection, or None to keep it."""
        network = self.host.get_network()
        total = sum(len(c or []) for c in network.connections.values())
        if total > self.cfg.max_peers:
            self.counters["refused_max_peers"] += 1
            return f"max peers ({self.cfg.max_peers})"
        ip = conn_remote_ip(conn)
        if ip is None or (not self.cfg.limit_loopback and (ip.startswith("127.") or ip == "::1")):
            return None
        same = 0
        for conns in network.connections.values():
            for c in conns or []:
                if conn_remote_ip(c) == ip:
                    same += 1
        if same > self.cfg.max_per_ip:
            self.counters["refused_per_ip"] += 1
            return f"max connections per IP ({self.cfg.max_per_ip}) from {ip}"
        return None

    # ------------------------------------------------------------------ AutoNAT
    async def _serve_autonat(self, stream: Any) -> None:
        self.counters["autonat_served"] += 1
        req = unpack(await read_frame_bytes(stream, max_frame=MAX_MSG, timeout=TIMEOUT), MAX_MSG)
        conn = getattr(stream, "muxed_conn", None)
        observed = None
        try:
            ra = stream.get_remote_address()
            observed = str(ra[0]) if ra else None
        except Exception:
            pass
        relayed = is_circuit(_safe(lambda: stream.muxed_conn.get_transport_addresses(), [])) or (
            conn is not None and any(is_circuit(a) for a in _safe(lambda: conn.get_transport_addresses(), []))
        )
        ports = []
        if isinstance(req, dict) and isinstance(req.get("ports"), list):
            ports = [p for p in req["ports"][:8] if isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536]
        reply: dict = {"observed": observed, "ok": False, "dialed": None, "error": None}
        if relayed or not observed:
            reply["error"] = "refused: relayed connection or unknown remote address"
        elif not ports:
            reply["error"] = "no ports"
        else:
            from .realm import probe_realm

            for port in dict.fromkeys(ports):
                try:
                    # a fresh connection to the IP we see, never another one (no amplification)
                    if await probe_realm(observed, port, self.fed.realm.psk, timeout=2.0):
                        reply.update(ok=True, dialed=f"{observed}:{port}")
                        break
                except BaseException as exc:  # noqa: BLE001 - unreachable is the answer
                    if isinstance(exc, trio.Cancelled):
                        raise
                    reply["error"] = f"{type(exc).__name__}"
        await write_frame(stream, reply, max_frame=MAX_MSG, timeout=TIMEOUT)
        await stream.close()

    def _listen_ports(self) -> list[int]:
        ports = []
        for a in list(self.host.get_addrs()) + [multiaddr.Multiaddr(x) for x in self.cfg.announce if not is_circuit(x)]:
            p = tcp_port_of(a)
            if p and p not in ports:
                ports.append(p)
        return ports[:8]

    async def _ask_autonat(self, pid: ID) -> None:
        key = pid.to_base58()
        try:
            with trio.fail_after(TIMEOUT + 3):
                stream = await self.host.new_stream(pid, [TProtocol(AUTONAT_PROTOCOL)])
                try:
                    await write_frame(stream, {"ports": self._listen_ports()}, max_frame=MAX_MSG, timeout=TIMEOUT)
                    reply = unpack(await read_frame_bytes(stream, max_frame=MAX_MSG, timeout=TIMEOUT), MAX_MSG)
                finally:
                    try:
                        await stream.close()
                    except Exception:
                        pass
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, trio.Cancelled):
                raise
            log.debug("autonat ask %s failed: %r", key[:16], exc)
            return
        if not isinstance(reply, dict):
            return
        err = reply.get("error")
        if isinstance(err, str) and err.startswith("refused"):
            return  # that server could not judge (relayed connection)
        obs = reply.get("observed") if isinstance(reply.get("observed"), str) else None
        self.autonat[key] = {"ok": bool(reply.get("ok")), "dialed": reply.get("dialed") if isinstance(reply.get("dialed"), str) else None,
                             "observed": obs, "at": time.time()}
        if obs:
            self.observed_ips[obs] = self.observed_ips.get(obs, 0) + 1

    async def check_reachability(self) -> str:
        servers = [p for p in self._direct_peers()][:4]
        async with trio.open_nursery() as n:
            for pid in servers:
                n.start_soon(self._ask_autonat, pid)
        recent = [r for r in self.autonat.values() if time.time() - r["at"] < 3 * self.cfg.autonat_interval_s + 30]
        if any(r["ok"] for r in recent):
            status = "public"
        elif recent:
            status = "private"
        else:
            status = self.nat_status
        if status != self.nat_status:
            log.info("reachability: %s -> %s", self.nat_status, status)
            self.nat_status = status
            self.fed._announce_now.set()
        return status

    # ------------------------------------------------------------------ relay client
    def _relay_candidates(self) -> list[str]:
        """Relay multiaddrs (with /p2p/): configured relays first, then configured peers and
        bootstrap peers, then any directly connected peer we know a dialable address of."""
        out = []
        for a in list(self.cfg.relays) + list(self.fed.configured_peers) + list(self.fed.bootstrap):
            if "/p2p/" in a and not is_circuit(a) and a not in out:
                out.append(a)
        ps = self.host.get_peerstore()
        for pid in self._direct_peers():
            for ma in _safe(lambda: ps.addrs(pid), []):
                s = str(ma)
                if is_circuit(s) or not tcp_port_of(s):
                    continue
                full = s if "/p2p/" in s else f"{s}/p2p/{pid.to_base58()}"
                if full not in out:
                    out.append(full)
        return out

    async def _keep_reservations(self) -> None:
        now = time.time()
        for rid, r in list(self.reservations.items()):
            conns = _safe(lambda: self.host.get_network().connections.get(ID.from_base58(rid)), None)
            if r["expires"] - now < 60 or not conns:
                self.reservations.pop(rid, None)  # re-reserve below (also after the relay went away)
                self.fed._announce_now.set()
        if len(self.reservations) >= self.cfg.max_relays:
            return
        for addr in self._relay_candidates():
            if len(self.reservations) >= self.cfg.max_relays:
                break
            try:
                rid = info_from_addr(addr).peer_id.to_base58()
            except Exception:
                continue
            if rid in self.reservations or rid == self.fed.peer_id:
                continue
            if self.relay_failures.get(addr, 0) > time.monotonic():
                continue
            ok = await self._reserve(addr)
            if not ok:
                self.relay_failures[addr] = time.monotonic() + 10.0

    async def _reserve(self, addr: str) -> bool:
        from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP

        try:
            info = info_from_addr(addr)
            with trio.fail_after(8):
                await self.host.connect(info)
                stream = await self.host.new_stream(info.peer_id, [HOP])
                try:
                    ok = await self.transport._make_reservation(stream, info.peer_id)
                finally:
                    try:
                        await stream.close()
                    except Exception:
                        pass
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, trio.Cancelled):
                raise
            log.debug("reservation at %s failed: %r", addr, exc)
            return False
        if not ok:
            return False
        rid = info.peer_id.to_base58()
        expires = self.transport._reservations.get(info.peer_id) or (time.time() + 600)
        base = addr.split("/p2p/")[0]
        self.reservations[rid] = {"addr": f"{base}/p2p/{rid}", "expires": float(expires), "since": time.time()}
        self.counters["reservations"] += 1
        log.info("reserved a relay slot at %s (expires in %.0f s)", rid[:16], expires - time.time())
        self.fed._announce_now.set()
        return True

    def public_observed_addrs(self) -> list[str]:
        """When AutoNAT says public through an address other than ours (a forwarded port):
        the dialed-back address, so peers learn it."""
        if self.nat_status != "public":
            return []
        local = set(local_ipv4s())
        out = []
        for r in self.autonat.values():
            d = r.get("dialed")
            if r.get("ok") and d and ":" in d:
                ip, port = d.rsplit(":", 1)
                if ip not in local:
                    a = f"/ip4/{ip}/tcp/{port}/p2p/{self.fed.peer_id}"
                    if a not in out:
                        out.append(a)
        return out[:2]

    def relayed_addrs(self) -> list[str]:
        me = self.fed.peer_id
        return [f"{r['addr']}/p2p-circuit/p2p/{me}" for r in self.reservations.values()]

    # ------------------------------------------------------------------ dialing through relays
    async def dial_relayed(self, peer_id: str, circuit_addrs: list[str], timeout: float = 8.0) -> bool:
        from libp2p.security.pnet.protector import new_protected_conn

        dest = ID.from_base58(peer_id)
        self._relay_dialing.add(peer_id)
        try:
            return await self._dial_relayed(dest, peer_id, circuit_addrs, timeout)
        finally:
            self._relay_dialing.discard(peer_id)

    async def _dial_relayed(self, dest: ID, peer_id: str, circuit_addrs: list[str], timeout: float) -> bool:
        from libp2p.security.pnet.protector import new_protected_conn

        for addr in circuit_addrs[:4]:
            try:
                relay_part = addr.split("/p2p-circuit")[0]
                relay_info = info_from_addr(relay_part)
                if relay_info.peer_id.to_base58() == self.fed.peer_id:
                    continue
                self.counters["relay_dials"] += 1
                with trio.fail_after(timeout):
                    raw = await self.transport.dial_peer_info(PeerInfo(dest, []), relay_info=relay_info)
                    if self.fed.realm.psk is not None:
                        # py-libp2p protects inbound relayed connections with the PSK but not
                        # outbound ones: do it here or the two sides never agree
                        raw = new_protected_conn(raw, self.fed.realm.psk.hex())
                    await self.host.upgrade_outbound_connection(raw, dest)
                log.info("connected to %s via relay %s", peer_id[:16], relay_info.peer_id.to_base58()[:16])
                return True  # DCUtR's A: the other side opens /libp2p/dcutr (on_connection)
            except BaseException as exc:  # noqa: BLE001
                if isinstance(exc, trio.Cancelled):
                    raise
                self.counters["relay_dial_failures"] += 1
                log.debug("relayed dial %s failed: %r", addr, exc)
        return False

    # ------------------------------------------------------------------ hole punching
    def on_connection(self, pid: ID, conn: Any) -> None:
        """A new connection: if it is a relayed one we accepted, we are DCUtR's B and start."""
        peer_id = pid.to_base58()
        if not conn_is_relayed(conn) or peer_id in self._relay_dialing or self.fed._nursery is None:
            return
        if any(not conn_is_relayed(c) for c in self.host.get_network().connections.get(pid) or []):
            return  # already direct
        if not self.cfg.hole_punch:
            from .holepunch import record_outcome

            record_outcome(self, peer_id, "stayed-relayed", "hole punching off")
            return
        from .dcutr import initiate

        self.fed._nursery.start_soon(initiate, self, peer_id)

    async def try_hole_punch(self, peer_id: str) -> None:
        from .holepunch import hole_punch

        await hole_punch(self, peer_id, initiator=True)

    # ------------------------------------------------------------------ peer exchange
    def _pex_entries(self, exclude: ID) -> list[dict]:
        ps = self.host.get_peerstore()
        out = []
        for pid in self.host.get_network().connections:
            if pid == exclude or len(out) >= PEX_MAX_PEERS:
                continue
            addrs = []
            for ma in _safe(lambda: ps.addrs(pid), []):
                s = valid_peer_addr(str(ma))
                if s and s not in addrs:
                    addrs.append(s)
            st = self.fed.peers._peers.get(pid.to_base58())
            ann = getattr(st, "announcement", None) or {}
            for a in ann.get("addrs", []) if isinstance(ann, dict) else []:
                a = a.split("/p2p/" + pid.to_base58())[0] if a.endswith(pid.to_base58()) else a
                s = valid_peer_addr(a)
                if s and s not in addrs:
                    addrs.append(s)
            if addrs:
                out.append({"id": pid.to_base58(), "addrs": addrs[:PEX_MAX_ADDRS]})
        return out

    async def _serve_pex(self, stream: Any) -> None:
        await read_frame_bytes(stream, max_frame=1024, timeout=TIMEOUT)
        await write_frame(stream, {"peers": self._pex_entries(stream.muxed_conn.peer_id)}, max_frame=MAX_MSG, timeout=TIMEOUT)
        await stream.close()

    async def exchange(self, pid: ID) -> list[tuple[str, list[str]]]:
        """Ask a peer for its peers; validated (peer id, addrs) pairs, at most PEX_MAX_PEERS."""
        with trio.fail_after(TIMEOUT + 3):
            stream = await self.host.new_stream(pid, [TProtocol(PEX_PROTOCOL)])
            try:
                await write_frame(stream, {"want": PEX_MAX_PEERS}, max_frame=1024, timeout=TIMEOUT)
                reply = unpack(await read_frame_bytes(stream, max_frame=MAX_MSG, timeout=TIMEOUT), MAX_MSG)
            finally:
                try:
                    await stream.close()
                except Exception:
                    pass
        out = []
        peers = reply.get("peers") if isinstance(reply, dict) else None
        for entry in (peers if isinstance(peers, list) else [])[:PEX_MAX_PEERS]:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                continue
            try:
                other = ID.from_base58(entry["id"])
            except Exception:
                continue
            if other == self.host.get_id():
                continue
            addrs = [a for a in (valid_peer_addr(x) for x in
                                 (entry.get("addrs") if isinstance(entry.get("addrs"), list) else [])[:PEX_MAX_ADDRS]) if a]
            if addrs:
                out.append((entry["id"], addrs))
        self.counters["pex_learned"] += len(out)
        return out

    # ------------------------------------------------------------------ status
    def status(self) -> dict:
        relays = [{"peer": rid, "addr": r["addr"], "expires_in_s": round(r["expires"] - time.time())}
                  for rid, r in self.reservations.items()]
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
        return {
            "mode": mode,
            "summary": summary,
            "autonat": {"status": self.nat_status, "answers": dict(self.autonat),
                        "observed_ips": dict(self.observed_ips)},
            "relays": relays,
            "relayed_addrs": self.relayed_addrs(),
            "relay_service": {"mode": self.cfg.relay_service, "offering": self.offering_relay,
                              "max_reservations": self.cfg.relay_max_reservations,
                              "max_circuits": self.cfg.relay_max_circuits,
                              "duration_s": self.cfg.relay_duration_s, "max_bytes": self.cfg.relay_max_bytes,
                              "active_reservations": _safe(lambda: len(self.protocol.resource_manager._reservations), 0)},
            "relay_client": self.cfg.relay_client,
            "connections": conns,
            "hole_punch": {"enabled": self.cfg.hole_punch, "attempts": dict(self.holepunch)},
            "announce": list(self.cfg.announce),
            "limits": {"max_peers": self.cfg.max_peers, "max_per_ip": self.cfg.max_per_ip},
            "counters": dict(self.counters),
        }


def _ipv4s_by_iface() -> dict[str, list[str]]:
    """Interface name -> IPv4 addresses, on every OS (ifaddr, which zeroconf brings; no fcntl
    ioctl, so Windows starts too). Windows adapters answer to their friendly name as well."""
    import ifaddr

    out: dict[str, list[str]] = {}
    for ad in ifaddr.get_adapters():
        ips = [ip.ip for ip in ad.ips if isinstance(ip.ip, str)]
        for name in dict.fromkeys([ad.name, ad.nice_name]):
            out.setdefault(name, []).extend(ips)
    return out


def iface_ipv4(name: str) -> str | None:
    """IPv4 address of a network interface by name, or None."""
    try:
        ips = _ipv4s_by_iface().get(name) or []
    except OSError:
        return None
    return ips[0] if ips else None


def resolve_listen(items: list[str]) -> list[str]:
    """Listen entries are IP addresses or interface names; names become their IPv4 address.
    An unknown name is an error (listening somewhere else than asked is worse than not starting)."""
    out = []
    for item in items or []:
        try:
            ipaddress.ip_address(item)
            out.append(item)
            continue
        except ValueError:
            pass
        ip = iface_ipv4(item)
        if ip is None:
            raise ValueError(f"p2p.listen: {item!r} is neither an IP address nor an interface with an IPv4 address")
        out.append(ip)
    return out


def local_ipv4s() -> list[str]:
    """IPv4 addresses of this machine's interfaces, loopback last."""
    out = []
    try:
        by_iface = _ipv4s_by_iface()
    except OSError:
        by_iface = {}
    for ips in by_iface.values():
        for ip in ips:
            if ip not in out:
                out.append(ip)
    return sorted(out, key=lambda ip: ipaddress.ip_address(ip).is_loopback)


def expand_unspecified(addrs: list[str]) -> list[str]:
    """/ip4/0.0.0.0/... means every interface: announce each interface address instead
    (loopback only when there is nothing else)."""
    out = []
    ips = None
    for a in addrs:
        if "/ip4/0.0.0.0/" not in a:
            out.append(a)
            continue
        if ips is None:
            ips = local_ipv4s()
            non_lo = [ip for ip in ips if not ipaddress.ip_address(ip).is_loopback]
            ips = non_lo or ips
        out += [a.replace("/ip4/0.0.0.0/", f"/ip4/{ip}/") for ip in ips]
    return list(dict.fromkeys(out))
