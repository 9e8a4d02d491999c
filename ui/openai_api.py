"""OpenAI-compatible endpoints under /v1, so existing clients and scripts work against the grid.

Each request becomes one intent (n choices or images: n intents). Sampling a client does not send
comes from the model (ui/compat.py), not from OpenAI's documented defaults. Errors use OpenAI's shape:
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

from quart import jsonify

from mtor_node.intents import IntentError

from .api import service
from .compat import MAX_CHOICES, engine_sampling, finish_of, submit_all, usage_of, with_defaults
from .intake import follow_batches, run_to_end, ui_state
from .openai_common import (OpenAIError, final_error, from_intent_error, model_of, openai_bp,
                            read_body, submit_intent, user_of)

SIZE = re.compile(r"^(\d{2,4})x(\d{2,4})$")
MAX_IMAGES = 4


# ---- chat -------------------------------------------------------------------------------------

# Fields the grid does not implement: a request that uses them is refused, naming the field,
# rather than answered as if they had been honoured.
REFUSED = {
    "logprobs": "logprobs are not available from the models on this server",
    "top_logprobs": "logprobs are not available from the models on this server",
    "functions": "function calling is not supported on this server",
    "function_call": "function calling is not supported on this server",
    "logit_bias": "logit_bias is not supported on this server",
    "audio": "audio output from chat is not supported: use /v1/audio/speech",
    "prediction": "predicted outputs are not supported on this server",
}
NEUTRAL = {"presence_penalty": 0, "frequency_penalty": 0, "parallel_tool_calls": None, "store": False,
           "modalities": ["text"], "reasoning_effort": None, "service_tier": "auto"}


def _refuse_unsupported(body: dict, engine: dict | None = None) -> None:
    for key, why in REFUSED.items():
        if body.get(key) not in (None, False, 0, {}, []):
            raise OpenAIError(f"{key}: {why}", "unsupported_parameter", param=key)
    for key, neutral in NEUTRAL.items():
        value = body.get(key)
        if key in (engine or {}):
            continue  # the engine takes it: passed on in the intent's params
        if value is not None and value != neutral and not (key == "service_tier" and value == "default"):
            raise OpenAIError(f"{key}={value!r} is not supported on this server (only {neutral!r})", "unsupported_parameter", param=key)
    tools = body.get("tools")
    if tools and body.get("tool_choice") != "none":  # tools the model may not call change nothing
        raise OpenAIError("tools: tool calls are not supported by the models on this server "
                          "(send no tools, or tool_choice 'none')", "unsupported_parameter", param="tools")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise OpenAIError("response_format: JSON mode and structured outputs are not supported on this server "
                          "(only {'type': 'text'})", "unsupported_parameter", param="response_format")


def _engine_for(body: dict) -> dict:
    """The engine's extra sampling fields for the model this chat request would run on."""
    messages = body.get("messages")
    vision = isinstance(messages, list) and any(
        isinstance(m, dict) and isinstance(m.get("content"), list)
        and any(isinstance(p, dict) and p.get("type") == "image_url" for p in m["content"]) for m in messages)
    return engine_sampling(service(), "vision" if vision else "chat", model_of(body))


def _choices(body: dict) -> int:
    n = body.get("n", 1)
    if n is None:
        return 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CHOICES:
        raise OpenAIError(f"n must be a whole number from 1 to {MAX_CHOICES}", param="n")
    return n


def _sampling(body: dict, kind: str, model: str | None) -> dict:
    given = {"max_tokens": body.get("max_completion_tokens", body.get("max_tokens")), "temperature": body.get("temperature"),
             "top_p": body.get("top_p"), "stop": body.get("stop"), "seed": body.get("seed")}
    for key in engine_sampling(service(), kind, model):
        if body.get(key) is not None:
            given[key] = body[key]
    return with_defaults(service(), kind, model, given)


