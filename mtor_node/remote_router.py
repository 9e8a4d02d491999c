"""The broker side of the realm: where an intent runs and running it on a peer (docs/architecture.md
"The path of one intent", docs/protocol.md §6).

`plan` is the one choice: every fresh, healthy, unblocked peer's offer (the federation's typed view)
and this node's own worker on equal terms go through `federation.market.route`, the only routing
policy. `run_remote` is the one failover loop: it holds the quoted price, sends the intent with
`Federation.request_intent` (the seam a test fakes), fails over on a retryable error, and pays
the worker's receipt through `Payments`.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Awaitable, Callable

import trio

from federation import Federation, market
from federation.frames import result_digest
from federation.intent_protocol import IntentFailed
from federation.pricing import estimate_units

from .backends import BackendError
from .event_frames import from_frame, intent_inputs
from .identity import pubkey_from_peer_id
from .intents import Intent
from .payments import Payments

MAX_ATTEMPTS = 3  # workers tried per intent before the broker gives up

LocalOffer = Callable[[Intent, int, str], market.Offer]  # (intent, units, local model) -> this worker's offer
BeforePaying = Callable[[bytes], Awaitable[None]]  # back-pressure of the settler, per payee


class RemoteRouter:
    """What the broker calls: plan, quote, can_serve, run_remote, finished (broker.RemoteRouter)."""

    def __init__(self, fed: Federation, peer_id: str, payments: Payments, local_offer: LocalOffer,
                 before_paying: BeforePaying) -> None:
        self.fed = fed
        self.peer_id = peer_id
        self.payments = payments
        self.local_offer = local_offer
        self.before_paying = before_paying
        # Our own rng breaks ties that remain within the price and latency bands, so brokers
        # reading the same gossip do not all pile onto the same cheapest worker (docs/economy.md).
        self.rng = random.Random()

    def model_for(self, intent: Intent) -> str | None:
        if intent.model:
            return intent.model
        # No model named: the model of this kind that most live peers serve.
        counts: Counter[str] = Counter()
        for peer in self.fed.offers(intent.kind):
            if peer.fresh and not peer.blocked and peer.health > 0:
                counts.update(peer.ask.models.get(intent.kind, ()))
        return min(counts, key=lambda m: (-counts[m], m)) if counts else None  # ties: by name, not table order

    def offers(self, intent: Intent, model: str, units: int, local_model: str | None = None) -> list[market.Offer]:
        """Every peer's offer for this intent, from the federation's typed view (each peer's ask is
        read once per announcement, not per plan); this node's worker on equal terms."""
        out = [p.offer(intent.kind, model, units) for p in self.fed.offers(intent.kind)]
        if local_model is not None:
            out.append(self.local_offer(intent, units, local_model))
        return out

    def plan(self, intent: Intent, local_model: str | None = None, exclude=(), max_price: int | None = None) -> market.RouteResult:
        model = self.model_for(intent) or local_model or ""
        units = estimate_units(intent.kind, intent.params, intent_inputs(intent))
        limit = intent.max_price if max_price is None else max_price
        return market.route(self.offers(intent, model, units, local_model), limit, exclude=exclude,
                            kind=intent.kind, model=model or None, rng=self.rng)

    def can_serve(self, intent: Intent) -> bool:
        if self.plan(intent).ok:
            return True
        # A fresh broker may know providers only through the DHT: let run_remote look them up.
        return bool(intent.model) and self.fed.dht is not None and self.fed.stats["connected_peers"] > 0

    def quote(self, intent: Intent, local_model: str | None = None) -> dict:
        """What the user sees before sending: the price of the best offer, or why there is none."""
        plan = self.plan(intent, local_model)
        best = plan.best
        return {"ok": plan.ok, "price": best.price if best else plan.cheapest, "peer": best.peer_id if best else None,
                "local": bool(best and best.local), "message": plan.message, "cheapest": plan.cheapest}

    def finished(self, intent_id: str) -> None:
        self.payments.finished(intent_id)

    async def run_remote(self, intent: Intent, emit: Callable[[dict], Awaitable[None]]) -> tuple[dict, str]:
        model = self.model_for(intent)
        if model is None and intent.model is None:
            raise BackendError("no_model", f"no peer in the realm serves {intent.kind}")
        model = model or intent.model
        if not self.plan(intent).ok and self.fed.dht is not None:
            with trio.move_on_after(min(3.0, intent.timeout / 2)):
                await self.fed.discover(intent.kind, model)
        inputs = intent_inputs(intent)
        inputs["timeout"] = intent.timeout
        paying = self.payments.ledger is not None
        deadline = trio.current_time() + intent.timeout - 0.5
        tried: list[str] = []
        last: IntentFailed | None = None
        accepted: dict[str, int] = {}  # the price the worker of this attempt accepted at

        async def on_event(frame: dict) -> None:
            if frame.get("type") == "accepted":
                accepted["price"] = int(frame.get("price", 0))
            event = from_frame(frame)
            if event is not None:
                await emit(event)

        repriced: dict[str, int] = {}  # peer -> its current price, learnt from "price moved"
        # The user's limit: their max price, or else the quote of the first plan (what they were
        # shown). A worker whose price moved above it is failed over, never paid more.
        user_limit = intent.max_price
        try:
            for _ in range(MAX_ATTEMPTS):
                plan = self.plan(intent, exclude=tried + [self.peer_id], max_price=user_limit)
                if not plan.ok:
                    if last is None:
                        raise BackendError("no_candidates" if plan.reason == "no_candidates" else "price", plan.message)
                    break
                offer = plan.best
                tried.append(offer.peer_id)
                if user_limit is None and (offer.proven or offer.local):
                    # the quote, from a worker that showed it can be reached: an unproven fake's
                    # price 0 must not cap the real workers out (issue 12 #3)
                    user_limit = offer.price
                price = max(offer.price, repriced.get(offer.peer_id, 0))
                limit = price if user_limit is None else min(user_limit, price)
                if limit and paying:
                    await self.before_paying(pubkey_from_peer_id(offer.peer_id))
                    self.payments.hold(intent, limit, offer.peer_id)
                request = {"id": intent.id, "kind": intent.kind, "model": model, "params": dict(intent.params),
                           "inputs": inputs, "max_price": limit if paying else intent.max_price}
                remaining = deadline - trio.current_time()
                if remaining <= 0:
                    raise BackendError("timeout", f"no worker finished within {intent.timeout:g} s")
                try:
                    result = await self.fed.request_intent(offer.peer_id, request, on_event, remaining)
                except IntentFailed as e:
                    last = e
                    if not e.retryable:
                        raise BackendError(e.code, e.message) from None
                    moved = e.price if e.code == "price" and isinstance(getattr(e, "price", None), int) else None
                    if moved is not None and offer.peer_id not in repriced and moved <= (user_limit if user_limit is not None else price):
                        repriced[offer.peer_id] = moved  # its surge rose since its last announcement: ask again
                        tried.remove(offer.peer_id)
                    self.fed.counters["failovers"] += 1
                    await emit({"type": "failover", "from": offer.peer_id, "code": e.code, "message": e.message})
                    continue
                output = result.get("output") if isinstance(result.get("output"), dict) else {"output": result.get("output")}
                receipt = result.get("receipt")  # the worker's signed ledger receipt: the job's one receipt
                cost = 0
                if receipt is not None and paying:
                    delivered = result_digest(result.get("output"), result.get("units", 0))
                    cost = self.payments.pay(intent, offer.peer_id, receipt, min(limit, accepted.get("price", limit)),
                                             output, delivered)
                else:
                    self.payments.release(intent.id)
                return {**output, "units": result.get("units", 0), "cost": cost}, offer.peer_id
        except BaseException:
            self.payments.release(intent.id)  # failure or cancel: nothing is owed
            raise
        self.payments.release(intent.id)  # every worker tried failed: nothing is owed
        raise BackendError(last.code if last else "no_candidates", f"all workers failed; last: {last.message if last else '-'}")
