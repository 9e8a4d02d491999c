import msgpack
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from federation import frames
from federation.frames import FrameError
from federation.wire import StreamClosed, decode_frame, encode_frame, read_frame


def check_frame(obj):
    """A dict through the wire's typed decoder, back to the application's dict."""
    return frames.to_dict(frames.from_dict(obj))


class BufStream:
    """Minimal stand-in for a libp2p stream: read(n) from a byte buffer, in odd-sized pieces."""

    def __init__(self, data: bytes, piece: int = 3):
        self.data = data
        self.piece = piece

    async def read(self, n=None):
        await trio.lowlevel.checkpoint()
        take = min(n or len(self.data), self.piece)
        out, self.data = self.data[:take], self.data[take:]
        return out


def test_request_round_trip_and_unknown_fields_dropped():
    frame = {"type": "request", "id": "a", "kind": "chat", "model": "m", "params": {"t": 0.5},
             "inputs": {"text": "hi", "image": b"\x89PNG"}, "max_price": 100, "quote": 90, "future": 1}
    out = frames.to_dict(decode_frame(msgpack.packb(frame)))
    assert "future" not in out
    assert out["inputs"]["image"] == b"\x89PNG"
    assert decode_frame(encode_frame(frames.from_dict(frame))[4:]) == frames.from_dict(frame)


@pytest.mark.parametrize(
    "frame,reason",
    [
        ([1, 2], "not_a_map"),
        ({"id": "x"}, "no_type"),
        ({"type": "launch", "id": "x"}, "unknown_type"),
        ({"type": "request", "id": "x", "kind": "chat"}, "missing_field"),
        ({"type": "request", "id": 5, "kind": "chat", "model": "m"}, "bad_field"),
        ({"type": "request", "id": "x", "kind": "chat", "model": "m", "max_price": -1}, "bad_field"),
        ({"type": "request", "id": "x", "kind": "chat", "model": "m", "max_price": True}, "bad_field"),
        ({"type": "accepted", "id": "x", "price": 1.5}, "bad_field"),
        ({"type": "progress", "id": "x", "done": float("nan")}, "bad_field"),
        ({"type": "receipt", "id": "x"}, "unknown_type"),  # v2: the receipt rides in the result frame
        ({"type": "result", "id": "x", "receipt": b"r" * 5000}, "bad_field"),
        ({"type": "result", "id": "x", "units": -1}, "bad_field"),
        ({"type": "chunk", "id": "x", "data": 5}, "bad_field"),
        ({"type": "error", "id": "x", "code": "price", "message": "m", "price": "12"}, "bad_field"),
        ({"type": "request", "id": "x" * 1000, "kind": "chat", "model": "m"}, "bad_field"),
    ],
)
def test_bad_frames_rejected_with_reason(frame, reason):
    with pytest.raises(FrameError) as ei:
        check_frame(frame)
    assert ei.value.reason == reason


def test_undecodable_bytes():
    for junk in [b"\xc1", b"\x92\x01", b"\xdd\xff\xff\xff\xff", b"\x81\x01\x02"]:
        with pytest.raises(FrameError):
            decode_frame(junk)


async def test_framing_limits_truncation_and_eof():
    good = encode_frame({"type": "ping", "id": "1"})
    frame, raw = await read_frame(BufStream(good), max_frame=1024, timeout=1)
    assert frame == frames.Ping(id="1") and raw == good[4:]
    with pytest.raises(StreamClosed):
        await read_frame(BufStream(b""), max_frame=1024, timeout=1)
    with pytest.raises(FrameError) as ei:
        await read_frame(BufStream(good[:-1]), max_frame=1024, timeout=1)
    assert ei.value.reason == "truncated"
    with pytest.raises(FrameError) as ei:  # the length alone condemns it: no 4 GiB buffering
        await read_frame(BufStream(b"\xff\xff\xff\xff"), max_frame=1024, timeout=1)
    assert ei.value.reason == "oversized"
    with pytest.raises(FrameError):
        await read_frame(BufStream(b"\x00\x00\x00\x00"), max_frame=1024, timeout=1)
    with pytest.raises(FrameError):
        encode_frame(frames.Chunk(id="1", data=b"x" * 2000), max_frame=1024)


async def test_read_times_out():
    class Silent:
        async def read(self, n=None):
            await trio.sleep_forever()

    with pytest.raises(trio.TooSlowError):
        await read_frame(Silent(), max_frame=1024, timeout=0.05)


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["request", "accepted", "chunk", "progress", "result", "error", "receipt",
                              "cancel", "ping", "pong", "bogus"])},
    optional={k: msgpack_values for k in ["id", "kind", "model", "params", "inputs", "max_price", "quote",
                                          "price", "data", "done", "code", "message", "units", "receipt",
                                          "queue", "total", "position", "retryable", "output", "meta"]},
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_decode_random_bytes_never_crashes(data):
    try:
        decode_frame(data)
    except FrameError:
        pass


@settings(max_examples=300, deadline=None)
@given(frame_like)
def test_fuzz_structured_frames_never_crash(frame):
    try:
        out = check_frame(frame)
    except FrameError:
        return
    assert out["type"] == frame["type"]
    # whatever passes re-encodes and decodes to the same thing
    assert frames.to_dict(decode_frame(encode_frame(frames.from_dict(out))[4:])) == out
