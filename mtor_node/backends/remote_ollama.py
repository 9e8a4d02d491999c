"""Adapter for an Ollama server: its models become this node's chat and vision models.

Registry entry: backend ``ollama``, kind ``chat`` or ``vision``, source (or options.url) the server,
e.g. ``http://127.0.0.1:11434``; options.model the model's name on the server (default: the entry's
name), e.g. ``llama3.2:1b`` or ``llava:7b``; options.keep_alive passed through; options.timeout_s
(read, default 300) and options.connect_timeout_s (default 10).

Wire format: ``POST /api/chat`` with ``stream: true`` answers NDJSON, one object per line
(``{"message": {"content": "..."}, "done": false}`` … ``{"done": true, "done_reason", "eval_count",
"prompt_eval_count"}``), or ``{"error": "..."}``. Images go base64 in the message's ``images`` list.
Health: ``GET /api/tags`` lists the pulled models.
"""

from __future__ import annotations

import base64
import json

from ..intents import Intent
from . import remote_http
from .base import Backend, BackendError, Emit

DEFAULT_URL = "http://127.0.0.1:11434"
_VISION_FAMILIES = {"clip", "mllama", "qwen25vl", "gemma3", "llava"}


class OllamaRemote(Backend):
    kinds = ("chat", "vision")

    def __init__(self, spec, cache_dir):
        super().__init__(spec, cache_dir)
        self.url = remote_http.server_url(self, DEFAULT_URL)

    def load_sync(self, progress) -> None:
        if self.spec.kind not in self.kinds:
            raise BackendError("bad_config", f"the ollama adapter serves chat and vision, not {self.spec.kind}")

    def describe(self) -> dict:
        return {"remote": "ollama", "url": self.url, "model": remote_http.remote_model(self)}

    async def health(self) -> dict:
        """Is the server up, which models it has, and whether this entry's model is one of them."""
        try:
            async with remote_http.client(self, self.url, read_default=10.0) as c:
                data = await remote_http.get_json(c, "/api/tags", "ollama")
        except BackendError as e:
            return remote_http.health_error(self.url, e)
        models, kinds = [], {}
        for m in data.get("models") or []:
            name = m.get("name") or m.get("model")
            if not name:
                continue
            details = m.get("details") or {}
            families = {str(f).lower() for f in (details.get("families") or [details.get("family")]) if f}
            k = ["chat", "vision"] if families & _VISION_FAMILIES or "llava" in name or "vision" in name else ["chat"]
            models.append(name)
            kinds[name] = k
        wanted = remote_http.remote_model(self)
        serves = _matches(wanted, models)
        return {"ok": True, "url": self.url, "models": models, "kinds_by_model": kinds,
                "model": wanted, "serves": serves, "kinds": [self.spec.kind] if serves else []}

    async def run(self, intent: Intent, emit: Emit) -> dict:
        p = intent.params
        if intent.kind == "vision":
            messages = [{"role": "user", "content": intent.prompt, "images": [base64.b64encode(intent.image).decode()]}]
        elif intent.kind == "chat":
            messages = self.messages(intent)
        else:
            raise BackendError("bad_kind", f"the ollama adapter cannot serve {intent.kind}")
        temperature, top_p = self.sampling(p)
        options = {"temperature": temperature, "top_p": top_p, "num_predict": p.get("max_tokens", 256)}
        if p.get("stop"):
            options["stop"] = p["stop"]
        if p.get("seed") is not None:
            options["seed"] = p["seed"]
        payload = {"model": remote_http.remote_model(self), "messages": messages, "stream": True, "options": options}
        if "keep_alive" in self.spec.options:
            payload["keep_alive"] = self.spec.options["keep_alive"]
        text, final = [], {}
        async with remote_http.client(self, self.url) as c:
            async with c.stream("POST", "/api/chat", json=payload) as resp:
                if resp.status_code >= 400:
                    remote_http.raise_for_status(resp, f"ollama at {self.url}", await resp.aread())
                async for line in resp.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        raise BackendError("remote_error", f"ollama sent a line that is not JSON: {line[:200]!r}") from None
                    if obj.get("error"):
                        raise BackendError("remote_error", f"ollama at {self.url}: {obj['error']}")
                    piece = (obj.get("message") or {}).get("content") or ""
                    if piece:
                        text.append(piece)
                        await emit({"type": "chunk", "text": piece})
                    if obj.get("done"):
                        final = obj
                        break
        if not final:
            raise BackendError("remote_error", f"ollama at {self.url} closed the stream before it was done")
        completion = int(final.get("eval_count") or len(text))
        reason = final.get("done_reason") or "stop"
        return {"text": "".join(text), "units": completion, "finish_reason": "length" if reason == "length" else "stop",
                "usage": {"prompt_tokens": int(final.get("prompt_eval_count") or 0), "completion_tokens": completion}}


def _matches(wanted: str, models: list[str]) -> bool:
    """Ollama names a model ``name:tag``; ``name`` alone means ``name:latest``."""
    full = wanted if ":" in wanted else f"{wanted}:latest"
    return wanted in models or full in models
