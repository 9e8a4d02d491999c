"""The official `openai` client on what issue 16 found missing: n, stop, seed, model defaults, real
prompt counts, refused fields, /v1/completions, models.retrieve, every transcript and speech format."""

from __future__ import annotations

import io

import av
import openai
import pytest
import trio
from openai import OpenAI

from tests.conftest import running_node
from tests.ui.ui_backend import silent_wav
from ui.audio_formats import to_srt, to_vtt


def client(node) -> OpenAI:
    return OpenAI(base_url=node.http_url + "/v1", api_key="unused-on-loopback", max_retries=0, timeout=30)


async def in_thread(fn):
    with trio.fail_after(60):
        return await trio.to_thread.run_sync(fn)


def refused(fn):
    try:
        fn()
    except openai.BadRequestError as e:
        return e
    raise AssertionError("not refused")


MSG = [{"role": "user", "content": "one two three"}]


async def test_n_choices_and_refused_fields(ui_node):
    c = client(ui_node)
    r = await in_thread(lambda: c.chat.completions.create(model="echo-chat", messages=MSG, n=3))
    assert [ch.index for ch in r.choices] == [0, 1, 2] and {ch.message.content for ch in r.choices} == {"one two three"}
    assert r.usage.completion_tokens == 9

    chunks = await in_thread(lambda: list(c.chat.completions.create(model="echo-chat", messages=MSG, n=2, stream=True,
                                                                   stream_options={"include_usage": True})))
    by_index: dict[int, str] = {}
    for ch in chunks:
        for choice in ch.choices:
            by_index[choice.index] = by_index.get(choice.index, "") + (choice.delta.content or "")
    assert by_index == {0: "one two three", 1: "one two three"} and chunks[-1].usage.completion_tokens == 6

    for kwargs, param in [({"n": 5}, "n"), ({"logprobs": True}, "logprobs"),
                          ({"response_format": {"type": "json_object"}}, "response_format"),
                          ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
                          ({"presence_penalty": 0.5}, "presence_penalty")]:
        e = await in_thread(lambda: refused(lambda: c.chat.completions.create(model="echo-chat", messages=MSG, **kwargs)))
        assert e.body["param"] == param and param in e.message, (kwargs, e.body)
    # tools the model may not call change nothing: accepted
    ok = await in_thread(lambda: c.chat.completions.create(model="echo-chat", messages=MSG, tool_choice="none",
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]))
    assert ok.choices[0].message.content == "one two three"


async def test_completions_and_models_retrieve(ui_node):
    c = client(ui_node)
    r = await in_thread(lambda: c.completions.create(model="echo-chat", prompt="finish this sentence"))
    assert r.object == "text_completion" and r.choices[0].text == "finish this sentence"
    assert r.choices[0].finish_reason == "stop" and r.usage.completion_tokens == 3
    parts = await in_thread(lambda: list(c.completions.create(model="echo-chat", prompt="two words", stream=True, max_tokens=1)))
    assert "".join(p.choices[0].text for p in parts) == "two" and parts[-1].choices[0].finish_reason == "length"
    e = await in_thread(lambda: refused(lambda: c.completions.create(model="echo-chat", prompt="x", echo=True)))
    assert e.body["param"] == "echo"

    m = await in_thread(lambda: c.models.retrieve("echo-chat"))
    assert m.id == "echo-chat" and m.object == "model"

    def missing():
        try:
            c.models.retrieve("gpt-nope")
        except openai.NotFoundError as e:
            return e
    e = await in_thread(missing)
    assert e is not None and "gpt-nope" in e.message


