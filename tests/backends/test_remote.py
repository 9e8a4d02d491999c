"""Remote adapters (ollama, openai, a1111) against stand-in servers on 127.0.0.1.

The stand-ins in fake_servers.py speak the real servers' wire formats (NDJSON, SSE, multipart, A1111's
JSON and progress endpoint); the real servers cannot run on this machine. No request leaves 127.0.0.1.
"""

from __future__ import annotations

import base64
import io
import wave

import pytest
import trio

from mtor_node.backends import BackendError
from mtor_node.intents import Intent

from backend_helpers import Recorder, load_backend, run_intent
from fake_servers import a1111_app, ollama_app, openai_app, png_size, serve, solid_png


async def remote(backend, kind, url, **options):
    return await load_backend(backend, kind, url, "", name=options.pop("name", "test"), options=options)


# ---------------------------------------------------------------- Ollama


async def test_ollama_chat_and_vision():
    app = ollama_app()
    async with serve(app) as url:
        chat = await remote("ollama", "chat", url, model="llama3.2:1b")
        result, rec = await run_intent(chat, Intent(kind="chat", prompt="hi", params={"temperature": 0.2, "stop": ["\n\n"], "seed": 3}))
        assert [e["text"] for e in rec.of("chunk")] == ["Hello", " from", " ollama", "!"]
        assert result["text"] == "Hello from ollama!" and result["units"] == 4 and result["usage"]["prompt_tokens"] == 7
        sent = app.requests[-1]
        assert sent["stream"] is True and sent["options"]["temperature"] == 0.2 and sent["options"]["stop"] == ["\n\n"]
        assert sent["options"]["seed"] == 3 and sent["options"]["num_predict"] == 256

        vision = await remote("ollama", "vision", url, model="llava:7b")
        image = solid_png(8, 8)
        result, rec = await run_intent(vision, Intent(kind="vision", prompt="what is it?", image=image, params={"max_tokens": 3}))
        assert rec.text == result["text"] == "I see 1"
        assert result["finish_reason"] == "length"
        assert base64.b64decode(app.requests[-1]["messages"][0]["images"][0]) == image


async def test_ollama_health_and_errors():
    async with serve(ollama_app()) as url:
        h = await (await remote("ollama", "vision", url, model="llava:7b")).health()
        assert h["ok"] and h["serves"] and h["kinds"] == ["vision"]
        assert h["models"] == ["llama3.2:1b", "llava:7b"] and h["kinds_by_model"]["llava:7b"] == ["chat", "vision"]
        missing = await remote("ollama", "chat", url, model="mistral")
        h = await missing.health()
        assert h["ok"] and not h["serves"] and h["kinds"] == []
        with pytest.raises(BackendError) as e:
            await run_intent(missing, Intent(kind="chat", prompt="hi"))
        assert e.value.code == "unavailable" and "model 'mistral' not found" in e.value.message
        chat = await remote("ollama", "chat", url, model="llama3.2:1b")
        with pytest.raises(BackendError) as e:
            await run_intent(chat, Intent(kind="chat", prompt="fail midway"))
        assert e.value.code == "remote_error" and "out of memory" in e.value.message


async def test_server_down():
    async with serve(ollama_app()) as url:
        pass  # the port is free again: nothing listens there now
    down = await remote("ollama", "chat", url, model="llama3.2:1b", connect_timeout_s=2)
    h = await down.health()
    assert h["ok"] is False and h["kinds"] == [] and "cannot reach" in h["error"]
    with trio.fail_after(10), pytest.raises(BackendError) as e:
        await run_intent(down, Intent(kind="chat", prompt="hi"))
    assert e.value.code == "unavailable" and e.value.retryable


async def test_read_timeout():
    from quart_trio import QuartTrio

    app = QuartTrio("silent")

    @app.post("/api/chat")
    async def never():
        await trio.sleep_forever()

    async with serve(app) as url:
        slow = await remote("ollama", "chat", url, timeout_s=0.5)
        with trio.fail_after(10), pytest.raises(BackendError) as e:
            await run_intent(slow, Intent(kind="chat", prompt="hi"))
        assert e.value.code == "timeout" and url in e.value.message


# ---------------------------------------------------------------- OpenAI-compatible


async def test_openai_chat_streams_sse():
    app = openai_app(api_key="sk-test")
    async with serve(app) as url:
        chat = await remote("openai", "chat", url, model="gpt-test", api_key="sk-test")
        result, rec = await run_intent(chat, Intent(kind="chat", messages=[{"role": "user", "content": "hi"}], params={"max_tokens": 50}))
        assert rec.text == result["text"] == "Hello from an OpenAI-compatible server"
        assert result["units"] == 5 and result["usage"] == {"prompt_tokens": 11, "completion_tokens": 5}
        assert app.requests[-1]["stream"] is True and app.requests[-1]["max_tokens"] == 50

        # base URL given with /v1, and a wrong key: the server's own message comes back
        bad = await remote("openai", "chat", url + "/v1", model="gpt-test", api_key="wrong")
        with pytest.raises(BackendError) as e:
            await run_intent(bad, Intent(kind="chat", prompt="hi"))
        assert e.value.code == "unauthorized" and "Incorrect API key provided" in e.value.message


async def test_openai_vision_sends_data_url():
    app = openai_app()
    async with serve(app) as url:
        vision = await remote("openai", "vision", url, model="gpt-test")
        image = solid_png(16, 16)
        result, rec = await run_intent(vision, Intent(kind="vision", prompt="describe", image=image))
        assert result["text"] == f"An image of {len(image)} bytes (data:image/png;base64)"
        parts = app.requests[-1]["messages"][0]["content"]
        assert parts[0] == {"type": "text", "text": "describe"}


