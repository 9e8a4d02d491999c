"""The worker side of the realm: a peer's intent, admitted or refused, then run in the local fair
queue like any other (docs/protocol.md §5, docs/economy.md).

Admission, in order: a valid intent; a peaking worker takes work only while the market surges
(PeakingPolicy); "price moved" when our price is above the requester's max price (a typed field,
never a number in text); no work for an equivocator; credit — the requester's debt plus this job
within its limit (on the grid: the disconnect threshold and what the payer holds on chain). The
result carries the job's one receipt, for the units the result shows.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Awaitable, Callable, Iterable, Protocol

import trio

from federation import market
from federation.frames import result_digest
from federation.kinds import KINDS
from federation.pricing import PeakingPolicy, PriceTable, SurgeMeter

from .event_frames import to_frame
from .identity import pubkey_from_peer_id
from .intents import Intent, IntentError
from .settlement import Settler, credit_limit

if TYPE_CHECKING:
    from .broker import Broker
    from .config import Config
    from .models import ModelManager

Send = Callable[[dict], Awaitable[None]]


class Offering(Protocol):
    """What this worker announces now (network.Network): the prices a job is charged at."""

    announced: float
    prices: PriceTable
    policy: PeakingPolicy | None
    surge: SurgeMeter

    def market_surge(self, kinds: Iterable[str]) -> float: ...


class PeerWork:
    def __init__(self, offering: Offering, broker: Broker, models: ModelManager | None, ledger, config: Config,
                 stopping: trio.Event, settler: Settler, counters: dict, settle_address: str) -> None:
        self.offering = offering
        self.broker, self.models, self.ledger = broker, models, ledger  # ledger: ledger.Ledger or None
        self.config = config
        self.stopping = stopping  # the node is shutting down: errors become retryable
        self.settler = settler
        self.counters = counters
        self.settle_address = settle_address  # this worker's Solana address, for `wallet settle --peer`
        # requester -> {job: quote} of its admitted jobs with no receipt yet: a payer's concurrent
        # jobs all count against its credit, else N at once run it N quotes past the limit
        self._running: dict[bytes, dict[str, int]] = {}

    async def serve(self, peer_id: str, request: dict, send: Send) -> None:
        intent = await self._intent(peer_id, request, send)
        if intent is None:
            return
        price = await self._admit(peer_id, intent, request.get("inputs") or {}, send)
        if price is None:
            return
        try:
            await self._run(peer_id, intent, price, send)
        finally:
            self._receipted(pubkey_from_peer_id(peer_id), intent.id)

    def _receipted(self, requester: bytes, job: str) -> None:
        """The job's credit reservation ends: its receipt now counts (or it never had one)."""
        jobs = self._running.get(requester)
        if jobs is not None:
            jobs.pop(job, None)
            if not jobs:
                del self._running[requester]

    async def _intent(self, peer_id: str, request: dict, send: Send) -> Intent | None:
        inputs = request.get("inputs") or {}
        try:
            return Intent.from_dict({
                "id": request["id"][:64], "kind": request["kind"], "model": request["model"],
                "params": request.get("params") or {}, "user": peer_id[-64:],
                "timeout": inputs.get("timeout", 300.0), "max_price": request.get("max_price"),
                **{k: inputs[k] for k in ("messages", "prompt", "image", "audio", "texts") if k in inputs},
            })
        except IntentError as e:
            await send({"type": "error", "code": "bad_request", "message": e.message})
            return None

    async def _admit(self, peer_id: str, intent: Intent, inputs: dict, send: Send) -> int | None:
        """The price this job is charged at, or None after sending why it is refused."""
        o = self.offering
        surge = o.announced
        if o.policy is not None:
            mkt = o.market_surge([intent.kind])
            if not o.policy.accepts(intent.kind, surge, mkt):
                await send({"type": "error", "code": "busy",
                            "message": f"peaking worker: takes {intent.kind} at a market surge ≥ "
                                       f"{o.policy.threshold(intent.kind)} (or ≥ {o.policy.priority}), now {mkt}"})
                return None
        price = o.prices.quote(intent.kind, intent.params, model=intent.model, surge=surge, inputs=inputs)
        moved = market.price_moved(intent.max_price, price)
        if moved is not None:
            self.counters["price_moved"] += 1
            await send({"type": "error", "code": "price", "price": moved,
                        "message": f"price moved: now {moved} micro-tokens, above your max price {intent.max_price}"})
            return None
        ledger = self.ledger
        requester = pubkey_from_peer_id(peer_id)
        if ledger is not None and ledger.is_banned(requester):
            await send({"type": "error", "code": "credit", "message": "this node has banned you: your ledger equivocated"})
            return None
        if price and ledger is not None:
            why = await self._credit_refusal(requester, price)
            if why is not None:
                self.counters["refused_credit"] += 1
                await send({"type": "error", "code": "credit", "message": why})
                return None
            self._running.setdefault(requester, {})[intent.id] = price  # no await since the check
        return price

    async def _credit_refusal(self, requester: bytes, price: int) -> str | None:
        """Why the requester gets no credit for a job of `price`, or None when it does."""
        cfg, ledger = self.config, self.ledger
        limit, unsettled = credit_limit(cfg)
        backing = await self.settler.payer_backing(requester) if unsettled else None
        if backing is not None and backing < limit:  # no more credit than the payer holds on chain
            limit = backing
        running = sum(self._running.get(requester, {}).values())  # quoted, not receipted yet
        try:
            ledger.check_credit(requester, price + running, limit, include_unsettled=unsettled)
            return None
        except Exception as e:  # CreditLimitExceeded, or a banned/unknown payer
            if not unsettled:
                return str(e)
        # SWAP: name the debt and how it gets settled
        debt = ledger.accounts.outstanding(requester, include_unsettled=True)
        why = (f"what you hold on chain ({backing} micro-tokens of $9000)" if backing is not None
               and backing <= limit else f"its disconnect threshold of {limit}")
        also = f" and {running} for your jobs still running" if running else ""
        return (f"you owe this worker {debt} micro-tokens unsettled{also}; a job of {price} would pass {why}. "
                f"Settle on chain: your node sends an SPL TransferChecked by itself once it owes "
                f"{cfg['ledger.payment_threshold']} (ledger.settlement on, SOL for fees, $9000 in its token "
                f"account), or run `mtor-node wallet settle --peer {self.settle_address}`")

    async def _run(self, peer_id: str, intent: Intent, price: int, send: Send) -> None:
        broker, models = self.broker, self.models
        try:
            ticket = broker.submit(intent, local_only=True)
        except IntentError as e:
            code = "busy" if e.code in ("queue_full", "shutting_down") else "unsupported" if e.code == "no_model" else "bad_request"
            if code == "busy":  # turning work away is load too: let the surge show it
                local = models.resolve(intent.kind, intent.model) if models else None
                self.offering.surge.observe_refused(intent.kind, queued=len(broker.queue), running=broker.inflight,
                                                    slots=models.states[local].spec.concurrency if local else 1,
                                                    units=1, now=time.monotonic())
            await send({"type": "error", "code": code, "message": e.message})
            return
        surge = self.offering.announced
        started = None
        try:
            await send({"type": "accepted", "price": price, "queue": ticket.position})
            async for event in ticket.events:
                if event["type"] == "started":
                    started = time.monotonic()
                if event["type"] == "result":
                    event = self._charged(peer_id, intent, event, price, surge, started, ticket.submitted)
                if event["type"] == "error" and self.stopping.is_set():
                    event = {**event, "code": "busy"}  # retryable: the broker fails over to another worker
                frame = to_frame(event)
                if frame is not None:
                    await send(frame)
        finally:
            if ticket.state in ("queued", "running"):  # the requester went away or cancelled
                broker.cancel(intent.id, "the requesting peer cancelled")

    def _charged(self, peer_id: str, intent: Intent, event: dict, price: int, surge: float, started: float | None,
                 submitted: float) -> dict:
        """The result with its units, cost and the job's one receipt (docs/protocol.md §5)."""
        # the units the quote counted, as the result shows them (kinds.py): a backend cannot make
        # the payer owe more than its answer is worth
        units = KINDS[intent.kind].settle_units(intent.params, intent.to_dict(), event, event.get("units"))
        now = time.monotonic()
        self.offering.surge.observe(intent.kind, now - (started or submitted), (started or now) - submitted,
                                    units=max(units, 1), now=now)
        charge = self.offering.prices.charge(intent.kind, units, surge, quoted=price, model=intent.model)
        event = {**event, "units": units, "cost": charge}
        ledger = self.ledger
        if charge and ledger is not None:
            body = to_frame(event) or {}  # what the broker receives: the receipt binds it
            requester = pubkey_from_peer_id(peer_id)
            receipt = ledger.make_receipt(intent.id, requester, intent.kind, intent.model, units,
                                          charge, result_digest(body.get("output"), body.get("units", 0)))
            self._receipted(requester, intent.id)  # the receipt counts from now on
            event["ledger_receipt"] = receipt.to_bytes()
        return event


