"""Small stand-ins for Ollama, an OpenAI-compatible server and AUTOMATIC1111, speaking their real wire
formats (the subset the adapters use), served on 127.0.0.1 by hypercorn + quart-trio.

The real servers cannot run here (no GPU, no model downloads); these answer the same JSON, NDJSON,
SSE and multipart shapes, and record what they were sent so tests can check the requests too.
"""

from __future__ import annotations

import base64
import io
import json
import math
from contextlib import asynccontextmanager
from functools import partial

import trio
from quart import request
from quart_trio import QuartTrio

from mtor_node.backends._media import png_bytes, wav_bytes


@asynccontextmanager
async def serve(app):
    """Serve `app` on an ephemeral 127.0.0.1 port; yields its base URL."""
    import hypercorn.trio
    from hypercorn.config import Config

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.1
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(hypercorn.trio.serve, app, config, shutdown_trigger=trio.sleep_forever))
        yield binds[0]
        nursery.cancel_scope.cancel()


def tone_wav(seconds: float, rate: int = 16000) -> bytes:
    n = int(seconds * rate)
    return wav_bytes([0.3 * math.sin(2 * math.pi * 440 * i / rate) for i in range(n)], rate)


def solid_png(w: int, h: int) -> bytes:
    from PIL import Image

    return png_bytes(Image.new("RGB", (w, h), (10, 120, 200)))


# ---------------------------------------------------------------- Ollama


def ollama_app(models=("llama3.2:1b", "llava:7b")):
    app = QuartTrio("fake-ollama")
    app.requests = []

    @app.get("/api/tags")
    async def tags():
        return {"models": [
            {"name": m, "model": m, "size": 1, "details": {"family": "llama", "families": ["llama", "clip"] if "llava" in m else ["llama"]}}
            for m in models]}

    @app.post("/api/chat")
    async def chat():
        body = await request.get_json()
        app.requests.append(body)
        if body.get("model") not in models:
            return {"error": f"model '{body.get('model')}' not found, try pulling it first"}, 404
        last = body["messages"][-1]
        words = ["I", " see", f" {len(last.get('images') or [])}", " image(s)."] if last.get("images") else ["Hello", " from", " ollama", "!"]
        limit = body.get("options", {}).get("num_predict", 100)
        words = words[:limit]

        async def stream():
            for w in words:
                yield json.dumps({"model": body["model"], "message": {"role": "assistant", "content": w}, "done": False}).encode() + b"\n"
            if body["messages"][-1].get("content") == "fail midway":
                yield json.dumps({"error": "an error was encountered while running the model: out of memory"}).encode() + b"\n"
                return
            yield json.dumps({"model": body["model"], "message": {"role": "assistant", "content": ""}, "done": True,
                              "done_reason": "length" if len(words) == limit else "stop",
                              "prompt_eval_count": 7, "eval_count": len(words)}).encode() + b"\n"

        return stream(), 200, {"Content-Type": "application/x-ndjson"}

    return app


# ---------------------------------------------------------------- OpenAI-compatible


