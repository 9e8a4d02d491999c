"""Accounts for the people behind a broker (issue 13 item 5): each browser user and each API key
(the intent's `user`) has a sub-account in the node's ledger (ledger/users.py). The sysop credits
them (`POST /api/v1/wallet/users/credit`); a new user gets `ledger.demo_grant` once (default 0);
each intent's cost is debited to the user who asked; a user without credit for the quote is
refused with a clear message before anything runs. Off by default (`ledger.user_accounts`): then
every user spends the node's wallet, as before.
"""

from __future__ import annotations

import logging

from .intents import IntentError

log = logging.getLogger("mtor.accounts")


class UserAccounts:
    def __init__(self, ledger, demo_grant: int = 0):
        self.ledger = ledger
        self.demo_grant = demo_grant

    def _store(self):
        return self.ledger.store

    def balance(self, user: str) -> int:
        from ledger import users

        return users.balance(self._store(), user)

    def all(self) -> dict[str, dict]:
        from ledger import users

        return users.accounts(self._store())

    def credit(self, user: str, amount: int, credit_id: str):
        from ledger import users

        return users.credit(self._store(), user, amount, credit_id)

    def check(self, user: str, price: int) -> None:
        """Before the work: the user can pay the quote (a new user first gets the demo grant)."""
        from ledger import users
        from ledger.errors import InsufficientFunds, LedgerError

        store = self._store()
        try:
            if self.demo_grant and store.find_job(store.me, "user_credit", f"demo:{user}") is None \
                    and users.balance(store, user) == 0:
                users.credit(store, user, self.demo_grant, f"demo:{user}")
            users.check(store, user, price)
        except InsufficientFunds as e:
            raise IntentError("credit", f"{e}. Ask this node's sysop for credit "
                                        f'(POST /api/v1/wallet/users/credit {{"user": "{user}", "amount": N}})') from None
        except LedgerError as e:
            raise IntentError("credit", str(e)) from None

    def debit(self, user: str, job: str, amount: int) -> None:
        from ledger import users

        try:
            users.debit(self._store(), user, job, amount)
        except Exception:  # the pay already happened; losing the debit must not lose the result
            log.exception("could not debit %s µ of job %s to user %r", amount, job, user)
