"""Framing for `/mtor/intent/2`, `/mtor/msg/1` and the small federation protocols.

Framing: a 4-byte big-endian unsigned length, then that many bytes of msgpack (one map).
A fixed 4-byte prefix (not a varint) so a reader knows after exactly 4 bytes whether the
frame is over the limit, without parsing a variable-length header byte by byte.

Intent frames are typed (federation/frames.py: msgspec Structs decoded with bounds); every
failure is a `FrameError` (with a short `reason`), never any other exception. This module keeps
the length prefix, the size limits, the per-peer byte budget and the read/write deadlines.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import msgspec
import trio

from . import frames
from .frames import DEFAULT_MAX_FRAME, FrameError

__all__ = ["DEFAULT_MAX_FRAME", "SMALL_FRAME", "FrameError", "StreamClosed", "decode_frame", "encode_frame",
           "read_frame", "read_frame_bytes", "unpack", "write_frame"]

SMALL_FRAME = 64 * 1024  # frames up to this size are not reserved against a peer budget
BODY_GRACE_S = 10.0  # a frame's body must arrive within this + its size at MIN_BODY_RATE
MIN_BODY_RATE = 256 * 1024  # bytes/s
_LEN = struct.Struct(">I")


class StreamClosed(Exception):
    """The remote end closed the stream cleanly between frames."""


# ---------------------------------------------------------------- untyped msgpack


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


def encode_frame(frame: frames.Frame | dict, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """Length prefix + msgpack body: a typed intent frame, or a plain map (the other protocols)."""
    body = frames.encode(frame) if isinstance(frame, msgspec.Struct) else msgpack.packb(frame, use_bin_type=True)
    if len(body) > max_frame:
        raise FrameError("oversized", f"{len(body)} > {max_frame}")
    return _LEN.pack(len(body)) + body


async def write_frame(stream: Any, frame: frames.Frame | dict, *, max_frame: int, timeout: float) -> bytes:
    data = encode_frame(frame, max_frame)
    with trio.fail_after(timeout):
        await stream.write(data)
    return data[4:]


def decode_frame(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> frames.Frame:
    """One intent frame's body -> its typed frame (federation/frames.py); FrameError otherwise."""
    return frames.decode(data, max_frame)


async def read_frame(stream: Any, *, max_frame: int, timeout: float, budget: Any = None,
                     peer: str = "") -> tuple[frames.Frame, bytes]:
    raw = await read_frame_bytes(stream, max_frame=max_frame, timeout=timeout, budget=budget, peer=peer)
    try:
        return decode_frame(raw, max_frame), raw
    finally:
        if budget is not None and len(raw) > SMALL_FRAME:
            budget.release(peer, len(raw))
