"""Routing choice: the cheapest healthy candidate within the requester's max price (docs/economy.md §3).

Pure: no networking, no trio, no clock. This is the only routing policy in the project
(docs/protocol.md §6): the broker builds one `Offer` per peer from the federation's typed view
(`Federation.offers`, each peer's `Ask` read once per announcement), its own worker included on
equal terms, and calls `route`; its failover loop (mtor_node/network.py `run_remote`) walks the
result through `Federation.request_intent`; a worker calls `price_moved` when an intent arrives.

Rule:
  1. candidates = offers that are fresh, healthy (> 0), unblocked, serve kind+model, not peaking
     below their threshold, and not excluded (already tried);
  2. effective price = apply_surge(base_price, surge) - integer micro-tokens, rounded up, the same
     function the worker's quote uses;
  3. keep those with effective price <= max price (None = any price);
  4. order by effective price, then expected latency (RTT + queue wait estimate), then health
     (higher first), then peer id (deterministic). The list is the failover order.
If nothing is left at step 3, the result says why and names the cheapest current price.

Unproven offers (issue 12 #3): an offer from a peer that never delivered work and is not connected
(`proven=False`) may be a fake that announces a price of 0 and an address nobody answers at. At
most one unproven offer goes before the proven ones in the failover order (and none once one was
tried for this intent); the rest follow every proven offer. So three fakes cost an intent one
attempt, never the real workers' turn. Offers the broker cannot dial at all (`reachable=False`: a
stranger heard only on gossip, issue 12 #4) are no candidates.

Ties, and why they are banded: with `price_band=0`, `latency_band_ms=0` and no `rng` the order
above is strict. But every broker sees the same (slightly stale) gossip, so a strict order sends
every broker's intents to the same few cheapest workers at once until the next announcement
(the simulation shows it: timeouts at 45 % load). So by default prices within 5 % count as equal
(geometric bands: a price's band is floor(log(price) / log(1.05))), expected latencies within
50 ms count as equal, and a broker may pass its own `rng` to shuffle what is still tied. A
requester thus pays at most ~5 % above the cheapest offer, never above its max price.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .pricing import PriceTable, accepts_work, apply_surge, peaking_threshold_from_announcement

DEFAULT_SERVICE_S = 1.0  # queue-wait estimate per queued intent per slot when nothing better is known
PRICE_BAND = 0.05  # prices within 5 % are a tie
LATENCY_BAND_MS = 50.0  # expected latencies within 50 ms are a tie


@dataclass(frozen=True)
class Offer:
    """One peer's offer for one intent, as the broker knows it now.

    base_price: this intent's price at surge 1 in micro-tokens (PriceTable.base_quote of the
    peer's announced prices for the intent's kind/model/units); surge: the peer's announced surge;
    queue/capacity: announced queue depth and parallel slots; service_s: expected service time of
    this intent there (for the queue-wait estimate).
    """

    peer_id: str
    base_price: int
    surge: float = 1.0
    health: int = 100
    rtt_ms: float | None = None
    queue: int = 0
    capacity: int = 1
    fresh: bool = True
    blocked: bool = False
    serves: bool = True
    peaking_threshold: float | None = None
    service_s: float = DEFAULT_SERVICE_S
    local: bool = False
    proven: bool = True  # connected now, or delivered work before
    reachable: bool = True  # connected, or its address learned in a trusted way

    @property
    def price(self) -> int:
        """Effective price = base x surge (integer micro-tokens, rounded up)."""
        return apply_surge(self.base_price, self.surge)

    @property
    def expected_latency_ms(self) -> float:
        """RTT + queue wait estimate (queued intents per slot x service time)."""
        rtt = self.rtt_ms if self.rtt_ms is not None else 0.0 if self.local else 1000.0
        slots = max(1, self.capacity)
        return rtt + (self.queue / slots) * self.service_s * 1000.0


@dataclass(frozen=True)
class Ask:
    """What one capability announcement asks, read once per announcement (the peer table keeps it
    beside the announcement, federation/peers.py), so a plan builds offers without re-reading price
    tables. From a validated announcement (caps.check_announcement's output)."""

    table: PriceTable
    surge: float = 1.0
    queue: int = 0
    capacity: int = 1
    peaking_threshold: float | None = None
    models: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_announcement(cls, ann: Mapping[str, Any]) -> "Ask":
        prices = ann.get("prices") or {}
        return cls(
            table=PriceTable.from_announcement(prices),
            surge=float(ann.get("surge", 1.0) or 1.0),
            queue=int(ann.get("queue", 0) or 0),
            capacity=int(ann.get("capacity", 1) or 1),
            peaking_threshold=peaking_threshold_from_announcement(prices),
            models={k: tuple(v) for k, v in (ann.get("models") or {}).items()},
        )

    def serves(self, kind: str, model: str | None) -> bool:
        models = self.models.get(kind) or ()
        return bool(models) and (model is None or model in models)

    def offer(self, peer_id: str, kind: str, model: str | None, units: int, **kw: Any) -> Offer:
        """This ask as an offer for one intent. kw: health, rtt_ms, fresh, blocked, proven,
        reachable, service_s (the peer's standing, from the peer table)."""
        return Offer(peer_id=peer_id, base_price=self.table.base_quote(kind, units, model), surge=self.surge,
                     queue=self.queue, capacity=self.capacity, serves=self.serves(kind, model),
                     peaking_threshold=self.peaking_threshold, **kw)


@dataclass
class RouteResult:
    """The failover order, or why there is none.

    reason: "ok" | "no_candidates" (nobody usable serves it) | "over_max_price" (someone would,
    but not at or below the max price). cheapest: the lowest current effective price among usable
    candidates (None if there are none). excluded: how many offers each filter removed.
    """

    order: list[Offer]
    reason: str
    cheapest: int | None
    max_price: int | None
    message: str = ""
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.order)

    @property
    def best(self) -> Offer | None:
        return self.order[0] if self.order else None

    @property
    def peers(self) -> list[str]:
        return [o.peer_id for o in self.order]


