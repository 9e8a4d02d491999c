"""The Federation facade: one object the daemon runs inside its own trio nursery."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import multiaddr
import trio
from libp2p.abc import INotifee
from libp2p.peer.id import ID
from libp2p.pubsub import pubsub as pubsub_mod
from libp2p.pubsub.gossipsub import PROTOCOL_ID as GOSSIP_V10
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11 as GOSSIP_V11
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from . import caps as caps_mod
from .budget import AddrPolicy, bound_peerstore
from .guard import StreamGuard
from .dnsaddr import DnsaddrResolver, is_dns_addr
from .gossip import FloodPublishGossipSub
from .host import full_addrs, info_from_addr, listen_multiaddr, make_host, set_safe_handler
from .intent_protocol import PROTOCOL as INTENT_PROTOCOL
from .intent_protocol import Handler, IntentClient, IntentFailed, IntentServer, Limits, OnEvent
from .keys import Signer
from .mdns import MdnsDiscovery
from .peers import PeerTable, PeerView
from .conn import direct_peers, hard_close, is_circuit
from .addrs import expand_unspecified
from .config import FederationConfig
from .errors import NetError
from .reach import Reachability
from .realm import probe_realm

log = logging.getLogger(__name__)

# GossipSub delivers to the subscription through a 32-slot channel and drops (with a warning)
# when it is full. We consume announcements in the topic validator instead and only drain the
# subscription, but make the channel larger so a burst does not even log.
pubsub_mod.SUBSCRIPTION_CHANNEL_SIZE = max(pubsub_mod.SUBSCRIPTION_CHANNEL_SIZE, 1024)

# Failures that say something about the worker's health (others, like "price", do not).
HEALTH_FAILURES = {"timeout", "disconnected", "protocol", "bad_receipt", "worker_error", "no_result"}


class _ConnWatcher(INotifee):
    def __init__(self, fed: "Federation") -> None:
        self.fed = fed

    async def opened_stream(self, network, stream) -> None:  # noqa: D401
        return None

    async def closed_stream(self, network, stream) -> None:
        return None

    async def connected(self, network, conn) -> None:
        try:
            self.fed._on_connected(conn.muxed_conn.peer_id, conn)
        except Exception:  # a notifee must never break the swarm
            log.debug("connected notifee failed", exc_info=True)

    async def disconnected(self, network, conn) -> None:
        try:
            self.fed._on_disconnected(conn.muxed_conn.peer_id)
        except Exception:
            log.debug("disconnected notifee failed", exc_info=True)

    async def listen(self, network, multiaddr) -> None:
        return None

    async def listen_close(self, network, multiaddr) -> None:
        return None


def _is_local_addr(addr: str) -> bool:
    try:
        ma = multiaddr.Multiaddr(addr)
        for proto in ("ip4", "ip6"):
            try:
                ip = ma.value_for_protocol(proto)
            except Exception:
                ip = None
            if ip:
                a = ipaddress.ip_address(ip)
                return a.is_loopback or a.is_private or a.is_link_local
    except Exception:
        return False
    return False


class Federation:
    def __init__(self, seed: bytes, config: FederationConfig | None = None) -> None:
        """`seed`: the node's identity key seed; `config`: everything else (federation/config.py)."""
        cfg = self.config = config or FederationConfig()
        self.realm = cfg.realm
        self.signer = Signer(seed)
        self.reach_config = cfg.reach
        self.host = make_host(seed, psk=self.realm.psk, upgrade_timeout=cfg.upgrade_timeout,
                              max_connections=self.reach_config.max_peers + 16)
        self.listen_host = cfg.listen_host
        self.listen_hosts = [h for h in cfg.listen_hosts if h] or [cfg.listen_host]
        self.mdns_enabled = cfg.mdns
        self.mdns_interfaces = list(cfg.mdns_interfaces)
        self.mdns: MdnsDiscovery | None = None
        # public rendezvous only for the public realm, never with airgap
        self.rendezvous_enabled = cfg.rendezvous and self.realm.is_public and not cfg.airgap
        self.rendezvous_bootstrap = list(cfg.rendezvous_bootstrap) if self.rendezvous_enabled else []
        self.rendezvous_found: dict[str, float] = {}
        self.dns = DnsaddrResolver(list(cfg.dns_servers))  # /dnsaddr, /dns4, /dns6 bootstrap and peer addresses
        self.grid_reachable: bool | None = None  # did a rendezvous bootstrap peer answer (None: not tried)
        self.listen_port = cfg.listen_port
        self.airgap = cfg.airgap
        self.configured_peers = list(cfg.peers)
        self.bootstrap = [] if cfg.airgap else list(cfg.bootstrap)
        self.announce_interval = cfg.announce_interval
        self.announce_ttl = cfg.announce_ttl
        self.probe_interval = cfg.probe_interval
        self.limits = cfg.limits or Limits()
        self.peers = PeerTable(ttl=float(self.announce_ttl))
        self.peers.pin(self.peer_id)
        # what announced addresses may be dialed, and a peerstore that never evicts the node's own
        # key or a useful peer (issue 12 #2, #4)
        self.addr_policy = AddrPolicy(self.listen_hosts, airgap=self.airgap)
        bound_peerstore(self.host.get_peerstore(), max_peers=self.peers.max_peers,
                        pinned=lambda pid: pid == self.host.get_id() or bool(self.host.get_network().connections.get(pid))
                        or self.peers.useful(pid.to_base58()),
                        last_seen=lambda pid: self.peers.last_seen(pid.to_base58()))
        self.validator = caps_mod.CapsValidator()
        self.server = IntentServer(self.signer, self.limits)
        self.client = IntentClient(self.host, self.signer.peer_id, self.limits)
        self.gossip = FloodPublishGossipSub(  # our own announcements to every subscribed peer at once
            flood_publish=cfg.flood_publish,
            protocols=[GOSSIP_V11, GOSSIP_V10],
            degree=6,
            degree_low=4,
            degree_high=12,
            heartbeat_interval=1,
            # py-libp2p's spam protection silently drops > 10 msg/s per link: our validator
            # rate-limits per origin instead. Eclipse protection wants >= 3 distinct IPs in
            # the mesh, which a LAN/loopback realm never has.
            spam_protection_enabled=False,
            eclipse_protection_enabled=False,
        )
        self.pubsub = Pubsub(
            self.host,
            self.gossip,
            strict_signing=True,
            allowed_topics={self.realm.caps_topic},
            max_inbound_rpc_size=4 * caps_mod.MAX_ANNOUNCEMENT,
        )
        self.dht = None
        self.enable_dht = cfg.enable_dht
        self._caps: dict | None = None
        self._seq = 0
        self._announce_now = trio.Event()
        self._running = False
        self._nursery: trio.Nursery | None = None
        self.join_errors: dict[str, str] = {}
        self.counters: dict[str, int] = {"routes": 0, "failovers": 0, "realm_mismatch": 0, "announced": 0}
        # the NAT protocols get the host, the realm key and callbacks, never this object (docs/nat.md)
        self.reach = Reachability(self.host, self.realm.psk, self.peer_id, self.reach_config,
                                  relay_candidates=lambda: self.configured_peers + self.bootstrap,
                                  announce_now=self.announce_now, announced_addrs=self._announced_addrs,
                                  release_pooled=self.client.reset_pooled)
        # every inbound stream (ours and py-libp2p's protocols) runs under one guard (issue 12 #1)
        self.guard = StreamGuard(self.host, on_offence=self._on_offence)
        self.guard.install()
        self.server.on_bad_frame = lambda peer, reason: self.guard.report(peer, INTENT_PROTOCOL, reason)

    def announce_now(self) -> None:
        """Announce at once (our addresses or capabilities changed)."""
        self._announce_now.set()

    def _announced_addrs(self, peer_id: str) -> list[str]:
        """The addresses peer_id announced on gossip (what PEX passes on)."""
        ann = self.peers.get(peer_id).announcement if self.peers.known(peer_id) else None
        addrs = ann.get("addrs") if isinstance(ann, dict) else None
        return [a for a in addrs if isinstance(a, str)] if isinstance(addrs, list) else []

    # ------------------------------------------------------------------ properties
    @property
    def peer_id(self) -> str:
        return self.signer.peer_id

    @property
    def listen_addrs(self) -> list[str]:
        return full_addrs(self.host) if self._running else []

    @property
    def announce_addrs(self) -> list[str]:
        """What peers are told: --announce addresses (else the listen ones), then relayed ones."""
        if not self._running:
            return []
        pid = self.peer_id
        if self.reach_config.announce:
            own = [a if "/p2p/" in a else f"{a}/p2p/{pid}" for a in self.reach_config.announce]
        else:
            own = expand_unspecified(self.listen_addrs)
            public = self.reach.public_observed_addrs()
            own = public + [a for a in own if a not in public]
        return (own + self.reach.relayed_addrs())[:16]

    def reachability(self) -> dict:
        out = self.reach.status()
        out["listen"] = self.listen_addrs
        out["announce_addrs"] = self.announce_addrs
        out["mdns"] = {"enabled": self.mdns_enabled, "interfaces": self.mdns_interfaces,
                       **(self.mdns.status() if self.mdns is not None else {})}
        out["rendezvous"] = {"enabled": self.rendezvous_enabled, "bootstrap": len(self.rendezvous_bootstrap),
                             "found": sorted(self.rendezvous_found), "grid_reachable": self.grid_reachable,
                             "bootstrap_errors": {a: self.join_errors[a] for a in self.rendezvous_bootstrap
                                                  if a in self.join_errors},
                             "dns": dict(self.dns.stats)}
        return out

    @property
    def stats(self) -> dict[str, Any]:
        return {
            "caps_accepted": self.validator.accepted,
            "caps_rejected": dict(self.validator.rejected),
            "intent_server": dict(self.server.stats),
            "intent_client": dict(self.client.stats),
            "connected_peers": len(self.host.get_network().connections),
            **self.counters,
        }

    # ------------------------------------------------------------------ application API
    def set_intent_handler(self, handler: Handler | None) -> None:
        self.server.handler = handler

    def set_capabilities(self, caps: dict) -> None:
        """Validate and store this node's capabilities; announce at once if they changed."""
        clean = caps_mod.check_capabilities(caps)
        if clean != self._caps:
            self._caps = clean
            self._announce_now.set()
            if self.dht is not None and self._nursery is not None:
                self._nursery.start_soon(self.dht.provide_caps, clean)

    def block(self, peer_id: str) -> None:
        self.peers.block(peer_id)

    def unblock(self, peer_id: str) -> None:
        self.peers.unblock(peer_id)

    def candidates(self, kind: str, model: str) -> list[str]:
        """Usable peers that announce kind/model, unordered: who, not in which order (that is
        `federation.market.route`'s, docs/protocol.md §6)."""
        return [st.peer_id for st in self.peers.serving(kind, model, exclude={self.peer_id})]

    def offers(self, kind: str | None = None) -> list[PeerView]:
        """The typed view the broker builds `market.Offer`s from: every other peer that announced
        `kind` (any kind if None), with its ask (read once per announcement) and standing."""
        return list(self.peers.views(kind, exclude={self.peer_id}))

    async def request_intent(
        self, peer_id: str, request: dict, on_event: OnEvent | None = None, timeout: float = 60.0
    ) -> dict:
        """Run one intent on one peer: the seam between the broker and the network. One attempt,
        no failover (the daemon's loop, mtor_node/network.py `run_remote`, does that); the outcome
        updates the peer's health. Raises IntentFailed (`retryable` says whether to go on)."""
        if self.peers.is_blocked(peer_id):
            raise IntentFailed("blocked", f"peer {peer_id} is blocked")
        t0 = time.monotonic()
        st = self.peers.get(peer_id)
        # a peer that never showed it can be reached gets a fast direct connect (issue 12 #3);
        # one reachable only through a relay needs the relay's round trips
        relayed = any(is_circuit(a) for a in (st.announcement or {}).get("addrs") or [])
        fast = not self.peers.is_proven(st) and not relayed
        await self.ensure_connected(peer_id, timeout=min(2.0 if fast else 10.0, timeout))
        try:
            result = await self.client.request(peer_id, request, on_event, timeout)
        except IntentFailed as exc:
            if exc.code in ("protocol", "bad_receipt"):
                self.peers.record_misbehaviour(peer_id, f"{exc.code}: {exc.message}"[:200])
            elif exc.code in HEALTH_FAILURES:
                self.peers.record_failure(peer_id, f"{exc.code}: {exc.message}"[:200])
            raise
        self.peers.record_success(peer_id)
        self.peers.get(peer_id).extra["last_job_s"] = round(time.monotonic() - t0, 4)
        return result

    async def ping(self, peer_id: str, timeout: float = 5.0) -> float:
        try:
            rtt = await self.client.ping(peer_id, timeout)
        except IntentFailed:
            self.peers.record_probe(peer_id, False)
            raise
        self.peers.record_probe(peer_id, True, rtt)
        return rtt

    async def discover(self, kind: str, model: str, timeout: float = 3.0) -> list[str]:
        """Find providers of kind/model in the DHT, connect to them, and wait (bounded) until
        their announcements make them candidates. Returns the candidates."""
        if self.dht is None:
            return self.candidates(kind, model)
        found = await self.dht.find_workers(kind, model, timeout=timeout / 2)
        async with trio.open_nursery() as n:
            for pid, addrs in found.items():
                if self.peers.is_blocked(pid):
                    continue
                self.peers.get(pid).trusted = True  # learned from the realm's DHT
                self._learn_addrs(pid, [str(a) for a in addrs])
                n.start_soon(self._quiet_connect, pid)
        with trio.move_on_after(timeout / 2):
            while not self.candidates(kind, model):
                await trio.sleep(0.05)
        return self.candidates(kind, model)

    async def _quiet_connect(self, pid: str) -> None:
        try:
            from libp2p.peer.peerinfo import PeerInfo

            peer = ID.from_base58(pid)
            with trio.move_on_after(3):
                await self.host.connect(PeerInfo(peer, self.host.get_peerstore().addrs(peer)))
        except Exception:
            log.debug("connect to %s failed", pid, exc_info=True)

    async def ensure_connected(self, peer_id: str, timeout: float = 10.0) -> bool:
        """Connected to peer_id, directly if we can, else through a relay it announced.

        py-libp2p's swarm drops /p2p-circuit addresses when it dials, so relayed addresses
        are dialed here (federation/reach.py)."""
        try:
            pid = ID.from_base58(peer_id)
        except Exception:
            return False
        if self.host.get_network().connections.get(pid):
            return True
        st = self.peers.get(peer_id) if self.peers.known(peer_id) else None
        if st is None or not st.trusted:
            # never connected, not learned from bootstrap/DHT/PEX: its announced addresses are
            # not dialed (anyone could point brokers at any host:port, issue 12 #4)
            return False
        addrs = self.addr_policy.filter((st.announcement or {}).get("addrs") or [], peer_id)
        circuits = [a for a in addrs if is_circuit(a)]
        direct = [a for a in addrs if not is_circuit(a)]
        if direct or not circuits:
            try:
                from libp2p.peer.peerinfo import PeerInfo

                with trio.move_on_after(min(timeout, 2.5) if circuits else timeout):
                    await self.host.connect(PeerInfo(pid, self.host.get_peerstore().addrs(pid)))
            except Exception as exc:
                log.debug("direct dial %s failed: %r", peer_id[:16], exc)
            if self.host.get_network().connections.get(pid):
                return True
        if circuits:
            return await self.reach.dial_relayed(peer_id, circuits, timeout=min(timeout, 8.0))
        return False

    # ------------------------------------------------------------------ connection events
    def _on_offence(self, peer: str, protocol: str, reason: str, repeat: bool) -> None:
        self.peers.record_misbehaviour(peer, reason)

    def _on_connected(self, pid: ID, conn: Any = None) -> None:
        if conn is not None:
            reason = "backed off: broke a protocol" if self.guard.is_banned(pid.to_base58()) else self.reach.admit(conn)
            if reason is not None:
                log.info("refusing connection from %s: %s", pid.to_base58()[:16], reason)
                if self._nursery is not None:
                    self._nursery.start_soon(hard_close, conn)
                return
        self.reach.poke()
        if conn is not None:
            self.reach.on_connection(pid, conn)  # DCUtR when we accepted a relayed connection
        st = self.peers.get(pid.to_base58())
        st.connected = st.trusted = True
        st.last_used = self.peers.clock()
        if self.dht is not None:
            self.dht.on_connected(pid)
        if self._nursery is not None:
            # a newcomer should not wait a whole announce interval to learn our capabilities;
            # give the pubsub hello/subscription exchange a moment first
            self._nursery.start_soon(self._announce_soon, 0.3)

    async def _announce_soon(self, delay: float) -> None:
        await trio.sleep(delay)
        self._announce_now.set()

    def _on_disconnected(self, pid: ID) -> None:
        p = pid.to_base58()
        if self.peers.known(p):
            self.peers.get(p).connected = self.host.get_network().connections.get(pid) is not None and bool(
                self.host.get_network().connections.get(pid)
            )
        self.client.forget(p)

    # ------------------------------------------------------------------ gossip
    def _validate_gossip(self, forwarder: ID, msg: Any) -> bool:
        try:
            origin = ID(msg.from_id).to_base58()
        except Exception:
            self.validator._reject("?", "malformed", "bad origin")
            return False
        if self.peers.is_blocked(origin):
            self.validator._reject(origin, "blocked")
            return False
        ann = self.validator.validate(origin, msg.data)
        if ann is None:
            return False
        if origin != self.peer_id:
            self.peers.record_announcement(origin, ann)
            if self.peers.get(origin).trusted:  # a stranger's addresses are not dialed
                self._learn_addrs(origin, ann["addrs"])
        return True

    def _learn_addrs(self, peer: str, addrs: list[str]) -> None:
        mas = []
        for a in addrs:
            if self.airgap and not _is_local_addr(a):
                continue
            full = a if "/p2p/" in a else f"{a}/p2p/{peer}"
            if is_circuit(a) or self.addr_policy.check(full, peer) is not None:
                continue  # circuits are dialed by reach.py; loopback/private only if we are on one
            try:
                ma = multiaddr.Multiaddr(a)
                mas.append(ma.decapsulate_code(multiaddr.protocols.P_P2P) if "/p2p/" in a else ma)
            except Exception:
                continue
        if mas:
            try:
                self.host.get_peerstore().add_addrs(ID.from_base58(peer), mas, self.announce_ttl * 4)
            except Exception:
                log.debug("add_addrs failed", exc_info=True)

    def _next_seq(self) -> int:
        # never below wall-clock ms, so a restarted node is not taken for a replay
        self._seq = max(self._seq + 1, int(time.time() * 1000))
        return self._seq

    async def announce(self) -> None:
        if self._caps is None:
            return
        ann = dict(self._caps)
        ann.update(node=self.peer_id, addrs=self.announce_addrs[:16], ts=time.time(), seq=self._next_seq(),
                   ttl=self.announce_ttl)
        data = caps_mod.sign_announcement(ann, self.signer)
        if len(data) > caps_mod.MAX_ANNOUNCEMENT:
            log.error("capability announcement too large (%d bytes); not sent", len(data))
            return
        await self.pubsub.publish(self.realm.caps_topic, data)
        self.counters["announced"] += 1

    async def _announcer(self) -> None:
        while True:
            with trio.move_on_after(self.announce_interval):
                await self._announce_now.wait()
            self._announce_now = trio.Event()
            try:
                await self.announce()
            except Exception:
                log.warning("announce failed", exc_info=True)
            await trio.sleep(0.02)  # coalesce bursts of set_capabilities

    async def _drain(self, sub: Any) -> None:
        # announcements are consumed in the validator; keep the subscription queue empty
        async for _ in sub:
            pass

    # ------------------------------------------------------------------ joining
    async def connect(self, addr: str, timeout: float = 5.0) -> bool:
        """Dial a peer multiaddr (with /p2p/). Checks the realm key first when we have one.
        A /dnsaddr or /dns4|6 address is resolved first (py-libp2p cannot dial those)."""
        if is_dns_addr(addr):
            return await self._connect_resolved(addr, timeout)
        try:
            info = info_from_addr(addr)
        except Exception as exc:
            self.join_errors[addr] = f"bad address: {exc}"
            return False
        if self.airgap and not _is_local_addr(addr):
            self.join_errors[addr] = "airgap: not a loopback/LAN address"
            return False
        # Probe for every realm (a public node dialing a pnet realm fails fast too).
        ok = await self._probe(addr, timeout)
        if ok is False:
            self.counters["realm_mismatch"] += 1
            self.join_errors[addr] = "realm key mismatch"
            self.peers.ban(info.peer_id.to_base58(), 60, "realm key mismatch")
            log.warning("peer %s does not use realm %r's key", addr, self.realm.name)
            return False
        try:
            with trio.fail_after(timeout):
                await self.host.connect(info)
        except Exception as exc:
            self.join_errors[addr] = f"{type(exc).__name__}: {exc}"[:200]
            return False
        self.join_errors.pop(addr, None)
        return True

    async def _connect_resolved(self, addr: str, timeout: float) -> bool:
        if self._loopback_only() and not self.dns.servers_are_local:
            # a test node, or one nobody could reach: never send DNS queries off this machine
            self.join_errors[addr] = "not resolved: the node listens on loopback only"
            return False
        try:
            with trio.fail_after(timeout):
                resolved = await self.dns.resolve(addr)
        except Exception as exc:
            self.join_errors[addr] = f"DNS: {exc}"[:200] if str(exc) else f"DNS: {type(exc).__name__}"
            return False
        if self._loopback_only():
            resolved = [a for a in resolved if _is_local_addr(a)]
        if not resolved:
            self.join_errors[addr] = "DNS: no addresses for this peer"
            return False
        tcp4 = [a for a in resolved if a.startswith("/ip4/") and "/tcp/" in a]  # what our transport dials
        for a in (tcp4 or resolved)[:4]:
            if await self.connect(a, timeout):
                self.join_errors.pop(addr, None)
                return True
            self.join_errors[addr] = f"via {a}: {self.join_errors.get(a, 'failed')}"[:200]
        return False

    def _loopback_only(self) -> bool:
        return all(h in ("127.0.0.1", "::1", "localhost") for h in self.listen_hosts)

    async def _probe(self, addr: str, timeout: float) -> bool | None:
        """True/False = same/different realm key; None = could not tell (unreachable)."""
        try:
            ma = multiaddr.Multiaddr(addr)
            ip = None
            for proto in ("ip4", "ip6", "dns4", "dns6", "dns"):
                try:
                    ip = ma.value_for_protocol(proto)
                except Exception:
                    continue
                if ip:
                    break
            port = int(ma.value_for_protocol("tcp"))
            return await probe_realm(ip, port, self.realm.psk, timeout=min(timeout, 2.0))
        except Exception:
            return None

    async def _join(self) -> None:
        addrs = self.configured_peers + self.bootstrap
        if not addrs:
            return
        async with trio.open_nursery() as n:
            for a in addrs:
                n.start_soon(self.connect, a)

    async def _maintenance(self) -> None:
        while True:
            await trio.sleep(min(self.probe_interval, 5.0))
            self.peers.expire()
            conns = self.host.get_network().connections
            # keep configured peers connected
            for a in self.configured_peers + self.bootstrap:
                try:
                    pid = info_from_addr(a).peer_id
                except Exception:
                    continue
                if not conns.get(pid) and self.join_errors.get(a) != "realm key mismatch":
                    self._nursery.start_soon(self.connect, a)
            # RTT and recovery probes
            for st in self.peers:
                if st.peer_id == self.peer_id or st.blocked:
                    continue
                if self.peers.needs_probe(st) or (st.connected and self.peers.is_fresh(st)):
                    self._nursery.start_soon(self._quiet_ping, st.peer_id)

    # ------------------------------------------------------------------ discovery
    async def _discovery(self) -> None:
        """Started after ready: mDNS (its start stalls the loop, docs/nat.md §3.4, so it runs in a
        thread), the public rendezvous, and peer exchange rounds."""
        if self.mdns_enabled and self._nursery is not None:
            self.mdns = MdnsDiscovery(self.host, peer_id=self.peer_id, realm_fingerprint=self.realm.fingerprint,
                                      listen_hosts=self.listen_hosts, listen_addrs=lambda: self.listen_addrs,
                                      interfaces=self.mdns_interfaces,
                                      should_dial=lambda pid: not self.peers.is_blocked(pid), dial=self._dial_learned)
            self._nursery.start_soon(self.mdns.run)
        if self.rendezvous_enabled and self.dht is not None and self._nursery is not None:
            self._nursery.start_soon(self._rendezvous_loop)
        if not self.reach_config.pex:
            return
        await trio.sleep(2.0)
        for i in range(10**9):
            try:
                await self._pex_round()
            except Exception:
                log.debug("peer exchange round failed", exc_info=True)
            await trio.sleep(5.0 if i < 3 else 30.0)

    def _connected_count(self) -> int:
        return sum(1 for c in self.host.get_network().connections.values() if c)

    async def _pex_round(self) -> None:
        import random

        direct = direct_peers(self.host)
        random.shuffle(direct)
        learned: dict[str, list[str]] = {}
        for pid in direct[:3]:
            try:
                for other, addrs in await self.reach.exchange(pid):
                    learned.setdefault(other, addrs)
            except NetError as exc:
                log.debug("pex with %s failed: %r", pid, exc)
        budget = 8  # new dials per round
        async with trio.open_nursery() as n:
            for other, addrs in learned.items():
                if budget <= 0 or self._connected_count() >= self.reach_config.max_peers // 2:
                    break
                if other == self.peer_id or self.peers.is_blocked(other):
                    continue
                if self.host.get_network().connections.get(ID.from_base58(other)):
                    continue
                budget -= 1
                n.start_soon(self._dial_learned, other, addrs)

    async def _dial_learned(self, peer_id: str, addrs: list[str]) -> bool:
        """Dial a peer learned from PEX, mDNS or the rendezvous (its addresses validated)."""
        direct = [a for a in addrs if not is_circuit(a)]
        circuits = [a if a.endswith(peer_id) else f"{a}/p2p/{peer_id}" for a in addrs if is_circuit(a)]
        self.peers.get(peer_id).trusted = True  # learned from a connected peer, mDNS or the rendezvous
        self._learn_addrs(peer_id, direct)
        for a in direct[:4]:
            full = a if "/p2p/" in a else f"{a}/p2p/{peer_id}"
            if await self.connect(full, timeout=3.0):
                return True
        if circuits:
            return await self.reach.dial_relayed(peer_id, circuits, timeout=6.0)
        return False

    async def _rendezvous_loop(self) -> None:
        from .dht import RENDEZVOUS_KEY

        # a loopback-only node never dials non-local bootstrap peers (names: see _connect_resolved)
        boot = [a for a in self.rendezvous_bootstrap
                if not self._loopback_only() or _is_local_addr(a) or is_dns_addr(a)]
        for i in range(10**9):
            conns = self.host.get_network().connections
            async with trio.open_nursery() as n:
                for a in boot:
                    try:
                        if not conns.get(info_from_addr(a).peer_id):
                            n.start_soon(self.connect, a, 5.0)
                    except Exception:
                        continue
            self._note_grid(boot)
            try:
                found = {}
                if self.host.get_network().connections:  # offline: nobody to ask, nothing to log
                    await self.dht.provide_key(RENDEZVOUS_KEY)
                    found = await self.dht.find_providers_of(RENDEZVOUS_KEY, timeout=4.0)
            except Exception:
                log.debug("rendezvous round failed", exc_info=True)
                found = {}
            async with trio.open_nursery() as n:
                for pid, maddrs in list(found.items())[:16]:
                    self.rendezvous_found[pid] = time.time()
                    if pid == self.peer_id or self.peers.is_blocked(pid):
                        continue
                    if self.host.get_network().connections.get(ID.from_base58(pid)):
                        continue
                    n.start_soon(self._dial_learned, pid, [str(a) for a in maddrs][:8])
            await trio.sleep(3.0 if i < 5 else 60.0)

    def _note_grid(self, boot: list[str]) -> None:
        """Say once that the public grid is unreachable (and what still works), and once when it
        is reached again; the per-address reasons are in status (`join_errors`), not the log."""
        conns = self.host.get_network().connections
        up = []
        for a in boot:
            try:
                if conns.get(info_from_addr(a).peer_id):
                    up.append(a)
            except Exception:
                continue
        reachable = bool(up) or bool(self.rendezvous_found.keys() - {self.peer_id})
        if reachable == self.grid_reachable or not boot:
            return
        if reachable:
            log.info("public grid reached: %d of %d bootstrap peers connected", len(up), len(boot))
        else:
            errs = [self.join_errors.get(a, "no answer") for a in boot]
            reasons = sorted({(e.split(": ", 1)[1] if e.startswith("via ") and ": " in e else e).split(":")[0]
                              for e in errs})
            log.warning("the public grid is unreachable (none of %d bootstrap peers answered: %s); still working: "
                        "this node's API and models, realm peers from p2p.peers, mDNS and peer exchange; "
                        "retrying quietly", len(boot), ", ".join(reasons)[:200])
        self.grid_reachable = reachable

    async def _quiet_ping(self, peer_id: str) -> None:
        try:
            await self.ping(peer_id, timeout=3.0)
        except Exception:
            pass

    # ------------------------------------------------------------------ lifecycle
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        from . import netlog

        netlog.install()  # repeated network warnings: one line per cause per minute
        set_safe_handler(self.host, INTENT_PROTOCOL, self.server.handle_stream)
        self.host.get_network().register_notifee(_ConnWatcher(self))
        async with self.host.run([listen_multiaddr(h, self.listen_port) for h in self.listen_hosts]):
            self._running = True
            try:
                async with background_trio_service(self.pubsub), background_trio_service(self.gossip):
                    await self.pubsub.wait_until_ready()
                    self.guard.guard_service(self.pubsub)
                    self.guard.guard_service(self.gossip)
                    self.pubsub.set_topic_validator(self.realm.caps_topic, self._validate_gossip, False)
                    sub = await self.pubsub.subscribe(self.realm.caps_topic)
                    try:
                        async with trio.open_nursery() as nursery:
                            self._nursery = self.guard.nursery = nursery
                            if self.enable_dht:
                                await self._start_dht(nursery)
                            await nursery.start(self.reach.run)
                            await self._join()
                            if self.dht is not None and self._caps is not None:
                                nursery.start_soon(self.dht.provide_caps, self._caps)
                            nursery.start_soon(self._drain, sub)
                            nursery.start_soon(self._announcer)
                            nursery.start_soon(self._maintenance)
                            if self._caps is not None:
                                self._announce_now.set()
                            nursery.start_soon(self._discovery)
                            task_status.started()
                            await trio.sleep_forever()
                    finally:
                        self._nursery = self.guard.nursery = None
                        with trio.CancelScope(shield=True), trio.move_on_after(3):
                            await self._shutdown()
            finally:
                self._running = False

    async def _start_dht(self, nursery: trio.Nursery) -> None:
        from .dht import RealmDHT

        # provider records carry what we announce, relayed addresses included (federation/dht.py)
        self.dht = RealmDHT(self.host, self.realm, airgap=self.airgap, advertised=lambda: self.announce_addrs)
        await nursery.start(self.dht.run)

    async def _shutdown(self) -> None:
        # Disconnect before leaving the pubsub/gossipsub service contexts: a message arriving
        # while they tear down raises "Nursery is closed to new arrivals" (py-libp2p 0.8.1).
        await self.client.close_all()
        network = self.host.get_network()
        for pid, conns in list(network.connections.items()):
            for conn in list(conns):
                await hard_close(conn)
            try:
                await self.host.disconnect(pid)
            except Exception as exc:
                log.debug("shutdown: disconnect %s failed: %r", pid, exc)
