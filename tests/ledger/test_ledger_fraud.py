"""Equivocation -> fraud proof that anyone verifies -> ban; replayed, forged, out-of-order
entries rejected."""

from __future__ import annotations

import hashlib

import pytest

from ledger import (BannedAuthor, BadSignature, ChainError, DecodeError, Entry, EquivocationError,
                    FraudProof, ReplayError)

RESULT = hashlib.sha256(b"r").digest()


def _fork_pay(r, w, job, price, seq, prev):
    """The requester's key signs a pay at an already-used seq (a double spend)."""
    rc = w.make_receipt(job, r.pubkey, "chat", "m", 1, price, RESULT)
    return Entry.create(r.store.signer, seq, prev, "pay",
                        {"job": job, "to": w.pubkey, "amount": price, "receipt": rc.to_dict()})


def test_equivocation_gives_a_verifiable_fraud_proof_and_a_ban(make_ledger):
    r = make_ledger("r", funds=1_000_000)
    w = make_ledger("w")
    bystander = make_ledger("x")
    r.hold("j1", 100)
    pay = r.pay(w.make_receipt("j1", r.pubkey, "chat", "m", 1, 100, RESULT))
    w.accept_pay(pay.to_dict())
    twin = _fork_pay(r, w, "j2", 100, pay.seq, pay.prev)
    with pytest.raises(EquivocationError) as ei:
        w.accept_pay(twin.to_dict())
    proof: FraudProof = ei.value.proof
    proof.verify()
    assert w.is_banned(r.pubkey)
    assert w.bans.proof(r.pubkey).to_bytes() == proof.to_bytes()
    # gossiped as bytes, verified and acted on by a node that saw neither entry
    got = bystander.ingest_fraud_proof(proof.to_bytes())
    assert got.author == r.pubkey and bystander.is_banned(r.address)
    # a banned author gets no further service
    r.hold("j3", 100)
    pay3 = r.pay(w.make_receipt("j3", r.pubkey, "chat", "m", 1, 100, RESULT))
    with pytest.raises(BannedAuthor):
        w.accept_pay(pay3.to_dict())


def test_fake_fraud_proofs_are_rejected(make_ledger):
    r = make_ledger("r", funds=1_000_000)
    w = make_ledger("w")
    entries = list(r.entries())
    with pytest.raises(BadSignature):  # the same entry twice is no proof
        FraudProof(entries[1], entries[1]).verify()
    with pytest.raises(BadSignature):  # different seqs
        FraudProof.of(entries[0], entries[1]).verify()
    fake = Entry(entries[1].author, entries[1].seq, entries[1].prev, entries[1].time + 1,
                 entries[1].kind, entries[1].body, entries[1].sig)
    with pytest.raises(BadSignature):  # an unsigned variant: forged, not equivocation
        w.ingest_fraud_proof(FraudProof.of(entries[1], fake).to_dict())
    with pytest.raises(DecodeError):
        w.ingest_fraud_proof(b"\x93\x01\x02")
    assert not w.is_banned(r.pubkey)


def test_replayed_and_out_of_order_entries_rejected(make_ledger):
    r = make_ledger("r", funds=1_000_000)
    w = make_ledger("w")
    pays = []
    for i in range(3):
        r.hold(f"j{i}", 10)
        pays.append(r.pay(w.make_receipt(f"j{i}", r.pubkey, "chat", "m", 1, 10, RESULT)))
    # delivered in a different order than signed: still fits the chain, accepted
    w.accept_pay(pays[2].to_dict())
    w.accept_pay(pays[0].to_dict())
    w.accept_pay(pays[1].to_dict())
    assert w.balance() == 30
    with pytest.raises(ReplayError):
        w.observe(pays[1].to_dict())
    # an entry that does not link to the neighbour we hold (out of order / forked link)
    rc = w.make_receipt("j9", r.pubkey, "chat", "m", 1, 10, RESULT)
    body = {"job": "j9", "to": w.pubkey, "amount": 10, "receipt": rc.to_dict()}
    bad_link = Entry.create(r.store.signer, pays[2].seq + 1, bytes(32), "pay", body)
    with pytest.raises(ChainError):
        w.accept_pay(bad_link.to_dict())
    # time running backwards against the entry before it
    backwards = Entry.create(r.store.signer, pays[2].seq + 1, pays[2].hash, "pay", body,
                             time_ms=pays[2].time - 1000)
    with pytest.raises(ChainError):
        w.accept_pay(backwards.to_dict())
    assert w.balance() == 30 and not w.is_banned(r.pubkey)
