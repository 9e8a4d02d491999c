"""The broker on a real node: fairness, cancel, concurrency, timeouts, shutdown mid-intent."""

import httpx
import pytest
import trio

from mtor_node.intents import Intent, IntentError

from tests.conftest import running_node

SLOW_ECHO = {"slow-chat": {"kind": "chat", "backend": "echo", "concurrency": 1, "default": True,
                           "options": {"delay_s": 0.05}}}


def chat(text, user="u", **kw):
    return Intent(kind="chat", messages=[{"role": "user", "content": text}], user=user, **kw)


async def final_event(ticket):
    with trio.fail_after(20):
        events = [e async for e in ticket.events]
    assert events[-1]["type"] in ("result", "error")
    return events


async def test_echo_intent_streams_and_is_recorded(tmp_path):
    async with running_node(tmp_path) as node:
        intent = chat("hello brave new grid")
        intent.validate()
        events = await final_event(node.broker.submit(intent))
        kinds = [e["type"] for e in events]
        assert kinds[0] == "queued" and "started" in kinds and kinds[-1] == "result"
        assert "".join(e["text"] for e in events if e["type"] == "chunk") == "hello brave new grid"
        assert node.store.history()[0]["status"] == "done"


async def test_round_robin_between_two_users(tmp_path):
    async with running_node(tmp_path, SLOW_ECHO) as node:
        order = []
        tickets = [node.broker.submit(_v(chat("a" + str(i), user="alice", id=f"a{i}"))) for i in range(4)]
        tickets += [node.broker.submit(_v(chat("b" + str(i), user="bob", id=f"b{i}"))) for i in range(2)]

        async def watch(t):
            async for e in t.events:
                if e["type"] == "started":
                    order.append(t.intent.id)

        async with trio.open_nursery() as n:
            for t in tickets:
                n.start_soon(watch, t)
        # concurrency 1: a0 started at once; then the queue alternates users
        assert order == ["a0", "b0", "a1", "b1", "a2", "a3"]


def _v(intent):
    intent.validate()
    return intent


async def test_two_intents_in_flight_at_once(tmp_path):
    models = {"c": {"kind": "chat", "backend": "echo", "concurrency": 2, "default": True, "options": {"delay_s": 0.2}}}
    async with running_node(tmp_path, models) as node:
        t1 = node.broker.submit(_v(chat("one two", user="x")))
        t2 = node.broker.submit(_v(chat("three four", user="y")))
        with trio.fail_after(10):
            while node.broker.inflight < 2:
                await trio.sleep(0.01)
        assert node.models.states["c"].inflight == 2
        await final_event(t1)
        await final_event(t2)


async def test_cancel_queued_and_running(tmp_path):
    async with running_node(tmp_path, SLOW_ECHO) as node:
        long = " ".join(["w"] * 200)
        running = node.broker.submit(_v(chat(long, user="a", params={"max_tokens": 200})))
        queued = node.broker.submit(_v(chat("x", user="b")))
        with trio.fail_after(5):
            async for e in running.events:
                if e["type"] == "chunk":
                    break
        assert node.broker.cancel(queued.intent.id)
        assert node.broker.cancel(running.intent.id)
        assert (await final_event(queued))[-1]["code"] == "cancelled"
        assert (await final_event(running))[-1]["code"] == "cancelled"
        assert node.broker.inflight == 0 and len(node.broker.queue) == 0
        assert node.models.states["slow-chat"].inflight == 0


async def test_per_intent_timeout(tmp_path):
    async with running_node(tmp_path, SLOW_ECHO) as node:
        t = node.broker.submit(_v(chat(" ".join(["w"] * 100), timeout=0.3, params={"max_tokens": 100})))
        last = (await final_event(t))[-1]
        assert last["code"] == "timeout" and "0.3 s" in last["message"]
        assert node.models.states["slow-chat"].inflight == 0


async def test_queue_full(tmp_path):
    async with running_node(tmp_path, SLOW_ECHO, queue={"max_size": 2}) as node:
        for i in range(3):  # the first starts, two wait
            node.broker.submit(_v(chat(" ".join(["w"] * 50), user=f"u{i}", params={"max_tokens": 50})))
            with trio.fail_after(5):
                while i == 0 and node.broker.inflight == 0:
                    await trio.sleep(0.01)
        with pytest.raises(IntentError) as e:
            node.broker.submit(_v(chat("one too many")))
        assert e.value.code == "queue_full"


async def test_banned_user_is_refused(tmp_path):
    async with running_node(tmp_path) as node:
        node.store.set_banned("mallory", True)
        with pytest.raises(IntentError, match="banned"):
            node.broker.submit(_v(chat("hi", user="mallory")))


async def test_shutdown_mid_intent_gives_an_error_over_http(tmp_path):
    async with running_node(tmp_path, SLOW_ECHO) as node:
        url = node.http_url
        body = {"kind": "chat", "messages": [{"role": "user", "content": " ".join(["w"] * 300)}], "params": {"max_tokens": 300}}
        events = []
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            async with client.stream("POST", "/api/v1/intents?stream=1", json=body) as r:
                async for line in r.aiter_lines():
                    if not line:
                        continue
                    events.append(line)
                    if len(events) == 4:
                        with trio.fail_after(5):
                            await node.stop()
        assert '"code": "cancelled"' in events[-1] and "shutting down" in events[-1]


async def test_http_api_errors_are_clear(tmp_path):
    async with running_node(tmp_path) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
            r = await client.post("/api/v1/intents", json={"kind": "dance"})
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad_kind"
            r = await client.post("/api/v1/intents", content=b"\xff not json")
            assert r.status_code == 400
            r = await client.post("/api/v1/intents", json={"kind": "chat", "messages": [{"role": "user", "content": "x"}], "params": {"temperature": 9}})
            assert r.status_code == 400 and "temperature" in r.json()["error"]["message"]
            r = await client.post("/api/v1/intents", json={"kind": "vision", "prompt": "x", "image_b64": "@@@"})
            assert r.status_code == 400 and "base64" in r.json()["error"]["message"]
            r = await client.get("/api/v1/nope")
            assert r.status_code == 404
            r = await client.post("/api/v1/shutdown")
            assert r.status_code == 403
            r = await client.post("/api/v1/intents", json={"kind": "chat", "prompt": "hi there"})
            assert r.status_code == 200 and r.json()["text"] == "hi there"
