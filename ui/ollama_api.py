"""Ollama-compatible endpoints under /api, so every Ollama client (Open WebUI, Continue, LangChain,
the `ollama` library) can use the grid unchanged.

Streaming is Ollama's: one JSON object per line (application/x-ndjson), `done: false` chunks then
one `done: true` object with the counts and durations (nanoseconds); `stream: false` gives that
last object with the whole text. Errors are Ollama's `{"error": "message"}`. What the grid cannot
honour (tools, format, raw templates, context, thinking) is a 400 that says so, never ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from contextlib import aclosing
from datetime import datetime, timezone

from quart import Blueprint, jsonify

from mtor_node.intents import IntentError

from .api import service
from .compat import engine_sampling, finish_of, local_state, model_name, submit_all, usage_of, with_defaults
from .intake import follow_batches, http_status, read_object, run_to_end, ui_state

ollama_bp = Blueprint("ollama", __name__, url_prefix="/api")

OLLAMA_VERSION = "0.11.4"  # the Ollama API version these endpoints follow
CAPABILITIES = {"chat": ["completion"], "vision": ["completion", "vision"], "embed": ["embedding"]}
REFUSED = {  # request fields the grid does not implement: refused so a client never gets a silent difference
    "tools": "tool calls are not supported on this server",
    "format": "structured output (format) is not supported on this server",
    "raw": "raw prompts are not supported: every prompt goes through the model's chat template",
    "template": "custom templates are not supported: every prompt goes through the model's chat template",
    "context": "context token arrays are not supported: send the conversation as /api/chat messages",
    "suffix": "fill-in-the-middle (suffix) is not supported on this server",
}


# Sampling options this server honours only where the engine takes them (else 400), with the
# value that changes nothing. Resource hints (num_ctx, num_thread, num_gpu, use_mmap, ...) are the
# node's business and are not applied from a request.
SAMPLING_OPTIONS = {"top_k": None, "min_p": 0.0, "repeat_penalty": 1.0, "repeat_last_n": None, "presence_penalty": 0.0,
                    "frequency_penalty": 0.0, "mirostat": 0, "tfs_z": 1.0, "typical_p": 1.0}


class OllamaError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


@ollama_bp.errorhandler(OllamaError)
async def _ollama_error(e: OllamaError):
    return jsonify({"error": e.message}), e.status


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


async def _body() -> dict:
    return await read_object(OllamaError)


def _refuse_unsupported(body: dict) -> None:
    for key, why in REFUSED.items():
        if body.get(key) not in (None, "", [], False):
            raise OllamaError(f"{key}: {why}")
    if body.get("think") not in (None, False):
        raise OllamaError("think: the models on this server do not support thinking")


def _model(body: dict) -> tuple[str, str | None]:
    """(the name the client gave, the node model name or None for the default)."""
    raw = body.get("model", body.get("name"))
    if not isinstance(raw, str) or not raw:
        raise OllamaError("model is required")
    return raw, model_name(raw, strip_tag=True)


def _images(value) -> list[bytes]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise OllamaError("images must be a list of base64 strings")
    try:
        return [base64.b64decode(v.split(",", 1)[1] if v.startswith("data:") else v, validate=True) for v in value]
    except (binascii.Error, ValueError):
        raise OllamaError("images: not valid base64") from None


def _params(body: dict, kind: str, model: str | None) -> dict:
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise OllamaError("options must be an object")
    params = {"temperature": options.get("temperature"), "top_p": options.get("top_p"),
              "max_tokens": options.get("num_predict"), "stop": options.get("stop"), "seed": options.get("seed")}
    engine = engine_sampling(service(), kind, model)
    for key, value in options.items():
        if key in engine:
            params[key] = value  # llama.cpp takes it: passed on
        elif key in SAMPLING_OPTIONS and value is not None and value != SAMPLING_OPTIONS[key]:
            raise OllamaError(f"options.{key} is not supported by the model that serves this request")
    if isinstance(params["max_tokens"], int) and params["max_tokens"] < 0:
        params["max_tokens"] = None  # Ollama's -1: "as many as the model may", here the intent's limit
    return with_defaults(service(), kind, model, params)


def _chat_intent(body: dict, model: str | None) -> dict:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise OllamaError("messages must be a non-empty list")
    plain, images = [], []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise OllamaError(f"messages[{i}] must be an object")
        if m.get("tool_calls") or m.get("role") == "tool":
            raise OllamaError(f"messages[{i}]: tool messages are not supported on this server")
        images += _images(m.get("images"))
        plain.append({"role": m.get("role"), "content": m.get("content", "")})
    if images:
        prompt = next((m["content"] for m in reversed(plain) if m["role"] == "user"), "")
        return {"kind": "vision", "model": model, "image": images[-1], "prompt": prompt or None,
                "params": _params(body, "vision", model)}
    return {"kind": "chat", "model": model, "messages": plain, "params": _params(body, "chat", model)}


def _generate_intent(body: dict, model: str | None) -> dict:
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise OllamaError("prompt must be a string")
    images = _images(body.get("images"))
    if images:
        return {"kind": "vision", "model": model, "image": images[-1], "prompt": prompt or None,
                "params": _params(body, "vision", model)}
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        raise OllamaError("system must be a string")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return {"kind": "chat", "model": model, "messages": messages, "params": _params(body, "chat", model)}


def _submit(d: dict, user: str = "ollama"):
    try:
        return submit_all([{**d, "user": user}])[0]
    except IntentError as e:
        status = http_status(e.code)
        raise OllamaError(e.message, status) from None


def _final_fields(final: dict, ticket, started: float) -> dict:
    prompt, completion = usage_of(final)
    total = int((time.monotonic() - started) * 1e9)
    run = int((final.get("duration_ms") or 0) * 1e6)
    return {"done": True, "done_reason": finish_of(final, ticket.intent.params.get("max_tokens")),
            "total_duration": total, "load_duration": 0, "prompt_eval_count": prompt,
            "prompt_eval_duration": 0, "eval_count": completion, "eval_duration": run}


async def _answer(ticket, shown: str, field: str, stream: bool):
    """Ollama's answer for one ticket: NDJSON lines while it runs, or one object at the end."""
    started, state = time.monotonic(), ui_state()

    def piece(text: str) -> dict:
        return {"message": {"role": "assistant", "content": text}} if field == "message" else {"response": text}

    def line(event: dict) -> dict | None:
        if event["type"] == "chunk" and event.get("text"):
            return {"model": shown, "created_at": now_iso(), **piece(event["text"]), "done": False}
        if event["type"] == "result":
            return {"model": shown, "created_at": now_iso(), **piece(""), **_final_fields(event, ticket, started)}
        if event["type"] == "error":  # Ollama's mid-stream error: a line with only "error"
            return {"error": event.get("message", "the request failed")}
        return None

    if stream:
        async def lines():
            async with aclosing(follow_batches(state, ticket)) as batches:
                async for batch in batches:  # what has arrived goes out as one write
                    out = "".join(json.dumps(obj) + "\n" for obj in map(line, batch) if obj is not None)
                    if out:
                        yield out.encode()
        return lines(), 200, {"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"}

    final = await run_to_end(state, ticket)
    if final["type"] == "error":
        code = final.get("code")
        raise OllamaError(final.get("message", "the request failed"),
                          {"timeout": 504, "cancelled": 409, "internal": 500}.get(code, 422))
    return jsonify({"model": shown, "created_at": now_iso(), **piece(final.get("text", "")),
                    **_final_fields(final, ticket, started)})


