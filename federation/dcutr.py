"""DCUtR (`/libp2p/dcutr`) as the libp2p spec defines it (relay/DCUtR.md), with our TCP
simultaneous open from a bound port behind it (federation/holepunch.py).

Messages: uvarint-length-prefixed protobuf
    message HolePunch { required Type type = 1; repeated bytes ObsAddrs = 2; }
    enum Type { CONNECT = 100; SYNC = 300; }
ObsAddrs are binary multiaddrs.

Roles (the spec's names): A dialed B through a relay; B, who accepted the relayed connection,
opens the DCUtR stream:
    B -> A  CONNECT{B's addrs}                B starts its RTT clock
    A -> B  CONNECT{A's addrs}                B stops it
    B -> A  SYNC                              B waits RTT/2, then dials A's addrs
                                              A dials B's addrs as soon as SYNC arrives
The TCP simultaneous open that results has A as the client (Noise initiator), B as the server.

What we put in ObsAddrs: our public IP as AutoNAT observed it with a port we just bound, and
we dial from that same port (a port-preserving NAT maps it 1:1; docs/nat.md §1.3). Addresses
from the peer: at most MAX_ADDRS, each a parsable /ip4/.../tcp/... multiaddr; the first one
that is not ours is punched. Any failure leaves the relayed connection as it was.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import Any

import multiaddr
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from . import holepunch as hp
from .errors import NetError, ProtocolViolation, map_libp2p_errors

log = logging.getLogger(__name__)

PROTOCOL = "/libp2p/dcutr"
CONNECT, SYNC = 100, 300
MAX_MSG = 4096
MAX_ADDRS = 16
MAX_ADDR_BYTES = 256
TIMEOUT = 5.0


class DcutrError(ProtocolViolation):
    """A DCUtR message that breaks the spec (a NetError: federation/errors.py)."""


# ---------------------------------------------------------------- protobuf, by hand (two fields)
def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_uvarint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise DcutrError("bad varint")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7


def encode(msg_type: int, addrs: list[bytes]) -> bytes:
    body = b"\x08" + _uvarint(msg_type)
    for a in addrs:
        body += b"\x12" + _uvarint(len(a)) + a
    return body


def decode(body: bytes) -> tuple[int, list[bytes]]:
    msg_type, addrs, i = None, [], 0
    while i < len(body):
        tag, i = _read_uvarint(body, i)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            v, i = _read_uvarint(body, i)
            if field == 1:
                msg_type = v
        elif wire == 2:
            n, i = _read_uvarint(body, i)
            if i + n > len(body):
                raise DcutrError("truncated field")
            if field == 2 and len(addrs) < MAX_ADDRS:
                addrs.append(body[i:i + n])
            i += n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise DcutrError(f"wire type {wire}")
    if msg_type not in (CONNECT, SYNC):
        raise DcutrError(f"type {msg_type}")
    return msg_type, addrs


async def write_msg(stream: Any, msg_type: int, addrs: list[bytes]) -> None:
    body = encode(msg_type, addrs)
    with trio.fail_after(TIMEOUT):
        await stream.write(_uvarint(len(body)) + body)


async def read_msg(stream: Any) -> tuple[int, list[bytes]]:
    with trio.fail_after(TIMEOUT):
        prefix = b""
        while True:
            b = await stream.read(1)
            if not b:
                raise DcutrError("stream closed")
            prefix += b
            if not b[0] & 0x80:
                break
            if len(prefix) > 3:
                raise DcutrError("length prefix too long")
        n, _ = _read_uvarint(prefix, 0)
        if n > MAX_MSG:
            raise DcutrError(f"message of {n} bytes")
        body = b""
        while len(body) < n:
            chunk = await stream.read(n - len(body))
            if not chunk:
                raise DcutrError("truncated message")
            body += chunk
    return decode(body)


# ---------------------------------------------------------------- addresses
def _addr_bytes(ip: str, port: int) -> bytes:
    return multiaddr.Multiaddr(f"/ip4/{ip}/tcp/{port}").to_bytes()


def pick_target(addrs: list[bytes], my_ip: str) -> tuple[tuple[str, int] | None, str]:
    """The first usable /ip4/../tcp/.. of the peer's: (target, why not)."""
    why = "peer sent no usable address"
    for raw in addrs[:MAX_ADDRS]:
        if len(raw) > MAX_ADDR_BYTES:
            continue
        try:
            ma = multiaddr.Multiaddr(raw)
            ip, port = ma.value_for_protocol("ip4"), int(ma.value_for_protocol("tcp"))
            a = ipaddress.ip_address(ip)
        except Exception:
            continue
        if a.is_loopback or a.is_unspecified or a.is_multicast or not 0 < port < 65536:
            continue
        if ip == my_ip:
            why = "same public IP (same NAT): hairpinning not attempted"
            continue
        return (ip, port), ""
    return None, why