def _chat_intent(body: dict) -> dict:
    """Text messages make a chat intent; an image_url (data: URI) in the conversation makes vision."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise OpenAIError("messages must be a non-empty list", param="messages")
    plain, image = [], None
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise OpenAIError(f"messages[{i}] must be an object", param="messages")
        role = m.get("role")
        if role == "developer":  # OpenAI's newer name for the system message
            role = "system"
        if role in ("tool", "function") or m.get("tool_calls"):
            raise OpenAIError(f"messages[{i}]: tool messages are not supported on this server", "unsupported_parameter", param="messages")
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
        plain.append({"role": role, "content": content})
    model = model_of(body)
    d = {"model": model, "user": user_of(body)}
    if image is not None:
        prompt = next((m["content"] for m in reversed(plain) if m["role"] == "user"), "")
        return {**d, "kind": "vision", "image": image, "prompt": prompt or None, "params": _sampling(body, "vision", model)}
    return {**d, "kind": "chat", "messages": plain, "params": _sampling(body, "chat", model)}


def _data_uri(image_url) -> bytes:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url[:100]:
        raise OpenAIError("image_url must be a data: URI with base64 content (this server fetches no URLs)", param="messages")
    try:
        return base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise OpenAIError("image_url data is not valid base64", param="messages") from None


def _submit_n(d: dict, n: int) -> list:
    """n intents for n choices; a given seed becomes seed, seed+1, … so that the choices differ."""
    intents = []
    for i in range(n):
        params = dict(d["params"])
        if isinstance(params.get("seed"), int) and not isinstance(params["seed"], bool) and i:
            params["seed"] += i
        intents.append({**d, "params": params})
    try:
        return submit_all(intents)
    except IntentError as e:
        raise from_intent_error(e) from None


def _stream_flags(body: dict) -> tuple[bool, bool]:
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise OpenAIError("stream must be true or false", param="stream")
    opts = body.get("stream_options")
    return stream, isinstance(opts, dict) and opts.get("include_usage") is True


def _sse(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _stream_error(event: dict) -> bytes:
    return _sse({"error": {"message": event.get("message", ""), "type": "server_error", "code": event.get("code"), "param": None}})


def _sum_usage(finals: list[dict]) -> dict:
    prompt = max((usage_of(f)[0] for f in finals), default=0)  # one prompt, n answers (as OpenAI counts)
    completion = sum(usage_of(f)[1] for f in finals)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@openai_bp.post("/chat/completions")
async def chat_completions():
    body = await read_body()
    _refuse_unsupported(body, _engine_for(body))
    n, (stream, include_usage) = _choices(body), _stream_flags(body)
    tickets = _submit_n(_chat_intent(body), n)
    created, cid = int(time.time()), "chatcmpl-" + tickets[0].intent.id
    model = body.get("model") or tickets[0].target or "default"
    state, max_tokens = ui_state(), tickets[0].intent.params.get("max_tokens")

    def chunk(index: int, delta: dict, finish: str | None = None) -> bytes:
        return _sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": None,
                     "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    if stream:
        async def sse():
            finals = []
            # Choices are read one after another; all n run at once in the broker meanwhile.
            for index, ticket in enumerate(tickets):
                yield chunk(index, {"role": "assistant", "content": ""})
                async with aclosing(follow_batches(state, ticket)) as batches:
                    async for batch in batches:  # what has arrived goes out as one write
                        out = []
                        for event in batch:
                            if event["type"] == "chunk" and event.get("text"):
                                out.append(chunk(index, {"content": event["text"]}))
                            elif event["type"] == "result":
                                finals.append(event)
                                out.append(chunk(index, {}, finish_of(event, max_tokens)))
                            elif event["type"] == "error":
                                out.append(_stream_error(event))
                        if out:
                            yield b"".join(out)
            if include_usage:
                yield _sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                            "choices": [], "usage": _sum_usage(finals)})
            yield b"data: [DONE]\n\n"

        return sse(), 200, {"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}

    finals = [await run_to_end(state, t) for t in tickets]
    for final in finals:
        if final["type"] == "error":
            raise final_error(final)
    return jsonify({
        "id": cid, "object": "chat.completion", "created": created, "model": model, "system_fingerprint": None,
        "choices": [{"index": i, "message": {"role": "assistant", "content": f.get("text", ""), "refusal": None},
                     "logprobs": None, "finish_reason": finish_of(f, max_tokens)} for i, f in enumerate(finals)],
        "usage": _sum_usage(finals),
        "mtor": {"intent_id": tickets[0].intent.id, "peer": finals[0].get("peer"), "cost": sum(f.get("cost", 0) or 0 for f in finals),
                 "duration_ms": finals[0].get("duration_ms")},
    })


# ---- completions (legacy) ---------------------------------------------------------------------

@openai_bp.post("/completions")
async def completions():
    """The prompt goes through the chat model's template as one user message (the grid's models are
    chat models); suffix, echo, best_of and logprobs are refused."""
    body = await read_body()
    _refuse_unsupported(body, engine_sampling(service(), "chat", model_of(body)))
    for key in ("suffix", "echo"):
        if body.get(key) not in (None, False, ""):
            raise OpenAIError(f"{key} is not supported on this server", "unsupported_parameter", param=key)
    if body.get("best_of") not in (None, 1):
        raise OpenAIError("best_of must be 1 on this server", "unsupported_parameter", param="best_of")
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise OpenAIError("prompt must be a string or a list of strings (token arrays are not supported)", param="prompt")
    n, (stream, include_usage) = _choices(body), _stream_flags(body)
    if len(prompts) * n > MAX_CHOICES:
        raise OpenAIError(f"prompts × n must be at most {MAX_CHOICES}", param="n")
    model = model_of(body)
    base = {"kind": "chat", "model": model, "user": user_of(body), "params": _sampling(body, "chat", model)}
    tickets = [t for p in prompts for t in _submit_n({**base, "messages": [{"role": "user", "content": p}]}, n)]
    created, cid = int(time.time()), "cmpl-" + tickets[0].intent.id
    shown = body.get("model") or tickets[0].target or "default"
    state, max_tokens = ui_state(), tickets[0].intent.params.get("max_tokens")

    def piece(index: int, text: str, finish: str | None) -> dict:
        return {"id": cid, "object": "text_completion", "created": created, "model": shown,
                "choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": finish}]}

    if stream:
        async def sse():
            finals = []
            for index, ticket in enumerate(tickets):
                async with aclosing(follow_batches(state, ticket)) as batches:
                    async for batch in batches:
                        out = []
                        for event in batch:
                            if event["type"] == "chunk" and event.get("text"):
                                out.append(_sse(piece(index, event["text"], None)))
                            elif event["type"] == "result":
                                finals.append(event)
                                out.append(_sse(piece(index, "", finish_of(event, max_tokens))))
                            elif event["type"] == "error":
                                out.append(_stream_error(event))
                        if out:
                            yield b"".join(out)
            if include_usage:
                yield _sse({"id": cid, "object": "text_completion", "created": created, "model": shown, "choices": [],
                            "usage": _sum_usage(finals)})
            yield b"data: [DONE]\n\n"

        return sse(), 200, {"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}

    finals = [await run_to_end(state, t) for t in tickets]
    for final in finals:
        if final["type"] == "error":
            raise final_error(final)
    usage = {"prompt_tokens": sum(usage_of(f)[0] for f in finals[::n]), "completion_tokens": sum(usage_of(f)[1] for f in finals)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return jsonify({"id": cid, "object": "text_completion", "created": created, "model": shown, "system_fingerprint": None,
                    "choices": [{"text": f.get("text", ""), "index": i, "logprobs": None, "finish_reason": finish_of(f, max_tokens)}
                                for i, f in enumerate(finals)], "usage": usage})


# ---- images -----------------------------------------------------------------------------------

@openai_bp.post("/images/generations")
async def images_generations():
    body = await read_body()
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
        ticket = submit_intent({"kind": "imagine", "prompt": prompt, "model": model_of(body), "user": user_of(body), "params": p})
        final = await run_to_end(state, ticket)
        if final["type"] == "error":
            raise final_error(final)
        png = final.get("image_png") or b""
        data.append({"b64_json": base64.b64encode(png).decode(), "revised_prompt": prompt})
    return jsonify({"created": int(time.time()), "data": data})


# ---- models -----------------------------------------------------------------------------------

def _model_objects() -> list[dict]:
    n = service()
    seen, data = set(), []
    for m in n.status().get("models") or []:
        if m.get("name") not in seen:
            seen.add(m.get("name"))
            data.append({"id": m.get("name"), "object": "model", "created": int(n.started_at), "owned_by": n.peer_id,
                         "kind": m.get("kind"), "status": m.get("status")})
    return data


@openai_bp.get("/models")
async def models():
    return jsonify({"object": "list", "data": _model_objects()})


@openai_bp.get("/models/<model_id>")
async def model_retrieve(model_id: str):
    found = next((m for m in _model_objects() if m["id"] == model_id), None)
    if found is None:
        raise OpenAIError(f"The model '{model_id[:200]}' does not exist", "model_not_found", 404, param="model")
    return jsonify(found)


