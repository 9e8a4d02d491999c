"""Anchoring (memo v3) and settlement (SPL TransferChecked, 6 decimals) on real Solana programs:
through LiteSVM directly and through solana-py's AsyncClient against the LiteSVM-backed RPC
stand-in on 127.0.0.1, under trio. Every network wait is bounded by trio.fail_after."""

from __future__ import annotations

import hashlib

import pytest
import trio
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import Transaction
from spl.token.instructions import initialize_mint2, mint_to
from spl.token.models import InitializeMint2Params, MintToParams

from ledger.solana_chain import (MEMO_PROGRAM_ID, TOKEN_PROGRAM_ID, LiteSVMChainClient,
                                 RpcChainClient, associated_token_address, create_ata_idempotent)
from litesvm_rpc import LiteSVMRpcServer

RESULT = hashlib.sha256(b"r").digest()
SOL = 10**9


@pytest.fixture(params=["litesvm", "rpc"])
async def chain(request):
    """(client, svm): the same tests run on LiteSVM directly and over JSON-RPC."""
    svm = LiteSVM()
    if request.param == "litesvm":
        yield LiteSVMChainClient(svm), svm
        return
    with LiteSVMRpcServer(svm) as srv:
        client = RpcChainClient(srv.url, cluster="localtest", poll_s=0.05)
        try:
            yield client, svm
        finally:
            await client.aclose()


def make_mint(svm: LiteSVM, owners: list, amount: int, decimals: int = 6, program=TOKEN_PROGRAM_ID):
    """A test mint (`decimals`, SPL Token or Token-2022) with `amount` base units in each owner's ATA."""
    auth, mint = Keypair(), Keypair()
    svm.airdrop(auth.pubkey(), 10 * SOL)
    rent = svm.minimum_balance_for_rent_exemption(82)
    ixs = [create_account(CreateAccountParams(from_pubkey=auth.pubkey(), to_pubkey=mint.pubkey(),
                                              lamports=rent, space=82, owner=program)),
           initialize_mint2(InitializeMint2Params(decimals=decimals, program_id=program,
                                                  mint=mint.pubkey(), mint_authority=auth.pubkey()))]
    for o in owners:
        ata = associated_token_address(o, mint.pubkey(), program)
        ixs += [create_ata_idempotent(auth.pubkey(), o, mint.pubkey(), program),
                mint_to(MintToParams(program_id=program, mint=mint.pubkey(), dest=ata,
                                     mint_authority=auth.pubkey(), amount=amount))]
    tx = Transaction.new_signed_with_payer(ixs, auth.pubkey(), [auth, mint], svm.latest_blockhash())
    res = svm.send_transaction(tx)
    assert not hasattr(res, "err"), res
    return mint.pubkey()


async def test_anchor_one_tx_per_batch_and_verify(chain, make_ledger, authority_seed):
    client, svm = chain
    led = make_ledger("a", funds=1)
    svm.airdrop(led.keypair.pubkey(), SOL)
    from ledger import issue_grant
    sizes = []
    with trio.fail_after(30):
        for batch in (10, 300):
            for i in range(batch):
                led.apply_grant(issue_grant(authority_seed, "lab", led.pubkey, 1, f"{batch}-{i}"))
            first, last = led.pending_anchor_range()
            before = svm.get_balance(led.keypair.pubkey())
            a = await led.anchor_now(client)
            assert (a.body["first"], a.body["last"]) == (first, last)
            # exactly one transaction: one signature fee (5000 lamports) paid
            assert before - svm.get_balance(led.keypair.pubkey()) == 5000
            got = await client.fetch_tx(a.body["tx"])
            assert got.memos() == [a.body["root"].hex()]
            assert [p for p, _, _ in got.instructions] == [MEMO_PROGRAM_ID]
            sizes.append(len(got.instructions[0][2]))
        assert sizes == [64, 64]  # the memo is the hex root whatever the batch size
        assert await led.anchor_now(client) is None  # nothing new but the anchor itself
        rep = await led.verify_with_chain(client)
        assert rep.ok, rep.problems
        assert len(rep.anchors) == 2


