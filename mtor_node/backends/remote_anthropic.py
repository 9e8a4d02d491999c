"""Claude as a worker: Anthropic's Messages API for chat and vision.

Registry entry: backend ``anthropic``, kind chat or vision; options.model the Claude model's name
(default: the entry's name); source (or options.url) the API base, default
``https://api.anthropic.com``; the API key in options.api_key, else in the environment variable
named by options.api_key_env (default ``ANTHROPIC_API_KEY``). The key goes only into the
``x-api-key`` header: it is never logged, described or put in an error message.
Other options: options.version (the ``anthropic-version`` header, default 2023-06-01),
options.max_retries (429/529 answers retried after their ``retry-after``, default 2),
options.max_retry_wait_s (the longest wait honoured, default 30), options.send_temperature (default
false: current Claude models choose their own sampling and the current SDK sends none),
options.timeout_s / connect_timeout_s.

Streaming is Anthropic's SSE: message_start (input tokens), content_block_delta text_delta
(chunks), message_delta (stop_reason, output tokens), message_stop; an ``error`` event fails the
intent. Errors: a missing key fails before any request; 401/403 name the key as refused, 404 the
model, 429 is retried after retry-after and then reported busy (retryable: the broker fails over).
"""

from __future__ import annotations

import base64
import json
import os

import httpx
import trio

from ..intents import Intent
from . import remote_http
from .base import Backend, BackendError, Emit

DEFAULT_URL = "https://api.anthropic.com"
DEFAULT_KEY_ENV = "ANTHROPIC_API_KEY"
API_VERSION = "2023-06-01"
STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


