"""The Done-when of issue 16: with each official client's defaults, the embedded chat model
(the packaged SmolLM2, whatever engine serves it) answers "What is the capital of France?" with Paris."""

from __future__ import annotations

import anthropic
import ollama
import pytest
import trio
from openai import OpenAI

from mtor_node.config import _default_models
from tests.conftest import running_node

QUESTION = "What is the capital of France?"


@pytest.mark.slow
async def test_every_client_gets_paris(tmp_path):
    name, entry = next((n, e) for n, e in _default_models().items() if e["kind"] == "chat" and e.get("default"))
    async with running_node(tmp_path / "n", {name: entry}) as node:
        openai_c = OpenAI(base_url=node.http_url + "/v1", api_key="x", max_retries=0, timeout=240)
        ollama_c = ollama.Client(host=node.http_url, timeout=240)
        claude_c = anthropic.Anthropic(base_url=node.http_url, api_key="x", max_retries=0, timeout=240)
        ask = {
            "openai": lambda: openai_c.chat.completions.create(
                model=name, messages=[{"role": "user", "content": QUESTION}]).choices[0].message.content,
            "ollama": lambda: ollama_c.chat(model=name, messages=[{"role": "user", "content": QUESTION}]).message.content,
            "anthropic": lambda: claude_c.messages.create(
                model=name, max_tokens=128, messages=[{"role": "user", "content": QUESTION}]).content[0].text,
        }
        answers = {}
        for client, fn in ask.items():
            with trio.fail_after(300):  # the first answer also loads (and maybe converts) the model
                answers[client] = await trio.to_thread.run_sync(fn)
        assert all("paris" in a.lower() for a in answers.values()), answers
        if entry["backend"] == "llamacpp-chat":  # llama.cpp's own sampling fields pass through every API
            with trio.fail_after(120):
                r = await trio.to_thread.run_sync(lambda: ollama_c.chat(
                    model=name, messages=[{"role": "user", "content": QUESTION}], options={"top_k": 1, "repeat_penalty": 1.1}))
                assert "paris" in r.message.content.lower()
                r = await trio.to_thread.run_sync(lambda: openai_c.chat.completions.create(
                    model=name, messages=[{"role": "user", "content": QUESTION}], presence_penalty=0.1, max_tokens=16))
                assert r.choices[0].message.content
