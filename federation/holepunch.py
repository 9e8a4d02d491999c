"""Hole punching: turn a relayed connection into a direct TCP one.

The exchange nodes start now is DCUtR (`dcutr.py`, the spec's protocol); this module holds the
TCP simultaneous open both use (bound socket, punch, upgrade, dropping the relayed connection)
and still serves the older `/mtor/holepunch/1` exchange for older nodes.

Why our own and not py-libp2p 0.8.1's DCUtRProtocol (relay/circuit_v2/dcutr.py): this one was
built and verified first in the NAT lab (tests/nat/test_relay.py); DCUtRProtocol looks complete
on paper (SO_REUSEPORT listeners, dials bound to the listen port, NAT port prediction, responder
role for simultaneous open) but depends on the identify-fed observed-address manager and on the
swarm's dial path, and was not evaluated in the lab within this task. See docs/nat.md.

`/mtor/holepunch/1`, on a stream over the relayed connection, msgpack frames:
  A (who dialed through the relay)          B
  {type: connect, addr: "ip:port"}  ──▶                 A's public IP (AutoNAT) : a port A bound
                                    ◀──  {type: connect, addr: "ip:port"}
  {type: sync}                      ──▶                 A measured the RTT; waits RTT/2
  both connect() from their bound port to the other's address at once: TCP simultaneous open
  through both NATs (each side's SYN opens its own NAT for the other's). Assumes port-preserving
  NATs (Linux MASQUERADE, most home routers); a symmetric NAT defeats it.
  A upgrades the socket as the outbound (Noise initiator) side, B as the inbound side; then both
  close the relayed connection. Any failure leaves the relayed connection as it was.

Takes a `PunchContext` (the host, the realm key, our public IP, where outcomes go, and a callback
that resets pooled intent streams to a peer), never the Federation.
"""

from __future__ import annotations

import ipaddress
import logging
import socket as pysocket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import multiaddr
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from .conn import conn_is_relayed, connections_to, hard_close
from .errors import NetError, map_libp2p_errors
from .intent_protocol import PROTOCOL as INTENT
from .messages import PROTOCOL as MSG
from .wire import read_frame_bytes, unpack, write_frame

log = logging.getLogger(__name__)

PROTOCOL = "/mtor/holepunch/1"
MAX_MSG = 1024
TIMEOUT = 5.0
PUNCH_TIMEOUT = 6.0
DRAIN_TIMEOUT = 120.0  # jobs running on the relayed connection get this long to finish


@dataclass
class PunchLog:
    """Outcomes per peer (status shows them) and the peers now direct after a punch."""

    attempts: dict[str, dict] = field(default_factory=dict)  # peer -> {result, reason, at, rtt_ms}
    direct: set[str] = field(default_factory=set)

    def record(self, peer_id: str, result: str, reason: str, **extra: Any) -> None:
        self.attempts[peer_id] = {"result": result, "reason": reason, "at": time.time(), **extra}
        if result == "direct":
            self.direct.add(peer_id)
        log.info("hole punch with %s: %s (%s)", peer_id[:16], result, reason)


async def _no_pool(peer_id: str) -> None:
    return None


@dataclass(frozen=True)
class PunchContext:
    """What hole punching (this module and dcutr.py) needs."""

    host: Any  # the libp2p host
    psk: bytes | None  # the realm key (outbound upgrades apply it themselves)
    public_ip: Callable[[], str | None]  # ours, as AutoNAT observed it
    enabled: bool  # ReachConfig.hole_punch
    outcomes: PunchLog
    release_pooled: Callable[[str], Awaitable[None]] = _no_pool  # reset pooled intent streams to a peer


async def bound_socket() -> tuple[Any, int]:
    sock = trio.socket.socket(pysocket.AF_INET, pysocket.SOCK_STREAM)
    sock.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_REUSEADDR, 1)
    await sock.bind(("0.0.0.0", 0))  # trio's bind is async: without await nothing is bound
    return sock, sock.getsockname()[1]


def parse_hostport(addr: Any) -> tuple[str, int] | None:
    if not isinstance(addr, str) or len(addr) > 64 or ":" not in addr:
        return None
    ip, port = addr.rsplit(":", 1)
    try:
        ipaddress.ip_address(ip)
        p = int(port)
    except ValueError:
        return None
    return (ip, p) if 0 < p < 65536 else None


