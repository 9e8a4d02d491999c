"""`mtor-node wallet` and `mtor-node ledger` as a shell user runs them: real CLI processes against
real in-process nodes (the CLI runs in a worker thread so the node keeps serving), the offline
verifier on a stopped node's mtor.db tampered with sqlite3, anchoring through the LiteSVM RPC
stand-in on 127.0.0.1. Every wait is bounded (subprocess timeouts, trio.fail_after)."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import sys
from pathlib import Path

import msgpack
import pytest
import trio
from solders.pubkey import Pubkey

from ledger import Entry
from ledger.keys import Signer
from mtor_node.commands.ledger import fmt_amount, parse_amount
from tests.conftest import running_node
from tests.test_cli import cli

sys.path.insert(0, str(Path(__file__).parent / "ledger"))
from litesvm_rpc import LiteSVMRpcServer  # noqa: E402

DEV = 5_000_000


async def acli(*args, data_dir, timeout=60):
    """Run the CLI in a thread (the in-process node must keep serving meanwhile)."""
    with trio.fail_after(timeout + 5):
        return await trio.to_thread.run_sync(lambda: cli(*args, data_dir=data_dir, timeout=timeout))


# ---- amounts ------------------------------------------------------------------------------

def test_amounts_are_exact_micro_tokens():
    assert parse_amount("2.5") == 2_500_000
    assert parse_amount("0.000001") == 1
    assert parse_amount("3") == 3_000_000
    assert parse_amount("1_000.25") == 1_000_250_000
    # where binary floats would round: exact in decimal
    assert parse_amount("0.3") == 300_000 and parse_amount("1.000007") == 1_000_007
    assert parse_amount("9007199254.740993") == 9_007_199_254_740_993
    for bad, words in (("0.0000001", "more than 6 decimals"), ("-1", "positive"), ("-0.5", "positive"),
                       ("0", "positive"), ("abc", "like 2.5"), ("1e3", "like 2.5"), ("nan", "like 2.5"),
                       ("", "like 2.5"), ("99999999999999", "too large")):
        with pytest.raises(ValueError, match=words):
            parse_amount(bad)
    assert fmt_amount(2_500_000) == "2.500000 $9000 (2500000 µ)"
    assert fmt_amount(-1) == "-0.000001 $9000 (-1 µ)"


def test_cli_refuses_bad_amounts_before_asking_the_node(tmp_path):
    to = Signer(os.urandom(32)).address
    r = cli("wallet", "grant", to, "0.0000001", data_dir=tmp_path)
    assert r.returncode == 2 and "more than 6 decimals" in r.stderr
    r = cli("wallet", "grant", to, "-1", data_dir=tmp_path)
    assert r.returncode == 2 and "must be positive" in r.stderr


# ---- wallet, grants, redeem ---------------------------------------------------------------

async def test_wallet_grant_redeem_from_the_cli(tmp_path):
    a_dir, b_dir = tmp_path / "auth", tmp_path / "mem"
    async with running_node(a_dir, ledger={"dev_grant": DEV}) as a:
        async with running_node(b_dir, ledger={"authority": a.identity.solana_address}) as b:
            r = await acli("wallet", data_dir=a_dir)
            assert r.returncode == 0, r.stderr
            assert f"address:    {a.identity.solana_address}" in r.stdout
            assert "balance:    5.000000 $9000 (5000000 µ)" in r.stdout
            assert "grant" in r.stdout and "genesis" in r.stdout

            # the authority grants itself 2.5 $9000
            r = await acli("wallet", "grant", a.identity.solana_address, "2.5", data_dir=a_dir)
            assert r.returncode == 0, r.stderr
            assert "credited to this node" in r.stdout and "7.500000 $9000" in r.stdout
            w = json.loads((await acli("wallet", "--json", data_dir=a_dir)).stdout)
            assert w["balance"] == 7_500_000 and w["recent"][0]["amount"] == 2_500_000

            # ... and a member 1.25 $9000: a voucher string the member redeems
            r = await acli("wallet", "grant", b.identity.solana_address, "1.25", data_dir=a_dir)
            assert r.returncode == 0, r.stderr
            assert "not delivered" in r.stdout
            voucher = r.stdout.strip().splitlines()[-1]
            r = await acli("wallet", "redeem", voucher, data_dir=b_dir)
            assert r.returncode == 0, r.stderr
            assert "credited 1.250000 $9000 (1250000 µ)" in r.stdout
            r = await acli("wallet", "redeem", voucher, data_dir=b_dir)
            assert r.returncode == 4 and "already credited" in r.stderr
            assert b.ledger.balance() == 1_250_000

            # the member is not the realm authority: its grant is refused, saying so
            r = await acli("wallet", "grant", b.identity.solana_address, "1", data_dir=b_dir)
            assert r.returncode == 4
            assert "is not the authority of realm 'grid'" in r.stderr and a.identity.solana_address in r.stderr

            # anchoring is off by default
            r = await acli("ledger", "anchor", data_dir=a_dir)
            assert r.returncode == 4 and "anchoring is off" in r.stderr


# ---- verify, export -----------------------------------------------------------------------

def _tamper_amount(db: Path, author: bytes, seq: int, amount: int) -> None:
    """Edit one entry's body in place, as an attacker with the file would: re-encoded
    canonically, signature and recorded hash left as they were."""
    con = sqlite3.connect(db)
    try:
        raw = con.execute("SELECT raw FROM ledger_entries WHERE author=? AND seq=?", (author, seq)).fetchone()[0]
        d = msgpack.unpackb(raw, raw=False)
        d["body"]["voucher"]["amount"] = amount
        from ledger.encoding import canonical
        with con:
            con.execute("UPDATE ledger_entries SET raw=?, amount=?, delta=? WHERE author=? AND seq=?",
                        (canonical(d), amount, amount, author, seq))
    finally:
        con.close()


async def test_verify_export_and_offline_verify_of_a_tampered_ledger(tmp_path):
    d = tmp_path / "node"
    async with running_node(d, ledger={"dev_grant": DEV}) as node:
        me, address = node.ledger.pubkey, node.identity.solana_address
        r = await acli("ledger", "verify", data_dir=d)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"ok: 2 entries of {address} verified")
        # offline while the node runs: refused, pointing at the online command
        r = await acli("ledger", "verify", "--offline", data_dir=d)
        assert r.returncode == 1 and "a node is running" in r.stderr

        out = tmp_path / "export.jsonl"
        r = await acli("ledger", "export", "-o", str(out), data_dir=d)
        assert r.returncode == 0, r.stderr
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert [(x["seq"], x["kind"]) for x in rows] == [(0, "genesis"), (1, "grant")]
        for x in rows:  # re-verifiable elsewhere: canonical bytes with the signature
            assert Entry.from_wire(base64.b64decode(x["raw"])).hash.hex() == x["hash"]

    # node stopped: the offline verifier reads mtor.db directly
    r = await acli("ledger", "verify", "--offline", data_dir=d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok: 2 entries" in r.stdout

    _tamper_amount(d / "mtor.db", me, 1, 500_000_000)
    r = await acli("ledger", "verify", "--offline", data_dir=d)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAILED" in r.stdout
    lines = [x for x in r.stdout.splitlines() if x.startswith("  entry #")]
    assert lines and all(x.startswith(f"  entry #1 ({address}#1): ") for x in lines), r.stdout
    assert any("tampered" in x for x in lines) and any("wrong signature" in x for x in lines)
    rep = json.loads((await acli("ledger", "verify", "--offline", "--json", data_dir=d)).stdout)
    assert not rep["ok"] and {p["seq"] for p in rep["problems"]} == {1}

    # the running node's verify says the same
    async with running_node(d, ledger={"dev_grant": DEV}):
        r = await acli("ledger", "verify", data_dir=d)
        assert r.returncode == 1 and f"entry #1 ({address}#1): tampered" in r.stdout

    r = await acli("ledger", "verify", "--offline", data_dir=tmp_path / "nothing")
    assert r.returncode == 1 and "no database" in r.stderr


# ---- anchoring ----------------------------------------------------------------------------

async def test_anchor_and_verify_on_chain_from_the_cli(tmp_path):
    d = tmp_path / "node"
    with LiteSVMRpcServer() as srv:
        async with running_node(d, ledger={"dev_grant": DEV, "rpc_url": srv.url, "anchor": True}) as node:
            srv.svm.airdrop(Pubkey.from_string(node.identity.solana_address), 10**9)
            r = await acli("ledger", "anchor", data_dir=d)
            assert r.returncode == 0, r.stderr
            assert r.stdout.startswith("anchored entries 0..1 (root ")
            tx = r.stdout.split(" in tx ")[1].split()[0]
            assert tx in srv.rpc.txs  # the memo transaction landed on the (LiteSVM) chain
            r = await acli("ledger", "anchor", data_dir=d)
            assert r.returncode == 0 and "nothing new to anchor" in r.stdout

            before = srv.rpc.calls.count("getTransaction")
            r = await acli("ledger", "verify", "--chain", data_dir=d)
            assert r.returncode == 0, r.stdout + r.stderr
            assert "1 anchor(s) and on chain" in r.stdout
            assert srv.rpc.calls.count("getTransaction") == before + 1
            rep = json.loads((await acli("ledger", "verify", "--chain", "--json", data_dir=d)).stdout)
            assert rep["anchor_txs"][0]["tx"] == tx

            # the same anchor, but the chain lost it (another cluster, a reset RPC): named by entry
            srv.rpc.txs.pop(tx)
            r = await acli("ledger", "verify", "--chain", data_dir=d)
            assert r.returncode == 1
            assert f"entry #2 ({node.identity.solana_address}#2): anchor transaction {tx} not found on chain" in r.stdout
