"""OpenAI-compatible endpoints under /v1, so existing clients and scripts work against the grid.

Each request becomes one intent (n images: n intents). Errors use OpenAI's shape:
{"error": {"message", "type", "code", "param"}}. Only what the grid can honour is accepted;
anything else is a 400 that says what is supported, never a silent difference.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from contextlib import aclosing

from quart import Blueprint, jsonify, request

from mtor_node.intents import IntentError

from .api import node
from .intake import BadJson, follow, read_json, http_status, run_to_end, submit, ui_state

openai_bp = Blueprint("openai", __name__, url_prefix="/v1")

DEFAULT_MODEL_NAMES = ("", "default", "auto")
SIZE = re.compile(r"^(\d{2,4})x(\d{2,4})$")
MAX_IMAGES = 4
SPEECH_FORMATS = ("wav",)
TRANSCRIPT_FORMATS = ("json", "text", "verbose_json")


class OpenAIError(Exception):
    def __init__(self, message: str, code: str = "invalid_request", status: int = 400, param: str | None = None):
        super().__init__(message)
        self.message, self.code, self.status, self.param = message, code, status, param

    def response(self):
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return jsonify({"error": {"message": self.message, "type": kind, "code": self.code, "param": self.param}}), self.status


@openai_bp.errorhandler(OpenAIError)
async def _openai_error(e: OpenAIError):
    return e.response()


def _from_intent_error(e: IntentError) -> OpenAIError:
    return OpenAIError(e.message, e.code, http_status(e.code))


def _final_error(final: dict) -> OpenAIError:
    status = {"timeout": 504, "cancelled": 409, "banned": 403}.get(final.get("code"), 422)
    return OpenAIError(final.get("message", "the intent failed"), final.get("code", "failed"), status)


async def _body() -> dict:
    try:
        body = await read_json()
    except BadJson:
        body = None
    if not isinstance(body, dict):
        raise OpenAIError("the body must be a JSON object")
    return body


def _model(body: dict) -> str | None:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise OpenAIError("model must be a string", param="model")
    return None if model is None or model.lower() in DEFAULT_MODEL_NAMES else model


def _user(body: dict) -> str:
    user = body.get("user")
    return user if isinstance(user, str) and 0 < len(user) <= 64 else "openai"


def _submit(d: dict):
    try:
        return submit(ui_state(), d)
    except IntentError as e:
        raise _from_intent_error(e) from None


# ---- chat -------------------------------------------------------------------------------------

def _chat_intent(body: dict) -> dict:
    """Text messages make a chat intent; an image_url (data: URI) in the last user message makes vision."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise OpenAIError("messages must be a non-empty list", param="messages")
    plain, image = [], None
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise OpenAIError(f"messages[{i}] must be an object", param="messages")
        content = m.get("content")
        if isinstance(content, list):  # content parts: text and images
            texts = []
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif isinstance(part, dict) and part.get("type") == "image_url":
                    image = _data_uri(part.get("image_url"))
                else:
                    raise OpenAIError(f"messages[{i}].content has a part this server does not take "
                                      "(text and image_url with a data: URI are supported)", param="messages")
            content = "\n".join(texts)
        plain.append({"role": m.get("role"), "content": content})
    params = {}
    for ours, theirs in (("max_tokens", "max_tokens"), ("max_tokens", "max_completion_tokens"),
                         ("temperature", "temperature"), ("top_p", "top_p"), ("stop", "stop"), ("seed", "seed")):
        if body.get(theirs) is not None:
            params[ours] = body[theirs]
    n = body.get("n", 1)
    if n != 1:
        raise OpenAIError("n must be 1 on this server", param="n")
    d = {"model": _model(body), "user": _user(body), "params": params}
    if image is not None:
        prompt = next((m["content"] for m in reversed(plain) if m["role"] == "user"), "")
        return {**d, "kind": "vision", "image": image, "prompt": prompt or None}
    return {**d, "kind": "chat", "messages": plain}


def _data_uri(image_url) -> bytes:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url[:100]:
        raise OpenAIError("image_url must be a data: URI with base64 content (this server fetches no URLs)", param="messages")
    try:
        return base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise OpenAIError("image_url data is not valid base64", param="messages") from None


def _completion_id(ticket) -> str:
    return "chatcmpl-" + ticket.intent.id


@openai_bp.post("/chat/completions")
async def chat_completions():
    body = await _body()
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise OpenAIError("stream must be true or false", param="stream")
    ticket = _submit(_chat_intent(body))
    created, cid = int(time.time()), _completion_id(ticket)
    model = body.get("model") or ticket.target or "default"
    state = ui_state()

    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
        obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
               "system_fingerprint": None, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if usage is not None:
            obj["usage"] = usage
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    if stream:
        include_usage = isinstance(body.get("stream_options"), dict) and body["stream_options"].get("include_usage") is True

        async def sse():
            yield chunk({"role": "assistant", "content": ""})
            async with aclosing(follow(state, ticket)) as events:
                async for event in events:
                    if event["type"] == "chunk" and event.get("text"):
                        yield chunk({"content": event["text"]})
                    elif event["type"] == "result":
                        yield chunk({}, _finish_reason(event, ticket))
                        if include_usage:
                            yield b"data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created,
                                                           "model": model, "choices": [], "usage": _usage(event)}).encode() + b"\n\n"
                    elif event["type"] == "error":
                        yield b"data: " + json.dumps({"error": {"message": event.get("message", ""), "type": "server_error",
                                                                 "code": event.get("code"), "param": None}}).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        return sse(), 200, {"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}

    final = await run_to_end(state, ticket)
    if final["type"] == "error":
        raise _final_error(final)
    return jsonify({
        "id": cid, "object": "chat.completion", "created": created, "model": model, "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": final.get("text", "")},
                     "logprobs": None, "finish_reason": _finish_reason(final, ticket)}],
        "usage": _usage(final),
        "mtor": {"intent_id": ticket.intent.id, "peer": final.get("peer"), "cost": final.get("cost", 0),
                 "duration_ms": final.get("duration_ms")},
    })


