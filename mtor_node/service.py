"""The UI's one door into the node (docs/architecture.md, "The service facade").

`NodeService` answers what the HTTP and WebSocket edge (ui/) shows and changes: status, peers and
blocks, quotes, prices, users, query statistics, the models a request would use. `wallet` (a
`WalletService`, mtor_node/wallet_service.py) answers the wallet and the ledger. ui/ calls these
and the broker's submit/cancel, never federation, ledger internals or SQL. Refusals are
`ServiceError`s: a code for machines, a message for people and the HTTP status (docs/api.md).

The facade reads the node's parts when called, not when built: the p2p layer and the ledger
exist only once the node runs.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Final, TypedDict

from prometheus_client import CollectorRegistry

from .intents import Intent
from .node_metrics import NodeCollector
from .service_base import NodeParts, ServiceError
from .wallet_service import WalletService

if TYPE_CHECKING:
    from .broker import Broker
    from .config import Config
    from .model_registry import ModelRegistry
    from .models import ModelState
    from .store import Store

__all__ = ["KEEP", "NodeParts", "NodeService", "ServiceError"]


class PeersView(TypedDict, total=False):
    realm: str | None
    self: str
    listen_addrs: list[str]
    peers: list[dict]
    stats: dict


class PricesView(TypedDict):
    prices: dict[str, int]
    surge: float
    peaking: float | None


class PricesSet(TypedDict):
    prices: dict[str, int]
    peaking: float | None


class KindTotals(TypedDict):
    total: int
    done: int
    failed: int
    avg_ms: int | None
    cost: int


USERS_AT_ONCE = "users_at_once"
KEEP: Final = object()  # set_prices: keep the current peaking threshold


class NodeService:
    def __init__(self, node: NodeParts):
        self._node = node
        self._avg_cache: tuple[float, float | None] | None = None  # (when, seconds) for queue_view
        self.model_registry: ModelRegistry | None = None
        # One registry per node: the node's gauges here, the edge adds its own (ui/metrics.py).
        self.registry = CollectorRegistry()
        self.registry.register(NodeCollector(self.status))
        self.wallet = WalletService(node)

    # ---- who this node is ------------------------------------------------------------------

    @property
    def peer_id(self) -> str:
        return self._node.peer_id

    @property
    def started_at(self) -> float:
        return self._node.started_at

    @property
    def roles(self) -> list[str]:
        return self._node.roles

    @property
    def config(self) -> Config:
        return self._node.config

    @property
    def broker(self) -> Broker | None:
        """Where intents are submitted and cancelled (mtor_node/broker.py)."""
        return self._node.broker

    def is_sysop_token(self, supplied: str) -> bool:
        token = self._node.sysop_token
        # an empty token never matches (the node refuses to start with one; this is the second lock)
        return bool(token) and secrets.compare_digest(supplied.encode(errors="replace"), token.encode())

    def status(self) -> dict:
        return self._node.status()

    async def stop(self) -> None:
        await self._node.stop()

    # ---- the realm ---------------------------------------------------------------------------

    @property
    def has_network(self) -> bool:
        return self._node.network is not None

    def peers(self) -> PeersView:
        n = self._node
        if n.federation is None:
            return {"realm": None, "peers": [], "stats": {}}
        return {"realm": n.network.realm.name, "self": n.peer_id, "listen_addrs": n.federation.listen_addrs,
                "peers": n.federation.peers.snapshot(), "stats": n.federation.stats}

    def peer_snapshot(self) -> list[dict]:
        """Each known peer with its models, health and blocks ([] without the p2p layer)."""
        fed = self._node.federation
        return fed.peers.snapshot() if fed is not None else []

    def set_blocked(self, peer_id: str, blocked: bool) -> None:
        n = self._node
        if n.federation is None:
            raise ServiceError("no_network", "this node runs without the p2p layer", 409)
        (n.federation.block if blocked else n.federation.unblock)(peer_id)
        if n.peer_blocks is not None:  # kept across restarts (mtor_node/blocks.py)
            n.peer_blocks.set(peer_id, blocked)

    def quote(self, intent: Intent) -> dict:
        """The best offer in the realm for `intent` (own worker included); alone: free if a local
        model serves it."""
        local = self.local_model(intent.kind, intent.model)
        if self._node.network is None:
            ok = local is not None
            return {"ok": ok, "price": 0 if ok else None, "peer": self.peer_id if ok else None, "local": ok,
                    "message": "" if ok else f"no local model serves {intent.kind}"}
        return self._node.network.router.quote(intent, local_model=local)

    def prices(self) -> PricesView:
        net = self._node.network
        if net is None:
            return {"prices": {}, "surge": 1.0, "peaking": None}
        return {"prices": dict(net.prices.prices), "surge": net.surge.value(), "peaking": net.peaking}

    def set_prices(self, overrides: dict, peaking: object = KEEP) -> PricesSet:
        """This worker's base prices and peaking threshold, changed now and announced at once.
        `peaking` left out keeps the current one; 0 or None turns it off."""
        from federation.pricing import PriceError, PriceTable

        net = self._node.network
        if net is None:
            raise ServiceError("no_network", "this node runs without the p2p layer", 409)
        try:
            table = net.prices.with_overrides(overrides)
            PriceTable(table.prices)
        except (PriceError, TypeError, ValueError) as e:
            raise ServiceError("bad_price", str(e)) from None
        if peaking is KEEP:
            peaking = net.peaking
        if peaking is not None and (isinstance(peaking, bool) or not isinstance(peaking, (int, float)) or not 0 <= peaking <= 10):
            raise ServiceError("bad_price", "peaking must be a number from 0 to 10 (0: off)")
        net.set_prices(table, peaking or None)
        return {"prices": dict(table.prices), "peaking": peaking or None}

    # ---- local models ------------------------------------------------------------------------

    def local_model(self, kind: str, model: str | None) -> str | None:
        """The local model that would serve (kind, model), or None."""
        models = self._node.models
        return models.resolve(kind, model) if models is not None else None

    def local_model_state(self, kind: str, model: str | None) -> ModelState | None:
        name = self.local_model(kind, model)
        return self._node.models.states.get(name) if name else None  # type: ignore[union-attr]

    def model_states(self) -> list[ModelState]:
        models = self._node.models
        return list(models.states.values()) if models is not None else []

    def open_model_registry(self) -> ModelRegistry | None:
        """The sysop's saved additions and removals over mtor.toml's models (a worker only)."""
        from .model_registry import ModelRegistry

        n = self._node
        self.model_registry = None
        if n.models is not None and n.store is not None:
            self.model_registry = ModelRegistry(n.store.conn, n.models)
            self.model_registry.apply_saved()
        return self.model_registry

    # ---- users and their queries -------------------------------------------------------------

    @property
    def _store(self) -> Store:
        store = self._node.store
        if store is None:
            raise ServiceError("not_ready", "the node is still starting", 503)
        return store

    def users(self) -> list[dict]:
        return self._store.users()

    def is_banned(self, user: str) -> bool:
        return self._store.is_banned(user)

    def set_nickname(self, user: str, nickname: str) -> None:
        self._store.set_nickname(user, nickname)

    def set_banned(self, user: str, banned: bool) -> int:
        """Ban or unban; a ban also ends what the user has waiting or running. Returns how many."""
        self._store.set_banned(user, banned)
        broker, cancelled = self._node.broker, 0
        if banned and broker is not None:
            for t in list(broker.tickets.values()):
                if t.intent.user == user and broker.cancel(t.intent.id, "the user was banned by the sysop"):
                    cancelled += 1
        return cancelled

    def history(self, user: str | None, limit: int) -> list[dict]:
        return self._store.history(user, limit)

    def query_stats(self) -> dict:
        return self._store.stats()

    def broker_counters(self) -> dict[str, int]:
        broker = self._node.broker
        return dict(broker.counters) if broker is not None else {}

    def queue_length(self) -> int:
        broker = self._node.broker
        return len(broker.queue) if broker is not None else 0

    def queue_view(self, avg_s: float | None = None) -> dict:
        """The whole queue for the page's thermometer (docs/ui.md): waiting and running intents,
        the limits, whether it is full, and a rough wait for a new intent — the waiting ones ahead
        of it, run `slots` at a time, at `avg_s` each (the lifetime average of done intents)."""
        broker = self._node.broker
        if broker is None:
            return {"queued": 0, "max": 0, "running": 0, "slots": 0, "full": False, "wait_s": None}
        queued, slots = len(broker.queue), max(1, broker.max_inflight)
        if avg_s is None:
            avg_s = self._average_done_s()
        waves = -(-(queued + broker.inflight + 1) // slots) - 1  # rounds of `slots` before a new one starts
        return {"queued": queued, "max": broker.queue.max_size, "running": broker.inflight, "slots": slots,
                "full": queued >= broker.queue.max_size,
                "wait_s": round(waves * avg_s, 1) if avg_s is not None else None}

    def _average_done_s(self, max_age_s: float = 30.0) -> float | None:
        """The lifetime average duration of done intents, read from the store at most every
        max_age_s once there is one: the queue feed asks every second and a lifetime average
        hardly moves."""
        now = time.monotonic()
        if self._avg_cache is None or self._avg_cache[1] is None or now - self._avg_cache[0] > max_age_s:
            totals = [(done, avg) for _, _, done, avg, _ in self._store.kind_totals() if avg is not None and done]
            n = sum(done for done, _ in totals)
            self._avg_cache = (now, sum(done * avg for done, avg in totals) / n / 1000 if n else None)
        return self._avg_cache[1]

    def note_users_at_once(self, count: int) -> None:
        self._store.note_peak(USERS_AT_ONCE, count)

    def lifetime_stats(self) -> dict:
        """Totals per kind since the database was made, users ever, the most users at once."""
        store = self._store
        per_kind: dict[str, KindTotals] = {
            kind: {"total": total, "done": ok, "failed": total - ok,
                   "avg_ms": round(avg_ms) if avg_ms is not None else None, "cost": cost}
            for kind, total, ok, avg_ms, cost in store.kind_totals()}
        ever, asked = store.user_counts()
        peak = store.peak(USERS_AT_ONCE)
        return {"lifetime": {"queries": sum(k["total"] for k in per_kind.values()), "users_ever": ever,
                             "users_with_queries": asked},
                "per_kind": per_kind,
                "most_users_at_once": {"count": peak[0], "at": peak[1]} if peak else {"count": 0, "at": None}}

    def welcome(self, user: str, online_now: int, recent: int = 5) -> dict:
        """The original RENT-A-HAL's "welcome back" (docs/ui.md): this user's recent queries and
        lifetime cost, the system's total cost, the average time per kind, users online now and the
        most ever. Only this user's own prompts are in it."""
        store = self._store
        self.note_users_at_once(online_now)
        queries, cost = store.user_totals(user)
        totals = store.kind_totals()
        peak = store.peak(USERS_AT_ONCE)
        return {"user": {"queries": queries, "cost": cost,
                         "recent": [{"kind": h["kind"], "prompt": h["prompt"][:120], "status": h["status"],
                                     "cost": h["cost"], "at": h["created"]} for h in store.history(user, recent)]},
                "system": {"queries": sum(t[1] for t in totals), "cost": sum(t[4] for t in totals),
                           "avg_ms": {kind: round(avg) for kind, _, _, avg, _ in totals if avg is not None}},
                "online_now": online_now, "most_ever": peak[0] if peak else online_now}

    def served_kinds(self, kinds: tuple[str, ...]) -> dict[str, str | None]:
        """kind -> who serves it ("local:MODEL" or "peer:ID"), or None."""
        out: dict[str, str | None] = {}
        peers = self.peer_snapshot()
        # what this worker announces: ready or checked loadable, not a model that failed to load
        # (the router's resolve() retries those every 30 s, which made the watchdog flip-flop)
        serving = self._node.models.models_by_kind() if self._node.models is not None else {}
        for kind in kinds:
            local = next(iter(serving.get(kind) or []), None)
            if local:
                out[kind] = f"local:{local}"
                continue
            peer = next((p["peer_id"] for p in peers if p["fresh"] and not p["blocked"] and p["health"] > 0
                         and not p["banned_for_s"] and p["models"].get(kind)), None)
            out[kind] = f"peer:{peer}" if peer else None
        return out
