"""Solana side of the ledger: anchoring Merkle roots with memo v3, settling with SPL tokens.

Two interchangeable clients implement the small `ChainClient` surface the ledger needs:
- `RpcChainClient`: solana-py 0.41 `AsyncClient` over JSON-RPC. It runs on trio except its
  confirmation polling and rate limiter (asyncio-only), so we send with
  `TxOpts(skip_confirmation=True)`, never set `rate_limit`, and poll `get_signature_statuses`
  ourselves with trio, bounded by a deadline.
- `LiteSVMChainClient`: an in-process `solders.litesvm.LiteSVM` (real memo v3 and SPL token
  programs) for tests and air-gapped demos.

Anchor: ONE legacy transaction per batch whatever its size: a single memo v3 instruction whose
text is the 64-char hex Merkle root (a memo must be UTF-8; raw root bytes are not), signed by
the node key as fee payer and memo signer. ~ 300 bytes on the wire for 1 or 1,000,000 entries.
Settlement: create-idempotent the payee's associated token account + SPL `TransferChecked`
(amount in micro-tokens, mint decimals checked on chain), one transaction per peer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

import logging

import trio
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction

from .chain import ChainStore
from .entry import ANCHOR, SETTLE, Entry
from .errors import AnchorError, SettlementError
from .keys import address
from .merkle import merkle_root

MEMO_PROGRAM_ID = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")  # memo v3
TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
ASSOCIATED_TOKEN_PROGRAM_ID = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
SYSTEM_PROGRAM_ID = Pubkey.from_string("11111111111111111111111111111111")
TOKEN_DECIMALS = 6  # 1 $9000 = 10**6 micro-tokens

# TODO: the $9000 mint address on mainnet-beta could not be looked up from this machine (no
# network). Set it here (or in mtor.toml `ledger.mint`) once confirmed; it is only a default.
MTOR_9000_MINT = "..."

CLUSTERS = {
    "mainnet-beta": "https://api.mainnet-beta.solana.com",
    "devnet": "https://api.devnet.solana.com",
    "testnet": "https://api.testnet.solana.com",
}

log = logging.getLogger("mtor.ledger.chain")


@dataclass(frozen=True)
class ClusterConfig:
    """What the daemon reads from its config. `rpc_url` overrides the cluster's public URL
    (custom RPC); `mint` defaults to MTOR_9000_MINT on mainnet-beta and must be set elsewhere."""
    cluster: str = "mainnet-beta"
    rpc_url: str | None = None
    mint: str | None = None
    anchor_every_entries: int = 1000
    anchor_every_s: int = 600

    @property
    def url(self) -> str:
        if self.rpc_url:
            return self.rpc_url
        if self.cluster not in CLUSTERS:
            raise ValueError(f"unknown cluster {self.cluster!r} and no rpc_url: use one of {sorted(CLUSTERS)}")
        return CLUSTERS[self.cluster]

    @property
    def mint_address(self) -> str:
        if self.mint:
            return self.mint
        if self.cluster == "mainnet-beta" and MTOR_9000_MINT != "...":
            return MTOR_9000_MINT
        raise ValueError(f"no $9000 mint configured for cluster {self.cluster!r}")


# --- transactions -----------------------------------------------------------------------

def memo_instruction(signer: Pubkey, text: str) -> Instruction:
    return Instruction(MEMO_PROGRAM_ID, text.encode("utf-8"), [AccountMeta(signer, True, True)])


def build_anchor_tx(keypair: Keypair, root: bytes, blockhash: Hash) -> Transaction:
    """The single anchoring transaction for a batch: one memo with the root as hex text."""
    ix = memo_instruction(keypair.pubkey(), root.hex())
    return Transaction.new_signed_with_payer([ix], keypair.pubkey(), [keypair], blockhash)


def associated_token_address(owner: Pubkey, mint: Pubkey) -> Pubkey:
    return Pubkey.find_program_address([bytes(owner), bytes(TOKEN_PROGRAM_ID), bytes(mint)],
                                       ASSOCIATED_TOKEN_PROGRAM_ID)[0]


def create_ata_idempotent(payer: Pubkey, owner: Pubkey, mint: Pubkey) -> Instruction:
    ata = associated_token_address(owner, mint)
    return Instruction(ASSOCIATED_TOKEN_PROGRAM_ID, bytes([1]), [
        AccountMeta(payer, True, True), AccountMeta(ata, False, True),
        AccountMeta(owner, False, False), AccountMeta(mint, False, False),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False), AccountMeta(TOKEN_PROGRAM_ID, False, False)])


def transfer_checked(source: Pubkey, mint: Pubkey, dest: Pubkey, owner: Pubkey, amount: int,
                     decimals: int) -> Instruction:
    # SPL token instruction 12: TransferChecked { amount: u64, decimals: u8 }
    return Instruction(TOKEN_PROGRAM_ID, struct.pack("<BQB", 12, amount, decimals), [
        AccountMeta(source, False, True), AccountMeta(mint, False, False),
        AccountMeta(dest, False, True), AccountMeta(owner, True, False)])


def build_settle_tx(keypair: Keypair, peer: Pubkey, mint: Pubkey, amount: int, decimals: int,
                    blockhash: Hash) -> Transaction:
    me = keypair.pubkey()
    ixs = [create_ata_idempotent(me, peer, mint),
           transfer_checked(associated_token_address(me, mint), mint,
                            associated_token_address(peer, mint), me, amount, decimals)]
    return Transaction.new_signed_with_payer(ixs, me, [keypair], blockhash)


@dataclass(frozen=True)
class FetchedTx:
    """What we need of a landed transaction: slot, success, signers, decoded instructions."""
    slot: int
    ok: bool
    signers: list[Pubkey]
    instructions: list[tuple[Pubkey, list[Pubkey], bytes]]  # (program, accounts, data)

    @classmethod
    def from_message(cls, slot: int, ok: bool, msg) -> "FetchedTx":
        keys = list(msg.account_keys)
        signers = keys[: msg.header.num_required_signatures]
        ixs = [(keys[ix.program_id_index], [keys[i] for i in bytes(ix.accounts)], bytes(ix.data))
               for ix in msg.instructions]
        return cls(slot, ok, signers, ixs)

    def memos(self) -> list[str]:
        out = []
        for prog, _accts, data in self.instructions:
            if prog == MEMO_PROGRAM_ID:
                try:
                    out.append(data.decode("utf-8"))
                except UnicodeDecodeError:
                    pass
        return out


# --- clients ----------------------------------------------------------------------------

class ChainClient(Protocol):
    cluster: str

    async def latest_blockhash(self) -> Hash: ...
    async def send(self, tx: Transaction) -> str: ...
    async def wait_confirmed(self, sig: str, timeout_s: float = 60.0) -> int: ...
    async def fetch_tx(self, sig: str) -> FetchedTx | None: ...
    async def token_balance(self, owner: Pubkey, mint: Pubkey) -> int: ...


class LiteSVMChainClient:
    """ChainClient over an in-process LiteSVM. LiteSVM executes at once; it keeps transaction
    metadata but not the transactions, so we keep what we sent to answer fetch_tx."""

    def __init__(self, svm, cluster: str = "litesvm"):
        self.svm = svm
        self.cluster = cluster
        self._sent: dict[str, tuple[Transaction, int]] = {}

    async def latest_blockhash(self) -> Hash:
        return self.svm.latest_blockhash()

    async def send(self, tx: Transaction) -> str:
        from solders.transaction_metadata import FailedTransactionMetadata
        res = self.svm.send_transaction(tx)
        if isinstance(res, FailedTransactionMetadata):
            raise AnchorError(f"transaction failed: {res.err()}; logs: {res.meta().logs()}")
        slot = self.svm.get_clock().slot
        sig = str(tx.signatures[0])
        self._sent[sig] = (tx, slot)
        # next slot and a fresh blockhash, so an identical later transaction is not a duplicate
        self.svm.warp_to_slot(slot + 1)
        self.svm.expire_blockhash()
        return sig

    async def wait_confirmed(self, sig: str, timeout_s: float = 60.0) -> int:
        if sig not in self._sent:
            raise AnchorError(f"transaction {sig} unknown")
        return self._sent[sig][1]

    async def fetch_tx(self, sig: str) -> FetchedTx | None:
        got = self._sent.get(sig)
        if got is None:
            return None
        tx, slot = got
        meta = self.svm.get_transaction(Signature.from_string(sig))
        ok = meta is not None and not hasattr(meta, "err")
        return FetchedTx.from_message(slot, ok, tx.message)

    async def token_balance(self, owner: Pubkey, mint: Pubkey) -> int:
        acct = self.svm.get_account(associated_token_address(owner, mint))
        if acct is None or len(acct.data) < 72:
            return 0
        return struct.unpack_from("<Q", bytes(acct.data), 64)[0]


class RpcChainClient:
    """ChainClient over JSON-RPC with solana-py's AsyncClient, used under trio."""

    def __init__(self, url: str, cluster: str = "custom", timeout_s: float = 30.0,
                 poll_s: float = 0.4):
        from solana.rpc.async_api import AsyncClient
        from solana.rpc.commitment import Confirmed
        self.cluster = cluster
        self.poll_s = poll_s
        self._commitment = Confirmed
        # rate_limit stays 0: solana-py's limiter (aiolimiter) is asyncio-only
        self.client = AsyncClient(url, commitment=Confirmed, timeout=timeout_s)

    async def aclose(self) -> None:
        await self.client.close()

    async def latest_blockhash(self) -> Hash:
        return (await self.client.get_latest_blockhash()).value.blockhash

    async def send(self, tx: Transaction) -> str:
        from solana.rpc.models import TxOpts
        opts = TxOpts(skip_confirmation=True, preflight_commitment=self._commitment)
        try:
            resp = await self.client.send_raw_transaction(bytes(tx), opts)
        except Exception as exc:  # RPCException / SolanaRpcException carry the node's reason
            raise AnchorError(f"send failed: {exc}") from exc
        return str(resp.value)

    async def wait_confirmed(self, sig: str, timeout_s: float = 60.0) -> int:
        """Poll getSignatureStatuses with trio until confirmed, failed, or the deadline."""
        s = Signature.from_string(sig)
        with trio.move_on_after(timeout_s):
            while True:
                st = (await self.client.get_signature_statuses([s])).value[0]
                if st is not None:
                    if st.err is not None:
                        raise AnchorError(f"transaction {sig} failed: {st.err}")
                    cs = str(st.confirmation_status or "")
                    if cs.endswith(("Confirmed", "Finalized", "confirmed", "finalized")):
                        return st.slot
                await trio.sleep(self.poll_s)
        raise AnchorError(f"transaction {sig} not confirmed within {timeout_s} s")

    async def fetch_tx(self, sig: str) -> FetchedTx | None:
        resp = await self.client.get_transaction(Signature.from_string(sig), encoding="base64",
                                                 commitment=self._commitment,
                                                 max_supported_transaction_version=0)
        v = resp.value
        if v is None:
            return None
        tx = v.transaction.transaction
        if not isinstance(tx, VersionedTransaction):
            raise AnchorError(f"transaction {sig}: unexpected encoding {type(tx).__name__}")
        meta = v.transaction.meta
        ok = meta is not None and meta.err is None
        return FetchedTx.from_message(v.slot, ok, tx.message)

    async def token_balance(self, owner: Pubkey, mint: Pubkey) -> int:
        from solana.rpc.core import RPCException
        try:
            resp = await self.client.get_token_account_balance(associated_token_address(owner, mint))
        except RPCException:
            return 0  # no token account yet
        return int(resp.value.amount)


