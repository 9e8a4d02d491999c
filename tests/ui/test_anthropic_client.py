"""The official `anthropic` client against the node's Anthropic-compatible Messages API (/v1/messages)."""

from __future__ import annotations

import base64

import anthropic
import httpx
import trio

from tests.ui.ui_backend import tiny_png


def client(node) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=node.http_url, api_key="unused-on-loopback", max_retries=0, timeout=20)


async def in_thread(fn):
    with trio.fail_after(30):
        return await trio.to_thread.run_sync(fn)


async def test_messages_plain_and_streaming(ui_node):
    c = client(ui_node)
    m = await in_thread(lambda: c.messages.create(model="echo-chat", max_tokens=64, system="be brief",
                                                  messages=[{"role": "user", "content": "hello there"}]))
    assert m.type == "message" and m.role == "assistant" and m.model == "echo-chat"
    assert [b.text for b in m.content] == ["hello there"]
    assert m.stop_reason == "end_turn" and m.usage.output_tokens == 2

    cut = await in_thread(lambda: c.messages.create(model="echo-chat", max_tokens=1,
                                                    messages=[{"role": "user", "content": "one two three"}]))
    assert cut.content[0].text == "one" and cut.stop_reason == "max_tokens"

    def stream():
        with c.messages.stream(model="echo-chat", max_tokens=64,
                               messages=[{"role": "user", "content": [{"type": "text", "text": "streams one word at a time"}]}]) as s:
            kinds = [e.type for e in s]
            return kinds, s.get_final_message()
    kinds, final = await in_thread(stream)
    # Anthropic's documented sequence (the SDK adds its own 'text' events beside the deltas)
    wire = [k for k in kinds if k != "text"]
    assert wire == ["message_start", "content_block_start"] + ["content_block_delta"] * 6 + \
        ["content_block_stop", "message_delta", "message_stop"], kinds
    assert final.content[0].text == "streams one word at a time" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 6

    png = base64.b64encode(tiny_png()).decode()
    v = await in_thread(lambda: c.messages.create(model="default", max_tokens=32, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "text", "text": "what is this"}]}]))
    assert v.content[0].text == "what is this"  # the echo vision model got the image and the question


async def test_ping_is_on_the_wire(ui_node):
    """The raw stream has Anthropic's ping after content_block_start (the SDK does not surface it)."""
    body = {"model": "echo-chat", "max_tokens": 8, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=ui_node.http_url, timeout=20) as h:
        r = await h.post("/v1/messages", json=body)
    events = [line.removeprefix("event: ") for line in r.text.splitlines() if line.startswith("event: ")]
    assert events == ["message_start", "content_block_start", "ping", "content_block_delta",
                      "content_block_stop", "message_delta", "message_stop"]


async def test_errors_in_anthropic_shape(ui_node):
    c = client(ui_node)

    def expect(fn):
        try:
            fn()
        except anthropic.APIStatusError as e:
            return e
        raise AssertionError("no error")

    e = await in_thread(lambda: expect(lambda: c.messages.create(model="claude-nope", max_tokens=8,
                                                                 messages=[{"role": "user", "content": "x"}])))
    assert isinstance(e, anthropic.NotFoundError) and "claude-nope" in str(e)
    assert e.body["type"] == "error" and e.body["error"]["type"] == "not_found_error"
    e = await in_thread(lambda: expect(lambda: c.messages.create(
        model="echo-chat", max_tokens=8, messages=[{"role": "user", "content": "x"}],
        tools=[{"name": "f", "description": "d", "input_schema": {"type": "object"}}])))
    assert isinstance(e, anthropic.BadRequestError) and "tools" in e.body["error"]["message"]
    e = await in_thread(lambda: expect(lambda: c.messages.create(model="echo-chat", max_tokens=8, extra_body={"temperature": 5},
                                                                 messages=[{"role": "user", "content": "x"}])))
    assert isinstance(e, anthropic.BadRequestError) and "temperature" in e.body["error"]["message"]
    e = await in_thread(lambda: expect(lambda: c.messages.create(
        model="echo-chat", max_tokens=8, messages=[{"role": "user", "content": "x"}],
        output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}})))
    assert isinstance(e, anthropic.BadRequestError) and "output_config.format" in e.body["error"]["message"]
    async with httpx.AsyncClient(base_url=ui_node.http_url) as h:
        r = await h.post("/v1/messages", json={"model": "echo-chat", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error" and "max_tokens" in r.text
