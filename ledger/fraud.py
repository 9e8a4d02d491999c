"""Equivocation proofs, the ban list, and the checks applied to entries of other authors.

An author's chain is a line: one entry per seq. Two entries that are each validly signed by the
same author, with the same seq but different content, can only come from that author signing a
fork (e.g. paying two workers with the same seq). The pair itself is the fraud proof: small,
msgpack-able, checkable by anyone with no other context. Gossip it; every node that verifies it
bans the author.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .chain_store import ChainStore, now_ms
from .encoding import canonical, check_dict, get_int, unpack
from .entry import MAX_ENTRY_BYTES, Entry
from .errors import BadSignature, ChainError, DecodeError, EquivocationError, ReplayError
from .keys import address

MAX_PROOF_BYTES = 2 * MAX_ENTRY_BYTES + 64


@dataclass(frozen=True)
class FraudProof:
    a: Entry
    b: Entry

    @classmethod
    def of(cls, x: Entry, y: Entry) -> "FraudProof":
        a, b = sorted((x, y), key=lambda e: e.hash)  # canonical order: same proof from anyone
        return cls(a, b)

    @property
    def author(self) -> bytes:
        return self.a.author

    @property
    def seq(self) -> int:
        return self.a.seq

    def verify(self) -> None:
        """Raise unless this is a real equivocation by `author`."""
        if self.a.author != self.b.author:
            raise BadSignature("fraud proof: entries have different authors")
        if self.a.seq != self.b.seq:
            raise BadSignature("fraud proof: entries have different seqs")
        if self.a.hash == self.b.hash:
            raise BadSignature("fraud proof: the two entries are identical")
        self.a.verify()
        self.b.verify()

    def to_dict(self) -> dict[str, Any]:
        return {"v": 1, "a": self.a.to_dict(), "b": self.b.to_dict()}

    def to_bytes(self) -> bytes:
        return canonical(self.to_dict())

    @classmethod
    def from_dict(cls, d: Any) -> "FraudProof":
        check_dict(d, "", {"v", "a", "b"})
        if get_int(d, "v", "") != 1:
            raise DecodeError("v", "unsupported fraud proof version")
        return cls.of(Entry.from_dict(d["a"]), Entry.from_dict(d["b"]))

    @classmethod
    def from_bytes(cls, data: bytes) -> "FraudProof":
        return cls.from_dict(unpack(data, MAX_PROOF_BYTES))


class BanList:
    """Authors we refuse to deal with, persisted in `ledger_bans` with the reason and proof."""

    def __init__(self, store: ChainStore):
        self.store = store

    def ban(self, author: bytes, reason: str, proof: FraudProof | None = None) -> None:
        with self.store.tx() as db:
            db.execute("INSERT OR REPLACE INTO ledger_bans VALUES(?,?,?,?)",
                       (author, reason, proof.to_bytes() if proof else None, now_ms()))

    def unban(self, author: bytes) -> bool:
        with self.store.tx() as db:
            return db.execute("DELETE FROM ledger_bans WHERE author=?", (author,)).rowcount > 0

    def is_banned(self, author: bytes) -> bool:
        return self.store.db.execute("SELECT 1 FROM ledger_bans WHERE author=?", (author,)).fetchone() is not None

    def reason(self, author: bytes) -> str | None:
        row = self.store.db.execute("SELECT reason FROM ledger_bans WHERE author=?", (author,)).fetchone()
        return row[0] if row else None

    def all(self) -> dict[bytes, str]:
        return {r[0]: r[1] for r in self.store.db.execute("SELECT author, reason FROM ledger_bans")}

    def proof(self, author: bytes) -> FraudProof | None:
        row = self.store.db.execute("SELECT proof FROM ledger_bans WHERE author=?", (author,)).fetchone()
        return FraudProof.from_bytes(row[0]) if row and row[0] else None


def check_foreign(store: ChainStore, entry: Entry) -> None:
    """Check a signature-verified entry of another author against what we know of its chain.

    - same (author, seq) already stored, same bytes  -> ReplayError
    - same (author, seq) already stored, other bytes -> EquivocationError carrying a FraudProof
    - prev does not match our copy of seq-1, or our copy of seq+1 does not point at it, or its
      time runs backwards against those neighbours   -> ChainError (out of order / forked link)
    We usually see only part of a requester's chain (it pays many workers), so a gap is normal;
    whatever neighbours we do hold must agree.
    """
    known = store.get(entry.author, entry.seq)
    who = f"{address(entry.author)}#{entry.seq}"
    if known is not None:
        if known.hash == entry.hash:
            raise ReplayError(f"entry {who} was already received (replay)")
        proof = FraudProof.of(known, entry)
        raise EquivocationError(f"entry {who}: two different entries with one author and seq", proof)
    before = store.get(entry.author, entry.seq - 1) if entry.seq > 0 else None
    if before is not None:
        if entry.prev != before.hash:
            raise ChainError(f"entry {who}: prev does not link to the seq {entry.seq - 1} entry we hold")
        if entry.time < before.time:
            raise ChainError(f"entry {who}: time runs backwards (out of order)")
    after = store.get(entry.author, entry.seq + 1)
    if after is not None:
        if after.prev != entry.hash:
            raise ChainError(f"entry {who}: the seq {entry.seq + 1} entry we hold does not link to it")
        if after.time < entry.time:
            raise ChainError(f"entry {who}: time runs backwards (out of order)")
