"""Append + verify on a real SQLite file; tampering, a wrong signature and a broken chain are
each reported by verify naming the entry."""

from __future__ import annotations

import hashlib
import os
import sqlite3

from ledger import Entry, issue_grant
from ledger.entry import Entry as E
from ledger.keys import Signer


def _fill(led, authority_seed, n=5):
    for i in range(n):
        led.apply_grant(issue_grant(authority_seed, "lab", led.pubkey, 1000 + i, f"g{i}"))


def _raw(path, author, seq):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT raw FROM ledger_entries WHERE author=? AND seq=?", (author, seq)).fetchone()[0]


def _rewrite(path, author, seq, raw, new_hash=None):
    db = sqlite3.connect(path)
    with db:
        if new_hash is None:
            db.execute("UPDATE ledger_entries SET raw=? WHERE author=? AND seq=?", (raw, author, seq))
        else:
            db.execute("UPDATE ledger_entries SET raw=?, hash=? WHERE author=? AND seq=?",
                       (raw, new_hash, author, seq))
    db.close()


def test_append_and_verify(make_ledger, authority_seed, tmp_path):
    led = make_ledger("a")
    _fill(led, authority_seed)
    assert led.head()[0] == 5
    assert led.balance() == sum(1000 + i for i in range(5))
    rep = led.verify()
    assert rep.ok and rep.entries == 6
    # reopen: same chain, genesis not duplicated
    seed = led.store.signer.keypair.secret()[:32]
    led.close()
    again = make_ledger("a", seed=seed)
    assert again.head()[0] == 5 and again.verify().ok


def test_tampered_body_is_reported(make_ledger, authority_seed, tmp_path):
    led = make_ledger("t")
    _fill(led, authority_seed)
    path = tmp_path / "t.db"
    e = E.from_bytes(_raw(path, led.pubkey, 2))
    body = dict(e.body, voucher=dict(e.body["voucher"], amount=10**12))
    forged = Entry(e.author, e.seq, e.prev, e.time, e.kind, body, e.sig)  # old signature kept
    _rewrite(path, led.pubkey, 2, forged.raw)
    probs = {(p.seq, p.what.split(":")[0]) for p in led.verify().problems}
    assert (2, "tampered") in probs
    assert (2, "wrong signature") in probs
    assert (3, "broken prev link") in probs
    assert all(p.author == led.address for p in led.verify().problems)


def test_wrong_signature_is_reported(make_ledger, authority_seed, tmp_path):
    led = make_ledger("s")
    _fill(led, authority_seed)
    path = tmp_path / "s.db"
    e = E.from_bytes(_raw(path, led.pubkey, 3))
    other = Signer(os.urandom(32))
    bad_sig = Entry.create(other, 3, e.prev, "anchor",
                           {"root": bytes(32), "first": 0, "last": 0, "tx": "x", "slot": 0, "cluster": "c"}).sig
    forged = Entry(e.author, e.seq, e.prev, e.time, e.kind, e.body, bad_sig)
    _rewrite(path, led.pubkey, 3, forged.raw, hashlib.sha256(forged.raw).digest())
    problems = led.verify().problems
    assert [(p.seq, p.what.split(":")[0]) for p in problems if p.seq == 3] == [(3, "wrong signature")]
    assert str(problems[0]).startswith(f"{led.address}#3: wrong signature")


def test_broken_chain_is_reported(make_ledger, authority_seed, tmp_path):
    led = make_ledger("b")
    _fill(led, authority_seed)
    path = tmp_path / "b.db"
    # a correctly signed entry (the owner rewrote history) whose prev points elsewhere
    e = E.from_bytes(_raw(path, led.pubkey, 3))
    relinked = Entry.create(led.store.signer, 3, os.urandom(32), e.kind, e.body, e.time)
    _rewrite(path, led.pubkey, 3, relinked.raw, relinked.hash)
    probs = [(p.seq, p.what.split(":")[0]) for p in led.verify().problems]
    assert (3, "broken prev link") in probs
    # a deleted entry: the gap is named at the entry after it
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM ledger_entries WHERE author=? AND seq=1", (led.pubkey,))
    probs = [(p.seq, p.what.split(":")[0]) for p in led.verify().problems]
    assert (2, "seq gap") in probs
