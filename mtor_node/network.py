"""The node in the realm: runs the libp2p layer (federation.Federation, built from the config in
one place), announces what the local worker serves and at what price, and wires the services
that do the rest, each with narrow collaborators (docs/architecture.md):

  PeerWork      (peer_work.py)       the worker side: a peer's intent admitted and run locally
  RemoteRouter  (remote_router.py)   the broker side: plan, quote, run on a peer with failover
  Payments      (payments.py)        holds, receipts, pay and earn entries, fraud proofs
  Settler       (settlement.py)      on-chain settlement of what is owed, and payers' backing
"""

from __future__ import annotations

import logging
import time

import trio

from federation import Federation, market
from federation.addrs import resolve_listen
from federation.config import FederationConfig, ReachConfig
from federation.kinds import KIND_NAMES, KINDS, default_prices
from federation.messages import Messenger
from federation.pricing import PeakingPolicy, PriceTable, SurgeMeter, market_surge, peaking_threshold_from_announcement
from federation.realm import Realm, parse_secret, public_realm

from . import __version__, hardware
from .onchain import address_from_peer_id
from .intents import Intent
from .payments import Payments
from .peer_work import PeerWork
from .remote_router import RemoteRouter
from .settlement import Settler

log = logging.getLogger("mtor.network")

ANNOUNCE_REFRESH_S = 2.0  # queue depth, surge and model states change: re-offer this often (sent only on change)


def price_table(cfg, realm: Realm | None = None) -> PriceTable:
    """The worker's prices from [prices]: a key at -1 (the default) takes the realm's default,
    the kind registry's default price table in the public grid realm (so a GPU earns out of the
    box; docs/economy.md) and 0 (free) in a private realm, which may run with no token at all."""
    grid = cfg["p2p.realm"] == "grid" and not cfg["p2p.realm_secret"]
    defaults = default_prices() if grid else {}
    out = {}
    for name in KIND_NAMES:
        v = cfg[f"prices.{name}"]
        if v == -1:
            out.update({k: p for k, p in defaults.items() if k.partition(".")[0] == name})
        elif v:
            out[name] = v
    return PriceTable(out)


def realm_from_config(cfg) -> Realm:
    secret = cfg["p2p.realm_secret"]
    if secret:
        return parse_secret(secret)  # RealmSecretError names what is wrong
    return public_realm() if cfg["p2p.realm"] == "grid" else Realm(cfg["p2p.realm"], None)


