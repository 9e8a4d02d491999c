"""How the node's HTTP server (hypercorn on trio) is configured, and three fixes to hypercorn 0.18.

1. Closing is cancelled. When a response ends, hypercorn closes or recycles the connection from
   inside the ASGI app's own `send` call (h11 `_maybe_recycle` → `TCPServer.protocol_send`).
   Quart-trio has just been told `http.disconnect` and cancels that same task, so with
   `Connection: close` `send_eof()` raises Cancelled and `aclose()` is never reached, and on a
   kept-alive connection the idle timer is never started: either way the socket stays open for
   good, one file descriptor each. We run those connection events shielded (bounded by a deadline),
   as hypercorn already does for its sends.
2. No connection limit. Each accepted socket gets a task and a descriptor, however many there are.
   We count connections per server and answer those above `http.max_connections` with a 503 and
   close them at once, so a flood of idle sockets cannot take every descriptor.
3. No write deadline: a client that sends requests and never reads the answers blocks the
   (shielded) write for good. Each write now has `http.write_timeout_s`, then the connection closes.

Slow clients: `keep_alive_timeout` also bounds how long a new connection may take to send its request
headers (hypercorn's idle timer runs from accept until a whole request has arrived); the body
deadline is ui/http_guard.py's.
"""

from __future__ import annotations

import logging
import math

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.events import Closed, RawData
from hypercorn.trio import tcp_server

log = logging.getLogger("mtor.http")

EVENT_GRACE_S = 10.0  # a shielded connection event that takes longer than this is given up
_BUSY_BODY = b'{"error": {"code": "busy", "message": "too many open connections; retry"}}'
BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 2\r\n"
                 b"connection: close\r\ncontent-length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


def hypercorn_config(cfg) -> HyperConfig:
    host, port = cfg["http.host"], cfg["http.port"]
    hc = HyperConfig()
    hc.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("mtor.http")
    hc.graceful_timeout = 1.0
    hc.websocket_max_message_size = 16 * 1024 * 1024  # an intent's image or audio fits (docs/ui.md)
    hc.backlog = 4096  # hypercorn's 100 overflows when a thousand pages connect at once: SYN retries stall them
    hc.keep_alive_timeout = float(cfg["http.keep_alive_s"])
    hc.h11_max_incomplete_size = 16 * 1024  # request line and headers; hypercorn's default, stated
    # No read_timeout: a client waiting for a long answer (an NDJSON stream, a quiet WebSocket)
    # sends nothing for minutes, and that is legitimate. Idle and slow-body limits cover the rest.
    hc.mtor_write_timeout_s = float(cfg["http.write_timeout_s"])
    hc.mtor_max_connections = int(cfg["http.max_connections"])
    hc.mtor_open_connections = 0
    install_fixes()
    return hc


_installed = False


def install_fixes() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    server = tcp_server.TCPServer
    original_close = server._close
    original_send = server.protocol_send
    original_run = server.run

    async def _close(self) -> None:
        with trio.CancelScope(shield=True):  # fix 1: a close must not be cancelled halfway
            await original_close(self)

    async def protocol_send(self, event) -> None:
        if isinstance(event, RawData):
            return await send_raw(self, event)
        # fix 1: Closed and Updated (start/stop the idle timer) must happen even from a cancelled task
        with trio.CancelScope(shield=True, deadline=trio.current_time() + EVENT_GRACE_S):
            await original_send(self, event)

    async def run(self) -> None:
        cfg = self.config
        limit = getattr(cfg, "mtor_max_connections", None)
        if limit is None:
            return await original_run(self)
        if cfg.mtor_open_connections >= limit:  # fix 2
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                try:
                    await self.stream.send_all(BUSY_RESPONSE)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
                await self.stream.aclose()
            return
        cfg.mtor_open_connections += 1
        try:
            await original_run(self)
        finally:
            cfg.mtor_open_connections -= 1

    async def send_raw(self, event) -> None:
        """Hypercorn's own send (shielded, so a half-written answer is never cut by a cancel), with
        a deadline (fix 3): a client that stops reading would otherwise hold its connection and
        the task writing to it for good."""
        limit = getattr(self.config, "mtor_write_timeout_s", None) or math.inf
        async with self.send_lock:
            try:
                with trio.CancelScope(shield=True, deadline=trio.current_time() + limit) as scope:
                    await self.stream.send_all(event.data)
                if scope.cancelled_caught:
                    log.debug("a client read nothing for %.0f s; closing its connection", limit)
                    with trio.CancelScope(shield=True):
                        await self.stream.aclose()
                    raise trio.ClosedResourceError
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())

    server._close = _close
    server.protocol_send = protocol_send
    server.run = run
