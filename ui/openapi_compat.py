"""The OpenAPI part for the Ollama- and Anthropic-compatible endpoints (ui/ollama_api.py,
ui/anthropic_api.py) and the OpenAI additions; merged into /openapi.json by ui/openapi.py.

Each schema says what the handler accepts and answers, so that schemathesis can check both.
"""

from __future__ import annotations

FAILS = (400, 403, 404, 409, 413, 415, 422, 503, 504)


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(ref: str, codes=FAILS) -> dict:
    return {str(c): {"description": "an error", **_json(_ref(ref))} for c in codes}


OLLAMA_OPTIONS = {"type": "object", "properties": {
    "temperature": {"type": "number"}, "top_p": {"type": "number"}, "num_predict": {"type": "integer"},
    "seed": {"type": "integer"}, "stop": {"type": "array", "items": {"type": "string"}}}}
OLLAMA_DONE = {  # the last object of a stream, and the whole answer with stream: false
    "done": {"type": "boolean"}, "done_reason": {"type": "string"}, "total_duration": {"type": "integer"},
    "load_duration": {"type": "integer"}, "prompt_eval_count": {"type": "integer"}, "eval_count": {"type": "integer"},
    "eval_duration": {"type": "integer"}, "prompt_eval_duration": {"type": "integer"}}
OLLAMA_MODEL = {"type": "object", "required": ["name", "model"], "properties": {
    "name": {"type": "string"}, "model": {"type": "string"}, "modified_at": {"type": "string"},
    "size": {"type": "integer"}, "digest": {"type": "string"}, "details": {"type": "object"}}}


def schemas() -> dict:
    return {
        "OllamaError": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "OllamaChatRequest": {"type": "object", "required": ["model"], "properties": {
            "model": {"type": "string"}, "stream": {"type": "boolean"}, "options": OLLAMA_OPTIONS,
            "keep_alive": {}, "messages": {"type": "array", "items": {"type": "object", "properties": {
                "role": {"enum": ["system", "user", "assistant"]}, "content": {"type": "string"},
                "images": {"type": "array", "items": {"type": "string", "contentEncoding": "base64"}}}}}}},
        "OllamaGenerateRequest": {"type": "object", "required": ["model"], "properties": {
            "model": {"type": "string"}, "prompt": {"type": "string"}, "system": {"type": "string"},
            "stream": {"type": "boolean"}, "options": OLLAMA_OPTIONS, "keep_alive": {},
            "images": {"type": "array", "items": {"type": "string", "contentEncoding": "base64"}}}},
        "AnthropicError": {"type": "object", "required": ["type", "error"], "properties": {
            "type": {"const": "error"}, "error": {"type": "object", "required": ["type", "message"], "properties": {
                "type": {"type": "string"}, "message": {"type": "string"}}}}},
        "AnthropicRequest": {"type": "object", "required": ["model", "max_tokens", "messages"], "properties": {
            "model": {"type": "string"}, "max_tokens": {"type": "integer", "minimum": 1},
            "messages": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["role", "content"], "properties": {
                "role": {"enum": ["user", "assistant"]},
                "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}}}},
            "system": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
            "stream": {"type": "boolean"}, "temperature": {"type": "number", "minimum": 0, "maximum": 1},
            "top_p": {"type": "number"}, "stop_sequences": {"type": "array", "items": {"type": "string"}},
            "metadata": {"type": "object"}}},
        "AnthropicMessage": {"type": "object", "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
                             "properties": {
            "id": {"type": "string"}, "type": {"const": "message"}, "role": {"const": "assistant"}, "model": {"type": "string"},
            "content": {"type": "array", "items": {"type": "object", "required": ["type", "text"], "properties": {
                "type": {"const": "text"}, "text": {"type": "string"}}}},
            "stop_reason": {"enum": ["end_turn", "max_tokens", "stop_sequence"]}, "stop_sequence": {"type": ["string", "null"]},
            "usage": {"type": "object", "required": ["input_tokens", "output_tokens"], "properties": {
                "input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"}}}}},
        "OllamaChatResponse": {"type": "object", "required": ["model", "created_at", "message", "done"], "properties": {
            "model": {"type": "string"}, "created_at": {"type": "string"}, "message": {"type": "object", "properties": {
                "role": {"const": "assistant"}, "content": {"type": "string"}}}, **OLLAMA_DONE}},
        "OllamaGenerateResponse": {"type": "object", "required": ["model", "created_at", "response", "done"], "properties": {
            "model": {"type": "string"}, "created_at": {"type": "string"}, "response": {"type": "string"}, **OLLAMA_DONE}},
    }


