"""Typed frames of /mtor/intent/2 (federation/frames.py): round trips, bounds, errors, canonical bytes,
and the intent server driven over an in-memory stream pair (docs/protocol.md §5)."""

import msgpack
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from federation import frames
from federation.frames import FrameError
from federation.intent_protocol import IntentServer
from federation.wire import encode_frame, read_frame, read_frame_bytes
from ledger.encoding import canonical as ledger_canonical


def sort_keys(obj):
    """The v1 rule, as msgpack-python was fed it: every map's keys sorted (str keys: code point
    order, which is UTF-8 byte order)."""
    if isinstance(obj, dict):
        return {k: sort_keys(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return [sort_keys(v) for v in obj]
    return obj

ALL = [
    frames.Request(id="r1", kind="chat", model="m", params={"t": 0.5}, inputs={"image": b"\x89PNG"}, max_price=9),
    frames.Cancel(id="r1"), frames.Ping(id="p"), frames.Pong(id="p"),
    frames.Accepted(id="r1", price=7, queue=2), frames.Chunk(id="r1", data="tok"), frames.Chunk(id="r1", data=b"wav"),
    frames.Progress(id="r1", done=3, total=10.5, position=1),
    frames.Result(id="r1", output={"text": "hi"}, units=4, receipt=b"\x01" * 200),
    frames.Error(id="r1", code="price", message="price moved", retryable=True, price=12),
]


@pytest.mark.parametrize("frame", ALL, ids=lambda f: type(f).__name__)
def test_round_trip(frame):
    assert frames.decode(frames.encode(frame)) == frame
    assert frames.from_dict(frames.to_dict(frame)) == frame


def test_unknown_fields_ignored_and_defaults():
    f = frames.decode(msgpack.packb({"type": "result", "id": "x", "from_the_future": [1, 2]}))
    assert f == frames.Result(id="x") and f.units == 0 and f.receipt is None
    assert frames.to_dict(f) == {"type": "result", "id": "x", "units": 0, "meta": {}}


@pytest.mark.parametrize("obj,reason", [
    ({"type": "request", "id": "x", "kind": "k" * 65, "model": "m"}, "bad_field"),
    ({"type": "accepted", "id": "x", "price": 10**15 + 1}, "bad_field"),
    ({"type": "accepted", "id": "x", "price": True}, "bad_field"),
    ({"type": "progress", "id": "x", "done": -1}, "bad_field"),
    ({"type": "progress", "id": "x", "done": float("inf")}, "bad_field"),
    ({"type": "error", "id": "x", "code": "c", "message": "m" * 4097}, "bad_field"),
    ({"type": "request", "id": "x", "kind": "chat", "model": "m", "params": {1: 2}}, "bad_field"),
    ({"type": "chunk", "id": "x"}, "missing_field"),
    ({"type": "receipt", "id": "x"}, "unknown_type"),
    ({"type": 3, "id": "x"}, "no_type"),
    ({"id": "x"}, "no_type"),
    ([1], "not_a_map"),
])
def test_bounds_and_types_are_frame_errors(obj, reason):
    with pytest.raises(FrameError) as ei:
        frames.decode(msgpack.packb(obj, strict_types=False))
    assert ei.value.reason == reason


def test_size_limit_and_junk():
    with pytest.raises(FrameError) as ei:
        frames.decode(b"\x80" * 100, max_frame=10)
    assert ei.value.reason == "oversized"
    for junk in [b"", b"\xc1", b"\x92\x01", b"\xdd\xff\xff\xff\xff", b"\x81\x01\x02", b"\x91" * 5000 + b"\x90"]:
        with pytest.raises(FrameError):
            frames.decode(junk)
    deep = b"\x82\xa4type\xa6result\xa2id\xa1x" + b"\x81\xa6output" + b"\x91" * 100_000 + b"\x90"
    with pytest.raises(FrameError):
        frames.decode(deep)
    with pytest.raises(FrameError) as ei:
        frames.from_dict({"type": "result", "id": "x", "output": object()})
    assert ei.value.reason == "unencodable"


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(frames.TYPES) + ["bogus"]),
       st.dictionaries(st.sampled_from(["id", "kind", "model", "params", "inputs", "max_price", "quote", "price",
                                        "queue", "data", "index", "done", "total", "message", "position", "output",
                                        "units", "meta", "receipt", "code", "retryable"]), msgpack_values))
def test_fuzz_fields_only_frame_errors(ftype, fields):
    data = msgpack.packb({"type": ftype, **fields})
    try:
        frame = frames.decode(data)
    except FrameError:
        return
    assert frames.to_dict(frame)["type"] == ftype


@settings(max_examples=500, deadline=None)
@given(msgpack_values.filter(lambda v: v == v))
def test_one_canonical_rule_for_federation_and_ledger(value):
    # federation signs caps with frames.canonical, the ledger signs with its own: same bytes
    try:
        ledger_bytes = ledger_canonical(value)
    except (TypeError, ValueError, OverflowError):
        return
    assert frames.canonical(value) == ledger_bytes
    # and they are the bytes v1 signed (msgpack-python over sorted maps): old receipts still verify
    assert ledger_bytes == msgpack.packb(sort_keys(value), use_bin_type=True)


def test_result_digest_binds_output_and_units():
    d = frames.result_digest({"text": "hi", "cost": 3}, 4)
    assert d == frames.result_digest({"cost": 3, "text": "hi"}, 4)  # key order does not matter
    assert d != frames.result_digest({"text": "hi", "cost": 3}, 5)
    assert d != frames.result_digest({"text": "hi!", "cost": 3}, 4)


class _Signer:
    peer_id = "worker"


