"""OpenAI-compatible /v1/embeddings (on the openai blueprint): one `embed` intent per request.

The official client asks for base64 unless told otherwise (little-endian float32, as OpenAI
sends it); float lists are given when asked. Token-array inputs and `dimensions` other than the
model's own are refused with a 400 naming the field.
"""

from __future__ import annotations

import base64
import struct

from quart import jsonify

from mtor_node.intents import MAX_EMBED_TEXTS

from .compat import usage_of
from .intake import run_to_end, ui_state
from .openai_common import OpenAIError, final_error, model_of, openai_bp, read_body, submit_intent, user_of


def embed_texts(value, field: str, error) -> list[str]:
    """A client's input (a string or a list of strings) as the intent's texts."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise error(f"{field} must be a string or a non-empty list of strings")
    if not all(isinstance(t, str) for t in texts):
        raise error(f"{field}: token arrays are not supported, send text (this server does not use OpenAI's tokenizer)")
    if len(texts) > MAX_EMBED_TEXTS:
        raise error(f"{field} has {len(texts)} items; the limit is {MAX_EMBED_TEXTS}")
    return texts


@openai_bp.post("/embeddings")
async def embeddings():
    body = await read_body()
    texts = embed_texts(body.get("input"), "input", lambda m: OpenAIError(m, param="input"))
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise OpenAIError("encoding_format must be float or base64", param="encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise OpenAIError("dimensions must be a whole number ≥ 1", param="dimensions")
    model = model_of(body)
    if model == "text-embedding-ada-002" or (model or "").startswith("text-embedding-3"):
        model = None  # OpenAI's names: the node's default embedding model
    ticket = submit_intent({"kind": "embed", "texts": texts, "model": model, "user": user_of(body)})
    final = await run_to_end(ui_state(), ticket)
    if final["type"] == "error":
        raise final_error(final)
    vectors = final.get("embeddings") or []
    if dims is not None and vectors and dims != len(vectors[0]):
        raise OpenAIError(f"dimensions={dims}: this model gives {len(vectors[0])} dimensions and cannot shorten them",
                          "unsupported_parameter", param="dimensions")
    encode = (lambda v: base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()) if fmt == "base64" else list
    prompt, _ = usage_of({"usage": {"prompt_tokens": final.get("units")}, **final})
    return jsonify({"object": "list", "model": body.get("model") or ticket.target or "default",
                    "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
                    "usage": {"prompt_tokens": prompt, "total_tokens": prompt}})
