"""RENT-A-HAL's "welcome back" (issue 13 item 5): on connect a page gets its user's recent queries
and lifetime cost, the system's total cost, the average time per kind, users online now and the
most ever — and never another user's prompts. Over the WebSocket and in chromium."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.conftest import ECHO_MODELS, running_node
from tests.ui.pagekit import with_browser


async def welcome(ws_url: str, user: str) -> dict:
    async with open_websocket_url(ws_url) as ws:
        await ws.send_message(json.dumps({"type": "hello", "user": user}))
        while True:
            m = json.loads(await ws.get_message())
            if m["type"] == "welcome":
                return m["summary"]


async def test_welcome_summary_is_the_users_own(tmp_path):
    async with running_node(tmp_path / "n", ECHO_MODELS) as node:
        ws_url = node.http_url.replace("http://", "ws://") + "/ws"
        async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as c:
            for user, prompt in (("alice", "alice asks one"), ("alice", "alice asks two"), ("bob", "bob's secret")):
                r = await c.post("/api/v1/intents", json={"kind": "chat", "prompt": prompt, "user": user})
                assert r.status_code == 200, r.text
        with trio.fail_after(20):
            w = await welcome(ws_url, "alice")
        assert w["user"]["queries"] == 2
        assert [q["prompt"] for q in w["user"]["recent"]] == ["alice asks two", "alice asks one"]
        assert "bob" not in json.dumps(w)  # no other user's prompt, ever
        assert w["system"]["queries"] == 3 and "chat" in w["system"]["avg_ms"]
        assert w["online_now"] >= 1 and w["most_ever"] >= w["online_now"]
        with trio.fail_after(20):
            assert (await welcome(ws_url, "carol"))["user"] == {"queries": 0, "cost": 0, "recent": []}


@pytest.mark.slow
async def test_page_shows_welcome_back_after_a_reload(tmp_path):
    async with running_node(tmp_path / "n", ECHO_MODELS) as node:
        def scenario(page):
            page.wait_for_selector("#welcome-back:has-text('nothing asked yet')")
            page.fill("#chat-input", "remember me")
            page.keyboard.press("Enter")
            page.wait_for_selector("#chat-log .msg.answer[data-state=done]")
            page.reload()
            page.wait_for_selector("#conn[data-state=open]")
            text = page.inner_text("#welcome-back")
            assert "Welcome back: 1 query" in text and "remember me" in text, text

        with trio.fail_after(120):
            await trio.to_thread.run_sync(lambda: with_browser(node.http_url, scenario))
