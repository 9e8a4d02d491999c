"""The official `ollama` Python client against the Ollama-compatible endpoints of a real node.

Echo models give exact shapes; the tiny Llama built by the tests shows real token counts.
"""

from __future__ import annotations

import base64

import httpx
import ollama
import pytest
import trio

from tests.conftest import running_node
from tests.ui.ui_backend import tiny_png


def client(node) -> ollama.Client:
    return ollama.Client(host=node.http_url, timeout=20)


async def in_thread(fn):
    """The client is synchronous: run it off the trio loop that serves the node."""
    with trio.fail_after(30):
        return await trio.to_thread.run_sync(fn)


async def test_chat_streaming_and_not(ui_node):
    c = client(ui_node)
    parts = await in_thread(lambda: list(c.chat(model="echo-chat", stream=True,
                                                messages=[{"role": "user", "content": "streams one word at a time"}])))
    assert "".join(p.message.content for p in parts) == "streams one word at a time"
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert len(parts) == 7  # six words, then the closing object
    last = parts[-1]
    assert last.done_reason == "stop" and last.eval_count == 6 and last.model == "echo-chat"
    assert last.message.role == "assistant" and last.total_duration > 0

    r = await in_thread(lambda: c.chat(model="echo-chat:latest", messages=[{"role": "user", "content": "just once"}],
                                       options={"num_predict": 1}))
    assert r.done and r.message.content == "just" and r.done_reason == "length"

    # an image in a message goes to the vision model
    png = base64.b64encode(tiny_png()).decode()
    v = await in_thread(lambda: c.chat(model="echo-vision", messages=[{"role": "user", "content": "what is this", "images": [png]}]))
    assert v.message.content == "what is this"


async def test_generate_list_show_ps_version(ui_node):
    c = client(ui_node)
    g = await in_thread(lambda: c.generate(model="echo-chat", prompt="a whole sentence here"))
    assert g.response == "a whole sentence here" and g.done and g.eval_count == 4
    parts = await in_thread(lambda: list(c.generate(model="echo-chat", prompt="two words", stream=True)))
    assert [p.response for p in parts] == ["two", " words", ""]

    listed = await in_thread(c.list)
    names = {m.model for m in listed.models}
    assert {"echo-chat:latest", "echo-vision:latest"} <= names
    assert "echo-speak:latest" not in names  # Ollama lists language models only

    shown = await in_thread(lambda: c.show("echo-chat"))
    assert shown.capabilities == ["completion"] and "temperature 0.0" in shown.parameters
    vision = await in_thread(lambda: c.show("echo-vision"))
    assert "vision" in vision.capabilities

    running = await in_thread(c.ps)
    assert {m.model for m in running.models} <= names
    async with httpx.AsyncClient(base_url=ui_node.http_url) as h:
        assert (await h.get("/api/version")).json()["version"].count(".") == 2


async def test_errors_in_ollama_shape(ui_node):
    c = client(ui_node)

    def expect_error(fn):
        try:
            fn()
        except ollama.ResponseError as e:
            return e
        raise AssertionError("no error")

    e = await in_thread(lambda: expect_error(lambda: c.chat(model="nope", messages=[{"role": "user", "content": "x"}])))
    assert e.status_code == 404 and "nope" in e.error
    e = await in_thread(lambda: expect_error(lambda: c.show("nope")))
    assert e.status_code == 404
    e = await in_thread(lambda: expect_error(lambda: c.chat(model="echo-chat", messages=[{"role": "user", "content": "x"}],
                                                             format="json")))
    assert e.status_code == 400 and "format" in e.error
    e = await in_thread(lambda: expect_error(lambda: c.chat(
        model="echo-chat", messages=[{"role": "user", "content": "x"}],
        tools=[{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}}])))
    assert e.status_code == 400 and "tool" in e.error
    e = await in_thread(lambda: expect_error(lambda: c.chat(model="echo-chat", messages=[{"role": "user", "content": "x"}],
                                                             options={"temperature": 9})))
    assert e.status_code == 400 and "temperature" in e.error
    # a sampling option the serving engine (echo here) does not take is refused, not dropped
    e = await in_thread(lambda: expect_error(lambda: c.chat(model="echo-chat", messages=[{"role": "user", "content": "x"}],
                                                             options={"top_k": 5})))
    assert e.status_code == 400 and "top_k" in e.error
    ok = await in_thread(lambda: c.chat(model="echo-chat", messages=[{"role": "user", "content": "x"}],
                                        options={"num_ctx": 4096, "repeat_penalty": 1.0}))  # hints, neutral values
    assert ok.message.content == "x"
    async with httpx.AsyncClient(base_url=ui_node.http_url) as h:
        r = await h.post("/api/chat", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "error" in r.json()


async def test_real_model_counts_tokens(tmp_path, tiny_chat_model):
    """The tiny Llama through /api/chat: real prompt and output token counts."""
    models = {"tiny": {"kind": "chat", "backend": "transformers-chat", "source": str(tiny_chat_model), "default": True}}
    async with running_node(tmp_path / "n", models) as node:
        c = client(node)
        r = await in_thread(lambda: c.chat(model="tiny", messages=[{"role": "user", "content": "hello world"}],
                                           options={"num_predict": 5}))
        assert r.done and r.prompt_eval_count > 3 and 1 <= r.eval_count <= 5
