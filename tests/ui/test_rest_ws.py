"""REST additions, the sysop token, the CSRF guard, metrics and the WebSocket API."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url


def http(node) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=node.http_url, timeout=10)


def ws_url(node) -> str:
    return node.http_url.replace("http://", "ws://") + "/ws"


async def recv(ws, until: str | None = None, timeout: float = 10) -> dict:
    """The next message (or the next one of type `until`), bounded in time."""
    with trio.fail_after(timeout):
        while True:
            msg = json.loads(await ws.get_message())
            if until is None or msg["type"] == until:
                return msg


async def test_sysop_actions_need_the_token(ui_node):
    sysop = {"X-Sysop-Token": ui_node.sysop_token}
    async with http(ui_node) as c:
        for method, path in [("GET", "/api/v1/users"), ("POST", "/api/v1/users/bob/ban"), ("POST", "/api/v1/broadcast"),
                             ("POST", "/api/v1/queue/x/cancel"), ("POST", "/api/v1/ledger/anchor"), ("POST", "/api/v1/prices")]:
            r = await c.request(method, path, json={})
            assert r.status_code == 403, (path, r.text)
            assert r.json()["error"]["code"] == "forbidden"
        r = await c.post("/api/v1/users/bob/ban", headers=sysop)
        assert r.json() == {"user": "bob", "banned": True, "cancelled": 0}
        r = await c.post("/api/v1/intents", json={"kind": "chat", "prompt": "hi", "user": "bob"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "banned"
        users = (await c.get("/api/v1/users", headers=sysop)).json()["users"]
        assert [u["banned"] for u in users if u["id"] == "bob"] == [1]
        await c.post("/api/v1/users/bob/unban", headers=sysop)
        assert (await c.post("/api/v1/intents", json={"kind": "chat", "prompt": "hi", "user": "bob"})).status_code == 200
        # what the node cannot do yet says so
        # prices belong to a worker in a realm; this node is alone and says so
        r = await c.post("/api/v1/prices", json={"prices": {"chat": 5}, "peaking": 2.0}, headers=sysop)
        assert r.status_code == 409 and r.json()["error"]["code"] == "no_network"
        r = await c.post("/api/v1/quote", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
        assert r.status_code == 400  # not a 500: unreadable JSON is the client's mistake
        r = await c.post("/api/v1/nickname", json={"user": "bob", "nickname": "Bobby"})
        assert r.status_code == 200
        r = await c.post("/api/v1/nickname", json={"user": "bob", "nickname": "<script>"})
        assert r.status_code == 400
        stats = (await c.get("/api/v1/stats")).json()
        assert {"kind": "chat", "outcome": "done", "count": 1} in stats["outcomes"]
        assert (await c.get("/api/v1/quote", params={"kind": "chat"})).json()["price"] == 0


async def test_csrf_guard(ui_node):
    async with http(ui_node) as c:
        # a cross-site page: its Origin is not ours
        r = await c.post("/api/v1/intents", json={"kind": "chat", "prompt": "hi"}, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin"
        # a simple (no-preflight) content type is refused even without an Origin
        r = await c.post("/api/v1/intents", content=b'{"kind":"chat","prompt":"hi"}', headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        r = await c.post("/api/v1/nickname", content=b"user=a&nickname=b", headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 415
        # our own page's requests pass
        host = ui_node.http_url.removeprefix("http://")
        r = await c.post("/api/v1/intents", json={"kind": "chat", "prompt": "hi"}, headers={"Origin": f"http://{host}"})
        assert r.status_code == 200
    with pytest.raises(ConnectionRejected) as e:
        with trio.fail_after(10):
            async with open_websocket_url(ws_url(ui_node), extra_headers=[("Origin", "http://evil.example")]):
                pass
    assert e.value.status_code == 403


async def test_request_size_limit(ui_node):
    async with http(ui_node) as c:
        r = await c.post("/api/v1/intents", content=b"x" * (65 * 1024 * 1024), headers={"Content-Type": "application/json"})
        assert r.status_code == 413


async def test_metrics(ui_node):
    async with http(ui_node) as c:
        await c.post("/api/v1/intents", json={"kind": "chat", "prompt": "one two"})
        await c.post("/api/v1/intents", json={"kind": "chat", "prompt": "x", "params": {"temperature": 5}})
        text = (await c.get("/metrics")).text
    assert 'mtor_intents_total{kind="chat",outcome="done"} 1' in text
    assert 'mtor_intents_total{kind="chat",outcome="rejected"} 1' in text
    assert 'mtor_intent_latency_seconds_bucket{kind="chat",le="+Inf"} 1' in text
    assert "mtor_queue_depth 0" in text and "mtor_peers 0" in text
    assert "mtor_wallet_balance_micro 0" in text  # the ledger is on by default; a new node holds nothing
    # the exposition is prometheus-client's and reads back with its parser, values and labels intact
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(text)}
    done = [s for s in families["mtor_intents"].samples if s.labels == {"kind": "chat", "outcome": "done"}]
    assert [s.value for s in done] == [1] and families["mtor_intent_latency_seconds"].type == "histogram"
    assert {"mtor_queue_depth", "mtor_inflight", "mtor_broker_intents", "mtor_peers", "mtor_models_ready",
            "mtor_ws_connections", "mtor_broadcasts", "mtor_uptime_seconds"} <= set(families)


async def test_websocket_submit_cancel_broadcast(ui_node):
    async with open_websocket_url(ws_url(ui_node)) as ws, open_websocket_url(ws_url(ui_node)) as other:
        await ws.send_message(json.dumps({"type": "hello", "user": "alice"}))
        assert (await recv(ws, "welcome"))["user"] == "alice"
        await ws.send_message(json.dumps({"type": "submit", "ref": "r1", "intent": {"kind": "chat", "prompt": "hello over websockets"}}))
        accepted = await recv(ws, "accepted")
        assert accepted["ref"] == "r1"
        text = ""
        while True:
            msg = await recv(ws)
            if msg["type"] == "chunk":
                text += msg["text"]
            if msg["type"] == "result":
                break
        assert text == msg["text"] == "hello over websockets"
        # bytes come back as *_b64
        await ws.send_message(json.dumps({"type": "submit", "ref": "r2", "intent": {"kind": "imagine", "prompt": "a cat"}}))
        result = await recv(ws, "result")
        assert "image_png_b64" in result
        # bad input is a message, not a closed socket
        await ws.send_message("not json")
        assert (await recv(ws))["code"] == "bad_request"
        await ws.send_message(json.dumps({"type": "submit", "ref": "r3", "intent": {"kind": "dance"}}))
        assert (await recv(ws, "rejected"))["code"] == "bad_kind"
        await ws.send_message(json.dumps({"type": "cancel", "id": "nope"}))
        assert (await recv(ws, "cancel_ack"))["ok"] is False
        # the sysop broadcasts; every page gets it
        async with http(ui_node) as c:
            r = await c.post("/api/v1/broadcast", json={"message": "maintenance at noon"},
                             headers={"X-Sysop-Token": ui_node.sysop_token})
            assert r.json()["delivered"] == 2
        assert (await recv(other, "broadcast"))["message"] == "maintenance at noon"
        assert (await recv(ws, "broadcast"))["message"] == "maintenance at noon"
        # history has it under the page's user
        async with http(ui_node) as c:
            hist = (await c.get("/api/v1/history", params={"user": "alice"})).json()["history"]
        assert {h["prompt"] for h in hist} == {"hello over websockets", "a cat"}


async def test_websocket_cancel_and_disconnect(tmp_path):
    from tests.conftest import running_node

    slow = {"slow-chat": {"kind": "chat", "backend": "echo", "default": True, "concurrency": 4, "options": {"delay_s": 0.5}}}
    async with running_node(tmp_path / "n", slow) as node:
        async with open_websocket_url(ws_url(node)) as ws:
            await ws.send_message(json.dumps({"type": "submit", "intent": {"kind": "chat", "prompt": "a b c d e f g h"}}))
            intent_id = (await recv(ws, "accepted"))["id"]
            await recv(ws, "started")
            await ws.send_message(json.dumps({"type": "cancel", "id": intent_id}))
            assert (await recv(ws, "cancel_ack"))["ok"] is True
            err = await recv(ws, "error")
            assert err["code"] == "cancelled"
            await ws.send_message(json.dumps({"type": "submit", "intent": {"kind": "chat", "prompt": "a b c d e f g h"}}))
            await recv(ws, "started")
        # the page went away mid-answer: its intent is cancelled, nothing left running
        with trio.fail_after(5):
            while node.broker.tickets:
                await trio.sleep(0.02)
        assert node.broker.counters["cancelled"] == 2