async def punch(port: int, sock: Any, target: tuple[str, int]) -> Any | None:
    """connect() from our bound port to target until it succeeds or time runs out."""
    deadline = trio.current_time() + PUNCH_TIMEOUT
    attempt = 0
    while trio.current_time() < deadline and attempt < 4:
        attempt += 1
        if sock is None:
            sock = trio.socket.socket(pysocket.AF_INET, pysocket.SOCK_STREAM)
            sock.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_REUSEADDR, 1)
            await sock.bind(("0.0.0.0", port))
        try:
            with trio.move_on_after(max(0.1, deadline - trio.current_time())):
                await sock.connect(target)
                return sock
        except OSError as exc:
            log.debug("punch connect %s failed: %r", target, exc)
        sock.close()
        sock = None
        await trio.sleep(0.2)  # back-off between connect attempts, not a synchronisation
    if sock is not None:
        sock.close()
    return None


async def punch_and_upgrade(ctx: PunchContext, peer_id: str, port: int, sock: Any, target: tuple[str, int],
                            rtt: float, t0: float, initiator: bool, label: str = "") -> None:
    """After the address exchange (ours or DCUtR's): wait half the RTT so both sides connect() at
    once, open TCP from our bound port (`sock`, which this takes over), make it a libp2p connection
    and drop the relayed one; record which happened (docs/nat.md §1.3)."""
    record = ctx.outcomes.record
    try:
        await trio.sleep(rtt / 2)  # the protocol's timing, not a synchronisation
    except BaseException:
        sock.close()
        raise
    conn_sock = await punch(port, sock, target)
    if conn_sock is None:
        record(peer_id, "stayed-relayed",
               f"TCP simultaneous open to {target[0]}:{target[1]} failed within {PUNCH_TIMEOUT:g} s "
               "(symmetric NAT, or a router that rewrites ports)", rtt_ms=round(rtt * 1000, 1))
        return
    await upgrade(ctx, peer_id, conn_sock, initiator, target)
    record(peer_id, "direct", f"{label}TCP simultaneous open to {target[0]}:{target[1]}",
           rtt_ms=round(rtt * 1000, 1), took_ms=round((time.monotonic() - t0) * 1000))
    await drop_relayed(ctx, peer_id)


async def upgrade(ctx: PunchContext, peer_id: str, sock: Any, initiator: bool, target: tuple[str, int]) -> None:
    """Make the punched socket a libp2p connection: outbound (Noise initiator) or inbound."""
    from libp2p.io.trio import TrioTCPStream
    from libp2p.network.connection.raw_connection import RawConnection
    from libp2p.security.pnet.protector import new_protected_conn

    ma = multiaddr.Multiaddr(f"/ip4/{target[0]}/tcp/{target[1]}")
    raw: Any = RawConnection(TrioTCPStream(trio.SocketStream(sock)), initiator, addresses=[ma])
    with map_libp2p_errors(), trio.fail_after(10):
        if initiator:
            if ctx.psk is not None:  # inbound gets the PSK from the swarm, outbound not
                raw = new_protected_conn(raw, ctx.psk.hex())
            await ctx.host.upgrade_outbound_connection(raw, ID.from_base58(peer_id))
        else:
            await ctx.host.upgrade_inbound_connection(raw, ma)


async def drop_relayed(ctx: PunchContext, peer_id: str) -> None:
    """Close the relayed connection to peer_id once the jobs still on it are done (bounded)."""
    pid = ID.from_base58(peer_id)
    # pooled idle intent streams may ride the relayed connection: reset them (new ones will
    # open on the direct connection)
    await ctx.release_pooled(peer_id)

    def busy() -> int:
        """Jobs (intent / message streams) still running on the relayed connection; gossip
        and DHT streams are long-lived and simply move to the direct connection."""
        n = 0
        for conn in connections_to(ctx.host, pid):
            if conn_is_relayed(conn):
                n += sum(1 for st in _streams(conn) if str(_protocol(st)) in (INTENT, MSG))
        return n

    # new streams already prefer the direct connection (swarm strategy "best"); let the jobs
    # still running on the relayed one finish before closing it (bounded)
    with trio.move_on_after(DRAIN_TIMEOUT):
        while busy():
            await trio.sleep(0.25)  # polling the swarm's stream list: it has no event for this
    for conn in connections_to(ctx.host, pid):
        if conn_is_relayed(conn):
            try:
                await hard_close(conn)
                await conn.close()
            except Exception:
                pass
            try:
                ctx.host.get_network().connections.get(pid, []).remove(conn)
            except (ValueError, AttributeError):
                pass


