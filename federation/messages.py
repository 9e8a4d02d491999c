"""`/mtor/msg/1`: one small request, one reply, on a fresh stream; for what is not an intent.

The application registers a handler per message type (e.g. "pay", "grant", "fraud"). A request
frame is {"type": str, "body": map}; the reply is {"ok": true, "body": map} or
{"ok": false, "code": str, "message": str}. Frames are length-prefixed msgpack like the intent
protocol, with a small size limit: these messages carry ledger entries and vouchers, not media.
Both are typed (federation/frames.py `MsgRequest`, `MsgReply`), decoded with bounds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from .budget import OverBudget, PeerBudget
from .guard import StreamGuard
from .host import set_safe_handler
from .frames import FrameError, MsgReply, MsgRequest, decode_message, decode_reply
from .wire import SMALL_FRAME, StreamClosed, read_frame_bytes, write_frame

log = logging.getLogger(__name__)

PROTOCOL = "/mtor/msg/1"
MAX_MESSAGE = 256 * 1024
TIMEOUT_S = 10.0

MessageHandler = Callable[[str, dict], Awaitable[dict]]


class MessageFailed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Messenger:
    def __init__(self, host: Any, timeout: float = TIMEOUT_S) -> None:
        self.host = host
        self.timeout = timeout
        self.handlers: dict[str, MessageHandler] = {}
        self.stats = {"handled": 0, "refused": 0, "bad": 0}
        # per peer: 32 streams (a restarted broker re-sends all its pending pays at once) and 4
        # big frames' worth of bytes in flight (issue 12 #5)
        self.budget = PeerBudget(max_streams=32, max_bytes=4 * MAX_MESSAGE, max_total_bytes=64 * MAX_MESSAGE)
        set_safe_handler(host, PROTOCOL, self._handle_stream)

    def on(self, msg_type: str, handler: MessageHandler) -> None:
        self.handlers[msg_type] = handler

    async def _handle_stream(self, stream: Any) -> None:
        peer = stream.muxed_conn.peer_id.to_base58()
        try:
            self.budget.open_stream(peer)
        except OverBudget as e:
            self.stats["bad"] += 1
            log.info("msg: %s: %s", peer, e)
            with trio.move_on_after(1):
                await stream.reset()
            return
        try:
            await self._serve(stream, peer)
        finally:
            self.budget.close_stream(peer)

    async def _serve(self, stream: Any, peer: str) -> None:
        try:
            try:
                raw = await read_frame_bytes(stream, max_frame=MAX_MESSAGE, timeout=self.timeout, budget=self.budget,
                                             peer=peer)
                if len(raw) > SMALL_FRAME:
                    self.budget.release(peer, len(raw))
                frame = decode_message(raw, MAX_MESSAGE)
            except FrameError as e:
                self.stats["bad"] += 1
                if e.reason not in ("undecodable", "oversized", "over_budget", "truncated"):  # msgpack, wrong shape
                    await self._reply(stream, MsgReply(ok=False, code="malformed",
                                                       message=f"expected {{type, body}}: {e}"[:1000]))
                    return
                log.info("msg: bad request from %s: %r", peer, e)
                guard = StreamGuard.of(self.host)
                if e.reason not in ("over_budget", "truncated") and guard is not None:
                    await guard.report(peer, PROTOCOL, f"bad frame: {e}"[:200])  # garbage: a strike
                return
            except (StreamClosed, trio.TooSlowError) as e:
                self.stats["bad"] += 1
                log.info("msg: bad request from %s: %r", peer, e)
                return
            handler = self.handlers.get(frame.type)
            if handler is None:
                self.stats["refused"] += 1
                await self._reply(stream, MsgReply(ok=False, code="unknown_type", message=f"no handler for {frame.type!r}"))
                return
            try:
                with trio.fail_after(self.timeout):
                    body = await handler(peer, frame.body)
                reply = MsgReply(ok=True, body=body or {})
                self.stats["handled"] += 1
            except MessageFailed as e:
                self.stats["refused"] += 1
                reply = MsgReply(ok=False, code=e.code[:64], message=e.message[:1000])
            except Exception as e:  # a handler's bug must not end the host; the peer learns it failed
                log.warning("msg handler %s failed for %s: %r", frame.type, peer, e)
                self.stats["refused"] += 1
                reply = MsgReply(ok=False, code="error", message=f"{type(e).__name__}: {e}"[:1000])
            await self._reply(stream, reply)
        finally:
            try:
                with trio.move_on_after(1):
                    await stream.close()
            except Exception:
                pass

    async def _reply(self, stream: Any, reply: MsgReply) -> None:
        try:
            await write_frame(stream, reply, max_frame=MAX_MESSAGE, timeout=self.timeout)
        except Exception as e:
            log.debug("msg: reply failed: %r", e)

    async def request(self, peer_id: str, msg_type: str, body: dict, timeout: float | None = None) -> dict:
        """Send one message and return the reply body; raises MessageFailed."""
        timeout = timeout or self.timeout
        try:
            with trio.fail_after(timeout):
                stream = await self.host.new_stream(ID.from_base58(peer_id), [TProtocol(PROTOCOL)])
                try:
                    await write_frame(stream, MsgRequest(type=msg_type, body=body), max_frame=MAX_MESSAGE,
                                      timeout=timeout)
                    raw = await read_frame_bytes(stream, max_frame=MAX_MESSAGE, timeout=timeout)
                finally:
                    with trio.move_on_after(1):
                        await stream.close()
        except trio.TooSlowError:
            raise MessageFailed("timeout", f"no reply from {peer_id} within {timeout} s") from None
        except MessageFailed:
            raise
        except Exception as e:
            raise MessageFailed("unreachable", f"{peer_id}: {type(e).__name__}: {e}") from None
        try:
            reply = decode_reply(raw, MAX_MESSAGE)
        except FrameError as e:
            raise MessageFailed("protocol", f"malformed reply: {e}"[:300]) from None
        if not reply.ok:
            raise MessageFailed(reply.code or "error", reply.message)
        return reply.body