def exclusion_reason(o: Offer) -> str | None:
    """Why an offer is not a candidate at all (price aside), or None."""
    if not o.serves:
        return "not_serving"
    if not o.fresh:
        return "stale"
    if o.blocked:
        return "blocked"
    if not o.reachable and not o.local:
        return "unreachable"
    if o.health <= 0:
        return "unhealthy"
    if not accepts_work(o.surge, o.peaking_threshold):
        return "peaking"
    return None


def price_band(price: int, band: float = PRICE_BAND) -> int:
    """Offers in the same band are equally cheap (geometric bands of width `band`)."""
    if band <= 0 or price <= 0:
        return price
    return int(math.log(price) / math.log1p(band))


def sort_key(o: Offer, band: float = PRICE_BAND, latency_band_ms: float = LATENCY_BAND_MS,
             rng: random.Random | None = None) -> tuple:
    lat = o.expected_latency_ms
    lat_key = int(lat // latency_band_ms) if latency_band_ms > 0 else lat
    return (price_band(o.price, band), lat_key, rng.random() if rng is not None else 0.0,
            o.price, lat, -o.health, o.peer_id)


def route(offers: Iterable[Offer], max_price: int | None = None, *, exclude: Iterable[str] = (),
          kind: str = "", model: str | None = None, price_band: float = PRICE_BAND,
          latency_band_ms: float = LATENCY_BAND_MS, rng: random.Random | None = None) -> RouteResult:
    """Choose: the usable offers within max_price, cheapest first, ties by expected latency.

    `exclude`: peer ids already tried for this intent (failover). kind/model only flavour the
    message. price_band / latency_band_ms / rng: what counts as a tie and how it is broken (see
    the module doc; 0, 0, None = strict order).
    """
    offers = list(offers)
    skip = set(exclude)
    excluded: dict[str, int] = {}
    usable: list[Offer] = []
    for o in offers:
        why = "tried" if o.peer_id in skip else exclusion_reason(o)
        if why:
            excluded[why] = excluded.get(why, 0) + 1
        else:
            usable.append(o)
    usable.sort(key=lambda o: sort_key(o, price_band, latency_band_ms, rng))
    usable = _unproven_last(usable, tried_unproven=any(o.peer_id in skip and not (o.proven or o.local) for o in offers))
    cheapest = min(o.price for o in usable) if usable else None
    what = f"{kind}/{model}" if kind and model else kind or "this intent"
    if not usable:
        return RouteResult([], "no_candidates", None, max_price,
                           f"no healthy worker serves {what} now", excluded)
    if max_price is None:
        return RouteResult(usable, "ok", cheapest, max_price, "", excluded)
    within = [o for o in usable if o.price <= max_price]
    if len(within) < len(usable):
        excluded["over_max_price"] = len(usable) - len(within)
    if not within:
        return RouteResult([], "over_max_price", cheapest, max_price,
                           f"no worker at or below your max price {max_price} micro-tokens for {what}; "
                           f"the cheapest is {cheapest} micro-tokens", excluded)
    return RouteResult(within, "ok", cheapest, max_price, "", excluded)


def _unproven_last(order: list[Offer], tried_unproven: bool) -> list[Offer]:
    """Keep at most one unproven offer ahead of the proven ones (none if one was tried already)."""
    proven = [o for o in order if o.proven or o.local]
    unproven = [o for o in order if not (o.proven or o.local)]
    if not unproven or not proven:
        return order
    head: list[Offer] = []
    if not tried_unproven and order[0] is unproven[0]:
        head, unproven = [unproven[0]], unproven[1:]
    return head + proven + unproven


def price_moved(max_price: int | None, current_price: int) -> int | None:
    """For a worker receiving an intent: None if max_price (None = any) still covers its current
    price, else the current price (to answer "price moved: now X")."""
    if max_price is None or current_price <= max_price:
        return None
    return current_price