# ---------------------------------------------------------------- the exchange
async def initiate(ctx: hp.PunchContext, peer_id: str) -> None:
    """B: we accepted a relayed connection from peer_id; open /libp2p/dcutr and punch."""
    record = ctx.outcomes.record
    t0 = time.monotonic()
    my_ip = ctx.public_ip()
    if my_ip is None:
        record(peer_id, "stayed-relayed", "no public address of ours known (no AutoNAT answer)")
        return
    sock, port = await hp.bound_socket()
    try:
        with map_libp2p_errors():
            with trio.fail_after(TIMEOUT * 2):
                stream = await ctx.host.new_stream(ID.from_base58(peer_id), [TProtocol(PROTOCOL)])
            t_send = time.monotonic()
            await write_msg(stream, CONNECT, [_addr_bytes(my_ip, port)])
            kind, their = await read_msg(stream)
            rtt = time.monotonic() - t_send
            if kind != CONNECT:
                raise DcutrError("expected CONNECT")
            target, why = pick_target(their, my_ip)
            if target is None:
                record(peer_id, "stayed-relayed", why)
                return
            await write_msg(stream, SYNC, [])
            taken, sock = sock, None  # B is the server of the upgraded connection
            await hp.punch_and_upgrade(ctx, peer_id, port, taken, target, rtt, t0, initiator=False, label="DCUtR: ")
    except NetError as exc:  # a failed punch (anything above: docs/nat.md §1.3) leaves the relayed connection
        record(peer_id, "stayed-relayed", str(exc)[:200])
    finally:
        if sock is not None:
            sock.close()


async def serve(ctx: hp.PunchContext, stream: Any) -> None:
    """A: the peer we dialed through a relay opened /libp2p/dcutr."""
    record = ctx.outcomes.record
    peer_id = stream.muxed_conn.peer_id.to_base58()
    kind, their = await read_msg(stream)
    my_ip = ctx.public_ip()
    if kind != CONNECT or my_ip is None or not ctx.enabled:
        # the spec has no refusal message: a reset stream is the answer
        why = ("hole punching off" if not ctx.enabled else "no public address known"
               if my_ip is None else "expected CONNECT")
        record(peer_id, "stayed-relayed", why)
        await stream.reset()
        return
    target, why = pick_target(their, my_ip)
    sock, port = await hp.bound_socket()
    try:
        await write_msg(stream, CONNECT, [_addr_bytes(my_ip, port)])
        kind, _ = await read_msg(stream)
        if kind != SYNC or target is None:
            if target is None:
                record(peer_id, "stayed-relayed", why)
            return
        conn_sock = await hp.punch(port, sock, target)
        sock = None
        if conn_sock is None:
            record(peer_id, "stayed-relayed", f"TCP simultaneous open to {target[0]}:{target[1]} failed")
            return
        await hp.upgrade(ctx, peer_id, conn_sock, True, target)  # A is the client
        record(peer_id, "direct", f"DCUtR: TCP simultaneous open to {target[0]}:{target[1]}")
        await hp.drop_relayed(ctx, peer_id)
    finally:
        if sock is not None:
            sock.close()
