"""Connections are closed when they should be (issue 12, finding 11): `Connection: close` answers,
idle sockets, slow request headers and bodies trickled a byte at a time; and a connection cap.
Raw sockets against a real node with short timeouts."""

from __future__ import annotations

import os
import socket

import httpx
import trio

from tests.conftest import running_node

FAST = {"keep_alive_s": 1.0, "body_timeout_s": 1.5}


def port_of(node) -> int:
    return int(node.http_url.rsplit(":", 1)[1])


async def connect(port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", port)


async def read_until_closed(stream: trio.SocketStream, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    data = b""
    with trio.fail_after(timeout):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_connection_close_answers_close_the_socket(tmp_path):
    async with running_node(tmp_path / "node") as node:
        port = port_of(node)
        host = f"127.0.0.1:{port}"
        body = b'{"kind":"chat","prompt":"hi"}'
        requests = [
            # refused with its body unread (the CSRF guard): the app answers Connection: close
            f"POST /api/v1/intents HTTP/1.1\r\nHost: {host}\r\nOrigin: http://evil.example\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body,
            # the client asks for it
            f"GET /api/v1/status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode(),
        ]
        for req in requests:
            s = await connect(port)
            await s.send_all(req)
            answer = await read_until_closed(s)  # before the fix: open for good
            assert answer.startswith((b"HTTP/1.1 403", b"HTTP/1.1 200")), answer[:40]
            await s.aclose()


async def test_idle_sockets_do_not_exhaust_the_node(tmp_path):
    async with running_node(tmp_path / "node", http=dict(FAST)) as node:
        port = port_of(node)
        before = open_fds()
        idle = [await connect(port) for _ in range(300)]
        # unauthenticated sockets that said nothing, plus ones that got an answer and stay kept-alive
        for s in idle[:20]:
            await s.send_all(f"GET /api/v1/nope HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as c:
            assert (await c.get("/api/v1/status")).status_code == 200  # the node still answers
        # every idle socket is closed by the server after keep_alive_s
        async with trio.open_nursery() as nursery:
            for s in idle:
                nursery.start_soon(read_until_closed, s)
        for s in idle:
            await s.aclose()
        with trio.fail_after(10):
            while open_fds() > before + 5:  # the node's side of each socket is gone too
                await trio.sleep(0.05)


async def test_connection_cap_answers_503_and_recovers(tmp_path):
    async with running_node(tmp_path / "node", http={**FAST, "max_connections": 20}) as node:
        port = port_of(node)
        held = [await connect(port) for _ in range(20)]
        with trio.fail_after(10):
            while True:  # the server has accepted all of them (accepting is asynchronous)
                extra = await connect(port)
                answer = await read_until_closed(extra)
                await extra.aclose()
                if answer:
                    break
        assert answer.startswith(b"HTTP/1.1 503") and b"retry-after: 2" in answer.lower(), answer[:80]
        async with trio.open_nursery() as nursery:  # keep_alive_s frees the held ones
            for s in held:
                nursery.start_soon(read_until_closed, s)
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as c:
            assert (await c.get("/api/v1/status")).status_code == 200


async def test_slow_headers_and_trickled_bodies_are_dropped(tmp_path):
    async with running_node(tmp_path / "node", http=dict(FAST)) as node:
        port = port_of(node)
        # request headers that never end
        s = await connect(port)
        await s.send_all(f"POST /api/v1/intents HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
        await read_until_closed(s)
        await s.aclose()
        # a body trickled one byte at a time, each byte well within any idle timeout
        s = await connect(port)
        await s.send_all(f"POST /api/v1/intents HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: 1000\r\n\r\n".encode())
        answer = b""
        with trio.fail_after(10):
            while not answer:
                await s.send_all(b" ")
                with trio.move_on_after(0.3):  # the attacker's pace, not a synchronisation
                    answer = await s.receive_some(65536)
        answer += await read_until_closed(s)
        assert answer.startswith(b"HTTP/1.1 408") and b"body_timeout" in answer, answer[:120]
        await s.aclose()
        # a declared body over the limit is refused before it is sent
        s = await connect(port)
        await s.send_all(f"POST /api/v1/intents HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {60 * 1024 * 1024}\r\n\r\n".encode())
        answer = await read_until_closed(s)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
        await s.aclose()


async def test_a_client_that_never_reads_is_disconnected(tmp_path):
    async with running_node(tmp_path / "node", http={**FAST, "write_timeout_s": 1.0}) as node:
        port = port_of(node)
        baseline = open_fds()
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as c:
            size = len((await c.get("/openapi.json")).content)
        with trio.fail_after(10):
            while open_fds() > baseline:  # that connection's two ends are gone
                await trio.sleep(0.05)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # no autotuning: the buffers fill
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        await stream.socket.connect(("127.0.0.1", port))
        n = 8 * 1024 * 1024 // size + 1  # answers well beyond what the socket buffers hold
        await stream.send_all(f"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode() * n)
        with trio.fail_after(20):
            while open_fds() > baseline + 1:  # our socket stays; the node's side is closed
                await trio.sleep(0.05)
        await stream.aclose()
