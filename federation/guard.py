"""One guard for every inbound libp2p stream, and for py-libp2p's own background tasks.

Why here: py-libp2p runs each inbound stream as a task of the swarm's service; an exception that
escapes a protocol handler (py-libp2p's pubsub reader raises protobuf `DecodeError` on a varint
and 100 random bytes, issue 12 finding 1) ends that service, and with it the host and the node.
Wrapping handlers one by one at `set_stream_handler` misses those registered inside py-libp2p
(identify, ping, meshsub, kad, relay) and the multistream negotiation itself, so the guard wraps
the swarm's single entry point for inbound streams, `network.common_stream_handler`: the
negotiation and every handler of every protocol, present and future, run under it.

On an exception: the stream is reset; the peer gets a strike. Ordinary endings (the remote reset
or closed the stream, the connection went away, a read timed out) cost nothing. `strikes` strikes
within `window` seconds make a repeat offender: it is disconnected and refused for a back-off
(base * 2^n, capped) - `Federation` checks `is_banned` when a connection opens.

Services (pubsub, gossipsub) also start tasks of their own (`manager.run_task`: push_msg, sending
loops, retries); one that raises ends the service. `guard_service` wraps those the same way.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio
from libp2p.io.exceptions import IOException, MsgioException
from libp2p.stream_muxer.exceptions import MuxedConnError, MuxedStreamError

log = logging.getLogger(__name__)

# Exceptions that mean "the stream or connection ended", not "the peer sent garbage".
BENIGN: tuple[type[BaseException], ...] = (
    MuxedStreamError,
    MuxedConnError,
    trio.ClosedResourceError,
    trio.BrokenResourceError,
    trio.TooSlowError,
    ConnectionError,
    EOFError,
)

OnOffence = Callable[[str, str, str, bool], None]  # peer_id, protocol, reason, repeat offender


def is_offence(exc: BaseException) -> bool:
    """Does this exception say the peer misbehaved (garbage, oversized) rather than went away?"""
    if isinstance(exc, MsgioException):  # MessageTooLarge, missing length: the peer's bytes
        return True
    if isinstance(exc, IOException):  # StreamReset/EOF/Closed, RawConnError, IncompleteRead
        return False
    return not isinstance(exc, BENIGN)


@dataclass
class _Record:
    strikes: list[float] = field(default_factory=list)  # monotonic times within the window
    bans: int = 0
    banned_until: float = 0.0
    last_reason: str = ""


class StreamGuard:
    def __init__(
        self,
        host: Any,
        *,
        strikes: int = 3,
        window: float = 60.0,
        ban_base: float = 30.0,
        ban_max: float = 3600.0,
        on_offence: OnOffence | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_records: int = 4096,
    ) -> None:
        self.host = host
        self.strikes = strikes
        self.window = window
        self.ban_base = ban_base
        self.ban_max = ban_max
        self.on_offence = on_offence
        self.clock = clock
        self.max_records = max_records
        self._records: dict[str, _Record] = {}
        self.stats = {"streams": 0, "failed": 0, "offences": 0, "disconnected": 0, "task_errors": 0}
        self._installed = False
        self.nursery: trio.Nursery | None = None  # set by the owner while it runs

    # ------------------------------------------------------------------ installation
    def install(self) -> None:
        """Wrap the swarm's inbound stream entry point (idempotent)."""
        if self._installed:
            return
        network = self.host.get_network()
        inner = network.common_stream_handler
        network.set_stream_handler(self._wrap(inner))
        self.host._mtor_stream_guard = self  # for handlers that report garbage themselves
        self._installed = True

    def _wrap(self, inner: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        @functools.wraps(inner)
        async def guarded(stream: Any) -> None:
            self.stats["streams"] += 1
            try:
                await inner(stream)
            except BaseException as exc:  # noqa: BLE001 - nothing a peer sends may end the host
                if _is_control_flow(exc):
                    raise
                await self._failed(stream, exc)

        return guarded

    async def _failed(self, stream: Any, exc: BaseException) -> None:
        self.stats["failed"] += 1
        protocol = _protocol(stream)
        peer = _peer(stream)
        try:
            with trio.move_on_after(1):
                await stream.reset()
        except BaseException as e:  # noqa: BLE001
            if _is_control_flow(e):
                raise
        leaf = _leaf(exc)
        if not is_offence(leaf):
            log.debug("stream %s from %s ended: %r", protocol, peer[:16], leaf)
            return
        reason = f"{protocol}: {type(leaf).__name__}: {leaf}"[:200]
        log.warning("peer %s broke %s: %r", peer[:16], protocol, leaf)
        if peer and self.offence(peer, protocol, reason):
            await self._disconnect_soon(peer)

    # ------------------------------------------------------------------ offences and bans
    def offence(self, peer: str, protocol: str, reason: str) -> bool:
        """Record one strike; True if the peer is now a repeat offender (and banned)."""
        self.stats["offences"] += 1
        now = self.clock()
        rec = self._records.get(peer)
        if rec is None:
            if len(self._records) >= self.max_records:  # bounded under a flood of fresh ids
                self._forget_oldest()
            rec = self._records[peer] = _Record()
        rec.strikes = [t for t in rec.strikes if now - t <= self.window] + [now]
        rec.last_reason = reason
        repeat = len(rec.strikes) >= self.strikes
        if repeat:
            rec.banned_until = now + min(self.ban_max, self.ban_base * (2**rec.bans))
            rec.bans += 1
            rec.strikes.clear()
        if self.on_offence is not None:
            try:
                self.on_offence(peer, protocol, reason, repeat)
            except Exception:
                log.debug("on_offence failed", exc_info=True)
        return repeat

    async def report(self, peer: str, protocol: str, reason: str) -> None:
        """For handlers that catch a peer's garbage themselves (our framed protocols): a strike,
        and a disconnect if that makes a repeat offender."""
        if peer and self.offence(peer, protocol, reason):
            await self._disconnect_soon(peer)

    @staticmethod
    def of(host: Any) -> "StreamGuard | None":
        """The guard installed on this host, if any."""
        return getattr(host, "_mtor_stream_guard", None)

    def is_banned(self, peer: str) -> bool:
        rec = self._records.get(peer)
        return bool(rec and self.clock() < rec.banned_until)

    def banned_for(self, peer: str) -> float:
        rec = self._records.get(peer)
        return max(0.0, rec.banned_until - self.clock()) if rec else 0.0

    def _forget_oldest(self) -> None:
        now = self.clock()
        for peer, rec in list(self._records.items()):
            if rec.banned_until <= now:
                del self._records[peer]
                if len(self._records) < self.max_records * 3 // 4:
                    return
        if len(self._records) >= self.max_records:  # all banned: drop the oldest entries
            for peer in list(self._records)[: self.max_records // 4]:
                del self._records[peer]

    async def _disconnect_soon(self, peer: str) -> None:
        # from inside a stream handler the connection's own nursery would cancel us mid-close:
        # disconnect from the owner's nursery when there is one
        if self.nursery is not None:
            self.nursery.start_soon(self.disconnect, peer)
        else:
            await self.disconnect(peer)

    async def disconnect(self, peer: str) -> None:
        from libp2p.peer.id import ID

        self.stats["disconnected"] += 1
        try:
            pid = ID.from_base58(peer)
            conns = list(self.host.get_network().connections.get(pid) or [])
            with trio.move_on_after(2):
                for conn in conns:
                    muxed = getattr(conn, "muxed_conn", None)
                    for layer in (muxed, getattr(muxed, "secured_conn", None)):
                        if layer is not None:
                            try:
                                await layer.close()
                            except Exception:
                                pass
                await self.host.disconnect(pid)
        except Exception:
            log.debug("disconnect %s failed", peer[:16], exc_info=True)

    # ------------------------------------------------------------------ service tasks
    def guard_service(self, service: Any) -> None:
        """Wrap a running service's non-daemon tasks: their exceptions are logged, not fatal.

        Daemon tasks (heartbeats, queue loops) stay as they are: py-libp2p treats their ending
        as a fault of its own, and they read no peer's bytes directly."""
        manager = service.manager
        inner = manager.run_task
        if getattr(inner, "_mtor_guarded", False):
            return

        def run_task(async_fn: Callable[..., Awaitable[Any]], *args: Any, daemon: bool = False, **kw: Any) -> None:
            if daemon:
                return inner(async_fn, *args, daemon=daemon, **kw)
            kw.setdefault("name", getattr(async_fn, "__name__", None))
            return inner(self._task(async_fn), *args, daemon=False, **kw)

        run_task._mtor_guarded = True  # type: ignore[attr-defined]
        manager.run_task = run_task

    def _task(self, async_fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[None]]:
        @functools.wraps(async_fn)
        async def guarded(*args: Any) -> None:
            try:
                await async_fn(*args)
            except BaseException as exc:  # noqa: BLE001
                if _is_control_flow(exc):
                    raise
                self.stats["task_errors"] += 1
                log.warning("background task %s failed: %r", getattr(async_fn, "__name__", "?"), _leaf(exc))

        return guarded

    def snapshot(self) -> dict[str, Any]:
        return {**self.stats, "banned": sum(1 for p in self._records if self.is_banned(p))}


def _is_control_flow(exc: BaseException) -> bool:
    if isinstance(exc, (trio.Cancelled, KeyboardInterrupt, SystemExit, GeneratorExit)):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_control_flow(e) for e in exc.exceptions)
    return False


def _leaf(exc: BaseException) -> BaseException:
    """The first non-group exception (py-libp2p wraps handler errors in nursery groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _protocol(stream: Any) -> str:
    try:
        return str(stream.get_protocol() or "?")
    except Exception:
        return "?"


def _peer(stream: Any) -> str:
    try:
        return stream.muxed_conn.peer_id.to_base58()
    except Exception:
        return ""
