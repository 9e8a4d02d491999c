"""One Ed25519 seed per node, three views: libp2p peer id, ledger key, Solana address (DESIGN §4)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import base58
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEY_NAME = "identity.key"


class IdentityError(Exception):
    pass


@dataclass(frozen=True)
class Identity:
    seed: bytes

    @property
    def public_key(self) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def peer_id(self) -> str:
        # libp2p: identity multihash (0x00, len 0x24) of the protobuf PublicKey {Type: Ed25519 (1), Data: key}
        return base58.b58encode(b"\x00\x24\x08\x01\x12\x20" + self.public_key).decode()

    @property
    def solana_address(self) -> str:
        # A Solana address is the base58 of the raw Ed25519 public key.
        return base58.b58encode(self.public_key).decode()


def pubkey_from_peer_id(peer_id: str) -> bytes:
    """The Ed25519 public key inside an Ed25519 libp2p peer id (identity multihash)."""
    raw = base58.b58decode(peer_id)
    if len(raw) != 38 or raw[:6] != b"\x00\x24\x08\x01\x12\x20":
        raise ValueError(f"{peer_id!r} is not an Ed25519 peer id")
    return raw[6:]


def create(path: Path) -> Identity:
    """Write a new seed with mode 0600 from the first byte on (no window where others can read it)."""
    seed = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(seed)
        f.flush()
        os.fsync(f.fileno())
    return Identity(seed)


def load(path: Path) -> Identity:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise IdentityError(f"no identity at {path}; run `mtor-node init` first") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise IdentityError(
            f"{path} is readable by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"it holds the node's private key: run `chmod 600 {path}` and start again"
        )
    seed = path.read_bytes()
    if len(seed) != 32:
        raise IdentityError(f"{path} is corrupt: expected a 32-byte Ed25519 seed, found {len(seed)} bytes; "
                            f"restore it from a backup, or move it away to create a new identity")
    return Identity(seed)


def load_or_create(path: Path) -> tuple[Identity, bool]:
    if path.exists():
        return load(path), False
    return create(path), True
