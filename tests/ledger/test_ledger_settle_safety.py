"""Settlement safety on real SPL programs (LiteSVM): a crash between send and record pays once; a
transfer to someone else, under the wrong program or for the wrong amount is refused; a receipt
from a worker other than the one the job was held for is not paid (issue 12 finding 7)."""

from __future__ import annotations

import hashlib

import pytest
import trio
from solders.litesvm import LiteSVM

from ledger import PaymentError, ReplayError, SettlementError
from ledger.errors import AnchorError
from ledger.settlement import pending_out
from ledger.solana_chain import TOKEN_2022_PROGRAM_ID, LiteSVMChainClient
from test_ledger_solana import SOL, make_mint

RESULT = hashlib.sha256(b"r").digest()


def owe(payer, payee, job, price):
    payer.hold(job, price, payee.pubkey)
    payee.accept_pay(payer.pay(payee.make_receipt(job, payer.pubkey, "chat", "m", 1, price, RESULT)).to_dict())


class CrashAfterSend(LiteSVMChainClient):
    """The node dies after the transaction left and before it saw the confirmation."""

    crash = True

    async def wait_confirmed(self, sig, timeout_s=60.0):
        if self.crash:
            raise AnchorError("connection lost while waiting for confirmation")
        return await super().wait_confirmed(sig, timeout_s)


async def test_a_crash_after_send_pays_once(make_ledger):
    svm = LiteSVM()
    a, b = make_ledger("a", funds=5_000_000), make_ledger("b")
    for led in (a, b):
        svm.airdrop(led.keypair.pubkey(), SOL)
    mint = make_mint(svm, [a.keypair.pubkey()], 10_000_000, program=TOKEN_2022_PROGRAM_ID)
    owe(a, b, "j1", 1_200_000)
    client = CrashAfterSend(svm)
    with trio.fail_after(30):
        with pytest.raises(SettlementError):
            await a.settle(client, b.pubkey, None, str(mint))
        assert b.pubkey in pending_out(a.store) and a.owed() == {b.pubkey: 1_200_000}  # nothing recorded yet
        client.crash = False
        e = await a.settle(client, b.pubkey, None, str(mint))  # the retry finds it landed
        assert a.owed() == {} and pending_out(a.store) == {}
        assert await client.token_balance(b.keypair.pubkey(), mint, TOKEN_2022_PROGRAM_ID) == 1_200_000  # once
        await b.record_settlement_in(client, e.body["tx"], a.pubkey, 1_200_000, str(mint))
        with pytest.raises(ReplayError):
            await b.record_settlement_in(client, e.body["tx"], a.pubkey, 1_200_000, str(mint))
    assert a.verify().ok and b.verify().ok


async def test_a_transfer_to_someone_else_is_not_a_settlement(make_ledger):
    svm = LiteSVM()
    a, b, c = make_ledger("a", funds=5_000_000), make_ledger("b"), make_ledger("c")
    for led in (a, b, c):
        svm.airdrop(led.keypair.pubkey(), SOL)
    mint = make_mint(svm, [a.keypair.pubkey()], 10_000_000)
    other = make_mint(svm, [a.keypair.pubkey()], 10_000_000)
    owe(a, b, "j1", 300_000)
    owe(a, c, "j2", 300_000)
    client = LiteSVMChainClient(svm)
    with trio.fail_after(30):
        to_c = await a.settle(client, c.pubkey, None, str(mint))
        with pytest.raises(SettlementError, match="no TransferChecked"):  # paid c, claimed to b
            await b.record_settlement_in(client, to_c.body["tx"], a.pubkey, 300_000, str(mint))
        with pytest.raises(SettlementError):  # right transfer, wrong mint claimed
            await c.record_settlement_in(client, to_c.body["tx"], a.pubkey, 300_000, str(other))
        with pytest.raises(SettlementError, match="owes us"):  # more than a owes c
            await c.record_settlement_in(client, to_c.body["tx"], a.pubkey, 300_001, str(mint))
        with pytest.raises(SettlementError, match="not by the SPL Token or Token-2022 program|does not exist"):
            await c.record_settlement_in(client, to_c.body["tx"], a.pubkey, 300_000, str(c.keypair.pubkey()))
        await c.record_settlement_in(client, to_c.body["tx"], a.pubkey, 300_000, str(mint))
    assert b.owed() == {a.pubkey: -300_000} and c.owed() == {}


def test_a_receipt_from_another_worker_than_the_held_one_is_not_paid(make_ledger):
    a, b, mallory = make_ledger("a", funds=1_000_000), make_ledger("b"), make_ledger("m")
    a.hold("j1", 500, b.pubkey)
    with pytest.raises(PaymentError, match="was sent to"):
        a.pay(mallory.make_receipt("j1", a.pubkey, "chat", "m", 1, 500, RESULT))
    assert a.balance() == 1_000_000
    a.pay(b.make_receipt("j1", a.pubkey, "chat", "m", 1, 500, RESULT))
    assert a.balance() == 999_500
