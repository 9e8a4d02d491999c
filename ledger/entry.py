"""Ledger entries: the signed, hash-chained records of a node's chain.

An entry is {v, author, seq, prev, time, kind, body} signed by `author` over
DOMAIN_ENTRY + canonical(unsigned fields). Its hash is sha256(canonical(all fields incl. sig)),
and the next entry of the same author carries it as `prev` (genesis, seq 0, has 32 zero bytes).
`to_dict()`/`from_dict()` give the msgpack-friendly form the federation layer carries; `from_dict`
and `from_bytes` are strict (exact fields, types, bounds, per-kind body schema) and raise
DecodeError naming the field.
"""

from __future__ import annotations

import hashlib
import time as _time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

from .encoding import MAX_AMOUNT, MAX_INT, canonical, check_dict, get_bytes, get_int, get_str, unpack
from .errors import BadSignature, DecodeError
from .grants import GrantVoucher
from .keys import DOMAIN_ENTRY, Signer, address, verify_sig
from .receipts import MAX_JOB_ID, Receipt

ZERO_HASH = bytes(32)
MAX_ENTRY_BYTES = 8192  # the largest honest entry (a pay quoting a receipt) is ~600 bytes
ENTRY_FIELDS = {"v", "author", "seq", "prev", "time", "kind", "body", "sig"}

GENESIS, GRANT, DEPOSIT, PAY, EARN, ANCHOR, SETTLE = (
    "genesis", "grant", "deposit", "pay", "earn", "anchor", "settle")
# sub-accounts of the people behind a broker node (ledger/users.py): no effect on the node's balance
USER_CREDIT, USER_DEBIT = "user_credit", "user_debit"
KINDS = (GENESIS, GRANT, DEPOSIT, PAY, EARN, ANCHOR, SETTLE, USER_CREDIT, USER_DEBIT)
MAX_USER = 64


# --- per-kind body schemas --------------------------------------------------------------
# Each checker validates the body strictly and returns it normalised; cross-field rules that
# need the entry (author) are checked too, so a decoded entry is always internally consistent.

def _genesis(b: Any, author: bytes) -> dict:
    check_dict(b, "body", {"realm"})
    get_str(b, "realm", "body", 64, 1)
    return b


def _grant(b: Any, author: bytes) -> dict:
    check_dict(b, "body", {"voucher"})
    v = GrantVoucher.from_dict(b["voucher"], "body.voucher")
    if v.to != author:
        raise DecodeError("body.voucher.to", "a grant entry must be appended by the member it credits")
    return b


def _deposit(b: Any, author: bytes) -> dict:
    check_dict(b, "body", {"amount", "tx", "mint", "slot"})
    get_int(b, "amount", "body", 1, MAX_AMOUNT)
    get_str(b, "tx", "body", 100, 1)
    get_str(b, "mint", "body", 64, 1)
    get_int(b, "slot", "body")
    return b


def _pay(b: Any, author: bytes) -> dict:
    check_dict(b, "body", {"job", "to", "amount", "receipt"})
    job = get_str(b, "job", "body", MAX_JOB_ID, 1)
    to = get_bytes(b, "to", "body", 32)
    amount = get_int(b, "amount", "body", 0, MAX_AMOUNT)
    r = Receipt.from_dict(b["receipt"], "body.receipt")
    if r.job != job:
        raise DecodeError("body.receipt.job", "does not match body.job")
    if r.worker != to:
        raise DecodeError("body.receipt.worker", "does not match body.to")
    if r.price != amount:
        raise DecodeError("body.amount", "does not match the receipt price")
    if r.requester != author:
        raise DecodeError("body.receipt.requester", "the payer must be the receipt's requester")
    if to == author:
        raise DecodeError("body.to", "cannot pay oneself")
    return b


def _earn(b: Any, author: bytes) -> dict:
    check_dict(b, "body", {"job", "from", "amount", "pay", "pay_seq"})
    get_str(b, "job", "body", MAX_JOB_ID, 1)
    if get_bytes(b, "from", "body", 32) == author:
        raise DecodeError("body.from", "cannot earn from oneself")
    get_int(b, "amount", "body", 0, MAX_AMOUNT)
    get_bytes(b, "pay", "body", 32)
    get_int(b, "pay_seq", "body")
    return b