async def test_anchor_verification_catches_a_wrong_root(chain, make_ledger):
    client, svm = chain
    led = make_ledger("a", funds=5)
    svm.airdrop(led.keypair.pubkey(), SOL)
    from ledger.merkle import merkle_root
    from ledger.solana_chain import build_anchor_tx
    with trio.fail_after(30):
        a = await led.anchor_now(client)
        # 1) an anchor entry naming a real transaction of ours whose memo is another root
        other = await client.send(build_anchor_tx(led.keypair, b"\x01" * 32, await client.latest_blockhash()))
        root = merkle_root(led.store.hashes(0, a.seq))
        bad_tx = led.store.append("anchor", dict(a.body, root=root, first=0, last=a.seq, tx=other))
        # 2) an anchor whose on-chain memo matches it, but whose root is not that of its entries
        wrong = bytes(32)
        sig = await client.send(build_anchor_tx(led.keypair, wrong, await client.latest_blockhash()))
        bad_root = led.store.append("anchor", dict(a.body, root=wrong, first=0, last=a.seq, tx=sig))
        rep = await led.verify_with_chain(client)
    what = [(p.seq, p.what) for p in rep.problems]
    assert [w for s, w in what if s == bad_tx.seq] == [
        f"anchor transaction {other} memo does not carry root {root.hex()}"]
    assert [w for s, w in what if s == bad_root.seq] == [
        f"anchor root does not match the Merkle root of entries 0..{a.seq}"]
    assert not [s for s, _ in what if s == a.seq]


async def test_spl_settlement_both_ways(chain, make_ledger):
    client, svm = chain
    a = make_ledger("a", funds=5_000_000)
    b = make_ledger("b", funds=5_000_000)
    pa, pb = a.keypair.pubkey(), b.keypair.pubkey()
    for p in (pa, pb):
        svm.airdrop(p, SOL)
    mint = make_mint(svm, [pa], 10_000_000)  # b has no token account yet: settle creates it
    m = str(mint)
    with trio.fail_after(30):
        # a buys 1.5 tokens of work from b, b buys 0.4 tokens of work from a
        for payer, payee, job, price in ((a, b, "j1", 1_500_000), (b, a, "j2", 400_000)):
            payer.hold(job, price)
            payee.accept_pay(payer.pay(payee.make_receipt(job, payer.pubkey, "chat", "m", 1, price, RESULT)).to_dict())
        assert a.owed() == {b.pubkey: 1_100_000}
        s = await a.settle(client, b.pubkey, 1_100_000, m)
        assert await client.token_balance(pa, mint) == 8_900_000
        assert await client.token_balance(pb, mint) == 1_100_000
        await b.record_settlement_in(client, s.body["tx"], a.pubkey, 1_100_000, m)
        assert a.owed() == {} and b.owed() == {}
        # the other way: b now owes a and pays from the account the settlement created
        b.hold("j3", 700_000)
        a.accept_pay(b.pay(a.make_receipt("j3", b.pubkey, "chat", "m", 1, 700_000, RESULT)).to_dict())
        s2 = await b.settle(client, a.pubkey, 700_000, m)
        from ledger import ReplayError, SettlementError
        with pytest.raises(SettlementError):  # a transfer that is not what is claimed
            await a.record_settlement_in(client, s2.body["tx"], b.pubkey, 1, m)
        await a.record_settlement_in(client, s2.body["tx"], b.pubkey, 700_000, m)
        assert await client.token_balance(pa, mint) == 9_600_000
        assert await client.token_balance(pb, mint) == 400_000
        assert a.owed() == {} and b.owed() == {}
        # settle is not a balance change: pay/earn already moved the credit
        assert a.balance() == 5_000_000 - 1_500_000 + 400_000 + 700_000
        with pytest.raises(SettlementError):  # nothing owed any more
            await b.settle(client, a.pubkey, 1, m)
        with pytest.raises(ReplayError):  # the same transaction recorded once
            await a.record_settlement_in(client, s2.body["tx"], b.pubkey, 700_000, m)
    assert a.verify().ok and b.verify().ok


async def test_anchorer_task_anchors_every_n_entries(make_ledger, autojump_clock):
    """The daemon's periodic anchoring task, on trio's autojump clock (virtual time)."""
    from ledger.solana_chain import run_anchorer
    svm = LiteSVM()
    client = LiteSVMChainClient(svm)
    led = make_ledger("a")
    svm.airdrop(led.keypair.pubkey(), SOL)
    led.store.append_many([("deposit", {"amount": 1, "tx": f"t{i}", "mint": "m", "slot": 0}) for i in range(8)])
    with trio.fail_after(3600):  # virtual seconds
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_anchorer, led.store, client, 10, 600.0, 5.0)
            await trio.sleep(60)
            assert len(client._sent) == 0  # 9 pending (genesis + 8), below the threshold of 10
            led.store.append_many([("deposit", {"amount": 1, "tx": "x", "mint": "m", "slot": 0})])
            await trio.sleep(6)
            assert len(client._sent) == 1
            led.record_deposit(1, "late", "m", 0)  # one entry: anchored only after every_s
            await trio.sleep(300)
            assert len(client._sent) == 1
            await trio.sleep(400)
            assert len(client._sent) == 2
            nursery.cancel_scope.cancel()
    assert led.verify().ok and len(led.verify().anchors) == 2