class AnthropicRemote(Backend):
    kinds = ("chat", "vision")

    def __init__(self, spec, cache_dir):
        super().__init__(spec, cache_dir)
        self.url = remote_http.server_url(self, DEFAULT_URL)
        self.what = f"Anthropic ({self.url})"

    def load_sync(self, progress) -> None:
        if self.spec.kind not in self.kinds:
            raise BackendError("bad_config", f"model {self.spec.name!r}: the anthropic backend serves chat and vision, not {self.spec.kind}")

    def describe(self) -> dict:
        return {"remote": "anthropic", "url": self.url, "model": remote_http.remote_model(self)}

    # ------------------------------------------------------------ requests

    def _key(self) -> str:
        opts = self.spec.options
        env = str(opts.get("api_key_env") or DEFAULT_KEY_ENV)
        key = str(opts.get("api_key") or os.environ.get(env, "")).strip()
        if not key:
            raise BackendError("unauthorized", f"no Anthropic API key for model {self.spec.name!r}: set options.api_key "
                                               f"or the {env} environment variable")
        return key

    def _client(self, read_default: float = 300.0) -> httpx.AsyncClient:
        headers = {"x-api-key": self._key(), "anthropic-version": str(self.spec.options.get("version", API_VERSION)),
                   "content-type": "application/json"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=remote_http.timeouts(self, read_default),
                                 trust_env=False, follow_redirects=False)

    def _error(self, status: int, body: bytes) -> BackendError:
        """Anthropic's {"type": "error", "error": {"type", "message"}} as a BackendError with a stable code."""
        kind, message = "", remote_http.error_message(body)
        try:
            kind = str(json.loads(body).get("error", {}).get("type", ""))
        except (ValueError, AttributeError):
            pass
        model = remote_http.remote_model(self)
        if status in (401, 403):
            return BackendError("unauthorized", f"{self.what} refused the API key ({kind or status}: {message})")
        if status == 404:
            return BackendError("unavailable", f"{self.what} has no model {model!r} ({message})")
        if status == 429 or status == 529:
            return BackendError("busy", f"{self.what} is {'rate limiting' if status == 429 else 'overloaded'}: {message}", retryable=True)
        if status == 413:
            return BackendError("too_large", f"{self.what}: {message}")
        return BackendError("remote_error", f"{self.what} answered HTTP {status} ({kind or 'error'}): {message}",
                            retryable=status >= 500)

    def _retry_after(self, resp: httpx.Response) -> float:
        try:
            wait = float(resp.headers.get("retry-after", "1"))
        except ValueError:
            wait = 1.0
        return max(0.0, min(wait, float(self.spec.options.get("max_retry_wait_s", 30.0))))

    async def health(self) -> dict:
        try:
            async with self._client(read_default=10.0) as c:
                resp = await c.get("/v1/models", params={"limit": 1000})
                if resp.status_code >= 400:
                    raise self._error(resp.status_code, resp.content)
                data = resp.json()
        except (BackendError, httpx.HTTPError, ValueError) as e:
            return remote_http.health_error(self.url, e if isinstance(e, BackendError) else BackendError("unavailable", f"cannot reach {self.url}: {type(e).__name__}"))
        models = [m["id"] for m in data.get("data") or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
        wanted = remote_http.remote_model(self)
        serves = wanted in models
        return {"ok": True, "url": self.url, "models": models, "model": wanted, "serves": serves,
                "kinds": list(self.kinds) if serves else [],
                **({} if serves else {"error": f"{self.what} has no model {wanted!r}"})}

    # ------------------------------------------------------------ chat / vision

    def _payload(self, intent: Intent) -> dict:
        p = intent.params
        if intent.kind == "vision":
            image = {"type": "image", "source": {"type": "base64", "media_type": remote_http.sniff_image_mime(intent.image),
                                                 "data": base64.b64encode(intent.image).decode()}}
            messages, system = [{"role": "user", "content": [image, {"type": "text", "text": intent.prompt}]}], ""
        else:
            system = "\n\n".join(m["content"] for m in intent.messages if m["role"] == "system")
            messages = [{"role": m["role"], "content": m["content"]} for m in intent.messages if m["role"] != "system"]
        payload = {"model": remote_http.remote_model(self), "max_tokens": p.get("max_tokens", 256), "messages": messages, "stream": True}
        if system:
            payload["system"] = system
        if p.get("stop"):
            payload["stop_sequences"] = p["stop"]
        if self.spec.options.get("send_temperature"):
            payload["temperature"] = min(float(p.get("temperature", 1.0)), 1.0)  # Anthropic's range is 0-1
        return payload

    async def run(self, intent: Intent, emit: Emit) -> dict:
        payload, retries = self._payload(intent), int(self.spec.options.get("max_retries", 2))
        try:
            async with self._client() as c:
                for attempt in range(retries + 1):
                    async with c.stream("POST", "/v1/messages", json=payload) as resp:
                        if resp.status_code in (429, 529) and attempt < retries:
                            wait = self._retry_after(resp)
                        elif resp.status_code >= 400:
                            raise self._error(resp.status_code, await resp.aread())
                        else:
                            return await self._read_stream(resp, emit)
                    await trio.sleep(wait)  # the server's own retry-after, within the intent's deadline
        except httpx.TimeoutException as e:
            raise BackendError("timeout", f"{self.what} did not answer in time ({type(e).__name__})", retryable=True) from e
        except httpx.TransportError as e:
            raise BackendError("unavailable", f"cannot reach {self.url}: {type(e).__name__}", retryable=True) from e
        raise BackendError("busy", f"{self.what} is still rate limiting after {retries} retries", retryable=True)

    async def _read_stream(self, resp: httpx.Response, emit: Emit) -> dict:
        text, stop, usage, event = [], None, {"input_tokens": 0, "output_tokens": 0}, ""
        async for line in resp.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
                continue
            if not line.startswith("data:"):
                continue
            try:
                obj = json.loads(line[5:].strip())
            except ValueError:
                raise BackendError("remote_error", f"{self.what} sent an event that is not JSON") from None
            kind = obj.get("type", event) if isinstance(obj, dict) else event
            if kind == "error":
                err = obj.get("error") or {}
                retryable = err.get("type") in ("overloaded_error", "rate_limit_error", "api_error")
                raise BackendError("busy" if retryable else "remote_error", f"{self.what}: {err.get('type', 'error')}: "
                                   f"{str(err.get('message', ''))[:300]}", retryable=retryable and not text)
            if kind == "message_start":
                usage.update({k: v for k, v in ((obj.get("message") or {}).get("usage") or {}).items() if isinstance(v, int)})
            elif kind == "content_block_delta":
                delta = obj.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    text.append(delta["text"])
                    await emit({"type": "chunk", "text": delta["text"]})
            elif kind == "message_delta":
                stop = (obj.get("delta") or {}).get("stop_reason") or stop
                usage.update({k: v for k, v in (obj.get("usage") or {}).items() if isinstance(v, int)})
            elif kind == "message_stop":
                break
        if stop is None:
            raise BackendError("remote_error", f"{self.what} closed the stream before the message ended", retryable=not text)
        return {"text": "".join(text), "units": usage["output_tokens"], "finish_reason": STOP.get(stop, "stop"),
                "usage": {"prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"]}}
