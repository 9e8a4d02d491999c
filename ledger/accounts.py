"""Balances, holds and per-peer credit, derived from the chain.

balance   = grants + deposits + earns - pays           (sum of `delta` over our own entries)
available = balance - active holds
owed[p]   = pays to p - earns from p - settled out to p + settled in from p
            (> 0: we owe p tokens on chain; < 0: p owes us)

settle does not move the balance: the pay/earn already moved the credit; settlement moves the
tokens that back it, so it only clears what is owed between two peers.

Holds are local state (never on the wire) but persisted in `ledger_holds`: a hold reserves the
quoted amount before dispatch, is consumed in the same SQLite transaction as the `pay` entry
(so a crash can neither lose the hold before the pay nor keep it after), is released on
failure/cancel, and expires (default 15 min) so a crash mid-job cannot leave it forever:
expired holds are dropped at open and on every `available()`.
"""

from __future__ import annotations

import sqlite3

from .chain_store import ChainStore, now_ms
from .errors import AlreadyPaid, CreditLimitExceeded, InsufficientFunds

DEFAULT_HOLD_TTL_S = 900


class Accounts:
    def __init__(self, store: ChainStore):
        self.store = store
        self.db = store.db
        self.me = store.me
        self.expire_holds()

    # --- balances ---
    def balance(self) -> int:
        return self._balance(self.db)

    def held(self) -> int:
        self.expire_holds()
        return self._held(self.db)

    def available(self) -> int:
        return self.balance() - self.held()

    def owed(self) -> dict[bytes, int]:
        """Net amount we owe each peer on chain (negative: the peer owes us)."""
        signed = """CASE kind WHEN 'pay' THEN amount WHEN 'earn' THEN -amount
                    WHEN 'settle' THEN (CASE dir WHEN 'out' THEN -amount ELSE amount END) ELSE 0 END"""
        try:
            rows = self.db.execute(f"SELECT peer, SUM({signed}) FROM ledger_entries WHERE author=? AND peer IS NOT NULL "
                                   "GROUP BY peer", (self.me,)).fetchall()
        except sqlite3.OperationalError as e:  # a ledger from before amounts were bounded (see _sum)
            if "overflow" not in str(e):
                raise
            sums: dict[bytes, int] = {}
            for peer, v in self.db.execute(f"SELECT peer, {signed} FROM ledger_entries WHERE author=? AND peer IS NOT NULL",
                                           (self.me,)):
                sums[peer] = sums.get(peer, 0) + int(v)
            rows = list(sums.items())
        return {r[0]: int(r[1]) for r in rows if r[1]}

    # --- holds ---
    def hold(self, job: str, amount: int, peer: bytes | None = None,
             ttl_s: int = DEFAULT_HOLD_TTL_S) -> None:
        """Reserve `amount` for `job`. Idempotent for the same job (a failover keeps the job's
        hold; a new amount replaces the old if funds allow). Raises InsufficientFunds, AlreadyPaid."""
        if type(amount) is not int or amount < 0:
            raise ValueError("amount must be a non-negative integer of micro-tokens")
        with self.store.tx() as db:
            if self.store.find_job(self.me, "pay", job) is not None:
                raise AlreadyPaid(f"job {job!r} is already paid")
            self._expire(db)
            cur = db.execute("SELECT amount FROM ledger_holds WHERE job=?", (job,)).fetchone()
            already = cur[0] if cur else 0
            avail = self._balance(db) - self._held(db) + already
            if amount > avail:
                raise InsufficientFunds(f"job {job!r}: need {amount}, available {avail} micro-tokens")
            now = now_ms()
            db.execute("INSERT OR REPLACE INTO ledger_holds VALUES(?,?,?,?,?)",
                       (job, amount, peer, now, now + ttl_s * 1000))

    def get_hold(self, job: str) -> int | None:
        row = self.db.execute("SELECT amount FROM ledger_holds WHERE job=?", (job,)).fetchone()
        return row[0] if row else None

    def get_hold_peer(self, job: str) -> bytes | None:
        """The worker a job's hold was placed for (None: not recorded)."""
        row = self.db.execute("SELECT peer FROM ledger_holds WHERE job=?", (job,)).fetchone()
        return bytes(row[0]) if row and row[0] is not None else None

    def holds(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.execute("SELECT job, amount FROM ledger_holds")}

    def release(self, job: str) -> bool:
        """Drop the hold of a failed or cancelled job. True if there was one."""
        with self.store.tx() as db:
            return db.execute("DELETE FROM ledger_holds WHERE job=?", (job,)).rowcount > 0

    def check_supply(self, db: sqlite3.Connection, amount: int, what: str) -> None:
        """No balance can pass the token's total supply: refuse the entry that would (nothing is
        written, nothing lost)."""
        from .encoding import MAX_AMOUNT
        from .errors import PaymentError

        bal = self._balance(db)
        if bal + amount > MAX_AMOUNT:
            raise PaymentError(f"{what} of {amount} micro-tokens refused: the balance ({bal}) would pass the "
                               f"token's total supply of {MAX_AMOUNT} micro-tokens")

    def expire_holds(self) -> int:
        with self.store.tx() as db:
            return self._expire(db)

    @staticmethod
    def _expire(db: sqlite3.Connection) -> int:
        return db.execute("DELETE FROM ledger_holds WHERE expires < ?", (now_ms(),)).rowcount

    def _balance(self, db: sqlite3.Connection) -> int:
        return _sum(db, "SELECT {} FROM ledger_entries WHERE author=?", "delta", (self.me,))

    @staticmethod
    def _held(db: sqlite3.Connection) -> int:
        return _sum(db, "SELECT {} FROM ledger_holds", "amount")

    # --- worker side: credit extended to payers ---
    def outstanding(self, peer: bytes, include_unsettled: bool = False) -> int:
        """Work delivered to `peer` (receipts issued) and not yet paid; optionally plus what the
        peer owes us on chain after pay/earn (unsettled)."""
        unpaid = _sum(self.db, "SELECT {} FROM ledger_receipts WHERE requester=? AND paid=0", "price", (peer,))
        if include_unsettled:
            unpaid += max(0, -self.owed().get(peer, 0))
        return unpaid

    def check_credit(self, peer: bytes, amount: int, limit: int, include_unsettled: bool = False) -> None:
        """Raise CreditLimitExceeded if serving a job of `amount` would put `peer` past `limit`."""
        out = self.outstanding(peer, include_unsettled)
        if out + amount > limit:
            raise CreditLimitExceeded(
                f"peer owes {out} micro-tokens; a job of {amount} would exceed the credit limit {limit}")


def _sum(db: sqlite3.Connection, sql: str, column: str, args: tuple = ()) -> int:
    """SUM(column) as a Python int. New amounts are bounded by the token's supply (MAX_AMOUNT),
    but a ledger written before that bound may hold rows whose SQLite SUM overflows 2**63: those
    are summed in Python instead of failing every balance, status and metrics call."""
    try:
        return int(db.execute(sql.format(f"COALESCE(SUM({column}), 0)"), args).fetchone()[0])
    except sqlite3.OperationalError as e:
        if "overflow" not in str(e):
            raise
        return sum(int(r[0] or 0) for r in db.execute(sql.format(column), args))