# --- anchoring --------------------------------------------------------------------------

def _pending(store: ChainStore) -> tuple[int, int] | None:
    from .node_ledger import pending_range
    return pending_range(store)


async def anchor(store: ChainStore, client: ChainClient, timeout_s: float = 60.0) -> Entry | None:
    """Anchor the Merkle root of our entries since the last anchor in ONE memo transaction and
    append the `anchor` entry. Returns None when there is nothing new to anchor."""
    rng = _pending(store)
    if rng is None:
        return None
    first, last = rng
    root = merkle_root(store.hashes(first, last))
    tx = build_anchor_tx(store.signer.keypair, root, await client.latest_blockhash())
    sig = await client.send(tx)
    slot = await client.wait_confirmed(sig, timeout_s)
    # A crash between send and this append re-anchors the same range next time: harmless.
    return store.append(ANCHOR, {"root": root, "first": first, "last": last, "tx": sig,
                                 "slot": slot, "cluster": client.cluster})


async def check_anchor_tx(client: ChainClient, e: Entry) -> str | None:
    """None if the anchor's transaction is on chain, succeeded, is signed by the entry's author
    and has the root as memo; else what is wrong."""
    b = e.body
    try:
        got = await client.fetch_tx(b["tx"])
    except Exception as exc:  # network failure: report, do not crash verification
        return f"anchor transaction {b['tx']} could not be fetched: {exc}"
    if got is None:
        return f"anchor transaction {b['tx']} not found on chain"
    if not got.ok:
        return f"anchor transaction {b['tx']} failed on chain"
    if Pubkey.from_bytes(e.author) not in got.signers:
        return f"anchor transaction {b['tx']} is not signed by {address(e.author)}"
    if b["root"].hex() not in got.memos():
        return f"anchor transaction {b['tx']} memo does not carry root {b['root'].hex()}"
    return None


