"""The first thing every HTTP request and WebSocket upgrade meets, before Quart routes it.

- The Host allowlist (DNS rebinding): a page on evil.example whose name the attacker re-points at
  127.0.0.1 talks to us with `Host: evil.example:PORT` and a matching `Origin`. Comparing Origin
  with Host proves nothing; both must name *this node* as the allowlist knows it.
- Request bodies: the size limit is applied while the body arrives (a declared Content-Length over
  the limit is refused before one byte is read), the whole body must arrive within a deadline (a
  body trickled a byte at a time does not hold a connection forever), and the bytes of all bodies
  being read at once are bounded.

One ASGI middleware, so no route, blueprint, static file or WebSocket can be registered around it.
"""

from __future__ import annotations

import ipaddress
import json
import math
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import trio

from mtor_node.intents import DEFAULT_LIMITS

WILDCARD = ("0.0.0.0", "::", "")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# The largest intent is an audio file sent as base64 inside JSON: 4/3 of it plus room for the rest.
MAX_BODY = math.ceil(DEFAULT_LIMITS.max_audio_bytes * 4 / 3) + 1024 * 1024
MAX_BODIES_IN_FLIGHT = 4 * MAX_BODY  # bytes of all request bodies being read at once
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def split_host(value: str, default_port: int | None = None) -> tuple[str, int | None] | None:
    """'Name:port', '[v6]:port' or 'name' → (name, port), name lowercased without a trailing dot
    ('[::1]' keeps its brackets). None when it is not a host at all."""
    value = value.strip().lower()
    if not value or any(c in value for c in "/@?# \t\\"):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[:end + 1], value[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port_s = rest[1:] if rest else ""
    elif value.count(":") == 1:
        name, port_s = value.split(":")
    elif ":" in value:  # a bare IPv6 address (only in our own config)
        name, port_s = f"[{value}]", ""
    else:
        name, port_s = value, ""
    name = name.rstrip(".")
    if port_s:
        if not port_s.isdigit() or not 0 < int(port_s) < 65536:
            return None
        return name, int(port_s)
    return name, default_port


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return False


@dataclass
class HostAllowlist:
    """The names this node answers to. A name with no port in config means the node's own port."""

    port: int
    names: set[tuple[str, int]] = field(default_factory=set)
    any_ip_literal: bool = False  # a wildcard bind: LAN clients use whatever address they reach us on

    @classmethod
    def from_config(cls, cfg) -> "HostAllowlist":
        port = int(cfg["http.port"])
        allow = cls(port)
        allow.names = {(n, port) for n in LOOPBACK_NAMES}
        bound = cfg["http.host"].strip()
        if bound in WILDCARD:
            # Rebinding needs a *name* the attacker controls; a Host that is an IP literal means the
            # browser's origin is that address itself, which only this node serves on this port.
            allow.any_ip_literal = True
        else:
            parsed = split_host(bound, port)
            if parsed:
                allow.names.add((parsed[0], port))
        for entry in cfg["http.allowed_hosts"]:
            parsed = split_host(entry, port)
            if parsed:
                allow.names.add(parsed)
        return allow

    def allows(self, host_header: str, default_port: int = 80) -> bool:
        parsed = split_host(host_header, default_port)
        if parsed is None:
            return False
        if parsed in self.names:
            return True
        return self.any_ip_literal and is_ip_literal(parsed[0])

    def allows_origin(self, origin: str) -> bool:
        """An Origin header names one of our hosts. No Origin (a program, not a page) is the caller's
        business; 'null' (a sandboxed frame, a file: page) never is one of ours."""
        if origin == "":
            return True
        try:
            u = urlsplit(origin)
        except ValueError:
            return False
        if u.scheme not in ("http", "https") or not u.netloc or u.path not in ("", "/"):
            return False
        return self.allows(u.netloc, 443 if u.scheme == "https" else 80)


def _header(scope, name: bytes) -> str:
    for k, v in scope.get("headers", []):
        if k == name:
            return v.decode("latin-1")
    return ""


async def send_error(send, status: int, code: str, message: str, extra: list | None = None) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), (b"x-content-type-options", b"nosniff")] + (extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class HttpGuard:
    """ASGI middleware: Host allowlist on every scope, bounded and timed request bodies."""

    def __init__(self, app, allow: HostAllowlist, *, max_body: int = MAX_BODY, body_timeout_s: float = 120.0,
                 max_in_flight: int = MAX_BODIES_IN_FLIGHT):
        self.app = app
        self.allow = allow
        self.max_body = max_body
        self.body_timeout_s = body_timeout_s
        self.max_in_flight = max_in_flight
        self.in_flight = 0  # bytes of bodies being read now (declared length, or read so far)

    async def __call__(self, scope, receive, send, *args):
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send, *args)
        if not self.allow.allows(_header(scope, b"host")):
            if kind == "websocket":
                await receive()  # websocket.connect
                # closing before accept is answered with 403 by the server
                return await send({"type": "websocket.close", "code": 1008})
            return await send_error(send, 421, "misdirected", "this node does not answer to that host name; "
                                    "add it to http.allowed_hosts if it is really this node's")
        if kind == "websocket" or scope.get("method") not in BODY_METHODS:
            return await self.app(scope, receive, send, *args)
        return await self._with_body(scope, receive, send, args)

    async def _with_body(self, scope, receive, send, args):
        declared = _header(scope, b"content-length")
        try:
            declared_n = int(declared) if declared else None
        except ValueError:
            declared_n = None  # h11 has already refused a malformed Content-Length
        if declared_n is not None and declared_n > self.max_body:
            return await send_error(send, 413, "too_large", f"the request body is {declared_n} bytes; the limit is {self.max_body}")
        reserved = declared_n or 0
        if self.in_flight + reserved > self.max_in_flight:
            return await send_error(send, 503, "busy", "too many large requests are being read; try again shortly",
                                    [(b"retry-after", b"2")])
        self.in_flight += reserved
        chunks: list[dict] = []
        size = 0
        try:
            with trio.move_on_after(self.body_timeout_s) as timer:
                while True:
                    message = await receive()
                    if message["type"] != "http.request":  # the client went away
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body:
                        return await send_error(send, 413, "too_large", f"the request body is larger than {self.max_body} bytes")
                    if size > reserved:  # a chunked body counts as it grows
                        if self.in_flight + size - reserved > self.max_in_flight:
                            return await send_error(send, 503, "busy", "too many large requests are being read; try again shortly",
                                                    [(b"retry-after", b"2")])
                        self.in_flight += size - reserved
                        reserved = size
                    chunks.append(message)
                    if not message.get("more_body", False):
                        break
            if timer.cancelled_caught:
                return await send_error(send, 408, "body_timeout", f"the request body did not arrive within {self.body_timeout_s:g} s")

            async def replay():
                # the body as it came, then the server's own messages (http.disconnect) as they come
                return chunks.pop(0) if chunks else await receive()

            # the budget is held until the handler is done: the body is in memory until then
            return await self.app(scope, replay, send, *args)
        finally:
            self.in_flight -= reserved
