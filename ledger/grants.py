"""Grants: credits issued by a realm authority (the sysop of a private realm; docs/ledger.md, "Kinds").

The authority signs a voucher {realm, to, amount, id, authority} over DOMAIN_GRANT + canonical
bytes and hands it to the member. The member appends a `grant` entry that quotes the voucher.
Any node that knows the realm's authority public key (realm config) can check that a grant entry
is backed by the authority's signature; the voucher id makes each voucher creditable once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .encoding import MAX_AMOUNT, canonical, check_dict, get_bytes, get_int, get_str
from .errors import BadSignature, DecodeError
from .keys import DOMAIN_GRANT, Signer, verify_sig

VOUCHER_FIELDS = {"v", "realm", "to", "amount", "id", "authority", "sig"}


@dataclass(frozen=True)
class GrantVoucher:
    realm: str
    to: bytes  # 32-byte pubkey of the member credited
    amount: int  # micro-tokens
    id: str  # unique per authority; a voucher is creditable once
    authority: bytes  # 32-byte pubkey of the realm authority
    sig: bytes = field(default=b"", repr=False)

    def unsigned_dict(self) -> dict[str, Any]:
        return {"v": 1, "realm": self.realm, "to": self.to, "amount": self.amount, "id": self.id,
                "authority": self.authority}

    def to_dict(self) -> dict[str, Any]:
        d = self.unsigned_dict()
        d["sig"] = self.sig
        return d

    def verify(self, authority: bytes | None = None) -> None:
        """Raise BadSignature unless signed by `self.authority` (and, when given, that key is
        the expected realm authority)."""
        if authority is not None and authority != self.authority:
            raise BadSignature(f"grant {self.id!r}: issued by a key that is not the realm authority")
        if not verify_sig(self.authority, DOMAIN_GRANT, canonical(self.unsigned_dict()), self.sig):
            raise BadSignature(f"grant {self.id!r}: authority signature does not verify")

    @classmethod
    def from_dict(cls, d: Any, path: str = "") -> "GrantVoucher":
        check_dict(d, path, VOUCHER_FIELDS)
        if get_int(d, "v", path) != 1:
            raise DecodeError(f"{path}.v", "unsupported voucher version")
        return cls(
            realm=get_str(d, "realm", path, 64, 1),
            to=get_bytes(d, "to", path, 32),
            amount=get_int(d, "amount", path, 1, MAX_AMOUNT),
            id=get_str(d, "id", path, 128, 1),
            authority=get_bytes(d, "authority", path, 32),
            sig=get_bytes(d, "sig", path, 64),
        )


def issue_grant(authority_seed: bytes, realm: str, to: bytes, amount: int, grant_id: str) -> GrantVoucher:
    """Sysop side: sign a voucher crediting `amount` micro-tokens to member `to`."""
    if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
        raise ValueError(f"amount must be an integer of 1..{MAX_AMOUNT} micro-tokens (the token's total supply)")
    signer = Signer(authority_seed)
    v = GrantVoucher(realm=realm, to=to, amount=amount, id=grant_id, authority=signer.pubkey)
    return replace(v, sig=signer.sign(DOMAIN_GRANT, canonical(v.unsigned_dict())))
