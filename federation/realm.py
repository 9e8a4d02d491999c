"""Realms: a named network with an optional 32-byte pre-shared key (libp2p pnet).

Join secret format (what `mtor-node realm create NAME` prints):

    mtor-realm:<name>:<base64url(psk), no padding>:<checksum>

checksum = first 4 bytes of SHA-256(b"mtor-realm-v1" + name + b"\\0" + psk), as 8 hex chars.
A typo anywhere in the secret changes the checksum, so it is caught before any dial.

Realm-specific names (so two realms can never merge, even without a PSK):
DHT protocol prefix `/mtor/<realm>/kad/1.0.0`, gossip topic `/mtor/<realm>/caps/1`.

Fast wrong-key detection (`probe_realm`): py-libp2p itself only notices a wrong PSK by the
upgrade timeout (~10 s per attempt, x4 retries). But the listener side of multistream-select
writes its header first, so right after TCP connect a pnet peer sends an 8-byte nonce and the
Salsa20-encrypted "/multistream/1.0.0\\n". We decrypt those 20 bytes with our key: a match means
the same key, anything else means a different key (or no key) -- known after one round trip.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass

import trio

PUBLIC_REALM = "grid"
SECRET_PREFIX = "mtor-realm"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_MULTISTREAM_HEADER = b"\x13/multistream/1.0.0\n"


class RealmSecretError(ValueError):
    """A join secret that cannot be parsed (wrong format, bad key, bad checksum)."""


@dataclass(frozen=True)
class Realm:
    name: str = PUBLIC_REALM
    psk: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(
                f"invalid realm name {self.name!r}: 1-63 chars of a-z 0-9 . _ -, "
                "starting with a letter or digit"
            )
        if self.psk is not None and (not isinstance(self.psk, bytes) or len(self.psk) != 32):
            raise ValueError("realm psk must be 32 bytes")

    @property
    def is_public(self) -> bool:
        return self.psk is None

    @property
    def dht_prefix(self) -> str:
        return f"/mtor/{self.name}/kad"

    @property
    def dht_protocol(self) -> str:
        return f"{self.dht_prefix}/1.0.0"

    @property
    def caps_topic(self) -> str:
        return f"/mtor/{self.name}/caps/1"

    def cap_key(self, kind: str, model: str) -> str:
        return f"/mtor/{self.name}/cap/{kind}/{model}"

    @property
    def fingerprint(self) -> str:
        """Short, non-secret identifier of the key, safe to log/display."""
        if self.psk is None:
            return "public"
        return hashlib.sha256(b"mtor-realm-fp" + self.psk).hexdigest()[:12]


def public_realm() -> Realm:
    return Realm(PUBLIC_REALM, None)


def new_realm(name: str) -> Realm:
    return Realm(name, os.urandom(32))


def _checksum(name: str, psk: bytes) -> str:
    return hashlib.sha256(b"mtor-realm-v1" + name.encode() + b"\0" + psk).hexdigest()[:8]


def format_secret(realm: Realm) -> str:
    if realm.psk is None:
        raise ValueError("the public realm has no secret")
    key = base64.urlsafe_b64encode(realm.psk).rstrip(b"=").decode()
    return f"{SECRET_PREFIX}:{realm.name}:{key}:{_checksum(realm.name, realm.psk)}"


def parse_secret(secret: str) -> Realm:
    if not isinstance(secret, str):
        raise RealmSecretError("realm secret must be a string")
    parts = secret.strip().split(":")
    if len(parts) != 4 or parts[0] != SECRET_PREFIX:
        raise RealmSecretError(
            "realm secret must look like mtor-realm:<name>:<key>:<checksum>"
        )
    _, name, key, check = parts
    if not _NAME_RE.match(name):
        raise RealmSecretError(f"invalid realm name {name!r} in secret")
    try:
        psk = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    except (binascii.Error, ValueError) as exc:
        raise RealmSecretError("realm key is not valid base64url") from exc
    if len(psk) != 32:
        raise RealmSecretError("realm key must decode to 32 bytes")
    if check.lower() != _checksum(name, psk):
        raise RealmSecretError("realm secret checksum mismatch (typo?)")
    return Realm(name, psk)


class RealmMismatch(Exception):
    """The remote peer does not use our realm key."""


async def probe_realm(host: str, port: int, psk: bytes | None, timeout: float = 2.0) -> bool:
    """True if the listener at host:port speaks our pnet key (or no key, when psk is None).

    Raises OSError/trio.TooSlowError when it cannot be reached at all (that is not a realm
    answer). Returns False as soon as the first 20-28 bytes disagree with our key.
    """
    want = (8 if psk is not None else 0) + len(_MULTISTREAM_HEADER)
    with trio.fail_after(timeout):
        stream = await trio.open_tcp_stream(host, port)
        try:
            buf = b""
            while len(buf) < want:
                chunk = await stream.receive_some(want - len(buf))
                if not chunk:
                    return False  # closed on us before a header: not our realm
                buf += chunk
                if psk is not None and buf[: len(_MULTISTREAM_HEADER)] == _MULTISTREAM_HEADER:
                    return False  # a listener without any pnet key
        finally:
            await stream.aclose()
    if psk is None:
        return buf == _MULTISTREAM_HEADER
    from Crypto.Cipher import Salsa20  # pycryptodome, a py-libp2p dependency

    plain = Salsa20.new(key=psk, nonce=buf[:8]).decrypt(buf[8:])
    return plain == _MULTISTREAM_HEADER