def _stream_flag(body: dict) -> bool:
    stream = body.get("stream", True)  # Ollama streams unless told not to
    if not isinstance(stream, bool):
        raise OllamaError("stream must be true or false")
    return stream


@ollama_bp.post("/chat")
async def chat():
    body = await _body()
    shown, model = _model(body)
    _refuse_unsupported(body)
    stream = _stream_flag(body)
    if body.get("messages") == []:  # Ollama's "load the model" call
        return jsonify({"model": shown, "created_at": now_iso(), "message": {"role": "assistant", "content": ""},
                        "done": True, "done_reason": "load"})
    ticket = _submit(_chat_intent(body, model))
    return await _answer(ticket, shown, "message", stream)


@ollama_bp.post("/generate")
async def generate():
    body = await _body()
    shown, model = _model(body)
    _refuse_unsupported(body)
    stream = _stream_flag(body)
    if not body.get("prompt") and not body.get("images"):  # Ollama's "load the model" call
        return jsonify({"model": shown, "created_at": now_iso(), "response": "", "done": True, "done_reason": "load"})
    ticket = _submit(_generate_intent(body, model))
    return await _answer(ticket, shown, "response", stream)


# ---- embeddings -------------------------------------------------------------------------------

async def _embed(body: dict) -> tuple[dict, str, float]:
    from .openai_embed import embed_texts

    shown, model = _model(body)
    if body.get("truncate") is False:
        raise OllamaError("truncate: false is not supported: texts longer than the model's limit are truncated")
    if body.get("dimensions") is not None:
        raise OllamaError("dimensions is not supported: the model's own dimensions are returned")
    texts = embed_texts(body.get("input", body.get("prompt")), "input", OllamaError)
    started = time.monotonic()
    final = await run_to_end(ui_state(), _submit({"kind": "embed", "model": model, "texts": texts}))
    if final["type"] == "error":
        raise OllamaError(final.get("message", "the request failed"),
                          {"timeout": 504, "cancelled": 409, "internal": 500}.get(final.get("code"), 422))
    return final, shown, started


