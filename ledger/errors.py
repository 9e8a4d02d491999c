"""Typed errors of the ledger: every rejection names what is wrong, so a caller can log it,
answer a peer with it, or count it, without parsing strings."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""


class DecodeError(LedgerError, ValueError):
    """Bytes or a dict from the network do not form a valid object.

    `field` names the offending field (dotted path, e.g. "body.receipt.price"), `reason` says why.
    """

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class BadSignature(LedgerError):
    """A signature does not verify under the key it claims."""


class ChainError(LedgerError):
    """An entry does not fit the chain it claims to extend (seq gap, wrong prev link, replay)."""


class ReplayError(ChainError):
    """The entry (or job) was already seen and accepted: a replay."""


class EquivocationError(ChainError):
    """Two different valid entries share an author and a seq. `proof` is the FraudProof."""

    def __init__(self, message: str, proof):
        self.proof = proof
        super().__init__(message)


class BannedAuthor(LedgerError):
    """The author is on the ban list (a fraud proof against it was verified)."""


class InsufficientFunds(LedgerError):
    """Available balance (balance minus holds) is below the amount asked for."""


class CreditLimitExceeded(LedgerError):
    """Serving this job would take a payer past the per-peer credit limit."""


class PaymentError(LedgerError):
    """A receipt or a pay entry does not match the job it is for."""


class AlreadyPaid(PaymentError, ReplayError):
    """The job was already paid (requester side) or already earned (worker side)."""


class AnchorError(LedgerError):
    """Anchoring or anchor verification failed."""


class SettlementError(LedgerError):
    """An on-chain settlement failed or does not match its record."""
