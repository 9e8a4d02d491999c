"""The node's side of the federation: runs the libp2p layer, announces what the local worker
serves, takes intents from peers into the local queue, and routes local intents to peers.

Event mapping between the broker's events and `/mtor/intent/2` frames (docs/protocol.md):
  chunk{text} / chunk{audio}  <->  chunk{data: str | bytes}
  progress{step, total}       <->  progress{done, total}
  queued{position}            <->  progress{position}
  result{...}                 <->  result{output: {...}, units}
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from typing import Awaitable, Callable

import trio

from federation import Federation, market
from federation.frames import result_digest
from federation.intent_protocol import IntentFailed
from federation.kinds import KIND_NAMES, KINDS, default_prices
from federation.messages import MessageFailed, Messenger
from federation.pricing import (PeakingPolicy, PriceTable, SurgeMeter, estimate_units, market_surge,
                                peaking_threshold_from_announcement)
from federation.realm import Realm, parse_secret, public_realm
from federation.addrs import resolve_listen
from federation.config import FederationConfig, ReachConfig

from . import __version__, hardware
from .backends import BackendError
from .identity import peer_id_from_pubkey, pubkey_from_peer_id
from .intents import Intent, IntentError
from .settlement import Settler, credit_limit

log = logging.getLogger("mtor.network")

ANNOUNCE_REFRESH_S = 2.0  # queue depth, surge and model states change: re-offer this often (sent only on change)
MAX_ATTEMPTS = 3  # workers tried per intent before the broker gives up
PAY_RETRIES = 6  # back-off 1, 2, 4 ... 32 s: a worker that restarts has time to come back


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
        self.rng = random.Random()
        self._held: set[str] = set()  # intents that placed a hold, until they end
        self.messenger: Messenger | None = None
        self.counters = {"paid": 0, "earned": 0, "pay_failed": 0, "price_moved": 0, "refused_credit": 0}
        self.settler = Settler(self)
        if cfg["ledger.user_accounts"] and node.ledger is not None and node.broker is not None:
            from .user_accounts import UserAccounts

            node.broker.accounts = UserAccounts(node.ledger, cfg["ledger.demo_grant"])

    # ---- running ------------------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        if "worker" in self.node.roles:
            self.fed.set_intent_handler(self.serve_peer_intent)
        self.messenger = Messenger(self.fed.host)
        self.messenger.on("pay", self._on_pay)
        self.messenger.on("fraud", self._on_fraud)
        self.messenger.on("settle", self.settler.on_settle)
        self._offer()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.fed.run)
            nursery.start_soon(self.settler.run)
            if self.node.ledger is not None:
                await self._resend_pays()
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

    # ---- a peer asks this node's worker ---------------------------------------------------------

    async def serve_peer_intent(self, peer_id: str, request: dict, send: Callable[[dict], Awaitable[None]]) -> None:
        inputs = request.get("inputs") or {}
        try:
            intent = Intent.from_dict({
                "id": request["id"][:64], "kind": request["kind"], "model": request["model"],
                "params": request.get("params") or {}, "user": peer_id[-64:],
                "timeout": inputs.get("timeout", 300.0), "max_price": request.get("max_price"),
                **{k: inputs[k] for k in ("messages", "prompt", "image", "audio", "texts") if k in inputs},
            })
        except IntentError as e:
            await send({"type": "error", "code": "bad_request", "message": e.message})
            return
        surge = self.announced
        if self.policy is not None:
            mkt = self.market_surge([intent.kind])
            if not self.policy.accepts(intent.kind, surge, mkt):
                await send({"type": "error", "code": "busy",
                            "message": f"peaking worker: takes {intent.kind} at a market surge ≥ "
                                       f"{self.policy.threshold(intent.kind)} (or ≥ {self.policy.priority}), now {mkt}"})
                return
        price = self.prices.quote(intent.kind, intent.params, model=intent.model, surge=surge, inputs=inputs)
        moved = market.price_moved(intent.max_price, price)
        if moved is not None:
            self.counters["price_moved"] += 1
            await send({"type": "error", "code": "price", "price": moved,
                        "message": f"price moved: now {moved} micro-tokens, above your max price {intent.max_price}"})
            return
        ledger = self.node.ledger
        requester = pubkey_from_peer_id(peer_id)
        if ledger is not None and ledger.is_banned(requester):
            await send({"type": "error", "code": "credit", "message": "this node has banned you: your ledger equivocated"})
            return
        if price and ledger is not None:
            limit, unsettled = credit_limit(self.node.config)
            backing = await self.settler.payer_backing(requester) if unsettled else None
            if backing is not None and backing < limit:  # no more credit than the payer holds on chain
                limit = backing
            try:
                ledger.check_credit(requester, price, limit, include_unsettled=unsettled)
            except Exception as e:  # CreditLimitExceeded, or a banned/unknown payer
                self.counters["refused_credit"] += 1
                message = str(e)
                if unsettled:  # SWAP: name the debt and how it gets settled
                    debt = ledger.accounts.outstanding(requester, include_unsettled=True)
                    why = (f"what you hold on chain ({backing} micro-tokens of $9000)" if backing is not None
                           and backing <= limit else f"its disconnect threshold of {limit}")
                    message = (f"you owe this worker {debt} micro-tokens unsettled; a job of {price} would pass "
                               f"{why}. Settle on chain: your node sends an SPL "
                               f"TransferChecked by itself once it owes {self.node.config['ledger.payment_threshold']} "
                               f"(ledger.settlement on, SOL for fees, $9000 in its token account), or run "
                               f"`mtor-node wallet settle --peer {_address(self.node.peer_id)}`")
                await send({"type": "error", "code": "credit", "message": message})
                return
        try:
            ticket = self.node.broker.submit(intent, local_only=True)
        except IntentError as e:
            code = "busy" if e.code in ("queue_full", "shutting_down") else "unsupported" if e.code == "no_model" else "bad_request"
            if code == "busy":  # turning work away is load too: let the surge show it
                broker, models = self.node.broker, self.node.models
                local = models.resolve(intent.kind, intent.model) if models else None
                self.surge.observe_refused(intent.kind, queued=len(broker.queue), running=broker.inflight,
                                           slots=models.states[local].spec.concurrency if local else 1,
                                           units=1, now=time.monotonic())
            await send({"type": "error", "code": code, "message": e.message})
            return
        started = None
        try:
            await send({"type": "accepted", "price": price, "queue": ticket.position})
            async for event in ticket.events:
                if event["type"] == "started":
                    started = time.monotonic()
                if event["type"] == "result":
                    # the units the quote counted, as the result shows them (kinds.py): a backend
                    # cannot make the payer owe more than its answer is worth
                    units = KINDS[intent.kind].settle_units(intent.params, intent.to_dict(), event, event.get("units"))
                    event = {**event, "units": units}
                    self.surge.observe(intent.kind, time.monotonic() - (started or ticket.submitted),
                                       (started or time.monotonic()) - ticket.submitted, units=max(units, 1),
                                       now=time.monotonic())
                    charge = self.prices.charge(intent.kind, units, surge, quoted=price, model=intent.model)
                    event = {**event, "cost": charge}
                    if charge and ledger is not None:  # the job's one receipt (docs/protocol.md §5)
                        body = _to_frame(event) or {}  # what the broker receives: the receipt binds it
                        receipt = ledger.make_receipt(intent.id, requester, intent.kind, intent.model, units, charge,
                                                      result_digest(body.get("output"), body.get("units", 0)))
                        event["ledger_receipt"] = receipt.to_bytes()
                if event["type"] == "error" and self.node.stopping.is_set():
                    event = {**event, "code": "busy"}  # retryable: the broker fails over to another worker
                frame = _to_frame(event)
                if frame is not None:
                    await send(frame)
        finally:
            if ticket.state in ("queued", "running"):  # the requester went away or cancelled
                self.node.broker.cancel(intent.id, "the requesting peer cancelled")

    async def _on_pay(self, peer_id: str, body: dict) -> dict:
        """A requester's signed pay entry for a job this worker delivered: append our earn."""
        if self.node.ledger is None:
            raise MessageFailed("no_ledger", "this node keeps no ledger")
        from ledger import EquivocationError

        try:
            earn = self.node.ledger.accept_pay(body.get("entry"))
        except EquivocationError as e:  # the ledger banned the author; tell the realm
            self._ban_peer(e.proof.author)
            self._nursery.start_soon(self.spread_fraud, e.proof.to_bytes(), None)
            raise MessageFailed("EquivocationError", str(e)) from None
        except Exception as e:  # every ledger error has a message that says what was wrong
            raise MessageFailed(type(e).__name__, str(e)) from None
        self.counters["earned"] += 1
        return {"earn_seq": earn.seq}

    # ---- fraud proofs: flooded to every connected peer once, each node bans the author ----------

    async def _on_fraud(self, peer_id: str, body: dict) -> dict:
        ledger = self.node.ledger
        if ledger is None:
            return {}
        raw = body.get("proof")
        if not isinstance(raw, (bytes, bytearray)):
            raise MessageFailed("malformed", "proof must be bytes")
        from ledger import FraudProof

        try:
            proof = FraudProof.from_bytes(bytes(raw))
        except Exception as e:
            raise MessageFailed("bad_proof", str(e)) from None
        if ledger.is_banned(proof.author):
            return {"new": False}
        try:
            ledger.ingest_fraud_proof(proof)  # verifies both signatures before banning
        except Exception as e:
            raise MessageFailed("bad_proof", str(e)) from None
        self._ban_peer(proof.author)
        self._nursery.start_soon(self.spread_fraud, bytes(raw), peer_id)
        return {"new": True}

    def _ban_peer(self, pubkey: bytes) -> None:
        """An equivocator gets no more work from this node and is never chosen to serve."""
        peer_id = peer_id_from_pubkey(pubkey)
        self.fed.block(peer_id)
        log.warning("peer %s equivocated in its ledger: banned", peer_id)

    async def spread_fraud(self, proof: bytes, came_from: str | None) -> None:
        peers = [pid.to_base58() for pid in list(self.fed.host.get_network().connections)]
        async with trio.open_nursery() as n:
            for pid in peers:
                if pid != came_from:
                    n.start_soon(self._send_quietly, pid, "fraud", {"proof": proof})

    async def _send_quietly(self, peer_id: str, msg_type: str, body: dict) -> None:
        try:
            await self.messenger.request(peer_id, msg_type, body)
        except MessageFailed as e:
            log.debug("%s to %s: %s", msg_type, peer_id, e)

    # ---- this node's broker asks the realm (RemoteRouter) ---------------------------------------

    def _model_for(self, intent: Intent) -> str | None:
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
            broker = self.node.broker
            out.append(market.Offer(
                peer_id=self.node.peer_id, base_price=self.prices.base_quote(intent.kind, units, local_model),
                surge=self.announced, queue=len(broker.queue), local=True, rtt_ms=0.0,
                capacity=self.node.models.states[local_model].spec.concurrency,
                peaking_threshold=self.policy.threshold(intent.kind) if self.policy else None))
        return out

    def plan(self, intent: Intent, local_model: str | None = None, exclude=(), max_price: int | None = None) -> market.RouteResult:
        model = self._model_for(intent) or local_model or ""
        units = estimate_units(intent.kind, intent.params, _inputs(intent))
        limit = intent.max_price if max_price is None else max_price
        # Our own rng breaks ties that remain within the price and latency bands, so brokers
        # reading the same gossip do not all pile onto the same cheapest worker (docs/economy.md).
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

    async def run_remote(self, intent: Intent, emit: Callable[[dict], Awaitable[None]]) -> tuple[dict, str]:
        model = self._model_for(intent)
        if model is None and intent.model is None:
            raise BackendError("no_model", f"no peer in the realm serves {intent.kind}")
        model = model or intent.model
        if not self.plan(intent).ok and self.fed.dht is not None:
            with trio.move_on_after(min(3.0, intent.timeout / 2)):
                await self.fed.discover(intent.kind, model)
        inputs = _inputs(intent)
        inputs["timeout"] = intent.timeout
        ledger = self.node.ledger
        deadline = trio.current_time() + intent.timeout - 0.5
        tried: list[str] = []
        last: IntentFailed | None = None

        accepted: dict[str, int] = {}  # the price the worker of this attempt accepted at

        async def on_event(frame: dict) -> None:
            if frame.get("type") == "accepted":
                accepted["price"] = int(frame.get("price", 0))
            event = _from_frame(frame)
            if event is not None:
                await emit(event)

        repriced: dict[str, int] = {}  # peer -> its current price, learnt from "price moved"
        # The user's limit: their max price, or else the quote of the first plan (what they were
        # shown). A worker whose price moved above it is failed over, never paid more.
        user_limit = intent.max_price
        try:
            for _ in range(MAX_ATTEMPTS):
                plan = self.plan(intent, exclude=tried + [self.node.peer_id], max_price=user_limit)
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
                if limit and ledger is not None:
                    await self.settler.before_paying(pubkey_from_peer_id(offer.peer_id))
                    self._hold(intent, limit, offer.peer_id)
                request = {"id": intent.id, "kind": intent.kind, "model": model, "params": dict(intent.params),
                           "inputs": inputs, "max_price": limit if ledger is not None else intent.max_price}
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
                if receipt is not None and ledger is not None:
                    delivered = result_digest(result.get("output"), result.get("units", 0))
                    cost = self._pay(intent, offer.peer_id, receipt, min(limit, accepted.get("price", limit)), output,
                                     delivered)
                elif ledger is not None:
                    ledger.release(intent.id)
                return {**output, "units": result.get("units", 0), "cost": cost}, offer.peer_id
        except BaseException:
            if ledger is not None:
                ledger.release(intent.id)  # failure or cancel: nothing is owed
            raise
        if ledger is not None:
            ledger.release(intent.id)  # every worker tried failed: nothing is owed
        raise BackendError(last.code if last else "no_candidates", f"all workers failed; last: {last.message if last else '-'}")

    def finished(self, intent_id: str) -> None:
        """The intent is over, whatever happened: no hold may outlive it (paid ones have none left)."""
        if intent_id in self._held:
            self._held.discard(intent_id)
            if self.node.ledger.release(intent_id):
                log.warning("intent %s ended with a hold still placed: released", intent_id)

    def _hold(self, intent: Intent, amount: int, peer_id: str) -> None:
        from ledger import InsufficientFunds

        self._held.add(intent.id)
        try:
            self.node.ledger.hold(intent.id, amount, pubkey_from_peer_id(peer_id))
        except InsufficientFunds:
            raise BackendError("insufficient_funds",
                               f"not enough balance: available {self.node.ledger.available()} micro-tokens, "
                               f"the price is {amount}") from None

    def _pay(self, intent: Intent, peer_id: str, receipt: bytes, quoted: int, output: dict, delivered: bytes) -> int:
        """Check the worker's receipt and append our pay entry (durable); deliver it in the background.

        Paid only to the peer that did the work, at most the quote it accepted, for no more units
        than the result shows and no more than those units cost at that quote (kinds.py,
        PriceTable.max_charge), for the result delivered (its digest). A refused receipt costs the
        worker its health (misbehaviour)."""
        job = intent.id
        try:
            r = self._check_receipt(intent, peer_id, receipt, quoted, output, delivered)
            pay = self.node.ledger.pay(r)
        except Exception as e:
            self.node.ledger.release(job)
            self.fed.peers.record_misbehaviour(peer_id, f"receipt refused: {e}"[:200])
            log.warning("job %s: receipt from %s refused: %s", job, peer_id, e)
            raise BackendError("bad_receipt", f"the worker's receipt was refused: {e}") from None
        self.counters["paid"] += 1
        self.settler.kick()
        self._nursery.start_soon(self._deliver_pay, peer_id, job, pay.to_dict())
        return pay.body["amount"]

    def _check_receipt(self, intent: Intent, peer_id: str, receipt: bytes, quoted: int, output: dict,
                       delivered: bytes) -> "Receipt":  # noqa: F821 (ledger is imported lazily)
        from ledger import PaymentError, Receipt

        r = Receipt.from_bytes(receipt)  # strict decode; ledger.pay checks the signature
        if r.worker != pubkey_from_peer_id(peer_id):
            raise PaymentError(f"the receipt is signed by {peer_id_from_pubkey(r.worker)}, not by {peer_id}, who did the work")
        if r.job != intent.id or r.kind != intent.kind:
            raise PaymentError(f"the receipt is for job {r.job!r} ({r.kind}), not {intent.id!r} ({intent.kind})")
        if r.result != delivered:
            raise PaymentError("the receipt's result hash is not that of the result delivered")
        if r.price > quoted:
            raise PaymentError(f"receipt price {r.price} is above the accepted quote {quoted}")
        inputs = _inputs(intent)
        kind = KINDS[intent.kind]
        most = kind.max_units(intent.params, inputs, output)
        if r.units > most:
            raise PaymentError(f"the receipt claims {r.units} {kind.unit}; the result shows at most {most}")
        st = self.fed.peers.get(peer_id)
        table = PriceTable.from_announcement((st.announcement or {}).get("prices") or {})
        bound = table.max_charge(intent.kind, quoted, r.units, kind.estimate(intent.params, inputs), r.model or None)
        if r.price > bound:
            raise PaymentError(f"receipt price {r.price} for {r.units} {kind.unit} is above what they cost at the accepted quote ({bound})")
        return r

    async def _deliver_pay(self, peer_id: str, job: str, entry: dict) -> None:
        """Send a pay entry until the worker acknowledges it; unacknowledged ones are re-sent
        after a restart (`_resend_pays`), so a crash right after paying loses nothing."""
        for attempt in range(PAY_RETRIES):
            try:
                await self.messenger.request(peer_id, "pay", {"entry": entry})
                self.node.store.mark_pay_delivered(job)
                return
            except MessageFailed as e:
                if e.code == "AlreadyPaid":  # delivered before, the acknowledgement was lost
                    self.node.store.mark_pay_delivered(job)
                    return
                if e.code not in ("timeout", "unreachable"):
                    log.warning("pay entry for %s refused by %s: %s", job, peer_id, e.message)
                    break
                await trio.sleep(2.0 ** attempt)  # back-off between delivery attempts
        self.counters["pay_failed"] += 1

    async def _resend_pays(self) -> None:
        ledger = self.node.ledger
        delivered = self.node.store.delivered_pays()
        pending = [e for e in ledger.entries(ledger.pubkey) if e.kind == "pay" and e.body["job"] not in delivered]
        for e in pending:
            log.info("re-sending the pay entry for job %s", e.body["job"])
            self._nursery.start_soon(self._deliver_pay, peer_id_from_pubkey(e.body["to"]), e.body["job"], e.to_dict())


