"""DNS rebinding (issue 12, finding 9): a page whose name the attacker points at 127.0.0.1 reaches
the node with `Host: evil.example:PORT` and a matching Origin. The node must answer to no name but
its own, on every route, before anything runs."""

from __future__ import annotations

import json
import socket

import pytest
import trio

from tests.conftest import running_node
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, UI_MODELS
from ui.http_guard import HostAllowlist

ROUTES = [("POST", "/api/v1/intents"), ("POST", "/v1/chat/completions"), ("GET", "/api/v1/history"),
          ("GET", "/api/v1/queue"), ("GET", "/api/v1/status"), ("GET", "/api/v1/wallet"),
          ("GET", "/api/v1/ledger/export"), ("GET", "/metrics"), ("GET", "/static/index.html"), ("GET", "/"),
          ("GET", "/openapi.json"), ("GET", "/no/such/route")]


def raw_request(port: int, method: str, path: str, host: str, origin: str | None = None, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 request on a plain socket, exactly as a rebound page's browser would send it."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    if origin:
        head.append(f"Origin: {origin}")
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def ws_handshake(port: int, host: str, origin: str) -> bytes:
    req = (f"GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(req.encode())
        return s.recv(4096).split(b"\r\n", 1)[0]


async def test_foreign_host_is_refused_on_every_route(ui_node):
    port = int(ui_node.http_url.rsplit(":", 1)[1])
    evil = f"evil.example:{port}"
    body = json.dumps({"kind": "chat", "prompt": "spend it", "messages": [{"role": "user", "content": "hi"}],
                       "model": "echo-chat"}).encode()
    for method, path in ROUTES:
        status, payload = await trio.to_thread.run_sync(
            lambda: raw_request(port, method, path, evil, f"http://{evil}", body if method == "POST" else b""))
        assert status == 421, (path, status, payload[:200])
        assert json.loads(payload)["error"]["code"] == "misdirected"
    assert (await trio.to_thread.run_sync(ws_handshake, port, evil, f"http://{evil}")).startswith(b"HTTP/1.1 403")
    # nothing ran: no intent submitted, nothing in history
    assert ui_node.broker.counters.get("submitted", 0) == 0
    assert ui_node.store.history(None, 10) == []
    # the node's own names still work, and their Origin is compared with the allowlist, not with Host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST.:{port}"):
        status, _ = await trio.to_thread.run_sync(lambda: raw_request(port, "POST", "/api/v1/intents", host, f"http://{host}", body))
        assert status == 200, host
    status, payload = await trio.to_thread.run_sync(
        lambda: raw_request(port, "POST", "/api/v1/intents", f"127.0.0.1:{port}", f"http://{evil}", body))
    assert status == 403 and json.loads(payload)["error"]["code"] == "cross_origin"
    assert (await trio.to_thread.run_sync(ws_handshake, port, f"127.0.0.1:{port}", f"http://{evil}")).startswith(b"HTTP/1.1 403")
    assert (await trio.to_thread.run_sync(ws_handshake, port, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}")).startswith(b"HTTP/1.1 101")


async def test_configured_names_are_allowed(tmp_path):
    async with running_node(tmp_path / "node", http={"allowed_hosts": ["mtor.lan", "box.example:8443"]}) as node:
        port = int(node.http_url.rsplit(":", 1)[1])
        for host, want in ((f"mtor.lan:{port}", 200), ("box.example:8443", 200), ("mtor.lan:1", 421), (f"evil.example:{port}", 421)):
            status, _ = await trio.to_thread.run_sync(lambda: raw_request(port, "GET", "/api/v1/status", host))
            assert status == want, host


def test_allowlist_parsing():
    cfg = {"http.port": 9000, "http.host": "0.0.0.0", "http.allowed_hosts": ["Mtor.Lan.", "[fd00::1]:80"]}
    allow = HostAllowlist.from_config(cfg)
    assert allow.allows("127.0.0.1:9000") and allow.allows("[::1]:9000") and allow.allows("mtor.lan:9000")
    assert allow.allows("192.168.1.5:9000")  # a wildcard bind: any address literal (rebinding needs a name)
    assert allow.allows("[fd00::1]")
    for bad in ("evil.example:9000", "localhost:9001", "", "127.0.0.1:9000@evil", "a b", "[::1", "localhost:0"):
        assert not allow.allows(bad), bad
    assert allow.allows_origin("") and allow.allows_origin("http://localhost:9000")
    assert not allow.allows_origin("null") and not allow.allows_origin("http://evil.example:9000")
    assert not allow.allows_origin("file://localhost:9000")
    loop = HostAllowlist.from_config({**cfg, "http.host": "127.0.0.1"})
    assert not loop.allows("192.168.1.5:9000") and not loop.allows("[fd00::1]:9000") and loop.allows("[fd00::1]:80")


# Chromium's own Private Network Access checks would block some of these requests before they reach
# the node; other browsers (and older Chromiums) have none, and this test is about the node's defence.
NO_PNA = ("BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,"
          "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks")


@pytest.mark.slow
async def test_rebound_page_in_chromium_cannot_use_the_api(tmp_path):
    """Chromium resolves evil.example to 127.0.0.1 (--host-resolver-rules), as after a rebinding. The
    attacker's document is served to it by Playwright's router (the attacker's own server, which
    cannot exist here); everything the page then fetches goes to the node under the foreign name."""
    async with running_node(tmp_path / "node", UI_MODELS) as node:
        port = int(node.http_url.rsplit(":", 1)[1])
        origin = f"http://evil.example:{port}"
        attacker_page = """<!doctype html><title>cute cats</title><script>
        window.results = (async () => {
          const out = {};
          for (const [name, url, init] of [
              ["intent", "/api/v1/intents", {method: "POST", headers: {"Content-Type": "application/json"},
                                            body: JSON.stringify({kind: "chat", prompt: "spend the wallet"})}],
              ["history", "/api/v1/history", {}], ["status", "/api/v1/status", {}], ["metrics", "/metrics", {}]]) {
            try { const r = await fetch(url, init); out[name] = r.status + " " + (await r.text()); }
            catch (e) { out[name] = "failed " + e; }
          }
          out.ws = await new Promise(res => { const ws = new WebSocket("ws://" + location.host + "/ws");
            ws.onopen = () => res("open"); ws.onerror = () => res("refused"); });
          return out; })();
        </script>"""

        def scenario():
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, timeout=30_000,
                                            args=CHROMIUM_ARGS + ["--host-resolver-rules=MAP evil.example 127.0.0.1",
                                                                  "--disable-features=" + NO_PNA])
                try:
                    page = browser.new_page()
                    page.set_default_timeout(15_000)
                    page.route(f"{origin}/", lambda route: route.fulfill(status=200, content_type="text/html", body=attacker_page))
                    page.goto(f"{origin}/")
                    return page.evaluate("window.results")
                finally:
                    browser.close()

        with trio.fail_after(90):
            results = await trio.to_thread.run_sync(scenario)
        for name in ("intent", "history", "status", "metrics"):
            assert results[name].startswith("421 "), (name, results[name])
        assert results["ws"] == "refused"
        assert node.broker.counters.get("submitted", 0) == 0 and node.store.history(None, 10) == []
