"""The node key, seen by the ledger.

One 32-byte Ed25519 seed is the node identity (docs/ledger.md, "Identity and domain tags"). The same seed gives the Solana keypair
(`Keypair.from_seed`), so the ledger author id IS the node's Solana address. Because one key signs
both ledger objects and Solana transactions, every ledger signature is made over
`domain_tag + canonical_bytes`. A Solana transaction signature is over a serialized message, which
starts with the signature-count/header bytes, never with our ASCII tags, so a ledger signature can
never be replayed as a transaction signature and vice versa.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from .errors import DecodeError

# Domain tags: ASCII, versioned, NUL-terminated so no tag is a prefix of another's message.
DOMAIN_ENTRY = b"mtor-ledger-v1\x00"
DOMAIN_RECEIPT = b"mtor-receipt-v1\x00"
DOMAIN_GRANT = b"mtor-grant-v1\x00"


class Signer:
    """Signs ledger objects with the node seed. Signing uses `cryptography` (OpenSSL, fastest
    here); verification uses solders (ed25519-dalek, ~2x faster than OpenSSL's verify here)."""

    def __init__(self, seed: bytes):
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise ValueError("seed must be 32 bytes")
        self._priv = Ed25519PrivateKey.from_private_bytes(seed)
        self.keypair = Keypair.from_seed(seed)
        self.pubkey: bytes = bytes(self.keypair.pubkey())
        self.address: str = str(self.keypair.pubkey())

    def sign(self, domain: bytes, message: bytes) -> bytes:
        return self._priv.sign(domain + message)


@lru_cache(maxsize=4096)
def _pk(pubkey: bytes) -> Pubkey:
    return Pubkey.from_bytes(pubkey)


def verify_sig(pubkey: bytes, domain: bytes, message: bytes, sig: bytes) -> bool:
    """True when `sig` is `pubkey`'s Ed25519 signature over domain + message."""
    try:
        return Signature.from_bytes(sig).verify(_pk(pubkey), domain + message)
    except (ValueError, TypeError):
        return False


def address(pubkey: bytes) -> str:
    """Base58 Solana address of a 32-byte public key."""
    return str(Pubkey.from_bytes(pubkey))


def to_pubkey(value: bytes | str | Pubkey) -> bytes:
    """Accept a 32-byte key, a base58 address or a solders Pubkey; return the 32 bytes."""
    if isinstance(value, Pubkey):
        return bytes(value)
    if isinstance(value, bytes):
        if len(value) != 32:
            raise DecodeError("pubkey", f"expected 32 bytes, got {len(value)}")
        return value
    if isinstance(value, str):
        try:
            return bytes(Pubkey.from_string(value))
        except ValueError:
            raise DecodeError("pubkey", f"not a base58 address: {value[:60]!r}") from None
    raise DecodeError("pubkey", f"expected bytes or base58 text, got {type(value).__name__}")