def _finish_reason(result: dict, ticket) -> str:
    units, limit = result.get("units"), ticket.intent.params.get("max_tokens")
    return "length" if isinstance(units, int) and limit and units >= limit else "stop"


def _usage(result: dict) -> dict:
    completion = result.get("units") if isinstance(result.get("units"), int) else 0
    prompt = result.get("prompt_tokens") if isinstance(result.get("prompt_tokens"), int) else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


# ---- images -----------------------------------------------------------------------------------

@openai_bp.post("/images/generations")
async def images_generations():
    body = await _body()
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise OpenAIError("prompt must be a non-empty string", param="prompt")
    fmt = body.get("response_format", "b64_json")
    if fmt != "b64_json":
        raise OpenAIError("response_format must be b64_json (this server keeps no image URLs)", param="response_format")
    n = body.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
        raise OpenAIError(f"n must be a whole number from 1 to {MAX_IMAGES}", param="n")
    params: dict = {}
    size = body.get("size")
    if size is not None and size != "auto":
        m = SIZE.match(size) if isinstance(size, str) else None
        if not m:
            raise OpenAIError("size must look like 512x512", param="size")
        params["width"], params["height"] = int(m.group(1)), int(m.group(2))
    for key in ("steps", "guidance", "seed", "negative_prompt"):
        if body.get(key) is not None:
            params[key] = body[key]
    state, data = ui_state(), []
    for i in range(n):
        p = dict(params)
        if isinstance(p.get("seed"), int) and not isinstance(p["seed"], bool) and i:
            p["seed"] += i  # n different images from one seed
        ticket = _submit({"kind": "imagine", "prompt": prompt, "model": _model(body), "user": _user(body), "params": p})
        final = await run_to_end(state, ticket)
        if final["type"] == "error":
            raise _final_error(final)
        png = final.get("image_png") or b""
        data.append({"b64_json": base64.b64encode(png).decode(), "revised_prompt": prompt})
    return jsonify({"created": int(time.time()), "data": data})


# ---- audio ------------------------------------------------------------------------------------

@openai_bp.post("/audio/transcriptions")
async def audio_transcriptions():
    if not request.content_type or not request.content_type.startswith("multipart/form-data"):
        raise OpenAIError("send multipart/form-data with a file field", param="file")
    files, form = await request.files, await request.form
    f = files.get("file")
    if f is None:
        raise OpenAIError("the file field is required", param="file")
    audio = f.read()
    fmt = form.get("response_format", "json")
    if fmt not in TRANSCRIPT_FORMATS:
        raise OpenAIError(f"response_format must be one of {', '.join(TRANSCRIPT_FORMATS)}", param="response_format")
    params: dict = {}
    if form.get("language"):
        params["language"] = form["language"]
    if fmt == "verbose_json":
        params["timestamps"] = True
    model = form.get("model")
    ticket = _submit({"kind": "transcribe", "audio": audio, "model": None if not model or model in DEFAULT_MODEL_NAMES or model == "whisper-1" else model,
                      "user": "openai", "params": params})
    final = await run_to_end(ui_state(), ticket)
    if final["type"] == "error":
        raise _final_error(final)
    text = final.get("text", "")
    if fmt == "text":
        return text, 200, {"Content-Type": "text/plain; charset=utf-8"}
    if fmt == "verbose_json":
        return jsonify({"task": "transcribe", "language": final.get("language", params.get("language")),
                        "duration": final.get("duration"), "text": text, "segments": final.get("segments", [])})
    return jsonify({"text": text})


@openai_bp.post("/audio/speech")
async def audio_speech():
    body = await _body()
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise OpenAIError("input must be a non-empty string", param="input")
    fmt = body.get("response_format", "wav")
    if fmt not in SPEECH_FORMATS:
        raise OpenAIError("response_format must be wav on this server", param="response_format")
    params = {}
    if isinstance(body.get("voice"), str) and body["voice"] not in ("alloy", "echo", "fable", "onyx", "nova", "shimmer"):
        params["voice"] = body["voice"]  # OpenAI's own voice names mean "the default voice" here
    if body.get("speed") is not None:
        params["speed"] = body["speed"]
    model = _model(body)
    if model in ("tts-1", "tts-1-hd", "gpt-4o-mini-tts"):
        model = None
    ticket = _submit({"kind": "speak", "prompt": text, "model": model, "user": _user(body), "params": params})
    final = await run_to_end(ui_state(), ticket)
    if final["type"] == "error":
        raise _final_error(final)
    return final.get("audio_wav") or b"", 200, {"Content-Type": "audio/wav"}


# ---- models -----------------------------------------------------------------------------------

@openai_bp.get("/models")
async def models():
    n = node()
    seen, data = set(), []
    for m in n.status().get("models") or []:
        if m.get("name") not in seen:
            seen.add(m.get("name"))
            data.append({"id": m.get("name"), "object": "model", "created": int(n.started_at), "owned_by": n.peer_id,
                         "kind": m.get("kind"), "status": m.get("status")})
    return jsonify({"object": "list", "data": data})
