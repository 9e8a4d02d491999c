"""Typed frames of `/mtor/intent/2` (docs/protocol.md §5) and `/mtor/msg/1` (§8), decoded with
bounds by msgspec.

Every frame is a msgpack map with a `type` tag. Decoding is strict: each known field is
type-checked and range-checked, unknown fields are dropped (forward compatibility), an unknown
`type` is refused. Every failure is a `FrameError` with a short `reason` (undecodable,
not_a_map, no_type, unknown_type, missing_field, bad_field), never any other exception.

The job's one receipt is the ledger's signed receipt (ledger/receipts.py), carried in the
result frame's `receipt` field as its canonical bytes; the intent protocol only carries it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Any, Union

import msgspec
from msgspec import Meta, Struct

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
MAX_PRICE = 10**15  # micro-tokens: the token's whole supply (ledger/encoding.py MAX_AMOUNT)
MAX_RECEIPT = 2048  # bytes of a canonical ledger receipt (ledger/receipts.py MAX_RECEIPT_BYTES)

Id = Annotated[str, Meta(max_length=128)]
Kind = Annotated[str, Meta(max_length=64)]
Name = Annotated[str, Meta(max_length=256)]
Text = Annotated[str, Meta(max_length=4096)]
Price = Annotated[int, Meta(ge=0, le=MAX_PRICE)]
Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Amount = Union[Annotated[int, Meta(ge=0, le=10**15)], Annotated[float, Meta(ge=0, le=1e15)]]


class FrameError(Exception):
    """A frame that cannot be accepted: oversized, truncated, undecodable or ill-typed."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class _Frame(Struct, tag_field="type", omit_defaults=True, frozen=True):
    id: Id


class Request(_Frame, tag="request", frozen=True):
    kind: Kind
    model: Name
    params: dict[str, Any] = {}
    inputs: dict[str, Any] = {}
    max_price: Price | None = None
    quote: Price | None = None


class Cancel(_Frame, tag="cancel", frozen=True):
    pass


class Ping(_Frame, tag="ping", frozen=True):
    pass


class Pong(_Frame, tag="pong", frozen=True):
    pass


class Accepted(_Frame, tag="accepted", frozen=True):
    price: Price
    queue: Count | None = None


class Chunk(_Frame, tag="chunk", frozen=True):
    data: Any  # text (str) or audio (bytes): msgspec unions allow one str-like type, so checked below
    index: Count | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, (str, bytes)):
            raise ValueError("Expected `str | bytes` - at `$.data`")


class Progress(_Frame, tag="progress", frozen=True):
    done: Amount = 0
    total: Amount | None = None
    message: Text | None = None
    position: Count | None = None


class Result(_Frame, tag="result", frozen=True):
    output: Any = None
    units: Annotated[int, Meta(ge=0, le=MAX_PRICE)] = 0
    meta: dict[str, Any] = {}
    receipt: Annotated[bytes, Meta(max_length=MAX_RECEIPT)] | None = None  # the ledger's signed receipt


class Error(_Frame, tag="error", frozen=True):
    code: Kind
    message: Text
    retryable: bool | None = None
    price: Price | None = None  # code "price": the worker's current price, typed (never parsed from text)


Frame = Union[Request, Cancel, Ping, Pong, Accepted, Chunk, Progress, Result, Error]
TYPES: dict[str, type] = {t.__struct_config__.tag: t for t in Frame.__args__}  # type: ignore[attr-defined]
EVENT_TYPES = frozenset({"chunk", "progress"})

_decoder = msgspec.msgpack.Decoder(Frame)
_encoder = msgspec.msgpack.Encoder()
_sorted = msgspec.msgpack.Encoder(order="sorted")


# ---------------------------------------------------------------- /mtor/msg/1 (docs/protocol.md §8)


class MsgRequest(Struct, frozen=True):
    """One message: its application type (pay, grant, fraud...) and body."""

    type: Kind
    body: dict[str, Any]


class MsgReply(Struct, omit_defaults=True, frozen=True):
    """{ok: true, body} or {ok: false, code, message}."""

    ok: bool
    body: dict[str, Any] = {}
    code: Kind = ""
    message: Annotated[str, Meta(max_length=1000)] = ""


_msg_request = msgspec.msgpack.Decoder(MsgRequest)
_msg_reply = msgspec.msgpack.Decoder(MsgReply)


def decode_message(data: bytes, max_size: int) -> MsgRequest:
    return _decode(_msg_request, data, max_size)  # type: ignore[no-any-return]


def decode_reply(data: bytes, max_size: int) -> MsgReply:
    return _decode(_msg_reply, data, max_size)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- capability announcements (§3)

Short = Annotated[str, Meta(min_length=1, max_length=64)]
Model = Annotated[str, Meta(min_length=1, max_length=256)]


class Gpu(Struct, frozen=True):
    name: Annotated[str, Meta(max_length=128)]
    vram_total: Annotated[int, Meta(ge=0, le=2**44)] = 0  # bytes, < 16 TiB
    vram_free: Annotated[int, Meta(ge=0, le=2**44)] = 0
    cuda: Annotated[str, Meta(max_length=32)] | None = ""

    def __post_init__(self) -> None:
        if self.vram_free > self.vram_total:
            raise ValueError("Expected vram_free <= vram_total - at `$.gpus`")


class Cpu(Struct, frozen=True):
    cores: Annotated[int, Meta(ge=0, le=4096)] = 0
    ram: Annotated[int, Meta(ge=0, le=2**50)] = 0


