"""SPL settlement of what two ledgers owe each other (the tokens that back pay/earn credit).

- `mint_info`: the mint's token program (SPL Token or Token-2022), decimals and supply, read
  from the mint account on chain, never assumed.
- `settle_out`: ONE transaction per call: create-idempotent the payee's associated token
  account + `TransferChecked` of the amount, under the mint's own program. Idempotent across
  retries and crashes: the signed transaction is stored (`ledger_settle_pending`) before it is
  sent; a retry first asks the chain whether that signature landed (then records it) and
  otherwise re-sends the same bytes (a duplicate cannot pay twice: same signature); only a
  transaction whose blockhash expired without landing is rebuilt.
- `settle_in`: record a settlement a peer paid us, only after its transaction is confirmed on
  chain and holds exactly one matching TransferChecked: right program, mint, decimals, amount,
  from the payer's token account signed by the payer, to ours; at most what the payer owes
  us; each transaction once (ReplayError).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

import spl.token.instructions as spl
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from spl.token.models import TransferCheckedParams

from .chain_store import ChainStore, now_ms
from .entry import SETTLE, Entry
from .errors import AnchorError, SettlementError
from .keys import address

TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM_ID = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
TOKEN_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
PENDING_SCHEMA = """CREATE TABLE IF NOT EXISTS ledger_settle_pending(
    peer BLOB PRIMARY KEY, amount INTEGER NOT NULL, sig TEXT NOT NULL, raw BLOB NOT NULL,
    created INTEGER NOT NULL) WITHOUT ROWID"""

log = logging.getLogger("mtor.ledger.settle")


@dataclass(frozen=True)
class MintInfo:
    mint: Pubkey
    program: Pubkey  # the token program that owns the mint: SPL Token or Token-2022
    decimals: int
    supply: int


async def mint_info(client, mint: str | Pubkey) -> MintInfo:
    """Read the mint account: its owner program, decimals and supply (SettlementError if it is
    not a mint of a token program we know)."""
    mint_pk = mint if isinstance(mint, Pubkey) else Pubkey.from_string(mint)
    got = await client.get_account(mint_pk)
    if got is None:
        raise SettlementError(f"mint {mint_pk} does not exist on {client.cluster}")
    owner, data = got
    if owner not in TOKEN_PROGRAMS:
        raise SettlementError(f"account {mint_pk} is owned by {owner}, not by the SPL Token or Token-2022 program")
    if len(data) < 82 or not data[45]:
        raise SettlementError(f"account {mint_pk} is not an initialised mint")
    return MintInfo(mint_pk, owner, data[44], struct.unpack_from("<Q", data, 36)[0])


# The SPL instruction builders solana-py ships (spl.token), under our names; the token program
# (SPL Token or Token-2022) is always the mint's own, read from the chain (mint_info).
def associated_token_address(owner: Pubkey, mint: Pubkey, program: Pubkey = TOKEN_PROGRAM_ID) -> Pubkey:
    return spl.get_associated_token_address(owner, mint, program)


def create_ata_idempotent(payer: Pubkey, owner: Pubkey, mint: Pubkey, program: Pubkey = TOKEN_PROGRAM_ID) -> Instruction:
    return spl.create_idempotent_associated_token_account(payer, owner, mint, program)


def transfer_checked(source: Pubkey, mint: Pubkey, dest: Pubkey, owner: Pubkey, amount: int, decimals: int,
                     program: Pubkey = TOKEN_PROGRAM_ID) -> Instruction:
    return spl.transfer_checked(TransferCheckedParams(program_id=program, source=source, mint=mint, dest=dest,
                                                      owner=owner, amount=amount, decimals=decimals))


def build_settle_tx(keypair: Keypair, peer: Pubkey, mint: Pubkey, amount: int, decimals: int,
                    blockhash: Hash, program: Pubkey = TOKEN_PROGRAM_ID) -> Transaction:
    me = keypair.pubkey()
    ixs = [create_ata_idempotent(me, peer, mint, program),
           transfer_checked(associated_token_address(me, mint, program), mint,
                            associated_token_address(peer, mint, program), me, amount, decimals, program)]
    return Transaction.new_signed_with_payer(ixs, me, [keypair], blockhash)


def _owed(store: ChainStore, peer: bytes) -> int:
    from .accounts import Accounts

    return Accounts(store).owed().get(peer, 0)


def _record_out(store: ChainStore, peer: bytes, amount: int, sig: str, mint: str, slot: int) -> Entry:
    def drop_pending(db, _e):
        db.execute("DELETE FROM ledger_settle_pending WHERE peer=?", (peer,))

    return store.append(SETTLE, {"peer": peer, "amount": amount, "dir": "out", "tx": sig, "mint": mint, "slot": slot},
                        side_effect=drop_pending)


def pending_out(store: ChainStore) -> dict[bytes, tuple[int, str]]:
    store.db.execute(PENDING_SCHEMA)
    return {bytes(r[0]): (r[1], r[2]) for r in store.db.execute("SELECT peer, amount, sig FROM ledger_settle_pending")}


async def settle_out(store: ChainStore, client, peer: bytes, amount: int | None, mint: str,
                     decimals: int | None = None, timeout_s: float = 60.0) -> Entry:
    """Pay `amount` (None: all) micro-tokens we owe `peer` with one SPL TransferChecked; append
    `settle` out once the transaction is confirmed. Safe to call again after any failure."""
    store.db.execute(PENDING_SCHEMA)
    row = store.db.execute("SELECT amount, sig, raw FROM ledger_settle_pending WHERE peer=?", (peer,)).fetchone()
    if row is not None:  # a transaction was signed before: it may have landed
        p_amount, sig, raw = row
        got = await client.fetch_tx(sig)
        if got is not None and got.ok:
            return _record_out(store, peer, p_amount, sig, mint, got.slot)
        try:
            await client.send(Transaction.from_bytes(raw))
            slot = await client.wait_confirmed(sig, timeout_s)
            return _record_out(store, peer, p_amount, sig, mint, slot)
        except AnchorError as exc:
            if "blockhash" not in str(exc).lower():
                raise SettlementError(str(exc)) from exc
            log.info("settlement %s to %s expired unsent: rebuilding", sig, address(peer))
            store.db.execute("DELETE FROM ledger_settle_pending WHERE peer=?", (peer,))
    owed = _owed(store, peer)
    amount = owed if amount is None else amount
    if type(amount) is not int or amount <= 0 or amount > owed:
        raise SettlementError(f"can settle 1..{owed} micro-tokens with {address(peer)}, not {amount}")
    info = await mint_info(client, mint)
    if decimals is not None and decimals != info.decimals:
        raise SettlementError(f"mint {mint} has {info.decimals} decimals, not {decimals}")
    tx = build_settle_tx(store.signer.keypair, Pubkey.from_bytes(peer), info.mint, amount, info.decimals,
                         await client.latest_blockhash(), info.program)
    sig = str(tx.signatures[0])
    with store.tx() as db:  # durable before it leaves: a crash after send cannot pay twice
        db.execute("INSERT INTO ledger_settle_pending VALUES(?,?,?,?,?)", (peer, amount, sig, bytes(tx), now_ms()))
    try:
        await client.send(tx)
        slot = await client.wait_confirmed(sig, timeout_s)
    except AnchorError as exc:
        raise SettlementError(str(exc)) from exc
    return _record_out(store, peer, amount, sig, mint, slot)


async def settle_in(store: ChainStore, client, sig: str, peer: bytes, amount: int, mint: str) -> Entry:
    """Record a settlement `peer` paid us, after checking its confirmed transaction on chain."""
    from .errors import ReplayError

    if store.db.execute("SELECT 1 FROM ledger_entries WHERE author=? AND kind=? AND job=?",
                        (store.me, SETTLE, sig)).fetchone():
        raise ReplayError(f"settlement transaction {sig} was already recorded")
    owes_us = -_owed(store, peer)
    if type(amount) is not int or amount <= 0 or amount > owes_us:
        raise SettlementError(f"{address(peer)} owes us {max(0, owes_us)} micro-tokens; a settlement of {amount} is refused")
    got = await client.fetch_tx(sig)  # confirmed commitment
    if got is None or not got.ok:
        raise SettlementError(f"settlement transaction {sig} not found confirmed on chain, or failed")
    info = await mint_info(client, mint)
    peer_pk, me = Pubkey.from_bytes(peer), Pubkey.from_bytes(store.me)
    want = [associated_token_address(peer_pk, info.mint, info.program), info.mint,
            associated_token_address(me, info.mint, info.program), peer_pk]
    if peer_pk not in got.signers:
        raise SettlementError(f"transaction {sig} is not signed by {address(peer)}")
    for prog, accts, data in got.instructions:
        if prog in TOKEN_PROGRAMS and len(data) == 10 and data[0] == 12 and len(accts) >= 4:
            amt, dec = struct.unpack_from("<QB", data, 1)
            if prog == info.program and accts[:4] == want and amt == amount and dec == info.decimals:
                return store.append(SETTLE, {"peer": peer, "amount": amount, "dir": "in",
                                             "tx": sig, "mint": mint, "slot": got.slot})
    raise SettlementError(f"transaction {sig} has no TransferChecked of {amount} {mint} under {info.program} "
                          f"from {address(peer)}'s token account to ours")
