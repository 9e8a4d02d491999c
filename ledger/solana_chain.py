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

from .chain_store import ChainStore, pending_range
from .entry import ANCHOR, SETTLE, Entry
from .errors import AnchorError, SettlementError
from .keys import address
from .merkle import merkle_root

MEMO_PROGRAM_ID = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")  # memo v3
from .settlement import (TOKEN_2022_PROGRAM_ID,  # noqa: F401
                         TOKEN_PROGRAM_ID, associated_token_address, build_settle_tx, create_ata_idempotent,
                         transfer_checked)

TOKEN_DECIMALS = 6  # what the ledger's micro-tokens assume; settlement reads the mint's own decimals on chain

# The $9000 token on Solana mainnet-beta (the founding README's link). Its decimals and token
# program (SPL Token or Token-2022) are read from the mint account on chain (ledger/settlement.py).
MTOR_9000_MINT = "3eazihmAw8yNHhgoNaNr8aBGaBaoLcwZVCBDPnrSpump"

CLUSTERS = {
    "mainnet-beta": "https://api.mainnet-beta.solana.com",
    "devnet": "https://api.devnet.solana.com",
    "testnet": "https://api.testnet.solana.com",
}

log = logging.getLogger("mtor.ledger.chain")


@dataclass(frozen=True)
class ClusterConfig:
    """What the daemon reads from its config. `rpc_url` overrides the cluster's public URL
    (custom RPC); `mint` defaults to MTOR_9000_MINT on mainnet-beta (public RPC) and must be set
    for devnet, testnet and custom RPCs."""
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
        if self.cluster == "mainnet-beta" and not self.rpc_url:
            return MTOR_9000_MINT
        where = f"the custom RPC {self.rpc_url}" if self.rpc_url else f"cluster {self.cluster!r}"
        raise ValueError(f"no $9000 mint configured for {where} (the default mint is only assumed on "
                         f"mainnet-beta's public RPC)")


# --- transactions -----------------------------------------------------------------------

def memo_instruction(signer: Pubkey, text: str) -> Instruction:
    return Instruction(MEMO_PROGRAM_ID, text.encode("utf-8"), [AccountMeta(signer, True, True)])


def build_anchor_tx(keypair: Keypair, root: bytes, blockhash: Hash) -> Transaction:
    """The single anchoring transaction for a batch: one memo with the root as hex text."""
    ix = memo_instruction(keypair.pubkey(), root.hex())
    return Transaction.new_signed_with_payer([ix], keypair.pubkey(), [keypair], blockhash)


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
    async def token_balance(self, owner: Pubkey, mint: Pubkey, program: Pubkey = TOKEN_PROGRAM_ID) -> int: ...
    async def get_account(self, pubkey: Pubkey) -> tuple[Pubkey, bytes] | None: ...  # (owner, data)


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

    async def token_balance(self, owner: Pubkey, mint: Pubkey, program: Pubkey = TOKEN_PROGRAM_ID) -> int:
        acct = self.svm.get_account(associated_token_address(owner, mint, program))
        if acct is None or len(acct.data) < 72:
            return 0
        return struct.unpack_from("<Q", bytes(acct.data), 64)[0]

    async def get_account(self, pubkey: Pubkey) -> tuple[Pubkey, bytes] | None:
        acct = self.svm.get_account(pubkey)
        if acct is None or acct.lamports == 0:
            return None
        return acct.owner, bytes(acct.data)


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

    async def token_balance(self, owner: Pubkey, mint: Pubkey, program: Pubkey = TOKEN_PROGRAM_ID) -> int:
        from solana.rpc.core import RPCException
        try:
            resp = await self.client.get_token_account_balance(associated_token_address(owner, mint, program))
        except RPCException:
            return 0  # no token account yet
        return int(resp.value.amount)

    async def get_account(self, pubkey: Pubkey) -> tuple[Pubkey, bytes] | None:
        try:
            resp = await self.client.get_account_info(pubkey, encoding="base64")
        except Exception as exc:
            raise AnchorError(f"getAccountInfo {pubkey} failed: {exc}") from exc
        v = resp.value
        return None if v is None else (v.owner, bytes(v.data))


# --- anchoring --------------------------------------------------------------------------

def _pending(store: ChainStore) -> tuple[int, int] | None:
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


# --- settlement: ledger/settlement.py (re-exported here for callers of the old names) ---------

from .settlement import settle_in, settle_out  # noqa: E402,F401
