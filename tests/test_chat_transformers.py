"""The real transformers chat backend on a tiny random Llama loaded through from_pretrained."""

import pytest
import trio

from mtor_node.backends import ModelSpec, backend_class
from mtor_node.intents import Intent


@pytest.fixture
async def backend(tiny_chat_model, tmp_path):
    spec = ModelSpec(name="tiny", kind="chat", backend="transformers-chat", source=str(tiny_chat_model))
    b = backend_class("transformers-chat")(spec, str(tmp_path))
    await trio.to_thread.run_sync(b.load_sync, lambda *a: None)
    return b


def chat(text, **params):
    i = Intent(kind="chat", messages=[{"role": "user", "content": text}], params=params)
    i.validate()
    return i


async def run(backend, intent):
    events = []

    async def emit(e):
        events.append(e)

    with trio.fail_after(60):
        result = await backend.run(intent, emit)
    return result, events


async def test_streams_tokens_that_add_up_to_the_result(backend):
    result, events = await run(backend, chat("What is the capital of France?", max_tokens=12, temperature=0))
    chunks = [e["text"] for e in events if e["type"] == "chunk"]
    assert chunks and "".join(chunks) == result["text"]
    assert 1 <= result["units"] <= 12 and result["usage"]["completion_tokens"] == result["units"]
    assert backend.describe() == {"device": "cpu", "dtype": "float32"}


async def test_greedy_is_deterministic_and_sampling_takes_a_seed(backend):
    a, _ = await run(backend, chat("hello", max_tokens=8, temperature=0))
    b, _ = await run(backend, chat("hello", max_tokens=8, temperature=0))
    assert a["text"] == b["text"]
    c, _ = await run(backend, chat("hello", max_tokens=8, temperature=1.5, top_p=0.9, seed=7))
    d, _ = await run(backend, chat("hello", max_tokens=8, temperature=1.5, top_p=0.9, seed=7))
    assert c["text"] == d["text"]


async def test_stop_string_cuts_the_answer(backend):
    full, _ = await run(backend, chat("hello", max_tokens=20, temperature=0))
    text = full["text"]
    if len(text) < 4:
        pytest.skip("the random model answered too little to cut")
    stop = text[2:4]
    cut, events = await run(backend, chat("hello", max_tokens=20, temperature=0, stop=[stop]))
    assert cut["text"] == text[: text.find(stop)]
    assert "".join(e["text"] for e in events if e["type"] == "chunk") == cut["text"]
    assert cut["finish_reason"] == "stop"


async def test_cancel_returns_at_once_mid_generation(backend):
    got_chunk = trio.Event()

    async def emit(e):
        got_chunk.set()

    with trio.move_on_after(30) as outer:
        async with trio.open_nursery() as n:
            n.start_soon(backend.run, chat("hello", max_tokens=4000, temperature=1.0), emit)
            await got_chunk.wait()
            n.cancel_scope.cancel()  # 4000 tokens would take far longer than the bound above
    assert not outer.cancelled_caught


def test_conversion_leftovers_of_dead_processes_are_removed(tmp_path):
    """A crash or Ctrl-C mid-conversion leaves a temporary checkpoint; the next conversion removes it
    (and leaves one that a running process is still writing)."""
    import os

    from mtor_node.backends.chat_transformers import _remove_leftovers

    dead = tmp_path / ".SmolLM2-abc.tmp-999999999"
    busy = tmp_path / f".SmolLM2-abc.tmp-{os.getppid()}"
    keep = tmp_path / "SmolLM2-abc"
    for d in (dead, busy, keep):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"x" * 100)
    _remove_leftovers(tmp_path)
    assert not dead.exists() and busy.exists() and keep.exists()
