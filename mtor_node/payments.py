"""Paying for remote work and being paid for it (docs/ledger.md, docs/protocol.md §7):

- broker side: a hold of the quoted price while a peer works, the check of the worker's one
  receipt (`check_receipt`), the pay entry appended durably and delivered over `/mtor/msg/1` until
  the worker acknowledges it (re-sent after a restart);
- worker side: a requester's pay entry becomes our earn (`on_pay`);
- both: fraud proofs (an equivocating ledger) are flooded once to every connected peer and every
  node blocks the author.
"""

from __future__ import annotations

import logging
from typing import Callable

import stamina
import trio

from federation import Federation
from federation.kinds import KINDS
from federation.messages import MessageFailed, Messenger
from federation.pricing import PriceTable

from .backends import BackendError
from .event_frames import intent_inputs
from .identity import peer_id_from_pubkey, pubkey_from_peer_id
from .intents import Intent
from .store import Store

log = logging.getLogger("mtor.payments")

PAY_RETRIES = 6  # back-off about 1, 2, 4 ... 32 s: a worker that restarts has time to come back


def _worker_away(exc: Exception) -> bool:
    """A pay entry is sent again only when the worker did not answer, never when it refused it."""
    return isinstance(exc, MessageFailed) and exc.code in ("timeout", "unreachable")


