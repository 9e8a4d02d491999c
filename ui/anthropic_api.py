"""Anthropic-compatible Messages API (POST /v1/messages), so Claude clients can use the grid.

Streaming sends Anthropic's documented event sequence: message_start, content_block_start, ping,
content_block_delta…, content_block_stop, message_delta (stop_reason, usage), message_stop; a
failure mid-stream is an `error` event. The prompt's token count is known only when the model has
run, so message_start carries input_tokens 0 and message_delta the real count (the SDK takes it).
Errors are Anthropic's {"type": "error", "error": {"type", "message"}}. Tools, thinking, top_k
and image URLs are refused with a 400 that names the field, never ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
from contextlib import aclosing

from quart import Blueprint, jsonify

from mtor_node.intents import IntentError

from .api import service
from .compat import engine_sampling, finish_of, model_name, submit_all, usage_of, with_defaults
from .intake import follow_batches, http_status, read_object, run_to_end, ui_state

anthropic_bp = Blueprint("anthropic", __name__, url_prefix="/v1")

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error"}
REFUSED = {
    "tools": "tool use is not supported on this server",
    "tool_choice": "tool use is not supported on this server",
    "thinking": "extended thinking is not supported by the models on this server",
    "top_k": "top_k is not supported by the model that serves this request (temperature and top_p are)",
}
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


class AnthropicError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status

    def body(self) -> dict:
        return {"type": "error", "error": {"type": ERROR_TYPES.get(self.status, "api_error"), "message": self.message}}


@anthropic_bp.errorhandler(AnthropicError)
async def _anthropic_error(e: AnthropicError):
    return jsonify(e.body()), e.status


async def _body() -> dict:
    return await read_object(AnthropicError)


def _text_of(blocks, where: str) -> tuple[str, bytes | None]:
    """A content field (a string or a list of blocks) as (text, the last image or None)."""
    if isinstance(blocks, str):
        return blocks, None
    if not isinstance(blocks, list):
        raise AnthropicError(f"{where}: content must be a string or a list of content blocks")
    texts, image = [], None
    for j, b in enumerate(blocks):
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "text" and isinstance(b.get("text"), str):
            texts.append(b["text"])
        elif kind == "image":
            src = b.get("source")
            if not isinstance(src, dict) or src.get("type") != "base64" or not isinstance(src.get("data"), str):
                raise AnthropicError(f"{where}.content[{j}]: image source must be base64 (this server fetches no URLs)")
            try:
                image = base64.b64decode(src["data"], validate=True)
            except (binascii.Error, ValueError):
                raise AnthropicError(f"{where}.content[{j}]: image data is not valid base64") from None
        else:
            raise AnthropicError(f"{where}.content[{j}]: block type {str(kind)[:40]!r} is not supported "
                                 "(text and base64 image blocks are)")
    return "\n".join(texts), image


def _intent(body: dict) -> tuple[dict, str]:
    """(the intent dict, the model name to show) for a Messages request."""
    for key, why in REFUSED.items():
        if body.get(key) is not None and not (key == "top_k" and "top_k" in _engine(body)):
            raise AnthropicError(f"{key}: {why}")
    output = body.get("output_config")
    if isinstance(output, dict) and output.get("format") is not None:
        raise AnthropicError("output_config.format: structured output is not supported on this server")
    shown = body.get("model")
    if not isinstance(shown, str) or not shown:
        raise AnthropicError("model: field required")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise AnthropicError("max_tokens: field required, a whole number ≥ 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise AnthropicError("messages: a non-empty list is required")
    plain, image = [], None
    system = body.get("system")
    if system is not None:
        text, _ = _text_of(system, "system")
        if text:
            plain.append({"role": "system", "content": text})
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise AnthropicError(f"messages.{i}.role: must be user or assistant")
        text, img = _text_of(m.get("content"), f"messages.{i}")
        image = img or image
        plain.append({"role": m["role"], "content": text})
    stop = body.get("stop_sequences")
    model = model_name(shown)
    params = {"max_tokens": max_tokens, "temperature": body.get("temperature"), "top_p": body.get("top_p"), "stop": stop}
    if body.get("top_k") is not None:
        params["top_k"] = body["top_k"]  # only reached when the engine takes it
    metadata = body.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    d = {"model": model, "user": user if isinstance(user, str) and 0 < len(user) <= 64 else "anthropic"}
    if image is not None:
        prompt = next((m["content"] for m in reversed(plain) if m["role"] == "user"), "")
        return {**d, "kind": "vision", "image": image, "prompt": prompt or None,
                "params": with_defaults(service(), "vision", model, params)}, shown
    return {**d, "kind": "chat", "messages": plain, "params": with_defaults(service(), "chat", model, params)}, shown


def _engine(body: dict) -> dict:
    model = body.get("model")
    return engine_sampling(service(), "chat", model_name(model)) if isinstance(model, str) and model else {}


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _final_status(final: dict) -> int:
    return {"timeout": 504, "cancelled": 409, "banned": 403, "queue_full": 503, "internal": 500}.get(final.get("code"), 422)


@anthropic_bp.post("/messages")
async def messages():
    body = await _body()
    d, shown = _intent(body)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise AnthropicError("stream: must be true or false")
    try:
        ticket = submit_all([d])[0]
    except IntentError as e:
        raise AnthropicError(e.message, http_status(e.code)) from None
    mid, state, max_tokens = "msg_" + ticket.intent.id, ui_state(), ticket.intent.params.get("max_tokens")

    def message(content: list, stop_reason, usage: dict) -> dict:
        return {"id": mid, "type": "message", "role": "assistant", "model": shown, "content": content,
                "stop_reason": stop_reason, "stop_sequence": None, "usage": usage}

    if stream:
        def frames(event: dict) -> bytes:
            if event["type"] == "chunk" and event.get("text"):
                return _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                    "delta": {"type": "text_delta", "text": event["text"]}})
            if event["type"] == "result":
                prompt, completion = usage_of(event)
                return (_sse("content_block_stop", {"type": "content_block_stop", "index": 0})
                        + _sse("message_delta", {"type": "message_delta",
                                                 "delta": {"stop_reason": STOP_REASONS[finish_of(event, max_tokens)], "stop_sequence": None},
                                                 "usage": {"input_tokens": prompt, "output_tokens": completion}})
                        + _sse("message_stop", {"type": "message_stop"}))
            if event["type"] == "error":
                return _sse("error", AnthropicError(event.get("message", "the request failed"), _final_status(event)).body())
            return b""

        async def events():
            yield (_sse("message_start", {"type": "message_start", "message": message([], None, {"input_tokens": 0, "output_tokens": 0})})
                   + _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
                   + _sse("ping", {"type": "ping"}))
            async with aclosing(follow_batches(state, ticket)) as batches:
                async for batch in batches:  # what has arrived goes out as one write
                    out = b"".join(map(frames, batch))
                    if out:
                        yield out
        return events(), 200, {"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}

    final = await run_to_end(state, ticket)
    if final["type"] == "error":
        raise AnthropicError(final.get("message", "the request failed"), _final_status(final))
    prompt, completion = usage_of(final)
    return jsonify(message([{"type": "text", "text": final.get("text", "")}], STOP_REASONS[finish_of(final, max_tokens)],
                           {"input_tokens": prompt, "output_tokens": completion}))
