"""Framing and strict frame decoding for `/mtor/intent/1`.

Framing: a 4-byte big-endian unsigned length, then that many bytes of msgpack (one map).
A fixed 4-byte prefix (not a varint) so a reader knows after exactly 4 bytes whether the
frame is over the limit, without parsing a variable-length header byte by byte.

Decoding is strict: each frame type has a schema; every known field is type-checked, unknown
fields are dropped (forward compatibility), unknown frame types are rejected. Every failure is
a `FrameError` (with a short `reason`), never any other exception.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable
from typing import Any

import msgpack
import trio

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
SMALL_FRAME = 64 * 1024  # frames up to this size are not reserved against a peer budget
BODY_GRACE_S = 10.0  # a frame's body must arrive within this + its size at MIN_BODY_RATE
MIN_BODY_RATE = 256 * 1024  # bytes/s
RECEIPT_DOMAIN = b"mtor-receipt-v1"
_LEN = struct.Struct(">I")


class FrameError(Exception):
    """A frame that cannot be accepted: oversized, truncated, undecodable or ill-typed."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class StreamClosed(Exception):
    """The remote end closed the stream cleanly between frames."""


# ---------------------------------------------------------------- canonical msgpack


def _canon(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _canon(obj[k]) for k in sorted(obj, key=lambda k: (str(type(k)), k))}
    if isinstance(obj, (list, tuple)):
        return [_canon(v) for v in obj]
    return obj


def canonical(obj: Any) -> bytes:
    """Deterministic msgpack: maps with sorted keys, bin type for bytes, tuples as arrays."""
    return msgpack.packb(_canon(obj), use_bin_type=True)


def unpack(data: bytes, max_len: int) -> Any:
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=max_len,
            max_bin_len=max_len,
            max_array_len=100_000,
            max_map_len=100_000,
        )
    except Exception as exc:  # msgpack raises many types; all mean "undecodable"
        raise FrameError("undecodable", type(exc).__name__) from None


# ---------------------------------------------------------------- stream I/O


