"""AutoNAT (`/mtor/autonat/1`): are we reachable from outside? Our own dial-back (docs/nat.md §1.1).

py-libp2p 0.8.1's AutoNAT server answers every dial-back with success, because it "dials" with
`host.connect`, which returns at once when the requester is already connected -- and it always
is, the request came over that connection. So we ask peers to open a *fresh TCP connection* to
our listen port at the IP they observe for us (never another IP: no amplification), and read the
multistream header (or pnet nonce) that a libp2p listener writes first. Success anywhere ->
public; only failures -> private.

Takes the host, the realm key and two callbacks (our listen ports; a status change), never the
Federation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from .addrs import local_ipv4s
from .conn import is_circuit
from .errors import NetError, map_libp2p_errors
from .realm import probe_realm
from .wire import read_frame_bytes, unpack, write_frame

log = logging.getLogger(__name__)

PROTOCOL = "/mtor/autonat/1"
MAX_MSG = 64 * 1024
TIMEOUT = 5.0
MAX_PORTS = 8  # ports a requester may ask us to dial back
MAX_SERVERS = 4  # peers asked per check
MIN_IDENTIFY_OBSERVERS = 2  # distinct peers that must agree on our IP in identify (public_ip's fallback)


def _ip4_of(addr: str) -> str | None:
    """"1.2.3.4" for "/ip4/1.2.3.4/tcp/5" (IPv4 only, as hole punching), else None."""
    parts = addr.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "ip4" else None


def _transport_addrs(conn: Any) -> list:
    try:
        return list(conn.get_transport_addresses() or [])
    except Exception:
        return []


class AutoNAT:
    """Client and server. `status` is public | private | unknown."""

    def __init__(self, host: Any, psk: bytes | None, *, listen_ports: Callable[[], list[int]],
                 on_change: Callable[[str], None], interval_s: float = 60.0) -> None:
        self.host = host
        self.psk = psk  # the realm key: a dial-back checks the realm too
        self.listen_ports = listen_ports
        self.on_change = on_change
        self.interval_s = interval_s
        self.status = "unknown"
        self.answers: dict[str, dict] = {}  # server peer -> {ok, dialed, observed, at}
        self.observed_ips: dict[str, int] = {}  # our IP as servers saw it -> how often
        self.served = 0

    # ---------------------------------------------------------------- server
    async def serve(self, stream: Any) -> None:
        self.served += 1
        req = unpack(await read_frame_bytes(stream, max_frame=MAX_MSG, timeout=TIMEOUT), MAX_MSG)
        conn = getattr(stream, "muxed_conn", None)
        observed = None
        try:
            ra = stream.get_remote_address()
            observed = str(ra[0]) if ra else None
        except Exception:
            pass
        relayed = conn is not None and any(is_circuit(a) for a in _transport_addrs(conn))
        ports: list[int] = []
        if isinstance(req, dict) and isinstance(req.get("ports"), list):
            ports = [p for p in req["ports"][:MAX_PORTS]
                     if isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536]
        reply: dict = {"observed": observed, "ok": False, "dialed": None, "error": None}
        if relayed or not observed:
            reply["error"] = "refused: relayed connection or unknown remote address"
        elif not ports:
            reply["error"] = "no ports"
        else:
            for port in dict.fromkeys(ports):
                try:
                    # a fresh connection to the IP we see, never another one (no amplification)
                    with map_libp2p_errors():
                        ok = await probe_realm(observed, port, self.psk, timeout=2.0)
                except NetError as exc:  # unreachable is the answer
                    reply["error"] = exc.cause_name
                    continue
                if ok:
                    reply.update(ok=True, dialed=f"{observed}:{port}")
                    break
        await write_frame(stream, reply, max_frame=MAX_MSG, timeout=TIMEOUT)
        await stream.close()

    # ---------------------------------------------------------------- client
    async def ask(self, pid: ID) -> None:
        key = pid.to_base58()
        try:
            with map_libp2p_errors(), trio.fail_after(TIMEOUT + 3):
                stream = await self.host.new_stream(pid, [TProtocol(PROTOCOL)])
                try:
                    await write_frame(stream, {"ports": self.listen_ports()[:MAX_PORTS]},
                                      max_frame=MAX_MSG, timeout=TIMEOUT)
                    reply = unpack(await read_frame_bytes(stream, max_frame=MAX_MSG, timeout=TIMEOUT), MAX_MSG)
                finally:
                    with trio.move_on_after(1):
                        try:
                            await stream.close()
                        except Exception:
                            pass
        except NetError as exc:
            log.debug("autonat ask %s failed: %s", key[:16], exc)
            return
        if not isinstance(reply, dict):
            return
        err = reply.get("error")
        if isinstance(err, str) and err.startswith("refused"):
            return  # that server could not judge (relayed connection)
        obs = reply.get("observed") if isinstance(reply.get("observed"), str) else None
        self.answers[key] = {"ok": bool(reply.get("ok")),
                             "dialed": reply.get("dialed") if isinstance(reply.get("dialed"), str) else None,
                             "observed": obs, "at": time.time()}
        if obs:
            self.observed_ips[obs] = self.observed_ips.get(obs, 0) + 1

    async def check(self, servers: list[ID]) -> str:
        """Ask up to MAX_SERVERS peers at once; public if any recent answer dialed us back."""
        async with trio.open_nursery() as n:
            for pid in servers[:MAX_SERVERS]:
                n.start_soon(self.ask, pid)
        recent = [r for r in self.answers.values() if time.time() - r["at"] < 3 * self.interval_s + 30]
        if any(r["ok"] for r in recent):
            status = "public"
        elif recent:
            status = "private"
        else:
            status = self.status
        if status != self.status:
            log.info("reachability: %s -> %s", self.status, status)
            self.status = status
            self.on_change(status)
        return status

    # ---------------------------------------------------------------- what it tells others
    def public_ip(self) -> str | None:
        """Our public IP as servers observed it most often (what a hole punch announces); without
        an answer to /mtor/autonat/1, the IP that identify's observed addresses agree on."""
        if not self.observed_ips:
            return self.identify_observed_ip()
        return max(self.observed_ips.items(), key=lambda kv: kv[1])[0]

    def identify_observed_ip(self, min_observers: int = MIN_IDENTIFY_OBSERVERS) -> str | None:
        """The IP at least `min_observers` distinct peers (by their IP) reported for us in
        identify. Peers of other implementations (the js-libp2p bootstrap of
        tests/interop/test_js_grid.py, any public DHT node) do not speak /mtor/autonat/1, so a
        NATed node that meets only them never had a public IP to offer in DCUtR. py-libp2p's
        ObservedAddrManager records identify's observations (not over relayed connections, not
        loopback) but only confirms an ip:port 4 observers agree on, and behind a NAT each
        outbound connection is seen from another port: we count per IP. No public API for the
        raw observations: `_observed_addr_manager._external_addrs` (local -> external ->
        observer group -> count)."""
        manager = getattr(self.host, "_observed_addr_manager", None)
        table = getattr(manager, "_external_addrs", None)
        if not isinstance(table, dict):
            return None
        observers: dict[str, set[str]] = {}
        for ext_map in list(table.values()):
            for ext, groups in list(ext_map.items()):
                ip = _ip4_of(str(ext))
                if ip:
                    observers.setdefault(ip, set()).update(groups)
        best = max(observers.items(), key=lambda kv: len(kv[1]), default=None)
        return best[0] if best and len(best[1]) >= min_observers else None

    def public_observed_addrs(self, peer_id: str) -> list[str]:
        """When public through an address other than ours (a forwarded port): the dialed-back
        address, so peers learn it."""
        if self.status != "public":
            return []
        local = set(local_ipv4s())
        out: list[str] = []
        for r in self.answers.values():
            d = r.get("dialed")
            if r.get("ok") and d and ":" in d:
                ip, port = d.rsplit(":", 1)
                if ip not in local:
                    a = f"/ip4/{ip}/tcp/{port}/p2p/{peer_id}"
                    if a not in out:
                        out.append(a)
        return out[:2]

    def snapshot(self) -> dict:
        return {"status": self.status, "answers": dict(self.answers), "observed_ips": dict(self.observed_ips)}