class Capabilities(Struct, frozen=True):
    """What a worker announces it serves (Federation.set_capabilities); unknown fields dropped."""

    gpus: Annotated[list[Gpu], Meta(max_length=64)] = []
    cpu: Cpu = Cpu()
    models: Annotated[dict[Short, Annotated[list[Model], Meta(max_length=256)]], Meta(max_length=16)] = {}
    prices: Annotated[dict[Short, Annotated[int, Meta(ge=0, le=10**12)]], Meta(max_length=16)] = {}  # micro-tokens
    surge: Annotated[float, Meta(ge=1.0, le=100.0)] = 1.0
    queue: Annotated[int, Meta(ge=0, le=10**6)] = 0
    capacity: Annotated[int, Meta(ge=0, le=10**5)] = 1
    version: Annotated[str, Meta(max_length=64)] = ""


class Announcement(Capabilities, frozen=True, kw_only=True):
    """A signed announcement's body: the capabilities, who, where, when (federation/caps.py)."""

    node: Annotated[str, Meta(min_length=1, max_length=128)]
    addrs: Annotated[list[Model], Meta(max_length=16)] = []
    ts: Annotated[float, Meta(ge=0, le=2**40)]
    seq: Annotated[int, Meta(ge=0, le=2**63 - 1)]
    ttl: Annotated[int, Meta(ge=1, le=3600)] = 30


class CapsEnvelope(Struct, forbid_unknown_fields=True, frozen=True):
    a: bytes  # canonical msgpack of the Announcement
    s: Annotated[bytes, Meta(max_length=64)]  # Ed25519 over the caps domain tag + a


def capabilities_from(obj: Any, typ: type = Capabilities) -> Any:
    """A dict (the application's, or a decoded announcement) -> typed capabilities; FrameError
    `absurd` for a value out of range, `malformed` for anything else."""
    try:
        return msgspec.convert(obj, typ)
    except msgspec.ValidationError as exc:
        raise FrameError(_caps_reason(str(exc)), str(exc)[:200]) from None


_caps_decoders = {t: msgspec.msgpack.Decoder(t) for t in (CapsEnvelope, Announcement)}


def decode_caps(data: bytes, typ: type, max_size: int) -> Any:
    """CapsEnvelope or Announcement from gossip bytes; FrameError `absurd` or `malformed`."""
    return _decode(_caps_decoders[typ], data, max_size, _caps_reason, "malformed")


def _caps_reason(msg: str) -> str:
    """`absurd`: a number out of range or too many GPUs (well-formed, not believable); else `malformed`."""
    numeric = msg.startswith(("Expected `int` >", "Expected `int` <", "Expected `float` >", "Expected `float` <"))
    return "absurd" if numeric or "vram" in msg or msg.endswith("at `$.gpus`") else "malformed"


def _reason(msg: str) -> str:
    if "missing required field `type`" in msg:
        return "no_type"
    if msg.endswith("at `$.type`"):
        return "unknown_type" if msg.startswith("Invalid value") else "no_type"
    if "missing required field" in msg:
        return "missing_field"
    if msg.startswith("Expected `object`") and " - at " not in msg:
        return "not_a_map"
    return "bad_field"


def decode(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> Frame:
    """One frame's msgpack body -> its typed frame; FrameError for anything else."""
    return _decode(_decoder, data, max_frame)  # type: ignore[no-any-return]


def _decode(decoder: msgspec.msgpack.Decoder, data: bytes, max_size: int,
            reason: Callable[[str], str] = _reason, junk: str = "undecodable") -> Any:
    if len(data) > max_size:
        raise FrameError("oversized", f"{len(data)} > {max_size}")
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise FrameError(reason(str(exc)), str(exc)[:200]) from None
    except Exception as exc:  # msgspec.DecodeError, RecursionError: all mean "undecodable"
        raise FrameError(junk, f"{type(exc).__name__}: {exc}"[:200]) from None


def encode(frame: Any) -> bytes:
    """msgpack of a typed frame (or of a map, for `from_dict`)."""
    try:
        return _encoder.encode(frame)
    except Exception as exc:  # an output value msgpack cannot carry
        raise FrameError("unencodable", f"{type(exc).__name__}: {exc}"[:200]) from None


def from_dict(obj: Any) -> Frame:
    """Build a typed frame from the application's dict, with the same checks as the wire."""
    if not isinstance(obj, dict):
        raise FrameError("not_a_map")
    ftype = obj.get("type")
    if not isinstance(ftype, str):
        raise FrameError("no_type")
    if ftype not in TYPES:
        raise FrameError("unknown_type", ftype[:64])
    return decode(encode(obj))


def to_dict(frame: Frame) -> dict[str, Any]:
    """The application's view of a frame: a dict with its `type` and the fields that are set."""
    out: dict[str, Any] = {"type": frame.__struct_config__.tag}
    for name in frame.__struct_fields__:
        value = getattr(frame, name)
        if value is not None:
            out[name] = value
    return out


def canonical(obj: Any) -> bytes:
    """Deterministic msgpack: map keys sorted by their UTF-8 bytes, bin for bytes, smallest ints.
    Byte-for-byte the ledger's rule (ledger/encoding.py canonical; tests/federation/test_frames.py
    checks they agree)."""
    return _sorted.encode(obj)


def result_digest(output: Any, units: int) -> bytes:
    """What the receipt's `result` hash binds: SHA-256 of canonical {output, units} of the result
    frame, computed by the worker before sending and by the broker on what it received."""
    return hashlib.sha256(canonical({"output": output, "units": units})).digest()