class Network:
    def __init__(self, node):
        self.node = node
        cfg = node.config
        self.realm = realm_from_config(cfg)
        # the one place the node's [p2p] settings become the federation's (federation/config.py)
        self.fed = Federation(node.identity.seed, FederationConfig(
            realm=self.realm,
            listen_host=cfg["p2p.host"],
            listen_port=cfg["p2p.port"],
            listen_hosts=resolve_listen(cfg["p2p.listen"]),
            peers=cfg["p2p.peers"],
            bootstrap=cfg["p2p.bootstrap"],
            airgap=cfg["p2p.airgap"],
            reach=ReachConfig(relay_service=cfg["p2p.relay_service"], relay_client=cfg["p2p.relay_client"],
                              relays=cfg["p2p.relays"], relay_max_reservations=cfg["p2p.relay_max_reservations"],
                              relay_max_circuits=cfg["p2p.relay_max_circuits"], relay_duration_s=cfg["p2p.relay_duration_s"],
                              relay_max_bytes=cfg["p2p.relay_max_bytes"], announce=cfg["p2p.announce"],
                              max_peers=cfg["p2p.max_peers"], max_per_ip=cfg["p2p.max_per_ip"],
                              hole_punch=cfg["p2p.hole_punch"], pex=cfg["p2p.pex"]),
            mdns=cfg["p2p.mdns"], mdns_interfaces=cfg["p2p.mdns_interfaces"],
            rendezvous=cfg["p2p.rendezvous"], rendezvous_bootstrap=cfg["p2p.rendezvous_bootstrap"],
            dns_servers=cfg["p2p.dns_servers"],
        ))
        self.hardware: dict = {"gpus": [], "cpu": {"cores": 0, "ram": 0}}
        self.prices = price_table(cfg, self.realm).with_overrides(node.price_overrides)
        self.peaking = cfg["prices.peaking"] or None
        self.peak_priority = cfg["prices.peaking_priority"]
        self.policy = PeakingPolicy.from_setting(self.peaking or 0, self.peak_priority)
        self.announced = 1.0  # the surge this worker announced last (a peaker's follows the market)
        self.market = 1.0  # the market's surge for the kinds it serves, from peers' announcements
        self.surge = SurgeMeter()
        self.messenger: Messenger | None = None
        self.counters = {"paid": 0, "earned": 0, "pay_failed": 0, "price_moved": 0, "refused_credit": 0}
        self.settler = Settler(self)
        self.payments = Payments(self.fed, node.ledger, node.store, self.counters, self.settler.kick)
        self.worker = PeerWork(self, node.broker, node.models, node.ledger, cfg, node.stopping, self.settler,
                               self.counters, address_from_peer_id(node.peer_id))
        self.router = RemoteRouter(self.fed, node.peer_id, self.payments, self.local_offer, self.settler.before_paying)
        if cfg["ledger.user_accounts"] and node.ledger is not None and node.broker is not None:
            from .user_accounts import UserAccounts

            node.broker.accounts = UserAccounts(node.ledger, cfg["ledger.demo_grant"])

    # ---- running ------------------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        if "worker" in self.node.roles:
            self.fed.set_intent_handler(self.worker.serve)
        self.messenger = Messenger(self.fed.host)
        self.messenger.on("settle", self.settler.on_settle)
        self._offer()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.payments.attach(self.messenger, nursery)
            await nursery.start(self.fed.run)
            nursery.start_soon(self.settler.run)
            if self.node.ledger is not None:
                await self.payments.resend_pays()
            task_status.started()
            # importing torch for the GPU probe takes seconds: not on the way to "ready"
            self.hardware = await trio.to_thread.run_sync(hardware.probe)
            self._offer()
            while True:
                await trio.sleep(ANNOUNCE_REFRESH_S)
                self.hardware = await trio.to_thread.run_sync(hardware.refresh, self.hardware)  # free VRAM moves
                self._offer()

    def charges(self) -> dict:
        """What this node's worker charges, for `status` and the Grid tab: per kind the base price,
        its unit, the request price, and the surge and peaking threshold applied on top."""
        kinds = {}
        for name, k in KINDS.items():
            kinds[name] = {"price": self.prices.base(name), "per": k.per, "unit": k.unit, "price_unit": k.price_unit,
                           **({"request": self.prices.fixed(name)} if k.default_request_price else {})}
        return {"kinds": kinds, "overrides": {k: v for k, v in self.prices.prices.items() if "@" in k},
                "surge": self.announced, "market_surge": self.market, "peaking": self.peaking,
                "peaking_thresholds": dict(self.policy.thresholds) if self.policy else None,
                "peaking_priority": self.policy.priority if self.policy else None,
                "settlement": self.settler.status()}

    def set_prices(self, table: PriceTable, peaking: float | None) -> None:
        self.prices, self.peaking = table, peaking
        self.policy = PeakingPolicy.from_setting(peaking or 0, self.peak_priority)
        self._offer()  # announced at once

    def _offer(self) -> None:
        """Tell the realm what this node's worker serves now (announced at once if it changed)."""
        models = self.node.models
        broker = self.node.broker
        oldest = broker.oldest_waiting(local_only=True) if broker else None
        surge = self.surge.tick(time.monotonic(), oldest_wait_s=oldest[1] if oldest else 0.0,
                                oldest_kind=oldest[0] if oldest else None)
        served = models.models_by_kind() if models and "worker" in self.node.roles else {}
        threshold = None
        if self.policy is not None:  # peaking: announce the market's level (PeakingPolicy, as the simulation)
            self.market = self.market_surge(served)
            surge = self.policy.announced(surge, self.market, self.surge.config.cap)
            threshold = self.policy.lowest(served)
        self.announced = surge
        caps = {
            **self.hardware,
            "models": served,
            "prices": self.prices.to_announcement(threshold),
            "surge": surge,
            "queue": len(broker.queue) if broker else 0,
            "capacity": sum(s.spec.concurrency for s in models.states.values()) if models else 0,
            "version": __version__,
        }
        self.fed.set_capabilities(caps)

    def market_surge(self, kinds) -> float:
        """The median surge announced by the fresh, usable peers serving any of `kinds`."""
        kinds = set(kinds)
        return market_surge(p["surge"] for p in self.fed.peers.snapshot()
                            if p["fresh"] and not p["blocked"] and p["health"] > 0 and p["peer_id"] != self.node.peer_id
                            and any((p["models"] or {}).get(k) for k in kinds)
                            # peakers follow the market: counting them would let them lift it themselves
                            and peaking_threshold_from_announcement(p.get("prices") or {}) is None)

    def local_offer(self, intent: Intent, units: int, local_model: str) -> market.Offer:
        """This node's own worker as one more offer, on equal terms with the peers'."""
        return market.Offer(
            peer_id=self.node.peer_id, base_price=self.prices.base_quote(intent.kind, units, local_model),
            surge=self.announced, queue=len(self.node.broker.queue), local=True, rtt_ms=0.0,
            capacity=self.node.models.states[local_model].spec.concurrency,
            peaking_threshold=self.policy.threshold(intent.kind) if self.policy else None)