async def run_anchorer(store: ChainStore, client: ChainClient, every_entries: int = 1000,
                       every_s: float = 600.0, check_s: float = 5.0) -> None:
    """Daemon task: anchor when `every_entries` new entries are pending or `every_s` passed
    since the last anchor with something pending. Errors are retried at the next check."""
    last = trio.current_time()
    while True:
        await trio.sleep(check_s)
        rng = _pending(store)
        if rng is None:
            continue
        if rng[1] - rng[0] + 1 >= every_entries or trio.current_time() - last >= every_s:
            try:
                await anchor(store, client)
                last = trio.current_time()
            except AnchorError as e:  # chain unreachable or tx failed: try again at the next check
                log.warning("anchor failed, retrying at the next check: %s", e)


# --- settlement -------------------------------------------------------------------------

async def settle_out(store: ChainStore, client: ChainClient, peer: bytes, amount: int, mint: str,
                     decimals: int = TOKEN_DECIMALS, timeout_s: float = 60.0) -> Entry:
    """Pay `amount` micro-tokens we owe `peer` as an SPL TransferChecked; append `settle` out."""
    from .accounts import Accounts
    owed = Accounts(store).owed().get(peer, 0)
    if type(amount) is not int or amount <= 0 or amount > owed:
        raise SettlementError(f"can settle 1..{owed} micro-tokens with {address(peer)}, not {amount}")
    mint_pk = Pubkey.from_string(mint)
    tx = build_settle_tx(store.signer.keypair, Pubkey.from_bytes(peer), mint_pk, amount, decimals,
                         await client.latest_blockhash())
    try:
        sig = await client.send(tx)
        slot = await client.wait_confirmed(sig, timeout_s)
    except AnchorError as exc:
        raise SettlementError(str(exc)) from exc
    return store.append(SETTLE, {"peer": peer, "amount": amount, "dir": "out", "tx": sig,
                                 "mint": mint, "slot": slot})


