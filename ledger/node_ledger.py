"""`Ledger`: the one object the daemon holds. Thin facade over the store, accounts, payment,
fraud and chain modules; every method that writes is durable when it returns.

All methods except anchor/settle are synchronous and fast (one SQLite transaction, one fsync).
From trio, call writers through `trio.to_thread.run_sync` if a ~1 ms fsync on the event loop
matters; the store is thread-safe (one connection behind a lock).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import payment
from .accounts import DEFAULT_HOLD_TTL_S, Accounts
from .chain_store import ChainStore, EntrySummary, pending_range
from .entry import DEPOSIT, GRANT, Entry
from .errors import BadSignature, EquivocationError, PaymentError, ReplayError
from .fraud import BanList, FraudProof, check_foreign
from .grants import GrantVoucher
from .keys import Signer, to_pubkey
from .receipts import Receipt
from .verify import VerifyReport, verify_anchors_on_chain, verify_chain


class Ledger:
    def __init__(self, store: ChainStore, authority: bytes | None = None):
        self.store = store
        self.accounts = Accounts(store)
        self.bans = BanList(store)
        self.authority = authority
        self.realm = store.get(store.me, 0).body["realm"]  # type: ignore[union-attr]

    @classmethod
    def open(cls, db_path: str | Path, seed: bytes, *, realm: str = "grid",
             authority: bytes | str | None = None, synchronous: str = "FULL") -> "Ledger":
        """Open (or create, with a genesis entry) the ledger in the SQLite file `db_path`.
        `authority`: the realm authority's public key, required to accept grants."""
        store = ChainStore(db_path, Signer(seed), realm=realm, synchronous=synchronous)
        return cls(store, to_pubkey(authority) if authority is not None else None)

    def close(self) -> None:
        self.store.close()

    # --- identity / chain ---
    @property
    def pubkey(self) -> bytes:
        return self.store.me

    @property
    def address(self) -> str:
        return self.store.signer.address

    @property
    def keypair(self):
        return self.store.signer.keypair

    def head(self) -> tuple[int, bytes]:
        return self.store.head()  # type: ignore[return-value]

    def entries(self, author: bytes | str | None = None, first: int = 0, last: int | None = None):
        return self.store.entries(to_pubkey(author) if author else None, first, last)

    def recent_entries(self, limit: int = 20) -> list[EntrySummary]:
        """Our newest `limit` entries, newest first, without decoding them (docs/ledger.md)."""
        return self.store.recent(None, limit)

    # --- balances and holds ---
    def balance(self) -> int:
        return self.accounts.balance()

    def available(self) -> int:
        return self.accounts.available()

    def hold(self, job: str, amount: int, peer: bytes | str | None = None,
             ttl_s: int = DEFAULT_HOLD_TTL_S) -> None:
        self.accounts.hold(job, amount, to_pubkey(peer) if peer is not None else None, ttl_s)

    def release(self, job: str) -> bool:
        return self.accounts.release(job)

    def holds(self) -> dict[str, int]:
        """Open holds: job -> micro-tokens reserved for it."""
        return self.accounts.holds()

    def owed(self) -> dict[bytes, int]:
        return self.accounts.owed()

    def check_credit(self, peer: bytes | str, amount: int, limit: int, include_unsettled: bool = False) -> None:
        self.accounts.check_credit(to_pubkey(peer), amount, limit, include_unsettled)

    # --- job exchange ---
    def make_receipt(self, job: str, requester: bytes | str, kind: str, model: str, units: int,
                     price: int, result_hash: bytes) -> Receipt:
        return payment.make_receipt(self.store, job, to_pubkey(requester), kind, model, units,
                                    price, result_hash)

    def pay(self, receipt: Receipt | dict[str, Any]) -> Entry:
        return payment.pay(self.store, self.accounts, self.bans, receipt)

    def accept_pay(self, pay_entry: Entry | dict[str, Any] | bytes) -> Entry:
        return payment.accept_pay(self.store, self.bans, pay_entry)

    # --- credits ---
    def apply_grant(self, voucher: GrantVoucher | dict[str, Any]) -> Entry:
        """Credit a realm authority's voucher to us (once per voucher id)."""
        v = voucher if isinstance(voucher, GrantVoucher) else GrantVoucher.from_dict(voucher)
        if self.authority is None:
            raise BadSignature("no realm authority configured: grants cannot be checked")
        v.verify(self.authority)
        if v.to != self.pubkey:
            raise PaymentError(f"grant {v.id!r} credits another member")
        if v.realm != self.realm:
            raise PaymentError(f"grant {v.id!r} is for realm {v.realm!r}, we are in {self.realm!r}")
        with self.store.tx() as db:
            if db.execute("SELECT 1 FROM ledger_grants WHERE authority=? AND id=?",
                          (v.authority, v.id)).fetchone():
                raise ReplayError(f"grant {v.id!r} was already credited")
            self.accounts.check_supply(db, v.amount, f"grant {v.id!r}")
            e = self.store.append(GRANT, {"voucher": v.to_dict()})
            db.execute("INSERT INTO ledger_grants VALUES(?,?,?)", (v.authority, v.id, e.seq))
        return e

    def record_deposit(self, amount: int, tx: str, mint: str, slot: int) -> Entry:
        """Record an on-chain deposit (tokens that back our credit). Once per transaction
        (ReplayError otherwise). Not checked on chain here: the caller checks the transaction."""
        with self.store.tx() as db:
            self.accounts.check_supply(db, amount, f"deposit {tx}")
            return self.store.append(DEPOSIT, {"amount": amount, "tx": tx, "mint": mint, "slot": slot})

    # --- entries of others, fraud ---
    def observe(self, entry: Entry | dict[str, Any] | bytes) -> Entry:
        """Store a verified entry of another author (e.g. gossiped). Raises ReplayError,
        ChainError, or EquivocationError after banning the author."""
        e = entry if isinstance(entry, Entry) else Entry.from_wire(entry)
        e.verify()
        try:
            with self.store.tx():
                check_foreign(self.store, e)
                self.store.put_foreign(e)
        except EquivocationError as exc:
            self.bans.ban(e.author, f"equivocation at seq {e.seq}", exc.proof)
            raise
        return e

    def ingest_fraud_proof(self, proof: FraudProof | dict[str, Any] | bytes) -> FraudProof:
        """Verify a gossiped fraud proof and ban its author. Raises DecodeError/BadSignature."""
        if isinstance(proof, (bytes, bytearray)):
            proof = FraudProof.from_bytes(bytes(proof))
        elif isinstance(proof, dict):
            proof = FraudProof.from_dict(proof)
        proof.verify()
        self.bans.ban(proof.author, f"equivocation at seq {proof.seq}", proof)
        return proof

    def is_banned(self, author: bytes | str) -> bool:
        return self.bans.is_banned(to_pubkey(author))

    # --- anchoring and settlement (async: network) ---
    def pending_anchor_range(self) -> tuple[int, int] | None:
        """(first, last) seqs of our entries not yet anchored; None when only anchors are new."""
        return pending_range(self.store)

    async def anchor_now(self, client) -> Entry | None:
        from .solana_chain import anchor
        return await anchor(self.store, client)

    async def settle(self, client, peer: bytes | str, amount: int | None, mint: str, decimals: int | None = None) -> Entry:
        from .settlement import settle_out
        return await settle_out(self.store, client, to_pubkey(peer), amount, mint, decimals)

    async def record_settlement_in(self, client, tx: str, peer: bytes | str, amount: int, mint: str) -> Entry:
        from .settlement import settle_in
        return await settle_in(self.store, client, tx, to_pubkey(peer), amount, mint)

    # --- verification ---
    def verify(self, author: bytes | str | None = None, full: bool = True, workers: int = 1) -> VerifyReport:
        return verify_chain(self.store, to_pubkey(author) if author else None, full=full, workers=workers)

    async def verify_with_chain(self, client) -> VerifyReport:
        return await verify_anchors_on_chain(self.verify(), client)
