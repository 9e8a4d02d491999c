"""Whole-chain verification: signatures, hash chain, seq continuity, anchors.

Works on what is on disk (the raw bytes and the hash recorded at write time), so it catches a
row edited after the fact, and reports every problem naming the entry (author, seq) and what is
wrong instead of stopping at the first. `verify_anchors_on_chain` additionally fetches each
anchor transaction and checks its memo is the root and its signer the author.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .chain_store import ChainStore
from .entry import ANCHOR, ZERO_HASH, Entry
from .errors import DecodeError
from .keys import address
from .merkle import merkle_root


@dataclass(frozen=True)
class Problem:
    author: str  # base58 address
    seq: int
    what: str

    def __str__(self) -> str:
        return f"{self.author}#{self.seq}: {self.what}"


@dataclass
class VerifyReport:
    author: str
    entries: int = 0
    anchors: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, seq: int, what: str) -> None:
        self.problems.append(Problem(self.author, seq, what))


def _examine(raw: bytes) -> tuple:
    """The per-entry work (decode, hash, signature): pure, so it can run in worker processes.
    Returns (hash, decode error or None, sig ok, author, seq, prev, kind, anchor body or None)."""
    real_hash = hashlib.sha256(raw).digest()
    try:
        e = Entry.from_bytes(raw)
    except DecodeError as exc:
        return (real_hash, str(exc), False, None, None, None, None, None)
    return (real_hash, None, e.sig_ok(), e.author, e.seq, e.prev, e.kind,
            e.body if e.kind == ANCHOR else None)


def _examine_many(raws: list[bytes]) -> list[tuple]:
    return [_examine(r) for r in raws]


PARALLEL_MIN = 4096  # below this, starting worker processes costs more than it saves


def _examined(rows: list[tuple[int, bytes, bytes]], workers: int) -> list[tuple]:
    raws = [r[2] for r in rows]
    if workers <= 1 or len(raws) < PARALLEL_MIN:
        return _examine_many(raws)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    # signature checks hold the GIL (solders and cryptography alike): use processes.
    # forkserver, not fork: the daemon has threads (trio, sqlite), and forking those is unsafe.
    size = -(-len(raws) // (workers * 4))
    chunks = [raws[i:i + size] for i in range(0, len(raws), size)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as ex:
        return [x for part in ex.map(_examine_many, chunks) for x in part]


def verify_chain(store: ChainStore, author: bytes | None = None, *, full: bool = True,
                 workers: int = 1) -> VerifyReport:
    """Verify the chain of `author` (default: our own). `full=True` also requires it to start
    at genesis with no gap (true of our own chain; a peer's chain we hold is usually partial:
    pass full=False to check only what links where neighbours are present). `workers` > 1
    spreads signature checks of long chains over that many processes."""
    author = author or store.me
    rep = VerifyReport(address(author))
    hashes: dict[int, bytes] = {}  # seq -> hash as computed from the bytes
    last_seq: int | None = None
    last_hash: bytes | None = None
    rows = list(store.raw_rows(author))
    if full and not rows:
        rep.add(0, "no entries (genesis missing)")
        return rep
    for (seq, stored_hash, _raw), x in zip(rows, _examined(rows, workers)):
        real_hash, err, sig_ok, e_author, e_seq, e_prev, kind, anchor_body = x
        rep.entries += 1
        if real_hash != stored_hash:
            rep.add(seq, "tampered: stored bytes do not match the hash recorded when written")
        if err is not None:
            rep.add(seq, f"undecodable entry ({err})")
            last_seq, last_hash = seq, real_hash
            continue
        if e_author != author or e_seq != seq:
            rep.add(seq, f"stored under the wrong key (entry says {address(e_author)}#{e_seq})")
        if not sig_ok:
            rep.add(seq, "wrong signature: does not verify under the author's key (forged or body altered)")
        expected = 0 if last_seq is None else last_seq + 1
        if seq != expected and (full or last_seq is not None):
            rep.add(seq, f"seq gap: expected seq {expected} (entries {expected}..{seq - 1} missing)")
        elif seq == expected:
            want_prev = ZERO_HASH if last_seq is None else last_hash
            if e_prev != want_prev:
                rep.add(seq, "broken prev link: prev is not the hash of the previous entry")
        hashes[seq] = real_hash
        if kind == ANCHOR:
            e = Entry.from_bytes(_raw)
            rep.anchors.append(e)
            _check_anchor_root(rep, e, hashes)
        last_seq, last_hash = seq, real_hash
    return rep


def _check_anchor_root(rep: VerifyReport, e: Entry, hashes: dict[int, bytes]) -> None:
    first, last = e.body["first"], e.body["last"]
    if last >= e.seq:
        rep.add(e.seq, f"anchor covers entries {first}..{last}, not all before it")
        return
    batch = [hashes.get(s) for s in range(first, last + 1)]
    if any(h is None for h in batch):
        rep.add(e.seq, f"anchor covers entries {first}..{last}, some are missing")
        return
    if merkle_root(batch) != e.body["root"]:  # type: ignore[arg-type]
        rep.add(e.seq, f"anchor root does not match the Merkle root of entries {first}..{last}")


async def verify_anchors_on_chain(rep: VerifyReport, client) -> VerifyReport:
    """For each anchor in `rep`, fetch its transaction through `client` (a solana_chain
    ChainClient) and check it is signed by the author and carries the root as its memo."""
    from .solana_chain import check_anchor_tx  # late import: verification works offline
    for e in rep.anchors:
        problem = await check_anchor_tx(client, e)
        if problem:
            rep.add(e.seq, problem)
    return rep
