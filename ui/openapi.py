"""The OpenAPI 3.1 document of every HTTP endpoint; schemathesis fuzzes the node against it.

Kept by hand next to the handlers: each schema says what the handler really accepts and returns.
"""

from __future__ import annotations

from mtor_node import __version__
from mtor_node.intents import KINDS

from . import openapi_compat


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _resp(description: str, schema: dict | None = None) -> dict:
    r = {"description": description}
    if schema is not None:
        r.update(_json(schema))
    return r


ERR = _resp("an error", _ref("Error"))
OAI_ERR = _resp("an error in OpenAI's shape", _ref("OpenAIError"))
SYSOP = [{"sysop": []}]
ID_PARAM = {"name": "intent_id", "in": "path", "required": True, "schema": {"type": "string"}}
USER_PARAM = {"name": "user", "in": "path", "required": True, "schema": {"type": "string"}}
PEER_PARAM = {"name": "peer_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _errors(*codes: int, oai: bool = False) -> dict:
    return {str(c): OAI_ERR if oai else ERR for c in codes}


def openapi_document() -> dict:
    S = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
        "OpenAIError": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["message", "type"],
            "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                           "code": {"type": ["string", "null"]}, "param": {"type": ["string", "null"]}}}}},
        "Message": {"type": "object", "required": ["role", "content"], "properties": {
            "role": {"enum": ["system", "user", "assistant"]}, "content": {"type": "string"}}},
        "Intent": {
            "type": "object", "required": ["kind"],
            "description": "chat needs messages (or prompt); vision needs image_b64 (+prompt); imagine and speak need prompt; "
                           "transcribe needs audio_b64. Bytes travel as base64.",
            "properties": {
                "kind": {"enum": list(KINDS)}, "model": {"type": ["string", "null"], "maxLength": 200},
                "user": {"type": "string", "maxLength": 64}, "id": {"type": "string", "maxLength": 64},
                "messages": {"type": "array", "items": _ref("Message")}, "prompt": {"type": "string"},
                "image_b64": {"type": "string", "contentEncoding": "base64"},
                "audio_b64": {"type": "string", "contentEncoding": "base64"},
                "params": {"type": "object"}, "max_price": {"type": ["integer", "null"], "minimum": 0},
                "timeout": {"type": "number", "exclusiveMinimum": 0}}},
        "Event": {"type": "object", "required": ["type"], "description": "queued, started, chunk, progress, result or error; "
                  "bytes (image_png, audio_wav, audio) as *_b64", "properties": {
                      "type": {"enum": ["queued", "started", "chunk", "progress", "result", "error"]}, "id": {"type": "string"}}},
        "Status": {"type": "object", "required": ["version", "peer_id", "roles", "models", "queue"], "properties": {
            "version": {"type": "string"}, "peer_id": {"type": "string"}, "solana_address": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}}, "models": {"type": "array", "items": {"type": "object"}},
            "queue": {"type": "object"}, "peers": {"type": "array", "items": {"type": "object"}},
            "wallet": {"type": "object"}, "quote": {}}},
        "ChatRequest": {"type": "object", "required": ["messages"], "properties": {
            "model": {"type": "string"}, "messages": {"type": "array", "minItems": 1, "items": {"type": "object", "properties": {
                "role": {"enum": ["system", "user", "assistant"]},
                "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}}}},
            "stream": {"type": "boolean"}, "stream_options": {"type": "object"},
            "max_tokens": {"type": "integer", "minimum": 1}, "max_completion_tokens": {"type": "integer", "minimum": 1},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2}, "top_p": {"type": "number"},
            "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "seed": {"type": "integer"}, "n": {"type": "integer"}, "user": {"type": "string"}}},
        "ChatCompletion": {"type": "object", "required": ["id", "object", "created", "model", "choices", "usage"], "properties": {
            "id": {"type": "string"}, "object": {"const": "chat.completion"}, "created": {"type": "integer"},
            "model": {"type": "string"}, "choices": {"type": "array", "items": {"type": "object", "required": ["index", "message", "finish_reason"],
                "properties": {"index": {"type": "integer"}, "finish_reason": {"enum": ["stop", "length"]},
                               "message": {"type": "object", "properties": {"role": {"const": "assistant"}, "content": {"type": "string"}}}}}},
            "usage": {"type": "object", "properties": {"prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"},
                                                       "total_tokens": {"type": "integer"}}}}},
        "ImageRequest": {"type": "object", "required": ["prompt"], "properties": {
            "prompt": {"type": "string", "minLength": 1}, "model": {"type": "string"}, "n": {"type": "integer", "minimum": 1, "maximum": 4},
            "size": {"type": "string", "pattern": "^(auto|[0-9]{2,4}x[0-9]{2,4})$"}, "response_format": {"const": "b64_json"},
            "steps": {"type": "integer"}, "guidance": {"type": "number"}, "seed": {"type": "integer"},
            "negative_prompt": {"type": "string"}, "user": {"type": "string"}}},
        "ImagesResponse": {"type": "object", "required": ["created", "data"], "properties": {
            "created": {"type": "integer"}, "data": {"type": "array", "items": {"type": "object", "required": ["b64_json"],
                                                                             "properties": {"b64_json": {"type": "string"}}}}}},
        "SpeechRequest": {"type": "object", "required": ["input"], "properties": {
            "input": {"type": "string", "minLength": 1}, "model": {"type": "string"}, "voice": {"type": "string"},
            "response_format": {"enum": ["mp3", "opus", "aac", "flac", "wav", "pcm"]},
            "speed": {"type": "number", "minimum": 0.25, "maximum": 4}}},
        "Transcription": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
        "ModelList": {"type": "object", "required": ["object", "data"], "properties": {
            "object": {"const": "list"}, "data": {"type": "array", "items": {"type": "object", "required": ["id", "object"],
                                                                          "properties": {"id": {"type": "string"}, "object": {"const": "model"}}}}}},
    }
    json_or_err = lambda ok, *codes, oai=False: {"200": _resp("ok", ok), **_errors(*codes, oai=oai)}  # noqa: E731
    cross = (403, 415)  # the CSRF guard: another Origin, or a content type a <form> could send
    paths = {
        "/api/v1/status": {"get": {"summary": "Node status: identity, models, queue (+ peers, wallet, quote when known)",
                                   "responses": {"200": _resp("status", _ref("Status"))}}},
        "/api/v1/queue": {"get": {"summary": "Queued and running intents", "responses": {"200": _resp("queue", {
            "type": "object", "required": ["queue"], "properties": {"queue": {"type": "array", "items": {"type": "object"}}}})}}},
        "/api/v1/history": {"get": {"summary": "Previous queries, newest first", "parameters": [
            {"name": "user", "in": "query", "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
            "responses": json_or_err({"type": "object", "required": ["history"], "properties": {"history": {"type": "array"}}}, 400)}},
        "/api/v1/intents": {"post": {
            "summary": "Run an intent; ?stream=1 answers NDJSON events as they happen, otherwise the final event",
            "parameters": [{"name": "stream", "in": "query", "schema": {"enum": ["0", "1", "true", "false"]}}],
            "requestBody": {"required": True, **_json(_ref("Intent"))},
            "responses": {"200": {"description": "the result event, or (stream) NDJSON events",
                                  "content": {"application/json": {"schema": _ref("Event")},
                                              "application/x-ndjson": {"schema": {"type": "string"}}}},
                          **_errors(400, 403, 404, 409, 413, 415, 422, 503, 504)}}},
        "/api/v1/intents/{intent_id}/cancel": {"post": {"summary": "Cancel your queued or running intent", "parameters": [ID_PARAM],
            "responses": json_or_err({"type": "object", "properties": {"cancelled": {"type": "string"}}}, 403, 404, 415)}},
        "/api/v1/nickname": {"post": {"summary": "Set a user's nickname", "requestBody": {"required": True, **_json({
            "type": "object", "required": ["user", "nickname"], "properties": {
                "user": {"type": "string", "pattern": "^[A-Za-z0-9_.:@-]{1,64}$"}, "nickname": {"type": "string", "minLength": 1, "maxLength": 32}}})},
            "responses": json_or_err({"type": "object", "properties": {"user": {"type": "string"}, "nickname": {"type": "string"}}}, 400, *cross)}},
        "/api/v1/stats": {"get": {"summary": "Query counts by kind and status, broker counters, API outcomes",
                                  "responses": {"200": _resp("stats", {"type": "object", "required": ["queries"], "properties": {
                                      "queries": {"type": "array"}, "broker": {"type": "object"}, "outcomes": {"type": "array"},
                                      "connections": {"type": "integer"}}})}}},
        "/api/v1/quote": {"post": {"summary": "Quote a whole intent (the same body as /api/v1/intents): best offer or why none",
            "requestBody": {"required": True, **_json(_ref("Intent"))},
            "responses": json_or_err({"type": "object", "required": ["ok"], "properties": {
                "ok": {"type": "boolean"}, "price": {"type": ["integer", "null"]}, "peer": {"type": ["string", "null"]},
                "local": {"type": "boolean"}, "message": {"type": "string"}}}, 400, *cross)},
            "get": {"summary": "Price of a typical intent of a kind: the best offer in the realm (0: free)",
            "parameters": [{"name": "kind", "in": "query", "schema": {"enum": list(KINDS)}},
                           {"name": "model", "in": "query", "schema": {"type": "string"}}],
            "responses": json_or_err({"type": "object", "required": ["price", "ok"], "properties": {
                "kind": {"type": "string"}, "price": {"type": ["integer", "null"]}, "unit": {"type": "string"},
                "free": {"type": "boolean"}, "ok": {"type": "boolean"}, "peer": {"type": ["string", "null"]},
                "message": {"type": "string"}}}, 400)}},
        "/api/v1/shutdown": {"post": {"summary": "Stop the node (sysop)", "security": SYSOP,
                                      "responses": json_or_err({"type": "object"}, *cross)}},
        "/api/v1/users": {"get": {"summary": "Users, nicknames and bans (sysop)", "security": SYSOP,
                                  "responses": json_or_err({"type": "object", "properties": {"users": {"type": "array"}}}, 403)}},
        "/api/v1/users/{user}/ban": {"post": {"summary": "Ban a user and cancel their intents (sysop)", "security": SYSOP,
            "parameters": [USER_PARAM], "responses": json_or_err({"type": "object"}, 400, *cross)}},
        "/api/v1/users/{user}/unban": {"post": {"summary": "Lift a ban (sysop)", "security": SYSOP,
            "parameters": [USER_PARAM], "responses": json_or_err({"type": "object"}, 400, *cross)}},
        "/api/v1/queue/{intent_id}/cancel": {"post": {"summary": "Cancel any intent, with a reason (sysop)", "security": SYSOP,
            "parameters": [ID_PARAM], "requestBody": {"required": False, **_json({"type": "object", "properties": {"reason": {"type": "string"}}})},
            "responses": json_or_err({"type": "object"}, 400, 404, *cross)}},
        "/api/v1/broadcast": {"post": {"summary": "Send a message to every connected page (sysop)", "security": SYSOP,
            "requestBody": {"required": True, **_json({"type": "object", "required": ["message"], "properties": {
                "message": {"type": "string", "minLength": 1, "maxLength": 500}}})},
            "responses": json_or_err({"type": "object", "properties": {"delivered": {"type": "integer"}}}, 400, *cross)}},
        # apps_api.py
        "/api/v1/apps": {"get": {"summary": "Realm apps (weather, mail): triggers, configured, available",
            "responses": {"200": _resp("apps", {"type": "object", "required": ["apps"], "properties": {
                "apps": {"type": "array", "items": {"type": "object"}}}})}}},
        "/api/v1/apps/{name}": {"post": {"summary": "Run a realm app on this broker node: text to show and say",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": False, **_json({"type": "object", "properties": {"text": {"type": "string", "maxLength": 500}}})},
            "responses": json_or_err({"type": "object", "required": ["app", "text", "say"], "properties": {
                "app": {"type": "string"}, "text": {"type": "string"}, "say": {"type": "string"},
                "data": {"type": ["object", "null"]}}}, 400, 404, 409, 502, 503, *cross)}},
        # models_api.py: the run-time model registry (sysop)
        "/api/v1/models": {"post": {"summary": "Add a model at run time: mtor.toml's [models.NAME] fields plus name (sysop)",
            "security": SYSOP, "requestBody": {"required": True, **_json({"type": "object", "required": ["name", "kind", "backend"],
                "properties": {"name": {"type": "string"}, "kind": {"enum": list(KINDS)}, "backend": {"type": "string"},
                               "source": {"type": "string"}}})},
            "responses": {"201": _resp("added", {"type": "object", "required": ["model"], "properties": {"model": {"type": "object"}}}),
                          **_errors(400, 409, *cross)}}},
        "/api/v1/models/{name}": {"delete": {"summary": "Remove a model (sysop)", "security": SYSOP,
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": json_or_err({"type": "object", "properties": {"removed": {"type": "string"}}}, 404, 409, *cross)}},
        "/api/v1/models/{name}/load": {"post": {"summary": "Load a model now (sysop)", "security": SYSOP,
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": json_or_err({"type": "object", "properties": {"model": {"type": "object"}}}, 404, 409, *cross)}},
        "/api/v1/models/{name}/unload": {"post": {"summary": "Unload a model, freeing its memory (sysop)", "security": SYSOP,
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": json_or_err({"type": "object", "properties": {"model": {"type": "object"}}}, 404, 409, *cross)}},
        # sysop_console.py
        "/api/v1/sysop/logs": {"get": {"summary": "The live log: newest records after a sequence number, by level and text (sysop)",
            "security": SYSOP, "parameters": [
                {"name": "after", "in": "query", "schema": {"type": "integer"}},
                {"name": "level", "in": "query", "schema": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]}},
                {"name": "search", "in": "query", "schema": {"type": "string", "maxLength": 200}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 2000}}],
            "responses": json_or_err({"type": "object", "required": ["logs", "last"], "properties": {
                "logs": {"type": "array", "items": {"type": "object"}}, "last": {"type": "integer"}}}, 400, 403)}},
        "/api/v1/sysop/stats": {"get": {"summary": "Lifetime totals and averages per kind, users ever, most users at once (sysop)",
            "security": SYSOP, "responses": json_or_err({"type": "object", "required": ["lifetime", "per_kind"]}, 403)}},
        "/api/v1/sysop/alerts": {"get": {"summary": "What the watchdog finds wrong now (sysop)", "security": SYSOP,
            "responses": json_or_err({"type": "object", "required": ["alerts"], "properties": {
                "alerts": {"type": "array", "items": {"type": "object"}}}}, 403)}},
        # realm_api.py
        "/api/v1/peers": {"get": {"summary": "Peers of the realm: hardware, models, prices, surge, health, RTT",
            "responses": {"200": _resp("peers", {"type": "object", "required": ["peers"], "properties": {
                "realm": {"type": ["string", "null"]}, "peers": {"type": "array", "items": {"type": "object"}},
                "stats": {"type": "object"}}})}}},
        "/api/v1/peers/{peer_id}/block": {"post": {"summary": "Block a peer (sysop)", "security": SYSOP,
            "parameters": [PEER_PARAM], "responses": json_or_err({"type": "object"}, 400, 409, *cross)}},
        "/api/v1/peers/{peer_id}/unblock": {"post": {"summary": "Unblock a peer (sysop)", "security": SYSOP,
            "parameters": [PEER_PARAM], "responses": json_or_err({"type": "object"}, 400, 409, *cross)}},
        "/api/v1/prices": {
            "get": {"summary": "This worker's base prices (micro-tokens), surge and peaking threshold",
                    "responses": {"200": _resp("prices", {"type": "object", "required": ["prices"], "properties": {
                        "prices": {"type": "object"}, "surge": {"type": "number"}, "peaking": {"type": ["number", "null"]}}})}},
            "post": {"summary": "Set base prices and the peaking threshold at run time, announced at once (sysop)",
                     "security": SYSOP, "requestBody": {"required": True, **_json({"type": "object", "properties": {
                         "prices": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                         "peaking": {"type": ["number", "null"], "minimum": 0, "maximum": 10}}})},
                     "responses": json_or_err({"type": "object", "properties": {"prices": {"type": "object"}}}, 400, 409, *cross)}},
        # ledger_api.py (chain calls may fail upstream: 502/504 name the Solana RPC, not this node)
        "/api/v1/wallet": {"get": {"summary": "Wallet: address, balance, holds, recent ledger entries (micro-tokens)",
            "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 500}}],
            "responses": json_or_err({"type": "object", "required": ["address", "balance"], "properties": {
                "address": {"type": "string"}, "balance": {"type": "integer"}, "available": {"type": "integer"},
                "recent": {"type": "array", "items": {"type": "object"}}}}, 400, 409)}},
        "/api/v1/wallet/grant": {"post": {"summary": "Issue a grant voucher (sysop, realm authority)", "security": SYSOP,
            "requestBody": {"required": True, **_json({"type": "object", "required": ["address", "amount"], "properties": {
                "address": {"type": "string"}, "amount": {"type": "integer"}, "id": {"type": "string"}}})},
            "responses": json_or_err({"type": "object"}, 400, 409, *cross)}},
        "/api/v1/wallet/users": {"get": {"summary": "Users' sub-accounts in this broker's ledger (sysop)", "security": SYSOP,
            "responses": json_or_err({"type": "object", "required": ["users"], "properties": {
                "users": {"type": "array", "items": {"type": "object"}}, "demo_grant": {"type": "integer"}}}, 403, 409)}},
        "/api/v1/wallet/users/credit": {"post": {"summary": "Credit a user's sub-account (sysop)", "security": SYSOP,
            "requestBody": {"required": True, **_json({"type": "object", "required": ["user", "amount"], "properties": {
                "user": {"type": "string", "minLength": 1}, "amount": {"type": "integer"}, "id": {"type": "string"}}})},
            "responses": json_or_err({"type": "object", "properties": {"user": {"type": "string"}, "credited": {"type": "integer"},
                                                                       "balance": {"type": "integer"}}}, 400, 409, *cross)}},
        "/api/v1/wallet/redeem": {"post": {"summary": "Credit a grant voucher to this node",
            "requestBody": {"required": True, **_json({"type": "object", "required": ["voucher"], "properties": {"voucher": {"type": "string"}}})},
            "responses": json_or_err({"type": "object"}, 400, 409, *cross)}},
        "/api/v1/wallet/settle": {"post": {"summary": "Pay what this node owes peers on chain (sysop)", "security": SYSOP,
            "requestBody": {"required": False, **_json({"type": "object", "properties": {
                "peer": {"type": "string"}, "amount": {"type": "integer"}}})},
            "responses": json_or_err({"type": "object"}, 400, 409, 502, 504, *cross)}},
        "/api/v1/ledger/verify": {"post": {"summary": "Verify signatures, the hash chain and anchors",
            "requestBody": {"required": False, **_json({"type": "object", "properties": {"chain": {"type": "boolean"}}})},
            "responses": json_or_err({"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}, 400, 409, *cross)}},
        "/api/v1/ledger/anchor": {"post": {"summary": "Anchor the pending ledger entries on Solana now (sysop)", "security": SYSOP,
            "responses": json_or_err({"type": "object", "required": ["anchored"], "properties": {"anchored": {"type": "boolean"}}},
                                     409, 502, 504, *cross)}},
        "/api/v1/ledger/export": {"get": {"summary": "This node's entries with their canonical bytes",
            "parameters": [{"name": "format", "in": "query", "schema": {"enum": ["json", "jsonl"]}}],
            "responses": {"200": {"description": "entries", "content": {"application/json": {"schema": {"type": "object"}},
                                                                        "application/x-ndjson": {"schema": {"type": "string"}}}},
                          **_errors(400, 409)}}},
        "/v1/chat/completions": {"post": {"summary": "OpenAI-compatible chat (stream=true: SSE chunks ending with data: [DONE])",
            "requestBody": {"required": True, **_json(_ref("ChatRequest"))},
            "responses": {"200": {"description": "a chat.completion, or an SSE stream of chat.completion.chunk",
                                  "content": {"application/json": {"schema": _ref("ChatCompletion")},
                                              "text/event-stream": {"schema": {"type": "string"}}}},
                          **_errors(400, 403, 404, 409, 413, 415, 422, 503, 504, oai=True)}}},
        "/v1/images/generations": {"post": {"summary": "OpenAI-compatible image generation (b64_json)",
            "requestBody": {"required": True, **_json(_ref("ImageRequest"))},
            "responses": json_or_err(_ref("ImagesResponse"), 400, 403, 404, 409, 413, 415, 422, 503, 504, oai=True)}},
        "/v1/audio/transcriptions": {"post": {"summary": "OpenAI-compatible transcription (multipart file)",
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"], "properties": {
                    "file": {"type": "string", "format": "binary"}, "model": {"type": "string"}, "language": {"type": "string"},
                    "response_format": {"enum": ["json", "text", "verbose_json", "srt", "vtt"]}}}}}},
            "responses": {"200": {"description": "the transcript", "content": {
                "application/json": {"schema": _ref("Transcription")}, "text/plain": {"schema": {"type": "string"}},
                "text/vtt": {"schema": {"type": "string"}}}},
                **_errors(400, 403, 404, 409, 413, 415, 422, 503, 504, oai=True)}}},
        "/v1/audio/speech": {"post": {"summary": "OpenAI-compatible text to speech (mp3 by default)",
            "requestBody": {"required": True, **_json(_ref("SpeechRequest"))},
            "responses": {"200": {"description": "audio in the asked format", "content": {
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in ("audio/mpeg", "audio/ogg", "audio/aac", "audio/flac", "audio/wav", "audio/pcm")}},
                          **_errors(400, 403, 404, 409, 413, 415, 422, 502, 503, 504, oai=True)}}},
        "/v1/models": {"get": {"summary": "OpenAI-compatible model list", "responses": {"200": _resp("models", _ref("ModelList"))}}},
        "/v1/models/{model_id}": {"get": {"summary": "OpenAI-compatible model retrieve",
            "parameters": [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": json_or_err({"type": "object", "required": ["id", "object"], "properties": {
                "id": {"type": "string"}, "object": {"const": "model"}}}, 404, oai=True)}},
        "/v1/completions": {"post": {"summary": "OpenAI-compatible (legacy) completions: the prompt as one user message",
            "requestBody": {"required": True, **_json({"type": "object", "required": ["prompt"], "properties": {
                "model": {"type": "string"}, "prompt": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "max_tokens": {"type": "integer", "minimum": 1}, "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "top_p": {"type": "number"}, "n": {"type": "integer"}, "stream": {"type": "boolean"}, "seed": {"type": "integer"},
                "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}}})},
            "responses": {"200": {"description": "a text_completion, or an SSE stream of them", "content": {
                "application/json": {"schema": {"type": "object", "required": ["id", "object", "choices"], "properties": {
                    "object": {"const": "text_completion"}, "choices": {"type": "array"}, "usage": {"type": "object"}}}},
                "text/event-stream": {"schema": {"type": "string"}}}},
                          **_errors(400, 403, 404, 409, 413, 415, 422, 503, 504, oai=True)}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition format",
                                                                                    "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _resp("OpenAPI 3.1", {"type": "object"})}}},
    }
    S.update(openapi_compat.schemas())  # Ollama and Anthropic endpoints, OpenAI additions
    paths.update(openapi_compat.paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "mtor-node", "version": __version__,
                 "description": "HTTP API of an mtor-node. The WebSocket API at /ws is described in docs/api.md."},
        "servers": [{"url": "/"}],
        "components": {"schemas": S, "securitySchemes": {
            "sysop": {"type": "apiKey", "in": "header", "name": "X-Sysop-Token"},
            "access": {"type": "http", "scheme": "bearer", "description": "needed when the node listens beyond loopback"}}},
        "paths": paths,
    }
