"""Merkle tree over a batch of entry hashes, RFC 6962 (Certificate Transparency) rule.

    leaf(h)      = sha256(0x00 || h)            h: a 32-byte entry hash
    node(l, r)   = sha256(0x01 || l || r)
    MTH([])      = sha256(b"")
    MTH([h])     = leaf(h)
    MTH(D[0:n])  = node(MTH(D[0:k]), MTH(D[k:n])), k = largest power of two < n

The 0x00/0x01 prefixes keep a leaf from ever being passed off as an inner node (second-preimage
attacks); the split rule makes the tree unique for every n without padding or duplicate leaves.
An inclusion proof is the RFC 6962 audit path (sibling hashes, bottom-up).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(h: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + h).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """Root of the batch. Iterative bottom-up pairing gives the same tree as the recursive
    definition above (a left-complete tree), in O(n) without recursion depth limits."""
    if not hashes:
        return EMPTY_ROOT
    level = [leaf_hash(h) for h in hashes]
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])  # odd one out is promoted unchanged
        level = nxt
    return level[0]


def inclusion_proof(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path for hashes[index] (RFC 6962 §2.1.1 PATH(m, D[n]))."""
    if not 0 <= index < len(hashes):
        raise IndexError("leaf index out of range")

    def path(m: int, d: Sequence[bytes]) -> list[bytes]:
        n = len(d)
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return path(m, d[:k]) + [merkle_root(d[k:])]
        return path(m - k, d[k:]) + [merkle_root(d[:k])]

    return path(index, hashes)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Check an audit path (RFC 9162 §2.1.3.2 algorithm)."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