def _anchor(b: Any, author: bytes) -> dict:
    check_dict(b, "body", {"root", "first", "last", "tx", "slot", "cluster"})
    get_bytes(b, "root", "body", 32)
    first = get_int(b, "first", "body")
    last = get_int(b, "last", "body")
    if last < first:
        raise DecodeError("body.last", "anchor range is empty")
    get_str(b, "tx", "body", 100, 1)
    get_int(b, "slot", "body")
    get_str(b, "cluster", "body", 64, 1)
    return b


def _settle(b: Any, author: bytes) -> dict:
    check_dict(b, "body", {"peer", "amount", "dir", "tx", "mint", "slot"})
    if get_bytes(b, "peer", "body", 32) == author:
        raise DecodeError("body.peer", "cannot settle with oneself")
    get_int(b, "amount", "body", 1, MAX_AMOUNT)
    if get_str(b, "dir", "body", 3) not in ("out", "in"):
        raise DecodeError("body.dir", "must be 'out' or 'in'")
    get_str(b, "tx", "body", 100, 1)
    get_str(b, "mint", "body", 64, 1)
    get_int(b, "slot", "body")
    return b


def _user_credit(b: Any, author: bytes) -> dict:
    check_dict(b, "body", {"user", "amount", "id"})
    get_str(b, "user", "body", MAX_USER, 1)
    get_int(b, "amount", "body", 1, MAX_AMOUNT)
    get_str(b, "id", "body", MAX_JOB_ID, 1)
    return b


def _user_debit(b: Any, author: bytes) -> dict:
    check_dict(b, "body", {"user", "amount", "job"})
    get_str(b, "user", "body", MAX_USER, 1)
    get_int(b, "amount", "body", 1, MAX_AMOUNT)
    get_str(b, "job", "body", MAX_JOB_ID, 1)
    return b


BODY_CHECKS: dict[str, Callable[[Any, bytes], dict]] = {
    GENESIS: _genesis, GRANT: _grant, DEPOSIT: _deposit, PAY: _pay, EARN: _earn,
    ANCHOR: _anchor, SETTLE: _settle, USER_CREDIT: _user_credit, USER_DEBIT: _user_debit,
}


