"""Canonical msgpack encoding and strict field checks shared by entries, receipts and grants.

Canonical rule (what gets hashed and signed): msgpack with the bin type for bytes and str for
text, every map's keys sorted by their UTF-8 bytes, integers in their smallest msgpack form (what
msgpack-python does), no floats, no ext types. Two honest encoders produce identical bytes, so a
hash or a signature never depends on who serialised the object.

The encoder is msgspec's with `order="sorted"`, the same rule federation signs capability
announcements with (federation/frames.py `canonical`; the two packages do not import each other,
tests/federation/test_frames.py checks they agree byte for byte, and that these are the bytes
msgpack-python gives for sorted maps, so entries, receipts and grants already on disk still verify:
tests/ledger/test_ledger_golden.py).
"""

from __future__ import annotations

from typing import Any

import msgpack
import msgspec

from .errors import DecodeError

MAX_INT = 2**63 - 1  # amounts, seqs and times fit SQLite's INTEGER
# The $9000 token's total supply in micro-tokens (1,000,000,000 tokens x 10**6): no amount, and
# no balance, can be larger. Bounding every amount by it keeps every SQLite SUM far from 2**63.
MAX_AMOUNT = 10**15
MAX_DEPTH = 6
_SORTED = msgspec.msgpack.Encoder(order="sorted")


def canonical(obj: Any) -> bytes:
    """Canonical bytes of a msgpack-able object (dict keys sorted recursively)."""
    return _SORTED.encode(obj)


def _no_ext(code: int, data: bytes) -> Any:
    raise DecodeError("bytes", f"msgpack ext type {code} not allowed")


def unpack(data: bytes, max_size: int) -> Any:
    """Decode msgpack from an untrusted peer: size-bounded, no ext types, str map keys only."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("bytes", f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise DecodeError("bytes", f"{len(data)} bytes exceeds the limit of {max_size}")
    try:
        return msgpack.unpackb(
            bytes(data),
            raw=False,
            strict_map_key=True,
            ext_hook=_no_ext,
            use_list=True,
        )
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises many types (ExtraData, ValueError, UnicodeDecodeError...)
        raise DecodeError("bytes", f"not valid msgpack: {type(exc).__name__}: {exc}") from None


# --- strict field checks ---------------------------------------------------------------


def check_dict(obj: Any, path: str, required: set[str], optional: frozenset[str] = frozenset()) -> dict:
    if not isinstance(obj, dict):
        raise DecodeError(path or "<root>", f"expected a map, got {type(obj).__name__}")
    keys = set(obj)
    missing = required - keys
    if missing:
        raise DecodeError(path or "<root>", f"missing field(s) {sorted(missing)}")
    extra = keys - required - optional
    if extra:
        raise DecodeError(path or "<root>", f"unknown field(s) {sorted(map(str, extra))}")
    return obj


def _p(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def get_int(obj: dict, key: str, path: str, lo: int = 0, hi: int = MAX_INT) -> int:
    v = obj[key]
    if type(v) is not int:  # bool is an int subclass: refuse it too
        raise DecodeError(_p(path, key), f"expected an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise DecodeError(_p(path, key), f"{v} out of range [{lo}, {hi}]")
    return v


def get_bytes(obj: dict, key: str, path: str, length: int | None = None, max_len: int = 1024) -> bytes:
    v = obj[key]
    if not isinstance(v, bytes):
        raise DecodeError(_p(path, key), f"expected bytes, got {type(v).__name__}")
    if length is not None and len(v) != length:
        raise DecodeError(_p(path, key), f"expected {length} bytes, got {len(v)}")
    if len(v) > max_len:
        raise DecodeError(_p(path, key), f"{len(v)} bytes exceeds {max_len}")
    return v


def get_str(obj: dict, key: str, path: str, max_len: int = 128, min_len: int = 0) -> str:
    v = obj[key]
    if not isinstance(v, str):
        raise DecodeError(_p(path, key), f"expected text, got {type(v).__name__}")
    if not min_len <= len(v) <= max_len:
        raise DecodeError(_p(path, key), f"length {len(v)} not in [{min_len}, {max_len}]")
    return v
