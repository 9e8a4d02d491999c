"""Claude and Hugging Face as workers, against stand-ins on 127.0.0.1 that answer as Anthropic's
Messages API and Hugging Face's OpenAI-compatible router document (no internet here, no paid keys)."""

from __future__ import annotations

import logging

import anthropic
import pytest
import trio

from mtor_node.backends import BackendError
from mtor_node.intents import Intent
from tests.conftest import running_node

from backend_helpers import load_backend, run_intent
from fake_servers import anthropic_app, openai_app, serve, solid_png

KEY = "sk-ant-test"


async def claude(url, model="claude-test", **options):
    return await load_backend("anthropic", options.pop("kind", "chat"), url, "", name="claude",
                              options={"model": model, **options})


def chat(text="hi", **params) -> Intent:
    return Intent(kind="chat", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": text}],
                  params={"max_tokens": 16, **params})


async def test_chat_streams_and_counts(caplog):
    caplog.set_level(logging.DEBUG)
    app = anthropic_app()
    async with serve(app) as url:
        b = await claude(url, api_key=KEY)
        result, rec = await run_intent(b, chat())
    assert rec.text == "Hello from Claude" == result["text"] and len(rec.of("chunk")) == 3
    assert result["usage"] == {"prompt_tokens": 21, "completion_tokens": 3} and result["units"] == 3
    assert result["finish_reason"] == "stop"
    sent = app.requests[0]
    assert sent["headers"]["x-api-key"] == KEY and sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["body"]["system"] == "be brief" and sent["body"]["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["body"]["stream"] is True and "temperature" not in sent["body"]
    assert KEY not in caplog.text and KEY not in str(b.describe())  # never logged or described


async def test_vision_and_max_tokens():
    app = anthropic_app()
    async with serve(app) as url:
        b = await claude(url, kind="vision", api_key=KEY)
        png = solid_png(8, 8)
        result, _ = await run_intent(b, Intent(kind="vision", prompt="what is this", image=png, params={"max_tokens": 2}))
    assert result["text"] == "An image" and result["finish_reason"] == "length"
    block = app.requests[0]["body"]["messages"][0]["content"][0]
    assert block["type"] == "image" and block["source"]["media_type"] == "image/png"


async def test_key_errors(monkeypatch):
    app = anthropic_app()
    async with serve(app) as url:
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
        b = await claude(url)
        with pytest.raises(BackendError) as e:
            await run_intent(b, chat())
        assert e.value.code == "unauthorized" and "ANTHROPIC_API_KEY" in e.value.message
        assert app.requests == []  # failed before any request

        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong")
        with pytest.raises(BackendError) as e:
            await run_intent(await claude(url), chat())
        assert e.value.code == "unauthorized" and "invalid x-api-key" in e.value.message
        assert "sk-ant-wrong" not in e.value.message
        h = await (await claude(url)).health()
        assert not h["ok"] and "refused the API key" in h["error"]

        monkeypatch.setenv("MY_CLAUDE_KEY", KEY)  # a key from a named variable
        result, _ = await run_intent(await claude(url, api_key_env="MY_CLAUDE_KEY"), chat())
        assert result["text"] == "Hello from Claude"


async def test_unknown_model_and_health():
    async with serve(anthropic_app()) as url:
        with pytest.raises(BackendError) as e:
            await run_intent(await claude(url, model="claude-nope", api_key=KEY), chat())
        assert e.value.code == "unavailable" and "claude-nope" in e.value.message
        good = await (await claude(url, api_key=KEY)).health()
        assert good["ok"] and good["serves"] and good["kinds"] == ["chat", "vision"]
        bad = await (await claude(url, model="claude-nope", api_key=KEY)).health()
        assert bad["ok"] and not bad["serves"] and "claude-nope" in bad["error"]


async def test_rate_limit_honours_retry_after():
    app = anthropic_app(rate_limited=1, retry_after="1")
    async with serve(app) as url:
        result, _ = await run_intent(await claude(url, api_key=KEY), chat())
        assert result["text"] == "Hello from Claude" and len(app.requests) == 2
        assert app.requests[1]["at"] - app.requests[0]["at"] >= 1.0  # waited as told (a lower bound only)

        app.rate_limited = 10
        with pytest.raises(BackendError) as e:
            await run_intent(await claude(url, api_key=KEY, max_retries=1, max_retry_wait_s=0.1), chat())
        assert e.value.code == "busy" and e.value.retryable and "rate limit" in e.value.message


async def test_error_event_mid_stream():
    async with serve(anthropic_app()) as url:
        with pytest.raises(BackendError) as e:
            await run_intent(await claude(url, api_key=KEY), chat("overload midway"))
    assert "overloaded_error" in e.value.message


async def test_claude_worker_in_a_node(tmp_path):
    """A node whose chat model is Claude (the stand-in): the Anthropic client through the node's own
    /v1/messages, routed to the worker, answered from the stand-in; priced like any chat worker."""
    async with serve(anthropic_app()) as url:
        models = {"claude": {"kind": "chat", "backend": "anthropic", "source": url, "default": True,
                             "options": {"model": "claude-test", "api_key": KEY}},
                  "claude-wrong-key": {"kind": "chat", "backend": "anthropic", "source": url,
                                       "options": {"model": "claude-test", "api_key": "sk-ant-wrong"}}}
        async with running_node(tmp_path / "n", models, prices={"chat": 1000}) as node:
            c = anthropic.Anthropic(base_url=node.http_url, api_key="x", max_retries=0, timeout=30)
            with trio.fail_after(30):
                m = await trio.to_thread.run_sync(lambda: c.messages.create(
                    model="claude", max_tokens=32, messages=[{"role": "user", "content": "hi"}]))
            assert m.content[0].text == "Hello from Claude" and m.usage.input_tokens == 21
            with trio.fail_after(15):  # the health check the node runs at start and every 30 s, now
                await node.models._check_remote(node.models.states["claude-wrong-key"])
            states = {s["name"]: s for s in node.status()["models"]}
            assert states["claude"]["status"] != "unavailable"
            assert states["claude-wrong-key"]["status"] == "unavailable"
            assert "refused the API key" in states["claude-wrong-key"]["error"]
            assert node.config["prices.chat"] == 1000


HF_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


async def test_hugging_face_router_through_the_openai_backend(monkeypatch):
    """The documented configuration (docs/api.md): backend openai, the router's /v1 URL, the model
    id, the token from HF_TOKEN; a wrong token is a clear 401."""
    app = openai_app(models=(HF_MODEL,), api_key="hf_test")
    async with serve(app) as url:
        monkeypatch.setenv("HF_TOKEN", "hf_test")
        b = await load_backend("openai", "chat", url + "/v1", "", name="llama-hf",
                               options={"model": HF_MODEL, "api_key_env": "HF_TOKEN"})
        result, rec = await run_intent(b, chat())
        assert rec.text == "Hello from an OpenAI-compatible server" and app.requests[-1]["model"] == HF_MODEL
        assert (await b.health())["serves"]
        monkeypatch.setenv("HF_TOKEN", "hf_wrong")
        with pytest.raises(BackendError) as e:
            await run_intent(b, chat())
        assert e.value.code == "unauthorized" and "Incorrect API key" in e.value.message
