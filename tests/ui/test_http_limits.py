"""Issue 12, finding 16: request bodies limited while they are read, Retry-After on a full queue,
security headers on every answer (static files included), and a clear line for a node that would
listen beyond loopback without a token."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import trio

from tests.conftest import running_node, write_config
from ui.http_guard import MAX_BODY

MiB = 1024 * 1024


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MiB


async def test_large_bodies_are_refused_while_read(tmp_path):
    async with running_node(tmp_path / "node") as node:
        port = int(node.http_url.rsplit(":", 1)[1])
        head = f"POST /api/v1/intents HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"

        async def declared_60mib() -> None:
            s = await trio.open_tcp_stream("127.0.0.1", port)
            await s.send_all((head + f"Content-Length: {60 * MiB}\r\n\r\n").encode() + b'{"prompt": "' + b"x" * 1024)
            data = b""
            with trio.fail_after(10):
                while chunk := await s.receive_some(65536):
                    data += chunk
            await s.aclose()
            answers.append(data)

        before = rss_mib()
        answers = []
        async with trio.open_nursery() as nursery:  # 8 at once, as in the finding (723 MiB before)
            for _ in range(8):
                nursery.start_soon(declared_60mib)
        assert len(answers) == 8 and all(a.startswith(b"HTTP/1.1 413") for a in answers), [a[:40] for a in answers]
        assert rss_mib() - before < 64

        # chunked: no length to refuse up front, so the count stops it at the limit
        s = await trio.open_tcp_stream("127.0.0.1", port)
        await s.send_all((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        sent, answer = 0, b""
        chunk = b"%x\r\n" % MiB + b"x" * MiB + b"\r\n"

        async def pump():
            nonlocal sent
            try:
                while sent < 60 * MiB:
                    await s.send_all(chunk)
                    sent += MiB
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            with trio.fail_after(30):
                while True:
                    data = await s.receive_some(65536)
                    answer += data
                    if not data:
                        break
            nursery.cancel_scope.cancel()
        await s.aclose()
        assert answer.startswith(b"HTTP/1.1 413"), answer[:60]
        assert sent < 60 * MiB and sent <= MAX_BODY + 8 * MiB  # refused near the limit, not at the end


async def test_queue_full_says_when_to_retry(tmp_path):
    models = {"slow-chat": {"kind": "chat", "backend": "echo", "concurrency": 1, "default": True, "options": {"delay_s": 0.2}}}
    async with running_node(tmp_path / "node", models, queue={"max_size": 1, "max_inflight": 1}) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as c:
            statuses = []

            async def one():
                r = await c.post("/api/v1/intents", json={"kind": "chat", "prompt": " ".join(["word"] * 30)})
                statuses.append((r.status_code, r.headers.get("Retry-After"), r.json()))

            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    for _ in range(4):
                        nursery.start_soon(one)
                    while not any(s == 503 for s, _, _ in statuses):
                        await trio.sleep(0.05)  # polling for the refusals, bounded by fail_after
                    nursery.cancel_scope.cancel()
        full = [(s, ra, j) for s, ra, j in statuses if s == 503]
        assert full and all(j["error"]["code"] == "queue_full" and ra == "2" for _, ra, j in full), statuses


async def test_security_headers_on_static_files_too(tmp_path):
    async with running_node(tmp_path / "node") as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as c:
            for path in ("/", "/static/index.html", "/api/v1/status", "/no/such/thing"):
                r = await c.get(path)
                assert r.headers["X-Content-Type-Options"] == "nosniff", path
                assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], path
            page = await c.get("/static/index.html")
            assert page.headers["Content-Security-Policy"] == (await c.get("/")).headers["Content-Security-Policy"]
            assert "default-src 'none'" in (await c.get("/api/v1/status")).headers["Content-Security-Policy"]


async def test_wildcard_host_without_token_is_one_clear_line(tmp_path):
    from tests.conftest import free_port

    d = tmp_path / "node"
    write_config(d, {"echo-chat": {"kind": "chat", "backend": "echo", "default": True}},
                 http={"port": free_port()}, p2p={"enabled": False})
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    with trio.fail_after(60):
        p = await trio.run_process([sys.executable, "-m", "mtor_node", "start", "--data-dir", str(d), "--host", "0.0.0.0"],
                                   capture_stdout=True, capture_stderr=True, check=False, env=env,
                                   stdin=subprocess.DEVNULL)
    err = p.stderr.decode().strip()
    assert p.returncode == 1, err
    assert "Traceback" not in err and "ExceptionGroup" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("mtor-node:")]
    assert len(lines) == 1 and lines[0].startswith("mtor-node: http.host is 0.0.0.0") and "http.access_token" in lines[0], err


async def test_bodies_being_read_at_once_are_bounded(tmp_path):
    """Bodies are counted by their declared length while they arrive: four near the limit fit, a
    fifth is told to come back (503, Retry-After) before anything of it is read."""
    from ui.http_guard import MAX_BODIES_IN_FLIGHT

    async with running_node(tmp_path / "node", http={"body_timeout_s": 30.0}) as node:
        port = int(node.http_url.rsplit(":", 1)[1])
        each = MAX_BODIES_IN_FLIGHT // 4 - 1
        head = (f"POST /api/v1/intents HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {each}\r\n\r\n").encode()
        slow = []
        for _ in range(4):
            s = await trio.open_tcp_stream("127.0.0.1", port)
            await s.send_all(head + b'{"kind": "chat", "prompt": "')  # and then nothing more, for now
            slow.append(s)
        with trio.fail_after(10):
            while node_guard(node).in_flight < 4 * each:  # all four are being read
                await trio.sleep(0.02)
            fifth = await trio.open_tcp_stream("127.0.0.1", port)
            await fifth.send_all(head)
            answer = b""
            while chunk := await fifth.receive_some(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 503") and b"retry-after: 2" in answer and b'"busy"' in answer, answer[:200]
        for s in slow:
            await s.aclose()
        with trio.fail_after(10):
            while node_guard(node).in_flight:  # given back when those clients go away
                await trio.sleep(0.02)


def node_guard(node):
    return node.http_app.asgi_app