def _streams(conn: Any) -> list:
    try:
        return list(conn.get_streams())
    except Exception:
        return []


def _protocol(stream: Any) -> Any:
    for getter in (lambda: stream.get_protocol(), lambda: stream.protocol_id):
        try:
            return getter()
        except Exception:
            continue
    return None


async def hole_punch(ctx: PunchContext, peer_id: str) -> None:
    """A (who dialed through the relay) starts `/mtor/holepunch/1`; the other answers in `serve`."""
    record = ctx.outcomes.record
    t0 = time.monotonic()
    my_ip = ctx.public_ip()
    if my_ip is None:
        record(peer_id, "stayed-relayed", "no public address of ours known (no AutoNAT answer)")
        return
    sock, port = await bound_socket()
    try:
        with map_libp2p_errors():
            with trio.fail_after(TIMEOUT * 2):
                stream = await ctx.host.new_stream(ID.from_base58(peer_id), [TProtocol(PROTOCOL)])
                t_send = time.monotonic()
                await write_frame(stream, {"type": "connect", "addr": f"{my_ip}:{port}"}, max_frame=MAX_MSG,
                                  timeout=TIMEOUT)
                reply = unpack(await read_frame_bytes(stream, max_frame=MAX_MSG, timeout=TIMEOUT), MAX_MSG)
                rtt = time.monotonic() - t_send
            if not isinstance(reply, dict) or reply.get("type") != "connect":
                reason = reply.get("reason") if isinstance(reply, dict) and isinstance(reply.get("reason"), str) \
                    else "bad reply"
                record(peer_id, "stayed-relayed", f"peer declined: {reason}"[:200])
                return
            target = parse_hostport(reply.get("addr"))
            if target is None:
                record(peer_id, "stayed-relayed", "peer sent no usable address")
                return
            if target[0] == my_ip:
                record(peer_id, "stayed-relayed", "same public IP (same NAT): hairpinning not attempted")
                return
            await write_frame(stream, {"type": "sync"}, max_frame=MAX_MSG, timeout=TIMEOUT)
            taken, sock = sock, None
            await punch_and_upgrade(ctx, peer_id, port, taken, target, rtt, t0, initiator=True)
    except NetError as exc:  # a failed punch (anything above: docs/nat.md §1.3) leaves the relayed connection
        record(peer_id, "stayed-relayed", str(exc)[:200])
    finally:
        if sock is not None:
            sock.close()


async def serve(ctx: PunchContext, stream: Any) -> None:
    """B: answer a hole punch over the relayed connection."""
    peer_id = stream.muxed_conn.peer_id.to_base58()
    msg = unpack(await read_frame_bytes(stream, max_frame=MAX_MSG, timeout=TIMEOUT), MAX_MSG)
    target = parse_hostport(msg.get("addr")) if isinstance(msg, dict) and msg.get("type") == "connect" else None
    my_ip = ctx.public_ip()
    if target is None or my_ip is None or not ctx.enabled:
        why = ("hole punching off" if not ctx.enabled else "no public address known" if my_ip is None
               else f"bad request {str(msg)[:80]}")
        await write_frame(stream, {"type": "decline", "reason": why}, max_frame=MAX_MSG, timeout=TIMEOUT)
        await stream.close()
        return
    sock, port = await bound_socket()
    try:
        await write_frame(stream, {"type": "connect", "addr": f"{my_ip}:{port}"}, max_frame=MAX_MSG, timeout=TIMEOUT)
        sync = unpack(await read_frame_bytes(stream, max_frame=MAX_MSG, timeout=TIMEOUT), MAX_MSG)
        if not isinstance(sync, dict) or sync.get("type") != "sync":
            return
        conn_sock = await punch(port, sock, target)
        sock = None
        if conn_sock is None:
            ctx.outcomes.record(peer_id, "stayed-relayed", f"TCP simultaneous open to {target[0]}:{target[1]} failed")
            return
        await upgrade(ctx, peer_id, conn_sock, False, target)
        ctx.outcomes.record(peer_id, "direct", f"TCP simultaneous open to {target[0]}:{target[1]}")
        await drop_relayed(ctx, peer_id)
    finally:
        if sock is not None:
            sock.close()
