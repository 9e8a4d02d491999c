"""mtor ledger: signed, hash-chained entries in SQLite, balances and holds, the job payment
exchange, fraud proofs, Merkle anchors on Solana (memo v3) and SPL settlement.

Never imports mtor_node, federation or ui. See docs/ledger.md.
"""

from .entry import KINDS, Entry
from .errors import (AlreadyPaid, AnchorError, BadSignature, BannedAuthor, ChainError,
                     CreditLimitExceeded, DecodeError, EquivocationError, InsufficientFunds,
                     LedgerError, PaymentError, ReplayError, SettlementError)
from .fraud import FraudProof
from .grants import GrantVoucher, issue_grant
from .merkle import inclusion_proof, merkle_root, verify_inclusion
from .node_ledger import Ledger
from .receipts import Receipt
from .verify import Problem, VerifyReport

__all__ = [
    "KINDS", "Entry", "Ledger", "Receipt", "GrantVoucher", "issue_grant", "FraudProof",
    "merkle_root", "inclusion_proof", "verify_inclusion", "Problem", "VerifyReport",
    "LedgerError", "DecodeError", "BadSignature", "ChainError", "ReplayError", "EquivocationError",
    "BannedAuthor", "InsufficientFunds", "CreditLimitExceeded", "PaymentError", "AlreadyPaid",
    "AnchorError", "SettlementError",
]
