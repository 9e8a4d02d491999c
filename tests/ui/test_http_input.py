"""Issue 12, finding 15: text that is not Unicode, bytes that are not UTF-8 and JSON nested 100,000
deep are a 400 (or an error message on the WebSocket, which stays open), never a 500, a lost
history row or a RecursionError."""

from __future__ import annotations

import json

import httpx
import trio
from trio_websocket import open_websocket_url

from tests.ui.test_rest_ws import recv, ws_url

DEEP = b"[" * 100_000 + b"]" * 100_000
JSON = {"Content-Type": "application/json"}


async def test_bad_text_and_deep_json_over_http(ui_node):
    bad_bodies = [
        b'{"kind": "chat", "prompt": "hi", "user": "\\ud800"}',  # a lone surrogate escape in a field
        b'{"kind": "chat", "prompt": "hi \\udfff there"}',
        b'{"kind": "chat", "messages": [{"role": "user", "content": "\\ud83d"}]}',
        b'{"kind": "chat", "prompt": "\xff\xfe not utf-8"}',
        b'{"\\udc80": 1, "kind": "chat", "prompt": "hi"}',  # in a key
        DEEP,
        b'{"kind": "chat", "prompt": "hi", "params": ' + b'{"a": ' * 100 + b"1" + b"}" * 100 + b"}",
    ]
    async with httpx.AsyncClient(base_url=ui_node.http_url, timeout=30) as c:
        for path in ("/api/v1/intents", "/v1/chat/completions", "/api/v1/nickname"):
            for body in bad_bodies:
                r = await c.post(path, content=body, headers=JSON)
                assert r.status_code == 400, (path, body[:60], r.status_code, r.text[:200])
        r = await c.post("/api/v1/nickname", content=b'{"user": "alice", "nickname": "A\\ud800"}', headers=JSON)
        assert r.status_code == 400 and "surrogate" in r.json()["error"]["message"]
        r = await c.post("/api/v1/intents", content=DEEP, headers=JSON)
        assert "nested" in r.json()["error"]["message"] or r.json()["error"]["code"] == "bad_request"
        # the node is fine, and a real query still lands in history
        r = await c.post("/api/v1/intents", json={"kind": "chat", "prompt": "still here ✓", "user": "alice"})
        assert r.status_code == 200
        hist = (await c.get("/api/v1/history", params={"user": "alice"})).json()["history"]
        assert [h["prompt"] for h in hist] == ["still here ✓"]


async def test_bad_text_and_deep_json_over_websocket(ui_node):
    async with open_websocket_url(ws_url(ui_node)) as ws:
        await ws.send_message(DEEP.decode())
        msg = await recv(ws)
        assert msg["type"] == "error" and msg["code"] == "bad_request", msg
        await ws.send_message('{"type": "submit", "ref": "r1", "intent": {"kind": "chat", "prompt": "\\ud800"}}')
        msg = await recv(ws)
        assert msg["code"] == "bad_request" and "surrogate" in msg["message"], msg
        await ws.send_message('{"type": "hello", "user": "bob\\udfff"}')
        assert (await recv(ws))["code"] == "bad_request"
        # still open and working
        await ws.send_message(json.dumps({"type": "submit", "ref": "r2", "intent": {"kind": "chat", "prompt": "fine"}}))
        with trio.fail_after(10):
            assert (await recv(ws, "result"))["text"] == "fine"