async def test_transcripts_in_every_format(ui_node):
    c = client(ui_node)
    wav = silent_wav(0.5)
    expected = f"{len(wav)} bytes of audio"  # the echo backend's answer

    def tr(fmt):
        return c.audio.transcriptions.create(model="whisper-1", file=("a.wav", io.BytesIO(wav), "audio/wav"), response_format=fmt)
    assert (await in_thread(lambda: tr("json"))).text == expected
    assert str(await in_thread(lambda: tr("text"))).strip() == expected
    verbose = await in_thread(lambda: tr("verbose_json"))
    assert verbose.text == expected and verbose.segments == []
    srt = str(await in_thread(lambda: tr("srt")))
    assert srt.startswith("1\n00:00:00,000 --> ") and expected in srt
    vtt = str(await in_thread(lambda: tr("vtt")))
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ") and expected in vtt


def test_subtitles_from_segments():
    result = {"text": "hello world", "segments": [{"start": 0.0, "end": 1.25, "text": " hello"},
                                                   {"start": 61.5, "end": 3725.004, "text": "world"}]}
    assert to_srt(result) == "1\n00:00:00,000 --> 00:00:01,250\nhello\n\n2\n00:01:01,500 --> 01:02:05,004\nworld\n\n"
    assert to_vtt(result) == "WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nhello\n\n00:01:01.500 --> 01:02:05.004\nworld\n\n"


SPEECH = {"mp3": ("mp3", "audio/mpeg"), "opus": ("ogg", "audio/ogg"), "aac": ("aac", "audio/aac"),
          "flac": ("flac", "audio/flac"), "wav": ("wav", "audio/wav")}


async def test_speech_in_every_format(ui_node):
    c = client(ui_node)

    def speak(**kw):
        r = c.audio.speech.create(model="tts-1", voice="alloy", input="hello", **kw)
        return r.response.headers["content-type"], r.read()

    ctype, audio = await in_thread(speak)  # no format asked: mp3, like OpenAI
    assert ctype == "audio/mpeg" and av.open(io.BytesIO(audio)).format.name == "mp3"
    for fmt, (container, mime) in SPEECH.items():
        ctype, audio = await in_thread(lambda: speak(response_format=fmt))
        with av.open(io.BytesIO(audio)) as f:
            assert ctype == mime and f.format.name == container, fmt
            assert sum(fr.samples for fr in f.decode(audio=0)) > 0
    ctype, pcm = await in_thread(lambda: speak(response_format="pcm"))
    # the ui-echo voice is 0.2 s of 16 kHz silence; OpenAI's pcm is 24 kHz 16-bit mono
    assert ctype == "audio/pcm" and abs(len(pcm) - 0.2 * 24000 * 2) <= 2 * 64


@pytest.fixture
async def tiny_node(tmp_path, tiny_chat_model):
    models = {"tiny": {"kind": "chat", "backend": "transformers-chat", "source": str(tiny_chat_model), "default": True}}
    async with running_node(tmp_path / "n", models) as node:
        yield node


async def test_real_model_defaults_counts_stop_seed(tiny_node):
    """The tiny Llama: no temperature sent means the model's default (greedy here), not OpenAI's 1.0."""
    c = client(tiny_node)
    ask = lambda **kw: c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hello world"}],  # noqa: E731
                                                 max_tokens=12, **kw)
    a, b = await in_thread(ask), await in_thread(ask)
    assert a.choices[0].message.content == b.choices[0].message.content  # greedy: the same answer
    assert a.usage.prompt_tokens > 3 and a.usage.completion_tokens == 12 and a.choices[0].finish_reason == "length"

    text = a.choices[0].message.content
    stop = text[len(text) // 2: len(text) // 2 + 2]
    if stop.strip():
        cut = await in_thread(lambda: ask(stop=[stop]))
        assert cut.choices[0].message.content == text[: text.index(stop)] and cut.choices[0].finish_reason == "stop"

    s1 = await in_thread(lambda: ask(temperature=1.0, seed=7))
    s2 = await in_thread(lambda: ask(temperature=1.0, seed=7))
    assert s1.choices[0].message.content == s2.choices[0].message.content  # a seed makes sampling repeatable
