"""One Ed25519 seed per node, three views: libp2p peer id, ledger key, Solana address
(docs/ledger.md, "Identity and domain tags")."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import base58
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEY_NAME = "identity.key"
# libp2p peer id of an Ed25519 key: identity multihash (0x00, length 0x24) of the protobuf
# PublicKey {Type: Ed25519 (0x08 0x01), Data (0x12 0x20): 32-byte key}
PEER_ID_PREFIX = b"\x00\x24\x08\x01\x12\x20"


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
        return peer_id_from_pubkey(self.public_key)

    @property
    def solana_address(self) -> str:
        # A Solana address is the base58 of the raw Ed25519 public key.
        return base58.b58encode(self.public_key).decode()


def peer_id_from_pubkey(pubkey: bytes) -> str:
    return base58.b58encode(PEER_ID_PREFIX + pubkey).decode()


def pubkey_from_peer_id(peer_id: str) -> bytes:
    """The Ed25519 public key inside an Ed25519 libp2p peer id (identity multihash)."""
    try:
        raw = base58.b58decode(peer_id)
    except ValueError:
        raise ValueError(f"not a peer id (not base58): {peer_id[:60]!r}") from None
    if len(raw) != len(PEER_ID_PREFIX) + 32 or not raw.startswith(PEER_ID_PREFIX):
        raise ValueError(f"not an Ed25519 peer id (12D3KooW...): {peer_id[:60]!r}")
    return raw[len(PEER_ID_PREFIX):]


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


# ---- the other secrets in the data dir (sysop.token) and its permissions ----------------------

POSIX = os.name == "posix"  # Windows has no group/other mode bits; its ACLs are the user profile's


def write_private(path: Path, text: str) -> None:
    """Write a new secret file, mode 0600 from the first byte, and make it durable (file and
    directory entry fsynced): a crash must not leave an empty token behind."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if POSIX:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_token(path: Path, what: str) -> str:
    """A secret token file: refused when others may read it or when it is empty (an empty token
    would match an empty header)."""
    st = path.stat()
    if POSIX and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise IdentityError(f"{path} is readable by other users (mode {stat.S_IMODE(st.st_mode):04o}); it holds the "
                            f"{what}: run `chmod 600 {path}` and start again")
    token = path.read_text(errors="replace").strip()
    if not token:
        raise IdentityError(f"{path} is empty; it must hold the {what}. Delete it and start again to write a new one")
    return token


def make_private(path: Path, mode: int) -> bool:
    """Take group and other permissions off a file or directory of ours. True when it changed."""
    if not POSIX:
        return False
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return False
    if current & (stat.S_IRWXG | stat.S_IRWXO):
        os.chmod(path, mode)
        return True
    return False
