"""Append-only chain store in SQLite.

Shares the daemon's `mtor.db`: every table here is prefixed `ledger_` and the schema version
lives in our own `ledger_meta` row, so other components' tables and migrations are untouched.

Durability: WAL journal + `synchronous=FULL`. In WAL mode FULL fsyncs the WAL on every commit,
so a method that returns has its entry on disk (survives kill -9 AND power loss). NORMAL would
survive kill -9 but may lose the last commits on power loss. Measured here: FULL ~1,100
commits/s, NORMAL ~17,000/s; `append_many` puts many entries in one commit (one fsync) to get
throughput without giving up "durable before acknowledged".

The store holds our own chain AND entries of other authors we received (pay entries of
requesters), keyed by (author, seq): a second, different entry at a known (author, seq) is an
equivocation, detected by `put_foreign`.

Thread-safety: one connection guarded by a lock; the daemon may call from `trio.to_thread`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, NamedTuple

from .entry import ANCHOR, GENESIS, ZERO_HASH, Entry, balance_delta, counterparty
from .errors import ChainError, ReplayError
from .keys import Signer

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_entries(
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,          -- sha256(raw) when stored, re-checked by verify
    kind TEXT NOT NULL,
    time INTEGER NOT NULL,
    delta INTEGER NOT NULL,      -- effect on the author's balance (own entries)
    peer BLOB,                   -- counterparty of pay/earn/settle
    amount INTEGER NOT NULL,
    dir TEXT,                    -- settle direction
    job TEXT,                    -- pay/earn job id
    raw BLOB NOT NULL,           -- canonical signed bytes
    received INTEGER NOT NULL,   -- ms when stored
    PRIMARY KEY(author, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_entries_job ON ledger_entries(author, kind, job)
    WHERE job IS NOT NULL;
CREATE INDEX IF NOT EXISTS ledger_entries_peer ON ledger_entries(author, peer) WHERE peer IS NOT NULL;
CREATE TABLE IF NOT EXISTS ledger_holds(
    job TEXT PRIMARY KEY, amount INTEGER NOT NULL, peer BLOB, created INTEGER NOT NULL,
    expires INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_receipts(
    job TEXT PRIMARY KEY, requester BLOB NOT NULL, price INTEGER NOT NULL, raw BLOB NOT NULL,
    created INTEGER NOT NULL, paid INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_bans(
    author BLOB PRIMARY KEY, reason TEXT NOT NULL, proof BLOB, time INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_grants(
    authority BLOB NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY(authority, id)) WITHOUT ROWID;
"""


class EntrySummary(NamedTuple):
    """One stored entry's indexed columns (the `ledger_entries` row without its bytes)."""

    seq: int
    kind: str
    time: int
    delta: int
    amount: int
    peer: bytes | None
    dir: str | None
    job: str | None


def now_ms() -> int:
    return int(time.time() * 1000)


def _row_fields(entry: Entry) -> tuple:
    b = entry.body
    # `job` holds the key that must be unique per (author, kind): the job id of pay/earn, the
    # transaction signature of settle/deposit/anchor (one record per on-chain transaction).
    job = (b.get("job") if entry.kind in ("pay", "earn", "user_debit") else b.get("id") if entry.kind == "user_credit"
           else b.get("tx"))
    amount = b["voucher"]["amount"] if entry.kind == "grant" else b.get("amount", 0)
    if entry.kind == "anchor":
        amount = 0
    return (entry.author, entry.seq, entry.hash, entry.kind, entry.time, balance_delta(entry),
            counterparty(entry), amount, b.get("dir"), job, entry.raw, now_ms())