async def test_openai_transcribe(speech_wav):
    app = openai_app()
    async with serve(app) as url:
        stt = await remote("openai", "transcribe", url, model="whisper-1")
        result, rec = await run_intent(stt, Intent(kind="transcribe", audio=speech_wav, params={"timestamps": True, "language": "en"}))
        assert result["text"] == "The quick brown fox." == rec.text
        assert result["segments"][0]["end"] == 2.0
        with wave.open(io.BytesIO(speech_wav)) as w:
            assert result["units"] == -(-w.getnframes() // w.getframerate())  # seconds, rounded up
        sent = app.requests[-1]
        assert sent["form"] == {"model": "whisper-1", "response_format": "verbose_json", "language": "en"}
        assert sent["mimetype"] == "audio/wav" and sent["bytes"] == len(speech_wav)
        with pytest.raises(BackendError) as e:
            await run_intent(stt, Intent(kind="transcribe", audio=b"not audio" * 50))
        assert e.value.code == "bad_audio"
        assert len(app.requests) == 1  # junk is refused before any upload


async def test_openai_speak_in_chunks():
    app = openai_app()
    async with serve(app) as url:
        tts = await remote("openai", "speak", url, model="tts-1", chunk_chars=30, voice="nova")
        text = "First sentence here. Second sentence here. Third one."
        result, rec = await run_intent(tts, Intent(kind="speak", prompt=text))
        assert [r["input"] for r in app.requests] == ["First sentence here.", "Second sentence here.", "Third one."]
        assert all(r["voice"] == "nova" and r["response_format"] == "wav" for r in app.requests)
        frames = 0
        for chunk in rec.of("chunk"):
            with wave.open(io.BytesIO(chunk["audio"])) as w:
                frames += w.getnframes()
        with wave.open(io.BytesIO(result["audio_wav"])) as w:
            assert w.getnframes() == frames and w.getframerate() == result["sample_rate"] == 16000
        assert result["units"] == len(text)


async def test_openai_imagine_and_errors():
    app = openai_app()
    async with serve(app) as url:
        img = await remote("openai", "imagine", url, model="dall-e-3")
        result, _ = await run_intent(img, Intent(kind="imagine", prompt="a fox", params={"width": 256, "height": 128, "steps": 20}))
        assert png_size(result["image_png"]) == (256, 128) and result["units"] == 256 * 128 * 20  # pixel-steps (federation/kinds.py)
        assert app.requests[-1]["size"] == "256x128" and app.requests[-1]["response_format"] == "b64_json"
        with pytest.raises(BackendError) as e:
            await run_intent(await remote("openai", "imagine", url, model="nope"), Intent(kind="imagine", prompt="x"))
        assert e.value.code == "unavailable" and "The model `nope` does not exist" in e.value.message


async def test_openai_health():
    async with serve(openai_app()) as url:
        h = await (await remote("openai", "transcribe", url, model="whisper-1")).health()
        assert h["ok"] and h["serves"] and h["kinds"] == ["transcribe"]
        assert h["kinds_by_model"] == {"gpt-test": ["chat"], "whisper-1": ["transcribe"], "tts-1": ["speak"], "dall-e-3": ["imagine"]}
        h = await (await remote("openai", "chat", url, model="other")).health()
        assert h["ok"] and not h["serves"]


# ---------------------------------------------------------------- AUTOMATIC1111


async def test_a1111_txt2img_with_progress():
    app = a1111_app()
    async with serve(app) as url:
        sd = await remote("a1111", "imagine", url, progress_interval_s=0.01, sampler="Euler a")
        intent = Intent(kind="imagine", prompt="a castle", params={"width": 128, "height": 64, "steps": 4, "seed": 42, "guidance": 6.0})
        result, rec = await run_intent(sd, intent)
        assert png_size(result["image_png"]) == (128, 64)
        assert [e["step"] for e in rec.of("progress")] == [1, 2, 3, 4]
        assert result["seed"] == 42 and result["steps"] == 4
        sent = app.requests[-1]
        assert sent["cfg_scale"] == 6.0 and sent["sampler_name"] == "Euler a" and sent["negative_prompt"] == ""
        h = await sd.health()
        assert h["ok"] and h["serves"] and h["kinds"] == ["imagine"]


async def test_a1111_cancel_interrupts_the_server():
    app = a1111_app()
    async with serve(app) as url:
        sd = await remote("a1111", "imagine", url, progress_interval_s=0.01)
        intent = Intent(kind="imagine", prompt="a castle", params={"width": 64, "height": 64, "steps": 50})
        intent.validate()
        rec = Recorder()
        with trio.CancelScope() as scope:
            async def emit(event):
                await rec(event)
                if event["step"] == 2:
                    scope.cancel()
            with trio.fail_after(20):
                await sd.run(intent, emit)
        assert scope.cancelled_caught
        with trio.fail_after(10):
            await app.interrupted.wait()


async def test_a1111_server_error():
    async with serve(a1111_app()) as url:
        sd = await remote("a1111", "imagine", url, progress_interval_s=0)
        intent = Intent(kind="imagine", prompt="big", params={"width": 512, "height": 512})
        intent.validate()
        intent.params["width"] = 4096  # beyond what the intent validator allows, to reach the server's error
        with trio.fail_after(20), pytest.raises(BackendError) as e:
            await sd.run(intent, Recorder())
        assert e.value.code == "remote_error" and "CUDA out of memory" in e.value.message and e.value.retryable