def openai_app(models=("gpt-test", "whisper-1", "tts-1", "dall-e-3"), api_key: str | None = None):
    app = QuartTrio("fake-openai")
    app.requests = []

    def denied():
        if api_key and request.headers.get("Authorization") != f"Bearer {api_key}":
            return {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}, 401
        return None

    def unknown(model):
        if model not in models:
            return {"error": {"message": f"The model `{model}` does not exist", "type": "invalid_request_error", "code": "model_not_found"}}, 404
        return None

    @app.get("/v1/models")
    async def list_models():
        return denied() or {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "test"} for m in models]}

    @app.post("/v1/chat/completions")
    async def chat():
        body = await request.get_json()
        app.requests.append(body)
        if err := denied() or unknown(body.get("model")):
            return err
        content = body["messages"][-1]["content"]
        if isinstance(content, list):  # vision: a text part and an image_url data URL
            url = next(p["image_url"]["url"] for p in content if p["type"] == "image_url")
            header, _, b64 = url.partition(",")
            n = len(base64.b64decode(b64))
            words = ["An", " image", f" of {n} bytes", f" ({header})"]
        else:
            words = ["Hello", " from", " an", " OpenAI-compatible", " server"]
        words = words[: body.get("max_tokens", 100)]

        async def stream():
            def event(obj):
                return b"data: " + json.dumps(obj).encode() + b"\n\n"
            yield b": keep-alive\n\n"
            yield event({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
            for w in words:
                yield event({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
            yield event({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if body.get("stream_options", {}).get("include_usage"):
                yield event({"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": len(words), "total_tokens": 11 + len(words)}})
            yield b"data: [DONE]\n\n"

        return stream(), 200, {"Content-Type": "text/event-stream"}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions():
        form, files = await request.form, await request.files
        upload = files["file"]
        data = upload.read()
        app.requests.append({"form": dict(form), "filename": upload.filename, "mimetype": upload.mimetype, "bytes": len(data)})
        if err := denied() or unknown(form.get("model")):
            return err
        out = {"text": " The quick brown fox."}
        if form.get("response_format") == "verbose_json":
            out.update(language="english", duration=2.0, segments=[{"id": 0, "start": 0.0, "end": 2.0, "text": " The quick brown fox."}])
        return out

    @app.post("/v1/audio/speech")
    async def speech():
        body = await request.get_json()
        app.requests.append(body)
        if err := denied() or unknown(body.get("model")):
            return err
        return tone_wav(0.02 * len(body["input"])), 200, {"Content-Type": "audio/wav"}

    @app.post("/v1/images/generations")
    async def images():
        body = await request.get_json()
        app.requests.append(body)
        if err := denied() or unknown(body.get("model")):
            return err
        w, h = (int(x) for x in body["size"].split("x"))
        if w > 1024:
            return {"error": {"message": f"Invalid size {body['size']}", "type": "invalid_request_error"}}, 400
        return {"created": 0, "data": [{"b64_json": base64.b64encode(solid_png(w, h)).decode()}]}

    return app


# ---------------------------------------------------------------- AUTOMATIC1111


def a1111_app(checkpoints=("v1-5-pruned-emaonly.safetensors [6ce0161689]",)):
    """txt2img walks its steps one by one and moves to the next only after a progress poll has seen the
    current one (an Event, bounded): the test then knows progress reporting saw every step."""
    app = QuartTrio("fake-a1111")
    app.requests = []
    app.interrupted = trio.Event()
    state = {"step": 0, "steps": 0, "seen": trio.Event()}

    @app.get("/sdapi/v1/sd-models")
    async def sd_models():
        return [{"title": t, "model_name": t.split(".")[0], "filename": f"/models/{t}"} for t in checkpoints]

    @app.get("/sdapi/v1/progress")
    async def progress():
        state["seen"].set()
        steps = state["steps"]
        return {"progress": state["step"] / steps if steps else 0.0, "eta_relative": 0.0,
                "state": {"sampling_step": state["step"], "sampling_steps": steps, "job_count": 1 if steps else 0},
                "current_image": None}

    @app.post("/sdapi/v1/interrupt")
    async def interrupt():
        app.interrupted.set()
        state["seen"].set()  # wake the step loop at once
        return {}

    @app.post("/sdapi/v1/txt2img")
    async def txt2img():
        body = await request.get_json()
        app.requests.append(body)
        if body["width"] > 2048:
            return {"error": "RuntimeError", "detail": "", "body": "", "errors": "CUDA out of memory."}, 500
        state["steps"] = body["steps"]
        for step in range(1, body["steps"] + 1):
            state["step"], state["seen"] = step, trio.Event()
            with trio.move_on_after(10):  # bounded: a client that does not poll still gets its image
                await state["seen"].wait()
            if app.interrupted.is_set():
                break
        state["steps"] = state["step"] = 0
        seed = body["seed"] if body["seed"] != -1 else 1234
        info = json.dumps({"prompt": body["prompt"], "seed": seed, "steps": body["steps"]})
        return {"images": [base64.b64encode(solid_png(body["width"], body["height"])).decode()], "parameters": body, "info": info}

    return app


def png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(data)).size


# ---------------------------------------------------------------- Anthropic Messages API


def anthropic_app(models=("claude-test",), api_key: str = "sk-ant-test", rate_limited: int = 0, retry_after: str = "1"):
    """Anthropic's documented wire format: x-api-key + anthropic-version headers, SSE events
    message_start, content_block_start, ping, content_block_delta, content_block_stop, message_delta,
    message_stop; errors {"type": "error", "error": {"type", "message"}}; 429 with retry-after.
    `rate_limited`: the first N message requests are answered 429."""
    app = QuartTrio("fake-anthropic")
    app.requests = []
    app.rate_limited = rate_limited

    def error(status: int, kind: str, message: str, headers=None):
        return {"type": "error", "error": {"type": kind, "message": message}}, status, headers or {}

    def denied():
        key = request.headers.get("x-api-key")
        if not key:
            return error(401, "authentication_error", "x-api-key header is required")
        if key != api_key:
            return error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    @app.get("/v1/models")
    async def list_models():
        return denied() or {"data": [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                                     for m in models], "has_more": False, "first_id": models[0], "last_id": models[-1]}

    @app.post("/v1/messages")
    async def messages():
        body = await request.get_json()
        app.requests.append({"body": body, "at": trio.current_time(),
                             "headers": {k.lower(): v for k, v in request.headers.items()}})
        if err := denied():
            return err
        if body.get("model") not in models:
            return error(404, "not_found_error", f"model: {body.get('model')}")
        if app.rate_limited > 0:
            app.rate_limited -= 1
            return error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit",
                         {"retry-after": retry_after})
        content = body["messages"][-1]["content"]
        if isinstance(content, list):
            img = next(b for b in content if b["type"] == "image")
            words = ["An", " image", f" of {len(base64.b64decode(img['source']['data']))} bytes",
                     f" ({img['source']['media_type']})"]
        else:
            words = ["Hello", " from", " Claude"]
        limit = body["max_tokens"]
        stop = "max_tokens" if len(words) > limit else "end_turn"
        words = words[:limit]

        async def stream():
            def event(name, obj):
                return f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode()
            yield event("message_start", {"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": body["model"],
                "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 21, "output_tokens": 1}}})
            yield event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
            yield event("ping", {"type": "ping"})
            for w in words:
                yield event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})
            if content == "overload midway":
                yield event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                return
            yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                          "usage": {"output_tokens": len(words)}})
            yield event("message_stop", {"type": "message_stop"})

        return stream(), 200, {"Content-Type": "text/event-stream"}

    return app