@ollama_bp.post("/embed")
async def embed():
    final, shown, started = await _embed(await _body())
    return jsonify({"model": shown, "embeddings": final.get("embeddings") or [],
                    "total_duration": int((time.monotonic() - started) * 1e9), "load_duration": 0,
                    "prompt_eval_count": final.get("units") if isinstance(final.get("units"), int) else 0})


@ollama_bp.post("/embeddings")
async def embeddings_legacy():
    """Ollama's older endpoint: one `prompt`, one `embedding`."""
    body = await _body()
    if not isinstance(body.get("prompt"), str):
        raise OllamaError("prompt must be a string")
    final, _, _ = await _embed({**body, "input": body["prompt"]})
    return jsonify({"embedding": (final.get("embeddings") or [[]])[0]})


# ---- models -----------------------------------------------------------------------------------

def _details(state) -> dict:
    backend = state.spec.backend
    return {"parent_model": "", "format": "gguf" if state.spec.source.endswith(".gguf") else backend,
            "family": backend, "families": [backend], "parameter_size": "", "quantization_level": ""}


def _entry(state, started_at: float) -> dict:
    name = state.spec.name + ":latest"
    return {"name": name, "model": name, "modified_at": datetime.fromtimestamp(started_at, timezone.utc).isoformat(),
            "size": 0, "digest": "", "details": _details(state)}


def _served_states():
    return [s for s in service().model_states()
            if s.spec.kind in CAPABILITIES and s.status not in ("failed", "unavailable")]


@ollama_bp.get("/tags")
async def tags():
    return jsonify({"models": [_entry(s, service().started_at) for s in _served_states()]})


@ollama_bp.get("/ps")
async def ps():
    return jsonify({"models": [{**_entry(s, service().started_at), "expires_at": "0001-01-01T00:00:00Z", "size_vram": 0}
                               for s in _served_states() if s.status == "ready"]})


@ollama_bp.get("/version")
async def version():
    return jsonify({"version": OLLAMA_VERSION})


@ollama_bp.post("/show")
async def show():
    body = await _body()
    shown, model = _model(body)
    state = None
    for kind in CAPABILITIES:
        state = local_state(service(), kind, model)
        if state is not None and (model is None or state.spec.name == model):
            break
        state = None
    if state is None:
        raise OllamaError(f"model '{shown}' not found", 404)
    spec = state.spec
    params = "\n".join(f"{k} {v}" for k, v in with_defaults(service(), spec.kind, spec.name, {}).items())
    return jsonify({
        "modelfile": f"# served by mtor-node ({spec.backend})\nFROM {spec.source or spec.name}\n",
        "parameters": params, "template": "", "details": _details(state),
        "model_info": {"general.architecture": spec.backend, "mtor.kind": spec.kind, "mtor.status": state.status},
        "capabilities": CAPABILITIES[spec.kind],
        "modified_at": datetime.fromtimestamp(service().started_at, timezone.utc).isoformat(),
    })
