"""Frame decoding benchmark: frames/s decode + validate, hand validation (v1) vs msgspec (v2).

    python tests/benchmarks/bench_frames.py [SECONDS_PER_CELL]

The baseline is `/mtor/intent/1`'s decoder copied here as it was (msgpack.unpackb, then the
hand-written SCHEMAS / check_frame of federation/wire.py); the contender is federation/frames.py
(msgspec Structs with bounds), alone and with `to_dict` (what the application is handed).
Side by side in one run, best of 5 rounds per cell; read the ratios (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import msgpack  # noqa: E402

from federation import frames  # noqa: E402

# ---------------------------------------------------------------- v1 baseline (federation/wire.py)


class FrameError(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def unpack(data: bytes, max_len: int) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, max_str_len=max_len, max_bin_len=max_len,
                               max_array_len=100_000, max_map_len=100_000)
    except Exception as exc:
        raise FrameError("undecodable", type(exc).__name__) from None


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
        "price": (_opt(_PRICE), False),
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


def check_frame(obj: Any) -> dict:
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
        except Exception:
            ok = False
        if not ok:
            raise FrameError("bad_field", f"{ftype}.{name}")
        out[name] = obj[name]
    return out


def decode_v1(data: bytes, max_frame: int = frames.DEFAULT_MAX_FRAME) -> dict:
    if len(data) > max_frame:
        raise FrameError("oversized", f"{len(data)} > {max_frame}")
    return check_frame(unpack(data, max_frame))


# ---------------------------------------------------------------- the frames

REQUEST = {
    "type": "request", "id": "5f0c1b7e2a3d4e8f9a0b1c2d3e4f5a6b", "kind": "chat", "model": "smollm2-135m-instruct",
    "params": {"max_tokens": 256, "temperature": 0.7, "top_p": 0.95, "stream": True},
    "inputs": {"messages": [
        {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And how many people live there, roughly? Name the year of the count."},
    ], "timeout": 119.5},
    "max_price": 1_200, "quote": 1_000,
}
CHUNK = {"type": "chunk", "id": "5f0c1b7e2a3d4e8f9a0b1c2d3e4f5a6b", "data": " Paris", "index": 17}


def rate(fn: Callable[[bytes], Any], data: bytes, seconds: float) -> float:
    """Best frames/s over 5 rounds of `seconds / 5` each."""
    best = 0.0
    for _ in range(5):
        n, t0 = 0, time.perf_counter()
        deadline = t0 + seconds / 5
        while True:
            for _ in range(1000):
                fn(data)
            n += 1000
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - t0))
    return best


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.5
    rows = []
    for name, frame in (("request (chat, 4 messages)", REQUEST), ("chunk (one token)", CHUNK)):
        data = msgpack.packb(frame, use_bin_type=True)
        assert decode_v1(data) == frames.to_dict(frames.decode(data))  # same answer from both
        v1 = rate(decode_v1, data, seconds)
        v2 = rate(frames.decode, data, seconds)
        v2d = rate(lambda d: frames.to_dict(frames.decode(d)), data, seconds)
        rows.append((name, len(data), v1, v2, v2d))
    print(f"{'frame':28} {'bytes':>6} {'v1 hand (frames/s)':>19} {'v2 msgspec':>12} {'ratio':>6} "
          f"{'v2 + to_dict':>13} {'ratio':>6}")
    for name, size, v1, v2, v2d in rows:
        print(f"{name:28} {size:>6} {v1:>19,.0f} {v2:>12,.0f} {v2 / v1:>5.2f}x {v2d:>13,.0f} {v2d / v1:>5.2f}x")


if __name__ == "__main__":
    main()