class ChainStore:
    """SQLite-backed store of our chain and of entries received from others."""

    def __init__(self, path: str | Path, signer: Signer, realm: str = "grid",
                 synchronous: str = "FULL"):
        self.path = str(path)
        self.signer = signer
        self.me = signer.pubkey
        self._lock = threading.RLock()
        self._depth = 0
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                  timeout=10.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, EXTRA or NORMAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        with self.tx():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self.db.execute(stmt)
            row = self.db.execute("SELECT value FROM ledger_meta WHERE key='schema_version'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO ledger_meta VALUES('schema_version', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise ChainError(f"ledger schema version {row[0]} in {self.path}, this code knows {SCHEMA_VERSION}")
        if self.head() is None:
            self.append(GENESIS, {"realm": realm})

    # --- transactions ---
    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT); the commit is the durability point."""
        with self._lock:
            if self._depth:  # nested: join the outer transaction, which commits or rolls back
                self._depth += 1
                try:
                    yield self.db
                finally:
                    self._depth -= 1
                return
            self.db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            else:
                try:
                    self.db.execute("COMMIT")
                except BaseException:
                    if self.db.in_transaction:
                        self.db.execute("ROLLBACK")
                    raise
            finally:
                self._depth = 0

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """Hold this around reads made from another thread (trio.to_thread). Every thread shares
        the one connection: a read in flight on it while the event loop's thread begins a write
        makes that write fail at once with "database is locked" (the read's WAL snapshot is stale
        after the node store's connection wrote), so readers and writers take turns."""
        with self._lock:
            yield self.db

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # --- our chain ---
    def head(self, author: bytes | None = None) -> tuple[int, bytes] | None:
        """(seq, hash) of the highest stored entry of `author` (default: us)."""
        row = self.db.execute(
            "SELECT seq, hash FROM ledger_entries WHERE author=? ORDER BY seq DESC LIMIT 1",
            (author or self.me,)).fetchone()
        return (row[0], row[1]) if row else None

    def _next(self, kind: str, body: dict, time_ms: int | None) -> Entry:
        h = self.head()
        seq, prev = (0, ZERO_HASH) if h is None else (h[0] + 1, h[1])
        return Entry.create(self.signer, seq, prev, kind, body, time_ms)

    def _insert(self, entry: Entry) -> None:
        try:
            self.db.execute("INSERT INTO ledger_entries VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", _row_fields(entry))
        except sqlite3.IntegrityError:
            # the (author, kind, job/tx) unique index: that job or transaction is already recorded
            raise ReplayError(f"{entry.kind} for {_row_fields(entry)[9]!r} is already recorded") from None

    def append(self, kind: str, body: dict, *, time_ms: int | None = None,
               side_effect: Callable[[sqlite3.Connection, Entry], Any] | None = None) -> Entry:
        """Sign and durably append one entry of ours. `side_effect(db, entry)` runs in the same
        transaction (e.g. consume a hold), so both happen or neither does, even under kill -9."""
        with self.tx() as db:
            entry = self._next(kind, body, time_ms)
            self._insert(entry)
            if side_effect is not None:
                side_effect(db, entry)
        return entry

    def append_many(self, items: list[tuple[str, dict]]) -> list[Entry]:
        """Append several entries in ONE commit (one fsync): all durable on return, or none."""
        out: list[Entry] = []
        with self.tx():
            h = self.head()
            seq, prev = (0, ZERO_HASH) if h is None else (h[0] + 1, h[1])
            for kind, body in items:
                e = Entry.create(self.signer, seq, prev, kind, body)
                out.append(e)
                seq, prev = seq + 1, e.hash
            self.db.executemany("INSERT INTO ledger_entries VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                                [_row_fields(e) for e in out])
        return out

    # --- entries of others ---
    def get(self, author: bytes, seq: int) -> Entry | None:
        row = self.db.execute("SELECT raw FROM ledger_entries WHERE author=? AND seq=?",
                              (author, seq)).fetchone()
        return Entry.from_bytes(row[0]) if row else None

    def put_foreign(self, entry: Entry, db: sqlite3.Connection | None = None) -> bool:
        """Store a verified entry of another author. Returns False if the identical entry is
        already stored. Callers check equivocation first (fraud.check_against_store)."""
        if entry.author == self.me:
            raise ChainError("refusing to store an entry of our own key received from outside")
        conn = db or self.db
        try:
            conn.execute("INSERT INTO ledger_entries VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", _row_fields(entry))
        except sqlite3.IntegrityError:
            return False
        return True

    def entries(self, author: bytes | None = None, first: int = 0, last: int | None = None) -> Iterator[Entry]:
        """Entries of `author` (default: us) in seq order, decoded strictly from the stored bytes."""
        for raw in self.raw_rows(author, first, last):
            yield Entry.from_bytes(raw[2])

    def raw_rows(self, author: bytes | None = None, first: int = 0,
                 last: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
        """(seq, stored hash, raw bytes) rows, for verification that must see what is on disk."""
        q = "SELECT seq, hash, raw FROM ledger_entries WHERE author=? AND seq>=?"
        args: list[Any] = [author or self.me, first]
        if last is not None:
            q += " AND seq<=?"
            args.append(last)
        q += " ORDER BY seq"
        cur = self.db.execute(q, args)
        while True:
            rows = cur.fetchmany(1000)
            if not rows:
                return
            yield from rows

    def hashes(self, first: int, last: int, author: bytes | None = None) -> list[bytes]:
        rows = self.db.execute(
            "SELECT hash FROM ledger_entries WHERE author=? AND seq BETWEEN ? AND ? ORDER BY seq",
            (author or self.me, first, last)).fetchall()
        return [r[0] for r in rows]

    def authors(self) -> list[bytes]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT author FROM ledger_entries")]

    def recent(self, author: bytes | None = None, limit: int = 20) -> list[EntrySummary]:
        """The newest `limit` entries of `author` (default: us), newest first, as their indexed
        columns (no decoding): what a wallet view lists. Read under the store's lock."""
        with self._lock:
            rows = self.db.execute(
                "SELECT seq, kind, time, delta, amount, peer, dir, job FROM ledger_entries WHERE author=? "
                "ORDER BY seq DESC LIMIT ?", (author or self.me, limit)).fetchall()
        return [EntrySummary(*r) for r in rows]

    def find_job(self, author: bytes, kind: str, job: str) -> Entry | None:
        row = self.db.execute("SELECT raw FROM ledger_entries WHERE author=? AND kind=? AND job=?",
                              (author, kind, job)).fetchone()
        return Entry.from_bytes(row[0]) if row else None


def pending_range(store: ChainStore) -> tuple[int, int] | None:
    """The range of this node's own entries written since its last anchor, or None if none to anchor."""
    head = store.head()
    assert head is not None
    row = store.db.execute(
        "SELECT raw FROM ledger_entries WHERE author=? AND kind=? ORDER BY seq DESC LIMIT 1",
        (store.me, ANCHOR)).fetchone()
    first = Entry.from_bytes(row[0]).body["last"] + 1 if row else 0
    if first > head[0]:
        return None
    n_other = store.db.execute(
        "SELECT COUNT(*) FROM ledger_entries WHERE author=? AND seq>=? AND kind!=?",
        (store.me, first, ANCHOR)).fetchone()[0]
    return (first, head[0]) if n_other else None
