"""The official `openai` client against the OpenAI-compatible endpoints (echo models: the shapes)."""

from __future__ import annotations

import base64
import io
import wave

import trio
from openai import OpenAI

from tests.ui.ui_backend import silent_wav


def client(node) -> OpenAI:
    return OpenAI(base_url=node.http_url + "/v1", api_key="unused-on-loopback", max_retries=0, timeout=20)


async def in_thread(fn):
    """The client is synchronous: run it off the trio loop that serves the node."""
    with trio.fail_after(30):
        return await trio.to_thread.run_sync(fn)


async def test_chat_streaming_and_plain(ui_node):
    c = client(ui_node)

    def stream():
        chunks = list(c.chat.completions.create(model="echo-chat", stream=True,
                                                messages=[{"role": "user", "content": "streams one word at a time"}]))
        return chunks

    chunks = await in_thread(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "streams one word at a time"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len(chunks) >= 6  # role, five words, finish: really streamed
    assert chunks[0].object == "chat.completion.chunk"

    done = await in_thread(lambda: c.chat.completions.create(
        model="echo-chat", messages=[{"role": "user", "content": "just once"}], max_tokens=1))
    assert done.object == "chat.completion"
    assert done.choices[0].message.content == "just"
    assert done.choices[0].finish_reason == "length"
    assert done.usage.completion_tokens == 1

    # the default model, and a vision request in OpenAI's content-parts form
    png = base64.b64encode(b"\x89PNG not really").decode()
    vis = await in_thread(lambda: c.chat.completions.create(model="default", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]}]))
    assert vis.choices[0].message.content == "what is this"


async def test_errors_in_openai_shape(ui_node):
    import openai

    c = client(ui_node)

    def unknown_model():
        try:
            c.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "x"}])
        except openai.APIStatusError as e:
            return e
    e = await in_thread(unknown_model)
    assert e.status_code == 404 and "gpt-nope" in e.message

    def bad_temperature():
        try:
            c.chat.completions.create(model="echo-chat", messages=[{"role": "user", "content": "x"}], temperature=9)
        except openai.BadRequestError as e:
            return e
    e = await in_thread(bad_temperature)
    assert "temperature" in e.message


async def test_images(ui_node):
    c = client(ui_node)
    r = await in_thread(lambda: c.images.generate(prompt="a lighthouse", n=2, size="64x64"))
    assert len(r.data) == 2
    assert base64.b64decode(r.data[0].b64_json).startswith(b"\x89PNG")


async def test_transcription(ui_node):
    c = client(ui_node)
    wav = silent_wav(0.5)
    r = await in_thread(lambda: c.audio.transcriptions.create(model="whisper-1", file=("speech.wav", io.BytesIO(wav), "audio/wav")))
    assert r.text == f"{len(wav)} bytes of audio"  # the echo backend's answer
    text = await in_thread(lambda: c.audio.transcriptions.create(
        model="whisper-1", file=("speech.wav", io.BytesIO(wav), "audio/wav"), response_format="text"))
    assert str(text).strip() == f"{len(wav)} bytes of audio"


async def test_speech(ui_node):
    c = client(ui_node)

    def speak():
        r = c.audio.speech.create(model="tts-1", voice="alloy", input="hello", response_format="wav")
        return r.response.headers["content-type"], r.read()
    ctype, audio = await in_thread(speak)
    assert ctype == "audio/wav"
    with wave.open(io.BytesIO(audio)) as w:
        assert w.getnchannels() == 1 and w.getnframes() > 0


async def test_models(ui_node):
    c = client(ui_node)
    models = await in_thread(lambda: c.models.list())
    ids = {m.id for m in models.data}
    assert {"echo-chat", "echo-vision", "echo-imagine", "echo-transcribe", "echo-speak"} <= ids