@dataclass(frozen=True, eq=False)
class Entry:
    author: bytes
    seq: int
    prev: bytes
    time: int
    kind: str
    body: dict
    sig: bytes = field(default=b"", repr=False)

    # --- encodings ---
    def unsigned_dict(self) -> dict[str, Any]:
        return {"v": 1, "author": self.author, "seq": self.seq, "prev": self.prev,
                "time": self.time, "kind": self.kind, "body": self.body}

    def to_dict(self) -> dict[str, Any]:
        """msgpack-friendly dict for the wire (bytes stay bytes)."""
        d = self.unsigned_dict()
        d["sig"] = self.sig
        return d

    @cached_property
    def signing_bytes(self) -> bytes:
        return canonical({"author": self.author, "body": self.body, "kind": self.kind,
                          "prev": self.prev, "seq": self.seq, "time": self.time, "v": 1})

    @cached_property
    def raw(self) -> bytes:
        """Canonical bytes of the signed entry: what is stored, sent and hashed."""
        return canonical({"author": self.author, "body": self.body, "kind": self.kind,
                          "prev": self.prev, "seq": self.seq, "sig": self.sig, "time": self.time, "v": 1})

    def to_bytes(self) -> bytes:
        return self.raw

    @cached_property
    def hash(self) -> bytes:
        return hashlib.sha256(self.raw).digest()

    @property
    def author_address(self) -> str:
        return address(self.author)

    @property
    def ref(self) -> str:
        """Human name of the entry in error messages: '<address>#<seq>'."""
        return f"{self.author_address}#{self.seq}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.hash)

    # --- signatures ---
    def sig_ok(self) -> bool:
        return verify_sig(self.author, DOMAIN_ENTRY, self.signing_bytes, self.sig)

    def verify(self) -> None:
        if not self.sig_ok():
            raise BadSignature(f"entry {self.ref}: signature does not verify")

    @classmethod
    def create(cls, signer: Signer, seq: int, prev: bytes, kind: str, body: dict,
               time_ms: int | None = None) -> "Entry":
        """Build and sign an entry (body validated against its kind's schema first)."""
        if kind not in BODY_CHECKS:
            raise ValueError(f"unknown kind {kind!r}")
        if time_ms is None:
            time_ms = int(_time.time() * 1000)
        BODY_CHECKS[kind](body, signer.pubkey)
        unsigned = cls(signer.pubkey, seq, prev, time_ms, kind, body)
        return cls(signer.pubkey, seq, prev, time_ms, kind, body,
                   signer.sign(DOMAIN_ENTRY, unsigned.signing_bytes))

    # --- strict decoding ---
    @classmethod
    def from_dict(cls, d: Any) -> "Entry":
        """Strict decode of a network dict; does NOT check the signature (call verify())."""
        check_dict(d, "", ENTRY_FIELDS)
        if get_int(d, "v", "") != 1:
            raise DecodeError("v", "unsupported entry version")
        author = get_bytes(d, "author", "", 32)
        seq = get_int(d, "seq", "")
        prev = get_bytes(d, "prev", "", 32)
        time_ms = get_int(d, "time", "", 0, MAX_INT)
        kind = get_str(d, "kind", "", 16)
        if kind not in BODY_CHECKS:
            raise DecodeError("kind", f"unknown kind {kind!r}")
        if (kind == GENESIS) != (seq == 0):
            raise DecodeError("seq", "genesis is exactly the entry at seq 0")
        if seq == 0 and prev != ZERO_HASH:
            raise DecodeError("prev", "genesis must have an all-zero prev")
        body = BODY_CHECKS[kind](d["body"], author)
        sig = get_bytes(d, "sig", "", 64)
        entry = cls(author, seq, prev, time_ms, kind, body, sig)
        if len(entry.raw) > MAX_ENTRY_BYTES:
            raise DecodeError("<root>", f"entry is {len(entry.raw)} bytes, limit {MAX_ENTRY_BYTES}")
        return entry

    @classmethod
    def from_bytes(cls, data: bytes) -> "Entry":
        """Strict decode of bytes; they must be the canonical encoding (one entry, one byte
        string: what is hashed is exactly what was sent)."""
        entry = cls.from_dict(unpack(data, MAX_ENTRY_BYTES))
        if entry.raw != data:
            raise DecodeError("bytes", "not the canonical encoding of the entry")
        return entry

    @classmethod
    def from_wire(cls, obj: Any) -> "Entry":
        """Decode what a peer sent (dict or bytes) and check its signature."""
        entry = cls.from_bytes(obj) if isinstance(obj, (bytes, bytearray, memoryview)) else cls.from_dict(obj)
        entry.verify()
        return entry


def amount_of(entry: Entry) -> int:
    """Micro-tokens the entry moves (0 for genesis/anchor)."""
    if entry.kind == GRANT:
        return entry.body["voucher"]["amount"]
    return entry.body.get("amount", 0) if entry.kind != ANCHOR else 0


def balance_delta(entry: Entry) -> int:
    """Effect of one of our own entries on our spendable balance.

    grant, deposit, earn add; pay subtracts. settle moves the tokens that back debts already
    booked by pay/earn, so it changes what is owed between two peers, not the balance.
    """
    if entry.kind in (GRANT, DEPOSIT, EARN):
        return amount_of(entry)
    if entry.kind == PAY:
        return -entry.body["amount"]
    return 0


def counterparty(entry: Entry) -> bytes | None:
    k = entry.kind
    if k == PAY:
        return entry.body["to"]
    if k == EARN:
        return entry.body["from"]
    if k == SETTLE:
        return entry.body["peer"]
    if k in (USER_CREDIT, USER_DEBIT):  # the sub-account, so per-user sums are one indexed query
        return b"user:" + entry.body["user"].encode("utf-8", "surrogatepass")
    return None
