"""Amounts are bounded by the $9000 token's total supply (10**15 micro-tokens) everywhere: two
grants of 2**63-1 once made status, wallet and /metrics answer 500 for good (SQLite integer
overflow). Now: a clear refusal and nothing lost; a ledger written before the bound still
answers (issue 12 finding 15, issue 13)."""

from __future__ import annotations

import os
import sqlite3

import httpx
import pytest

from ledger import Ledger, issue_grant
from ledger.encoding import MAX_AMOUNT
from ledger.errors import DecodeError, PaymentError
from ledger.grants import GrantVoucher
from ledger.keys import Signer
from tests.conftest import running_node

BIG = 2**63 - 1


def test_voucher_past_the_supply_is_refused_at_issue_and_decode(authority_seed, make_ledger):
    led = make_ledger("a")
    with pytest.raises(ValueError, match="total supply"):
        issue_grant(authority_seed, "lab", led.pubkey, BIG, "huge")
    ok = issue_grant(authority_seed, "lab", led.pubkey, MAX_AMOUNT, "max")
    forged = ok.to_dict() | {"amount": BIG}
    with pytest.raises(DecodeError, match="out of range"):
        GrantVoucher.from_dict(forged)
    with pytest.raises(DecodeError):
        led.apply_grant(forged)
    assert led.balance() == 0


def test_grants_that_would_pass_the_supply_are_refused_and_lose_nothing(authority_seed, make_ledger):
    led = make_ledger("a")
    led.apply_grant(issue_grant(authority_seed, "lab", led.pubkey, MAX_AMOUNT - 10, "g1"))
    with pytest.raises(PaymentError, match="total supply"):
        led.apply_grant(issue_grant(authority_seed, "lab", led.pubkey, 11, "g2"))
    led.apply_grant(issue_grant(authority_seed, "lab", led.pubkey, 10, "g3"))  # exactly the supply is fine
    assert led.balance() == led.available() == MAX_AMOUNT
    assert led.verify().ok
    with pytest.raises(PaymentError, match="total supply"):
        led.record_deposit(1, "tx-deposit", "mint", 1)
    assert led.balance() == MAX_AMOUNT


def test_a_ledger_written_before_the_bound_still_answers(tmp_path):
    """Rows as an older version could write them (two grants of 2**63-1): sums go to Python."""
    led = Ledger.open(tmp_path / "old.db", os.urandom(32), realm="lab", authority=Signer(os.urandom(32)).pubkey)
    db = sqlite3.connect(tmp_path / "old.db")
    cols = [r[1] for r in db.execute("PRAGMA table_info(ledger_entries)")]
    row = dict(zip(cols, db.execute("SELECT * FROM ledger_entries WHERE author=? AND seq=0", (led.pubkey,)).fetchone()))
    for seq in (10**6, 10**6 + 1):  # beyond our chain: only the sums read them
        db.execute(f"INSERT INTO ledger_entries({','.join(cols)}) VALUES({','.join('?' * len(cols))})",
                   [{**row, "seq": seq, "hash": os.urandom(32), "kind": "grant", "delta": BIG, "amount": BIG}[c] for c in cols])
    db.commit()
    db.close()
    assert led.balance() == 2 * BIG and led.available() == 2 * BIG
    assert led.owed() == {}
    led.close()


async def test_status_wallet_and_metrics_answer_after_huge_grants(tmp_path):
    async with running_node(tmp_path / "n") as node, httpx.AsyncClient(base_url=node.http_url, timeout=30) as c:
        hdr = {"X-Sysop-Token": node.sysop_token}
        for i in range(2):
            r = await c.post("/api/v1/wallet/grant", headers=hdr,
                             json={"address": node.ledger.address, "amount": BIG, "id": f"huge-{i}"})
            assert r.status_code == 400 and "supply" in r.json()["error"]["message"], r.text
        r = await c.post("/api/v1/wallet/grant", headers=hdr, json={"address": node.ledger.address, "amount": 5, "id": "ok"})
        assert r.status_code == 200, r.text
        for path in ("/api/v1/status", "/api/v1/wallet", "/metrics"):
            r = await c.get(path, headers=hdr)
            assert r.status_code == 200, (path, r.text[:300])
        assert node.ledger.balance() == 5
