"""The job exchange between two nodes with separate SQLite files: paid exactly once, both
ledgers agree, replays rejected, failover pays only the worker that delivered, holds released."""

from __future__ import annotations

import hashlib

import pytest

from ledger import (AlreadyPaid, BadSignature, CreditLimitExceeded, Entry, InsufficientFunds,
                    PaymentError, Receipt, ReplayError, issue_grant)

RESULT = hashlib.sha256(b"the answer").digest()


def job(requester, worker, job_id, price, quote=None):
    """Run one job end to end over 'the wire' (dicts): returns (pay entry, earn entry)."""
    requester.hold(job_id, quote or price, worker.pubkey)
    worker.check_credit(requester.pubkey, price, limit=10_000_000)
    receipt = worker.make_receipt(job_id, requester.pubkey, "chat", "smollm2", 128, price, RESULT)
    pay = requester.pay(receipt.to_dict())
    earn = worker.accept_pay(pay.to_dict())
    return pay, earn


def test_two_party_job_pays_exactly_once_and_ledgers_agree(make_ledger):
    r = make_ledger("requester", funds=5_000_000)
    w = make_ledger("worker")
    pay, earn = job(r, w, "job-1", 250_000, quote=300_000)
    assert r.balance() == 4_750_000 and r.available() == 4_750_000  # hold consumed, not leaked
    assert w.balance() == 250_000
    assert earn.body["pay"] == pay.hash and earn.body["from"] == r.pubkey
    assert r.owed() == {w.pubkey: 250_000} and w.owed() == {r.pubkey: -250_000}
    # the worker holds the requester's pay entry, byte for byte
    assert w.store.get(r.pubkey, pay.seq) == pay
    assert r.verify().ok and w.verify().ok and w.verify(r.pubkey, full=False).ok
    # paying the same job again is impossible, on both sides
    with pytest.raises(AlreadyPaid):
        r.pay(w.make_receipt("job-1", r.pubkey, "chat", "smollm2", 128, 250_000, RESULT))
    with pytest.raises(ReplayError):
        w.accept_pay(pay.to_dict())
    with pytest.raises(AlreadyPaid):
        r.hold("job-1", 1)
    assert r.balance() == 4_750_000 and w.balance() == 250_000


def test_failover_pays_only_the_worker_that_delivered(make_ledger):
    r = make_ledger("r", funds=1_000_000)
    w1, w2 = make_ledger("w1"), make_ledger("w2")
    r.hold("job-9", 100_000, w1.pubkey)
    assert r.available() == 900_000
    # w1 dies mid-job: no receipt. The broker fails over with the same job id and hold.
    r.hold("job-9", 100_000, w2.pubkey)
    receipt = w2.make_receipt("job-9", r.pubkey, "chat", "m", 5, 80_000, RESULT)
    pay = r.pay(receipt)
    w2.accept_pay(pay.to_dict())
    # w1 comes back late with a receipt: refused, job already paid
    late = w1.make_receipt("job-9", r.pubkey, "chat", "m", 5, 80_000, RESULT)
    with pytest.raises(AlreadyPaid):
        r.pay(late)
    assert r.balance() == 920_000 and r.available() == 920_000 and r.accounts.holds() == {}
    assert w2.balance() == 80_000 and w1.balance() == 0
    # a pay entry meant for w2 is no good to w1
    with pytest.raises(PaymentError):
        w1.accept_pay(pay.to_dict())


def test_failure_and_cancel_release_the_hold(make_ledger):
    r = make_ledger("r", funds=500_000)
    r.hold("a", 400_000)
    with pytest.raises(InsufficientFunds):
        r.hold("b", 200_000)
    assert r.release("a") is True
    assert r.available() == 500_000
    r.hold("b", 200_000)
    assert r.release("b") and not r.release("b")
    # no hold, no pay (e.g. released after a timeout, then a stale receipt arrives)
    w = make_ledger("w")
    with pytest.raises(PaymentError):
        r.pay(w.make_receipt("b", r.pubkey, "chat", "m", 1, 10, RESULT))


def test_holds_survive_restart_and_expire(make_ledger):
    r = make_ledger("r", funds=500_000)
    seed = r.store.signer.keypair.secret()[:32]
    r.hold("kept", 100_000)
    r.hold("stale", 100_000, ttl_s=-1)  # already expired: as after a crash long ago
    r.close()
    r2 = make_ledger("r", seed=seed)
    assert r2.accounts.holds() == {"kept": 100_000}
    assert r2.available() == 400_000


def test_receipt_over_quote_or_forged_is_refused(make_ledger):
    r = make_ledger("r", funds=500_000)
    w = make_ledger("w")
    r.hold("j", 1000)
    with pytest.raises(PaymentError):
        r.pay(w.make_receipt("j", r.pubkey, "chat", "m", 1, 1001, RESULT))
    good = w.make_receipt("j2", r.pubkey, "chat", "m", 1, 10, RESULT).to_dict()
    forged = Receipt.from_dict(dict(good, price=1))
    r.hold("j2", 10)
    with pytest.raises(BadSignature):
        r.pay(forged)


def test_forged_pay_entries_are_rejected(make_ledger):
    r = make_ledger("r", funds=500_000)
    w = make_ledger("w")
    r.hold("j", 1000)
    pay = r.pay(w.make_receipt("j", r.pubkey, "chat", "m", 1, 1000, RESULT))
    d = pay.to_dict()
    with pytest.raises(BadSignature):
        w.accept_pay(dict(d, sig=bytes(64)))
    with pytest.raises(BadSignature):
        w.accept_pay(dict(d, time=d["time"] + 1))
    assert w.balance() == 0
    w.accept_pay(d)
    assert w.balance() == 1000


def test_credit_limit_per_peer(make_ledger):
    r = make_ledger("r", funds=5_000_000)
    w = make_ledger("w")
    w.check_credit(r.pubkey, 600_000, limit=1_000_000)
    w.make_receipt("j1", r.pubkey, "chat", "m", 1, 600_000, RESULT)  # delivered, not paid yet
    with pytest.raises(CreditLimitExceeded):
        w.check_credit(r.pubkey, 500_000, limit=1_000_000)
    r.hold("j1", 600_000)
    w.accept_pay(r.pay(w.make_receipt("j1", r.pubkey, "chat", "m", 1, 600_000, RESULT)).to_dict())
    w.check_credit(r.pubkey, 500_000, limit=1_000_000)  # paid: credit freed
    with pytest.raises(CreditLimitExceeded):  # unless unsettled debt counts too
        w.check_credit(r.pubkey, 500_000, limit=1_000_000, include_unsettled=True)


def test_grants_only_from_the_realm_authority_and_once(make_ledger, authority_seed):
    import os
    r = make_ledger("r")
    v = issue_grant(authority_seed, "lab", r.pubkey, 42, "g-1")
    r.apply_grant(v.to_dict())
    with pytest.raises(ReplayError):
        r.apply_grant(v)
    with pytest.raises(BadSignature):
        r.apply_grant(issue_grant(os.urandom(32), "lab", r.pubkey, 42, "g-2"))
    with pytest.raises(PaymentError):
        r.apply_grant(issue_grant(authority_seed, "other-realm", r.pubkey, 42, "g-3"))
    assert r.balance() == 42
    # any node can check a grant entry came from the authority
    g = next(e for e in r.entries() if e.kind == "grant")
    from ledger.grants import GrantVoucher
    from ledger.keys import Signer
    GrantVoucher.from_dict(Entry.from_wire(g.to_dict()).body["voucher"]).verify(Signer(authority_seed).pubkey)
