"""Signing with the node seed, verifying against a peer id (Ed25519 ids embed the key)."""

from __future__ import annotations

import functools

from libp2p.crypto.ed25519 import Ed25519PublicKey
from libp2p.peer.id import ID

from .host import keypair_from_seed


class Signer:
    def __init__(self, seed: bytes) -> None:
        kp = keypair_from_seed(seed)
        self._priv = kp.private_key
        self.peer_id = ID.from_pubkey(kp.public_key).to_base58()

    def sign(self, data: bytes) -> bytes:
        return self._priv.sign(data)


@functools.lru_cache(maxsize=4096)
def _pubkey(peer_id: str) -> Ed25519PublicKey | None:
    try:
        key = ID.from_base58(peer_id).extract_public_key()
    except Exception:
        return None
    return key if isinstance(key, Ed25519PublicKey) else None


def verify(peer_id: str, data: bytes, sig: bytes) -> bool:
    """True iff `sig` is peer_id's Ed25519 signature over `data` (False on any malformed input)."""
    if not isinstance(peer_id, str) or not isinstance(sig, bytes) or len(sig) != 64:
        return False
    key = _pubkey(peer_id)
    if key is None:
        return False
    try:
        return key.verify(data, sig)
    except Exception:
        return False