async def _read_exactly(stream: Any, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.read(n - len(buf))
        if not chunk:
            if not buf:
                raise StreamClosed()
            raise FrameError("truncated", f"{len(buf)}/{n} bytes")
        buf += chunk
    return bytes(buf)


async def read_frame_bytes(stream: Any, *, max_frame: int, timeout: float, budget: Any = None,
                           peer: str = "") -> bytes:
    """Read one raw frame (without its prefix). Raises StreamClosed, FrameError, TooSlowError.

    budget (federation.budget.PeerBudget): a frame over SMALL_FRAME has its length reserved for
    `peer` before its body is read (FrameError "over_budget" if that is more than the peer may
    hold in flight); the caller releases it (`budget.release(peer, len(frame))`) once the frame
    is decoded (`read_frame` does). The body must arrive at MIN_BODY_RATE or better."""
    with trio.fail_after(timeout):
        (n,) = _LEN.unpack(await _read_exactly(stream, 4))
    if n > max_frame:
        raise FrameError("oversized", f"{n} > {max_frame}")
    if n == 0:
        raise FrameError("empty")
    reserved = budget is not None and n > SMALL_FRAME  # small frames: bounded by the stream limit
    if reserved:
        try:
            budget.reserve(peer, n)
        except Exception as exc:
            raise FrameError("over_budget", str(exc)) from None
    try:
        # a frame that has begun must keep coming: a slow stream cannot sit on its reservation
        with trio.fail_after(min(timeout, BODY_GRACE_S + n / MIN_BODY_RATE)):
            return await _read_exactly(stream, n)
    except StreamClosed:
        if reserved:
            budget.release(peer, n)
        raise FrameError("truncated", f"0/{n} bytes") from None
    except BaseException:
        if reserved:
            budget.release(peer, n)
        raise


def encode_frame(frame: dict, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    body = msgpack.packb(frame, use_bin_type=True)
    if len(body) > max_frame:
        raise FrameError("oversized", f"{len(body)} > {max_frame}")
    return _LEN.pack(len(body)) + body


async def write_frame(stream: Any, frame: dict, *, max_frame: int, timeout: float) -> bytes:
    data = encode_frame(frame, max_frame)
    with trio.fail_after(timeout):
        await stream.write(data)
    return data[4:]


# ---------------------------------------------------------------- schemas

Check = Callable[[Any], bool]


def _is_str(maxlen: int) -> Check:
    return lambda v: isinstance(v, str) and len(v) <= maxlen


def _is_int(lo: int = 0, hi: int = 2**63 - 1) -> Check:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _is_num(lo: float, hi: float) -> Check:
    return lambda v: (
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi
    )


def _is_bytes(n: int | None = None) -> Check:
    return lambda v: isinstance(v, bytes) and (n is None or len(v) == n)


def _opt(check: Check) -> Check:
    return lambda v: v is None or check(v)


_is_dict: Check = lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v)  # noqa: E731
_is_bool: Check = lambda v: isinstance(v, bool)  # noqa: E731
_ID = _is_str(128)
_NAME = _is_str(256)
_PRICE = _is_int(0, 10**15)

# type -> {field: (check, required)}
SCHEMAS: dict[str, dict[str, tuple[Check, bool]]] = {
    "request": {
        "id": (_ID, True),
        "kind": (_is_str(64), True),
        "model": (_NAME, True),
        "params": (_is_dict, False),
        "inputs": (_is_dict, False),
        "max_price": (_opt(_PRICE), False),
        "quote": (_opt(_PRICE), False),
    },
    "cancel": {"id": (_ID, True)},
    "ping": {"id": (_ID, True)},
    "pong": {"id": (_ID, True)},
    "accepted": {"id": (_ID, True), "price": (_PRICE, True), "queue": (_opt(_is_int()), False)},
    "chunk": {
        "id": (_ID, True),
        "data": (lambda v: isinstance(v, (str, bytes)), True),
        "index": (_opt(_is_int()), False),
    },
    "progress": {
        "id": (_ID, True),
        "done": (_is_num(0, 1e15), False),
        "total": (_opt(_is_num(0, 1e15)), False),
        "message": (_opt(_is_str(4096)), False),
        "position": (_opt(_is_int()), False),
    },
    "result": {
        "id": (_ID, True),
        "output": (lambda v: True, False),
        "units": (_is_int(0, 10**15), False),
        "meta": (_is_dict, False),
    },
    "error": {
        "id": (_ID, True),
        "code": (_is_str(64), True),
        "message": (_is_str(4096), True),
        "retryable": (_opt(_is_bool), False),
        "price": (_opt(_PRICE), False),  # code "price": the worker's current price, typed (no parsing of message)
    },
    "receipt": {
        "id": (_ID, True),
        "requester": (_is_str(128), True),
        "worker": (_is_str(128), True),
        "kind": (_is_str(64), True),
        "model": (_NAME, True),
        "units": (_is_int(0, 10**15), True),
        "price": (_PRICE, True),
        "result_hash": (_is_bytes(32), True),
        "ts": (_is_int(0, 2**40), True),
        "sig": (_is_bytes(64), True),
    },
}

EVENT_TYPES = frozenset({"chunk", "progress"})


def check_frame(obj: Any) -> dict:
    """Validate a decoded frame; returns a new dict with only known fields."""
    if not isinstance(obj, dict):
        raise FrameError("not_a_map")
    ftype = obj.get("type")
    if not isinstance(ftype, str):
        raise FrameError("no_type")
    schema = SCHEMAS.get(ftype)
    if schema is None:
        raise FrameError("unknown_type", ftype[:64])
    out: dict[str, Any] = {"type": ftype}
    for name, (check, required) in schema.items():
        if name not in obj:
            if required:
                raise FrameError("missing_field", f"{ftype}.{name}")
            continue
        try:
            ok = check(obj[name])
        except Exception:  # a check must never crash the reader
            ok = False
        if not ok:
            raise FrameError("bad_field", f"{ftype}.{name}")
        out[name] = obj[name]
    return out


def decode_frame(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> dict:
    if len(data) > max_frame:
        raise FrameError("oversized", f"{len(data)} > {max_frame}")
    return check_frame(unpack(data, max_frame))


async def read_frame(stream: Any, *, max_frame: int, timeout: float, budget: Any = None,
                     peer: str = "") -> tuple[dict, bytes]:
    raw = await read_frame_bytes(stream, max_frame=max_frame, timeout=timeout, budget=budget, peer=peer)
    try:
        return decode_frame(raw, max_frame), raw
    finally:
        if budget is not None and len(raw) > SMALL_FRAME:
            budget.release(peer, len(raw))


# ---------------------------------------------------------------- receipts

RECEIPT_FIELDS = ("id", "requester", "worker", "kind", "model", "units", "price", "result_hash", "ts")


def result_hash(raw_result_frame: bytes) -> bytes:
    """SHA-256 of the result frame's msgpack body exactly as sent on the wire."""
    return hashlib.sha256(raw_result_frame).digest()


def receipt_signing_bytes(receipt: dict) -> bytes:
    return RECEIPT_DOMAIN + canonical({k: receipt[k] for k in RECEIPT_FIELDS})


def sign_receipt(receipt: dict, sign: Callable[[bytes], bytes]) -> dict:
    out = {"type": "receipt", **{k: receipt[k] for k in RECEIPT_FIELDS}}
    out["sig"] = sign(receipt_signing_bytes(out))
    return out


def verify_receipt(receipt: dict, verify: Callable[[bytes, bytes], bool]) -> bool:
    try:
        return bool(verify(receipt_signing_bytes(receipt), receipt["sig"]))
    except Exception:
        return False