class Payments:
    def __init__(self, fed: Federation, ledger, store: Store, counters: dict, on_paid: Callable[[], None]) -> None:
        self.fed = fed
        self.ledger = ledger  # ledger.Ledger, or None on a node without one
        self.store = store
        self.counters = counters
        self.on_paid = on_paid  # the settler looks at the balances after every pay
        self.messenger: Messenger | None = None
        self._nursery: trio.Nursery | None = None
        self._held: set[str] = set()  # intents that placed a hold, until they end

    def attach(self, messenger: Messenger, nursery: trio.Nursery) -> None:
        """Once the p2p layer runs: the messenger to deliver with, the nursery for deliveries."""
        self.messenger, self._nursery = messenger, nursery
        messenger.on("pay", self.on_pay)
        messenger.on("fraud", self.on_fraud)

    # ---- broker side: hold, check, pay, deliver ------------------------------------------------

    def hold(self, intent: Intent, amount: int, peer_id: str) -> None:
        from ledger import InsufficientFunds

        self._held.add(intent.id)
        try:
            self.ledger.hold(intent.id, amount, pubkey_from_peer_id(peer_id))
        except InsufficientFunds:
            raise BackendError("insufficient_funds",
                               f"not enough balance: available {self.ledger.available()} micro-tokens, "
                               f"the price is {amount}") from None

    def release(self, intent_id: str) -> None:
        if self.ledger is not None:
            self.ledger.release(intent_id)

    def finished(self, intent_id: str) -> None:
        """The intent is over, whatever happened: no hold may outlive it (paid ones have none left)."""
        if intent_id in self._held:
            self._held.discard(intent_id)
            try:
                released = self.ledger.release(intent_id)
            except Exception:  # runs in the broker's _finish: an error here must not stop the broker
                log.exception("intent %s: could not release its hold (it expires by itself)", intent_id)
                return
            if released:
                log.warning("intent %s ended with a hold still placed: released", intent_id)

    def pay(self, intent: Intent, peer_id: str, receipt: bytes, quoted: int, output: dict, delivered: bytes) -> int:
        """Check the worker's receipt and append our pay entry (durable); deliver it in the background.

        Paid only to the peer that did the work, at most the quote it accepted, for no more units
        than the result shows and no more than those units cost at that quote (kinds.py,
        PriceTable.max_charge), for the result delivered (its digest). A refused receipt costs the
        worker its health (misbehaviour)."""
        job = intent.id
        try:
            r = self.check_receipt(intent, peer_id, receipt, quoted, output, delivered)
            entry = self.ledger.pay(r)
        except Exception as e:
            self.ledger.release(job)
            self.fed.peers.record_misbehaviour(peer_id, f"receipt refused: {e}"[:200])
            log.warning("job %s: receipt from %s refused: %s", job, peer_id, e)
            raise BackendError("bad_receipt", f"the worker's receipt was refused: {e}") from None
        self.counters["paid"] += 1
        self.on_paid()
        self._nursery.start_soon(self.deliver_pay, peer_id, job, entry.to_dict())
        return entry.body["amount"]

    def check_receipt(self, intent: Intent, peer_id: str, receipt: bytes, quoted: int, output: dict,
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
        inputs = intent_inputs(intent)
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

    async def deliver_pay(self, peer_id: str, job: str, entry: dict) -> None:
        """Send a pay entry until the worker acknowledges it; unacknowledged ones are re-sent
        after a restart (`resend_pays`), so a crash right after paying loses nothing."""
        try:
            # exponential back-off with jitter (stamina), retried only while the worker is away
            async for attempt in stamina.retry_context(on=_worker_away, attempts=PAY_RETRIES, wait_initial=1.0,
                                                       wait_max=32.0, timeout=None):
                with attempt:
                    await self.messenger.request(peer_id, "pay", {"entry": entry})
            self.store.mark_pay_delivered(job)
            return
        except MessageFailed as e:
            if e.code == "AlreadyPaid":  # delivered before, the acknowledgement was lost
                self.store.mark_pay_delivered(job)
                return
            if not _worker_away(e):
                log.warning("pay entry for %s refused by %s: %s", job, peer_id, e.message)
        self.counters["pay_failed"] += 1

    async def resend_pays(self) -> None:
        delivered = self.store.delivered_pays()
        pending = [e for e in self.ledger.entries(self.ledger.pubkey) if e.kind == "pay" and e.body["job"] not in delivered]
        for e in pending:
            log.info("re-sending the pay entry for job %s", e.body["job"])
            self._nursery.start_soon(self.deliver_pay, peer_id_from_pubkey(e.body["to"]), e.body["job"], e.to_dict())

    # ---- worker side: a requester's pay entry becomes our earn --------------------------------

    async def on_pay(self, peer_id: str, body: dict) -> dict:
        if self.ledger is None:
            raise MessageFailed("no_ledger", "this node keeps no ledger")
        from ledger import EquivocationError

        try:
            earn = self.ledger.accept_pay(body.get("entry"))
        except EquivocationError as e:  # the ledger banned the author; tell the realm
            self.block_author(e.proof.author)
            self._nursery.start_soon(self.spread_fraud, e.proof.to_bytes(), None)
            raise MessageFailed("EquivocationError", str(e)) from None
        except Exception as e:  # every ledger error has a message that says what was wrong
            raise MessageFailed(type(e).__name__, str(e)) from None
        self.counters["earned"] += 1
        return {"earn_seq": earn.seq}

    # ---- fraud proofs: flooded to every connected peer once, each node blocks the author -------

    async def on_fraud(self, peer_id: str, body: dict) -> dict:
        if self.ledger is None:
            return {}
        raw = body.get("proof")
        if not isinstance(raw, (bytes, bytearray)):
            raise MessageFailed("malformed", "proof must be bytes")
        from ledger import FraudProof

        try:
            proof = FraudProof.from_bytes(bytes(raw))
        except Exception as e:
            raise MessageFailed("bad_proof", str(e)) from None
        if self.ledger.is_banned(proof.author):
            return {"new": False}
        try:
            self.ledger.ingest_fraud_proof(proof)  # verifies both signatures before banning
        except Exception as e:
            raise MessageFailed("bad_proof", str(e)) from None
        self.block_author(proof.author)
        self._nursery.start_soon(self.spread_fraud, bytes(raw), peer_id)
        return {"new": True}

    def block_author(self, pubkey: bytes) -> None:
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