class Libp2pStream:
    """A trio stream with the libp2p stream methods the intent server uses."""

    class muxed_conn:  # noqa: N801
        class peer_id:  # noqa: N801
            @staticmethod
            def to_base58() -> str:
                return "client"

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream

    async def read(self, n: int | None = None) -> bytes:
        return await self.stream.receive_some(n)

    async def write(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def close(self) -> None:
        await self.stream.aclose()

    async def reset(self) -> None:
        await self.stream.aclose()


async def test_server_on_memory_streams():
    """The intent server on trio.testing.memory_stream_pair: accepted, chunk, result with the
    handler's receipt carried as is; ping/pong; a bad frame is answered with a protocol error."""
    server = IntentServer(_Signer())
    seen = {}

    async def handler(peer, req, send):
        seen["req"] = req
        await send({"type": "accepted", "price": 5})
        await send({"type": "chunk", "data": "hel"})
        await send({"type": "result", "output": {"text": "hello"}, "units": 2, "receipt": b"signed"})

    server.handler = handler
    a, b = trio.testing.memory_stream_pair()
    client, worker = Libp2pStream(a), Libp2pStream(b)

    async def read():
        frame, _ = await read_frame(client, max_frame=1 << 20, timeout=5)
        return frame

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_stream, worker)
        await client.write(encode_frame(frames.Ping(id="p1")))
        assert await read() == frames.Pong(id="p1")
        await client.write(encode_frame(frames.Request(id="r1", kind="chat", model="m", max_price=9)))
        assert await read() == frames.Accepted(id="r1", price=5)
        assert await read() == frames.Chunk(id="r1", data="hel")
        assert await read() == frames.Result(id="r1", output={"text": "hello"}, units=2, receipt=b"signed")
        assert seen["req"]["kind"] == "chat" and seen["req"]["max_price"] == 9
        await client.write(b"\x00\x00\x00\x02\xc1\xc1")
        err = await read()
        assert isinstance(err, frames.Error) and err.code == "protocol"
        nursery.cancel_scope.cancel()
    assert server.stats["results"] == 1 and server.stats["bad_frames"] == 1


class _Host:
    def __init__(self) -> None:
        self.handlers = {}

    def set_stream_handler(self, protocol, handler) -> None:
        self.handlers[str(protocol)] = handler


async def test_messenger_on_memory_streams():
    """/mtor/msg/1 (federation/messages.py): a typed request gets the handler's reply; a map of the
    wrong shape is answered `malformed`; an unknown type `unknown_type`."""
    from federation.messages import MessageFailed, Messenger

    messenger = Messenger(_Host())

    async def pay(peer, body):
        if body.get("entry") == "bad":
            raise MessageFailed("BadSignature", "no")
        return {"earn_seq": 3, "from": peer}

    messenger.on("pay", pay)

    async def ask(payload: bytes) -> frames.MsgReply:
        a, b = trio.testing.memory_stream_pair()
        client, server = Libp2pStream(a), Libp2pStream(b)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(messenger._handle_stream, server)
            await client.write(len(payload).to_bytes(4, "big") + payload)
            raw = await read_frame_bytes(client, max_frame=1 << 20, timeout=5)
        return frames.decode_reply(raw, 1 << 20)

    ok = await ask(frames.encode(frames.MsgRequest(type="pay", body={"entry": "e"})))
    assert ok == frames.MsgReply(ok=True, body={"earn_seq": 3, "from": "client"})
    refused = await ask(msgpack.packb({"type": "pay", "body": {"entry": "bad"}}))
    assert (refused.ok, refused.code, refused.message) == (False, "BadSignature", "no")
    assert (await ask(msgpack.packb({"type": "pay", "body": [1]}))).code == "malformed"
    assert (await ask(msgpack.packb({"type": "x" * 65, "body": {}}))).code == "malformed"
    assert (await ask(msgpack.packb({"type": "grant", "body": {}}))).code == "unknown_type"
    assert messenger.stats == {"handled": 1, "refused": 2, "bad": 2}
    with pytest.raises(FrameError):
        frames.decode_reply(msgpack.packb({"ok": "yes"}), 1024)


def test_capabilities_typed_with_reasons():
    c = frames.capabilities_from({"prices": {"chat": 5}, "surge": 2, "extra": 1})
    assert c.prices == {"chat": 5} and c.surge == 2.0 and c.capacity == 1
    for bad, reason in [({"prices": {"chat": 10**13}}, "absurd"), ({"surge": 0.5}, "absurd"),
                        ({"gpus": [{"name": "g", "vram_total": 1, "vram_free": 2}]}, "absurd"),
                        ({"prices": {"chat": "5"}}, "malformed"), ({"models": {"": ["m"]}}, "malformed"),
                        ({"cpu": {"cores": True}}, "malformed")]:
        with pytest.raises(FrameError) as ei:
            frames.capabilities_from(bad)
        assert ei.value.reason == reason, bad
    with pytest.raises(FrameError) as ei:  # node, ts and seq are required in an announcement
        frames.decode_caps(msgpack.packb({"prices": {}}), frames.Announcement, 1024)
    assert ei.value.reason == "malformed"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | msgpack_values.map(lambda v: msgpack.packb(v)))
def test_fuzz_every_decoder_only_frame_errors(data):
    for decode in (frames.decode, lambda d: frames.decode_message(d, 1 << 16), lambda d: frames.decode_reply(d, 1 << 16),
                   lambda d: frames.decode_caps(d, frames.Announcement, 1 << 16),
                   lambda d: frames.decode_caps(d, frames.CapsEnvelope, 1 << 16)):
        try:
            decode(data)
        except FrameError:
            pass