def _address(peer_id: str) -> str:
    from .chain import address_from_peer_id

    return address_from_peer_id(peer_id)


def _inputs(intent: Intent) -> dict:
    return {k: v for k, v in (("messages", intent.messages), ("prompt", intent.prompt),
                              ("image", intent.image), ("audio", intent.audio), ("texts", intent.texts)) if v is not None}


def _to_frame(event: dict) -> dict | None:
    t = event["type"]
    if t == "chunk":
        return {"type": "chunk", "data": event["text"] if "text" in event else event.get("audio", b"")}
    if t == "progress":
        return {"type": "progress", "done": event.get("step", 0), "total": event.get("total")}
    if t == "queued":
        return {"type": "progress", "done": 0, "position": event.get("position") or 0}
    if t == "result":
        output = {k: v for k, v in event.items() if k not in ("type", "id", "units", "peer", "duration_ms",
                                                              "ledger_receipt")}
        frame = {"type": "result", "output": output, "units": int(event.get("units", 0) or 0)}
        if "ledger_receipt" in event:
            frame["receipt"] = event["ledger_receipt"]  # a typed field of the result frame (federation/frames.py)
        return frame
    if t == "error":
        return {"type": "error", "code": event["code"], "message": event["message"]}
    return None  # started: local bookkeeping only


def _from_frame(frame: dict) -> dict | None:
    t = frame["type"]
    if t == "chunk":
        data = frame["data"]
        return {"type": "chunk", "text": data} if isinstance(data, str) else {"type": "chunk", "audio": data, "format": "wav"}
    if t == "progress":
        if frame.get("position"):
            return {"type": "queued", "position": frame["position"], "remote": True}
        return {"type": "progress", "step": frame.get("done", 0), "total": frame.get("total")}
    if t == "accepted":
        return {"type": "accepted", "price": frame.get("price", 0)}
    if t == "failover":
        return {"type": "failover", "from": frame.get("from"), "code": frame.get("code"), "message": frame.get("message")}
    return None