def _ollama_stream(summary: str, request: str, response: str) -> dict:
    return {"post": {"summary": summary, "requestBody": {"required": True, **_json(_ref(request))},
                     "responses": {"200": {"description": "NDJSON objects (stream, the default), or one object (stream: false)",
                                           "content": {"application/json": {"schema": _ref(response)},
                                                       "application/x-ndjson": {"schema": {"type": "string"}}}},
                                   **_errors("OllamaError", FAILS + (500,))}}}


def paths() -> dict:
    ok = lambda schema: {"200": {"description": "ok", **_json(schema)}}  # noqa: E731
    return {
        "/api/chat": _ollama_stream("Ollama-compatible chat", "OllamaChatRequest", "OllamaChatResponse"),
        "/api/generate": _ollama_stream("Ollama-compatible generate (prompt through the chat template)",
                                        "OllamaGenerateRequest", "OllamaGenerateResponse"),
        "/v1/messages": {"post": {"summary": "Anthropic-compatible Messages API (stream: SSE events as Anthropic sends them)",
            "requestBody": {"required": True, **_json(_ref("AnthropicRequest"))},
            "responses": {"200": {"description": "a message, or (stream) SSE events",
                                  "content": {"application/json": {"schema": _ref("AnthropicMessage")},
                                              "text/event-stream": {"schema": {"type": "string"}}}},
                          **_errors("AnthropicError", FAILS + (500,))}}},
        "/v1/embeddings": {"post": {"summary": "OpenAI-compatible embeddings (float lists or base64 float32)",
            "requestBody": {"required": True, **_json({"type": "object", "required": ["input"], "properties": {
                "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "model": {"type": "string"}, "encoding_format": {"enum": ["float", "base64"]},
                "dimensions": {"type": "integer", "minimum": 1}, "user": {"type": "string"}}})},
            "responses": {"200": {"description": "one embedding per input", **_json({"type": "object",
                "required": ["object", "data", "usage"], "properties": {"object": {"const": "list"}, "data": {"type": "array"},
                                                                         "usage": {"type": "object"}}})},
                          **_errors("OpenAIError", FAILS)}}},
        "/api/embed": {"post": {"summary": "Ollama-compatible embeddings",
            "requestBody": {"required": True, **_json({"type": "object", "required": ["model", "input"], "properties": {
                "model": {"type": "string"}, "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "truncate": {"type": "boolean"}, "keep_alive": {}, "options": {"type": "object"}}})},
            "responses": {"200": {"description": "embeddings", **_json({"type": "object", "required": ["model", "embeddings"],
                "properties": {"embeddings": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}})},
                          **_errors("OllamaError", FAILS + (500,))}}},
        "/api/embeddings": {"post": {"summary": "Ollama's older embeddings endpoint (one prompt)",
            "requestBody": {"required": True, **_json({"type": "object", "required": ["model", "prompt"], "properties": {
                "model": {"type": "string"}, "prompt": {"type": "string"}}})},
            "responses": {"200": {"description": "one embedding", **_json({"type": "object", "required": ["embedding"],
                "properties": {"embedding": {"type": "array", "items": {"type": "number"}}}})},
                          **_errors("OllamaError", FAILS + (500,))}}},
        "/api/tags": {"get": {"summary": "Ollama-compatible list of language models",
                              "responses": ok({"type": "object", "required": ["models"], "properties": {
                                  "models": {"type": "array", "items": OLLAMA_MODEL}}})}},
        "/api/ps": {"get": {"summary": "Ollama-compatible list of loaded models",
                            "responses": ok({"type": "object", "required": ["models"], "properties": {
                                "models": {"type": "array", "items": OLLAMA_MODEL}}})}},
        "/api/version": {"get": {"summary": "The Ollama API version these endpoints follow",
                                 "responses": ok({"type": "object", "required": ["version"],
                                                  "properties": {"version": {"type": "string"}}})}},
        "/api/show": {"post": {"summary": "Ollama-compatible model details",
                               "requestBody": {"required": True, **_json({"type": "object", "required": ["model"],
                                                                          "properties": {"model": {"type": "string"}}})},
                               "responses": {**ok({"type": "object", "required": ["capabilities", "details"], "properties": {
                                   "capabilities": {"type": "array", "items": {"type": "string"}},
                                   "details": {"type": "object"}, "parameters": {"type": "string"},
                                   "modelfile": {"type": "string"}, "model_info": {"type": "object"}}}),
                                   **_errors("OllamaError", (400, 403, 404, 415))}}},
    }
