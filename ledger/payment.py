"""The job exchange (docs/ledger.md, "The job exchange"), as functions over a ChainStore; transport is the caller's.

    requester                                   worker
    ---------                                   ------
    hold(job, quote)                 intent ->  check_credit(requester, price, limit)
                                                ... runs the job ...
                                     <- receipt make_receipt(job, requester, ..., price, sha256(result))
    pay(receipt) -> pay entry
      (checks the worker's signature, price <= hold; consumes the hold
       in the same transaction; job id unique -> paid once)
                                   pay entry -> accept_pay(pay) -> earn entry
                                                (signature, it is for us, quotes OUR receipt for
                                                 this job, not yet earned, chain continuity with
                                                 what we hold of the requester; equivocation ->
                                                 fraud proof + ban)

On failure or cancel the requester calls release(job). On failover the same job id goes to
the next worker; only the receipt that comes back is paid, and a second receipt for a job
already paid raises AlreadyPaid.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .accounts import Accounts
from .chain_store import ChainStore, now_ms
from .entry import EARN, PAY, Entry
from .errors import (AlreadyPaid, BannedAuthor, EquivocationError, PaymentError)
from .fraud import BanList, check_foreign
from .keys import address
from .receipts import Receipt


def make_receipt(store: ChainStore, job: str, requester: bytes, kind: str, model: str,
                 units: int, price: int, result_hash: bytes, time_ms: int | None = None) -> Receipt:
    """Worker: sign the receipt for a delivered job and remember it (one receipt per job)."""
    r = Receipt(job=job, requester=requester, worker=store.me, kind=kind, model=model,
                units=units, price=price, result=result_hash,
                time=time_ms if time_ms is not None else now_ms())
    Receipt.from_dict(r.to_dict() | {"sig": bytes(64)})  # same bounds as the receiving side
    r = r.signed_by(store.signer)
    with store.tx() as db:
        row = db.execute("SELECT raw FROM ledger_receipts WHERE job=?", (job,)).fetchone()
        if row is not None:
            old = Receipt.from_bytes(row[0])
            if old.unsigned_dict() | {"time": 0} == r.unsigned_dict() | {"time": 0}:
                return old  # retransmission of the same receipt
            raise PaymentError(f"job {job!r}: a different receipt was already issued")
        db.execute("INSERT INTO ledger_receipts VALUES(?,?,?,?,?,0)",
                   (job, requester, price, r.to_bytes(), now_ms()))
    return r


def pay(store: ChainStore, accounts: Accounts, bans: BanList, receipt: Receipt | dict[str, Any]) -> Entry:
    """Requester: check the worker's receipt against our hold and append the `pay` entry.

    The hold for the job must exist (held before dispatch) and cover the price; it is consumed
    in the same transaction. Raises AlreadyPaid for a second pay of a job, PaymentError for a
    receipt that is not for us / over the quote, BadSignature, BannedAuthor.
    """
    r = receipt if isinstance(receipt, Receipt) else Receipt.from_dict(receipt)
    r.verify()
    if r.requester != store.me:
        raise PaymentError(f"receipt for job {r.job!r} names another requester")
    if bans.is_banned(r.worker):
        raise BannedAuthor(f"worker {address(r.worker)} is banned")
    with store.tx():
        if store.find_job(store.me, PAY, r.job) is not None:
            raise AlreadyPaid(f"job {r.job!r} is already paid")
        held = accounts.get_hold(r.job)
        if held is None:
            raise PaymentError(f"job {r.job!r}: no hold (released, expired or never placed)")
        held_for = accounts.get_hold_peer(r.job)
        if held_for is not None and held_for != r.worker:
            raise PaymentError(f"job {r.job!r}: the receipt is signed by {address(r.worker)}, but the job "
                               f"was sent to {address(held_for)}")
        if r.price > held:
            raise PaymentError(f"job {r.job!r}: receipt price {r.price} exceeds the quote held ({held})")

        def consume_hold(db: sqlite3.Connection, _e: Entry) -> None:
            db.execute("DELETE FROM ledger_holds WHERE job=?", (r.job,))

        return store.append(PAY, {"job": r.job, "to": r.worker, "amount": r.price,
                                  "receipt": r.to_dict()}, side_effect=consume_hold)


def accept_pay(store: ChainStore, bans: BanList, pay_entry: Entry | dict[str, Any] | bytes) -> Entry:
    """Worker: check a requester's pay entry and append our `earn`. Returns the earn entry.

    Raises DecodeError / BadSignature (forged), PaymentError (not for us, not our receipt),
    AlreadyPaid (replay of a pay we already earned), ChainError (does not fit the requester's
    chain as we know it), EquivocationError (fork: the author is banned, proof in .proof),
    BannedAuthor.
    """
    e = pay_entry if isinstance(pay_entry, Entry) else Entry.from_wire(pay_entry)
    if isinstance(pay_entry, Entry):
        e.verify()
    if e.kind != PAY:
        raise PaymentError(f"entry {e.ref} is a {e.kind!r}, not a pay")
    if bans.is_banned(e.author):
        raise BannedAuthor(f"payer {e.author_address} is banned: {bans.reason(e.author)}")
    body = e.body
    if body["to"] != store.me:
        raise PaymentError(f"entry {e.ref} pays someone else")
    r = Receipt.from_dict(body["receipt"])
    r.verify()  # our own signature: proves the price/job are what we asked for
    try:
        return _record_earn(store, e, r)
    except EquivocationError as exc:
        # banned outside the failed transaction, which rolled back
        bans.ban(e.author, f"equivocation at seq {e.seq}", exc.proof)
        raise


def _record_earn(store: ChainStore, e: Entry, r: Receipt) -> Entry:
    body = e.body
    with store.tx() as db:
        row = db.execute("SELECT raw, paid FROM ledger_receipts WHERE job=?", (r.job,)).fetchone()
        if row is None or row[0] != r.to_bytes():
            raise PaymentError(f"entry {e.ref}: quotes a receipt we did not issue for job {r.job!r}")
        if row[1] or store.find_job(store.me, EARN, r.job) is not None:
            raise AlreadyPaid(f"job {r.job!r} was already earned (replayed pay {e.ref})")
        Accounts(store).check_supply(db, body["amount"], f"earn for job {r.job!r}")
        check_foreign(store, e)
        store.put_foreign(e)
        db.execute("UPDATE ledger_receipts SET paid=1 WHERE job=?", (r.job,))
        return store.append(EARN, {"job": r.job, "from": e.author, "amount": body["amount"],
                                   "pay": e.hash, "pay_seq": e.seq})
