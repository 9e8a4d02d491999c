"""What a Federation is built from: one frozen `FederationConfig` (with a `ReachConfig` section).

mtor_node/network.py builds it from the node's config in one place; tests build it directly.
Lists are accepted and kept as tuples, so a config cannot change under a running node.
Pure: importing this module does not load libp2p.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .realm import Realm, public_realm

if TYPE_CHECKING:
    from .intent_protocol import Limits

RELAY_SERVICE_MODES = ("auto", "on", "off")


def _freeze(obj: object, *names: str) -> None:
    for name in names:
        object.__setattr__(obj, name, tuple(getattr(obj, name) or ()))


@dataclass(frozen=True)
class ReachConfig:
    """Reachability (docs/nat.md): relay service and client, connection limits, AutoNAT, PEX."""

    relay_service: str = "auto"  # offer relay (HOP): "auto" = when AutoNAT says public
    relay_client: bool = True  # reserve a slot at a relay when not publicly reachable
    relays: tuple[str, ...] = ()  # relay multiaddrs to use first
    max_relays: int = 2  # reservations held at once
    relay_max_reservations: int = 32  # as a relay: reservations granted at once
    relay_max_circuits: int = 64  # as a relay: relayed connections at once
    relay_duration_s: int = 3600  # per relayed connection
    relay_max_bytes: int = 1 << 30  # per relayed connection
    reservation_ttl_s: int = 3600  # how long a reservation we grant lasts
    announce: tuple[str, ...] = ()  # addresses to announce instead of the listen ones
    max_peers: int = 200  # connections kept at once
    max_per_ip: int = 8  # connections from one IP
    limit_loopback: bool = False  # nodes on this machine (a local realm, tests) are not a flood from one IP
    hole_punch: bool = True  # DCUtR on relayed connections (docs/nat.md §1.3)
    pex: bool = True  # peer exchange (docs/nat.md §1.5)
    autonat_interval_s: float = 60.0  # between reachability checks once the answer is known

    def __post_init__(self) -> None:
        if self.relay_service not in RELAY_SERVICE_MODES:
            raise ValueError(f"relay_service must be one of {RELAY_SERVICE_MODES}")
        _freeze(self, "relays", "announce")


@dataclass(frozen=True)
class FederationConfig:
    """Everything a Federation needs besides its identity seed (docs/architecture.md)."""

    realm: Realm = field(default_factory=public_realm)  # whose peers we talk to (and its key)
    listen_host: str = "127.0.0.1"  # the listen address when listen_hosts is empty
    listen_port: int = 0  # 0: any free port
    listen_hosts: tuple[str, ...] = ()  # listen addresses (IPs; p2p.listen after resolve_listen)
    peers: tuple[str, ...] = ()  # multiaddrs kept connected (realm peers)
    bootstrap: tuple[str, ...] = ()  # multiaddrs joined at start; ignored with airgap
    airgap: bool = False  # dial loopback/LAN addresses only, no bootstrap, no rendezvous
    announce_interval: float = 5.0  # seconds between capability announcements
    announce_ttl: int = 30  # seconds an announcement stays valid
    limits: Limits | None = None  # intent protocol limits (None: intent_protocol.Limits())
    probe_interval: float = 10.0  # seconds between peer health probes (at most 5 s apart)
    enable_dht: bool = True  # the realm's Kademlia DHT (providers, rendezvous)
    upgrade_timeout: float = 3.0  # seconds for security + muxer negotiation of a new connection
    reach: ReachConfig = field(default_factory=ReachConfig)  # reachability section
    mdns: bool = False  # LAN discovery (docs/nat.md §1.4)
    mdns_interfaces: tuple[str, ...] = ()  # interfaces mDNS may use (names or IPs); () = listen hosts
    rendezvous: bool = False  # public rendezvous in the DHT (public realm only, never with airgap)
    rendezvous_bootstrap: tuple[str, ...] = ()  # bootstrap peers of the public rendezvous
    dns_servers: tuple[str, ...] = ()  # name servers for /dnsaddr and /dns; () = the system's
    flood_publish: bool = True  # our own announcements to every subscribed peer (federation/gossip.py)

    def __post_init__(self) -> None:
        _freeze(self, "listen_hosts", "peers", "bootstrap", "mdns_interfaces", "rendezvous_bootstrap",
                "dns_servers")
        if self.realm is None:
            object.__setattr__(self, "realm", public_realm())
        if self.reach is None:
            object.__setattr__(self, "reach", ReachConfig())
