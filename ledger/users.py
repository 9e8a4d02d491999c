"""Sub-accounts for the people behind a broker node (each browser user, each API key).

The node pays the realm for remote work from its own balance (pay/earn); these sub-accounts say
which of its users may spend how much of it. A sysop credits a user (`user_credit`, once per id),
each intent's cost is debited to the user who asked (`user_debit`, once per job). Both are
entries of the node's own chain, signed and hash-chained like the rest, with no effect on the
node's balance. A user's balance = credits - debits.
"""

from __future__ import annotations

from .chain_store import ChainStore
from .encoding import MAX_AMOUNT
from .entry import MAX_USER, USER_CREDIT, USER_DEBIT, Entry
from .errors import InsufficientFunds, PaymentError, ReplayError


def _key(user: str) -> bytes:
    return b"user:" + user.encode("utf-8", "surrogatepass")


def _check_user(user: str) -> None:
    if not isinstance(user, str) or not 0 < len(user) <= MAX_USER:
        raise PaymentError(f"a user name is 1..{MAX_USER} characters, got {user!r:.80}")


def balance(store: ChainStore, user: str) -> int:
    _check_user(user)
    row = store.db.execute(
        "SELECT COALESCE(SUM(CASE kind WHEN ? THEN amount ELSE -amount END), 0) FROM ledger_entries "
        "WHERE author=? AND peer=? AND kind IN (?, ?)", (USER_CREDIT, store.me, _key(user), USER_CREDIT, USER_DEBIT)).fetchone()
    return int(row[0])


def accounts(store: ChainStore) -> dict[str, dict]:
    """Every user with an account: {user: {credited, spent, balance}}."""
    out: dict[str, dict] = {}
    for peer, kind, total in store.db.execute(
            "SELECT peer, kind, SUM(amount) FROM ledger_entries WHERE author=? AND kind IN (?, ?) GROUP BY peer, kind",
            (store.me, USER_CREDIT, USER_DEBIT)):
        name = bytes(peer)[5:].decode("utf-8", "surrogatepass")
        a = out.setdefault(name, {"credited": 0, "spent": 0})
        a["credited" if kind == USER_CREDIT else "spent"] = int(total)
    for a in out.values():
        a["balance"] = a["credited"] - a["spent"]
    return out


def credit(store: ChainStore, user: str, amount: int, credit_id: str) -> Entry:
    _check_user(user)
    if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
        raise PaymentError(f"a credit is 1..{MAX_AMOUNT} micro-tokens, not {amount!r:.40}")
    with store.tx():
        if store.find_job(store.me, USER_CREDIT, credit_id) is not None:
            raise ReplayError(f"credit {credit_id!r} was already given")
        if balance(store, user) + amount > MAX_AMOUNT:
            raise PaymentError(f"user {user!r} would hold more than the token's total supply")
        return store.append(USER_CREDIT, {"user": user, "amount": amount, "id": credit_id})


def debit(store: ChainStore, user: str, job: str, amount: int) -> Entry | None:
    """The cost of job `job` to `user` (once per job; 0 costs nothing and writes nothing). A debit
    may take a user below 0 by at most what the job cost beyond its quote check (never, with the
    broker's check before the work)."""
    _check_user(user)
    if amount <= 0:
        return None
    with store.tx():
        if store.find_job(store.me, USER_DEBIT, job) is not None:
            return None  # already debited (a retry of the same final event)
        return store.append(USER_DEBIT, {"user": user, "amount": min(amount, MAX_AMOUNT), "job": job})


def check(store: ChainStore, user: str, price: int) -> None:
    """Raise InsufficientFunds unless `user` can pay `price`."""
    have = balance(store, user)
    if price > have:
        raise InsufficientFunds(f"user {user!r} has {have} micro-tokens of credit on this node; the price is {price}")
