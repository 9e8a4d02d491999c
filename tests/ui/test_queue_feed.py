"""Queue visibility (issue 17): a page that says hello with "queue": true gets the whole queue live —
waiting and running intents, the limit, a wait estimate — and in chromium the thermometer fills
and the send buttons grey out while the queue is full, and come back when it drains."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.conftest import running_node
from tests.ui.pagekit import with_browser

SLOW = {"echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 1, "default": True, "options": {"delay_s": 0.05}}}
QUEUE = {"max_size": 2, "max_inflight": 1}
LONG = " ".join(f"w{i}" for i in range(40))  # 40 words at 0.05 s: 2 s each


async def fill(url: str, n: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        async def one(i: int) -> None:
            await c.post("/api/v1/intents", json={"kind": "chat", "prompt": LONG, "user": f"u{i}"})

        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)


async def queue_messages(ws, until) -> dict:
    while True:
        m = json.loads(await ws.get_message())
        if m["type"] == "queue" and until(m):
            return m


async def test_pages_that_ask_see_the_queue_fill_and_drain(tmp_path):
    async with running_node(tmp_path / "n", SLOW, queue=QUEUE) as node:
        ws_url = node.http_url.replace("http://", "ws://") + "/ws"
        async with open_websocket_url(ws_url) as ws, open_websocket_url(ws_url) as api_client:
            await ws.send_message(json.dumps({"type": "hello", "user": "watcher", "queue": True}))
            await api_client.send_message(json.dumps({"type": "hello", "user": "client"}))
            with trio.fail_after(20):
                first = await queue_messages(ws, lambda m: True)
            assert first == {"type": "queue", "queued": 0, "max": 2, "running": 0, "slots": 1, "full": False,
                             "wait_s": None}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fill, node.http_url, 3)  # one runs, two wait: full
                with trio.fail_after(30):
                    full = await queue_messages(ws, lambda m: m["full"])
                assert full["queued"] == 2 and full["running"] == 1
                with trio.fail_after(60):
                    await queue_messages(ws, lambda m: m["queued"] == 0 and m["running"] == 0)
            # the estimate comes from the lifetime average of done intents: 2 waves of ~2 s ahead
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fill, node.http_url, 3)
                with trio.fail_after(30):
                    est = await queue_messages(ws, lambda m: m["full"] and m["wait_s"] is not None)
                assert 1.0 <= est["wait_s"] <= 60.0
            # a client that did not ask gets no queue messages: its next message is the pong
            await api_client.send_message(json.dumps({"type": "ping", "t": 1}))
            with trio.fail_after(10):
                assert [json.loads(await api_client.get_message())["type"] for _ in range(2)] == ["welcome", "pong"]


@pytest.mark.slow
async def test_page_greys_sending_while_the_queue_is_full(tmp_path):
    async with running_node(tmp_path / "n", SLOW, queue=QUEUE) as node:
        url = node.http_url
        filled = trio.Event()

        def scenario(page):
            page.wait_for_selector("#queue-text:has-text('queue 0')")
            assert not page.is_disabled("#chat-send")
            trio.from_thread.run_sync(filled.set)
            page.wait_for_selector("#queue-text:has-text('queue full')", timeout=30_000)
            assert page.is_disabled("#chat-send") and page.is_disabled("#imagine-send") and page.is_disabled("#vision-send")
            assert page.get_attribute("#queue-level", "value") == "2"
            page.wait_for_selector("#queue-text:has-text('queue 0')", timeout=60_000)
            assert not page.is_disabled("#chat-send") and not page.is_disabled("#imagine-send")

        async with trio.open_nursery() as nursery:
            async def filler():
                await filled.wait()
                await fill(url, 3)

            nursery.start_soon(filler)
            with trio.fail_after(120):
                await trio.to_thread.run_sync(lambda: with_browser(url, scenario))