async def settle_in(store: ChainStore, client: ChainClient, sig: str, peer: bytes, amount: int,
                    mint: str) -> Entry:
    """Record a settlement `peer` paid us, after checking the transaction on chain: it
    succeeded and holds a TransferChecked of `amount` from peer's token account to ours."""
    got = await client.fetch_tx(sig)
    if got is None or not got.ok:
        raise SettlementError(f"settlement transaction {sig} not found or failed")
    mint_pk = Pubkey.from_string(mint)
    peer_pk, me = Pubkey.from_bytes(peer), Pubkey.from_bytes(store.me)
    want_src, want_dst = associated_token_address(peer_pk, mint_pk), associated_token_address(me, mint_pk)
    for prog, accts, data in got.instructions:
        if prog == TOKEN_PROGRAM_ID and len(data) == 10 and data[0] == 12 and len(accts) >= 4:
            amt = struct.unpack_from("<Q", data, 1)[0]
            if accts[:4] == [want_src, mint_pk, want_dst, peer_pk] and amt == amount:
                return store.append(SETTLE, {"peer": peer, "amount": amount, "dir": "in",
                                             "tx": sig, "mint": mint, "slot": got.slot})
    raise SettlementError(f"transaction {sig} has no TransferChecked of {amount} from {address(peer)} to us")
