"""Adapter for OpenAI-compatible servers (llama.cpp server, vLLM, LocalAI, LM Studio, text-generation-webui,
OpenAI itself, ...): every kind, each on its endpoint.

Registry entry: backend ``openai``, any kind; source (or options.url) the server's base URL, with or
without the ``/v1`` suffix, e.g. ``http://127.0.0.1:8080``; options.model the model's name on the
server (default: the entry's name); options.api_key or options.api_key_env (the name of an
environment variable holding the key); options.timeout_s (read, default 300),
options.connect_timeout_s (default 10).

Per kind:
  chat, vision  POST /v1/chat/completions, ``stream: true``: Server-Sent Events ``data: {chunk}`` …
                ``data: [DONE]``; vision sends the image as a ``data:`` URL in an ``image_url`` part.
                options.stream_usage (default true) asks for the usage chunk (``stream_options``).
  transcribe    POST /v1/audio/transcriptions (multipart: file, model, response_format, language).
                The audio is decoded here first (PyAV) to check it and to know its duration.
  speak         POST /v1/audio/speech (``response_format: wav``), one request per group of sentences
                (options.chunk_chars, default 600) so speech streams; options.voice (default ``alloy``).
  imagine       POST /v1/images/generations (``response_format: b64_json``, ``size: WxH``).
Health: ``GET /v1/models``; options.kinds (a list) says which kinds the server's models serve when the
ids do not tell (default: guessed from the ids, e.g. ``whisper`` → transcribe, ``tts`` → speak).
"""

from __future__ import annotations

import base64
import json

from federation.kinds import KIND_NAMES as KINDS  # the one kind registry

from ..intents import Intent
from . import remote_http
from ._media import join_wavs, split_sentences, wav_bytes, wav_pcm
from .base import Backend, BackendError, Emit


def guess_kinds(model_id: str) -> list[str]:
    m = model_id.lower()
    if "whisper" in m or "transcri" in m or "stt" in m:
        return ["transcribe"]
    if "tts" in m or "speech" in m or "piper" in m or "kokoro" in m:
        return ["speak"]
    if any(k in m for k in ("dall-e", "gpt-image", "stable-diffusion", "sdxl", "flux", "sd-turbo")):
        return ["imagine"]
    if any(k in m for k in ("vision", "llava", "-vl", "4o", "gpt-4.1", "smolvlm", "gemma-3", "pixtral", "moondream")):
        return ["chat", "vision"]
    if "embed" in m:
        return []
    return ["chat"]


class OpenAIRemote(Backend):
    kinds = KINDS

    def __init__(self, spec, cache_dir):
        super().__init__(spec, cache_dir)
        self.url = remote_http.server_url(self)
        self.v1 = "" if self.url.endswith("/v1") else "/v1"
        self.what = f"the server at {self.url}"

    def load_sync(self, progress) -> None:
        if self.spec.kind not in KINDS:
            raise BackendError("bad_config", f"unknown kind {self.spec.kind!r}")

    def describe(self) -> dict:
        return {"remote": "openai", "url": self.url, "model": remote_http.remote_model(self)}

    async def health(self) -> dict:
        try:
            async with remote_http.client(self, self.url, read_default=10.0) as c:
                data = await remote_http.get_json(c, f"{self.v1}/models", self.what)
        except BackendError as e:
            return remote_http.health_error(self.url, e)
        configured = self.spec.options.get("kinds")
        models, kinds = [], {}
        for m in (data.get("data") if isinstance(data, dict) else None) or []:
            mid = m.get("id") if isinstance(m, dict) else None
            if mid:
                models.append(mid)
                kinds[mid] = list(configured) if configured else guess_kinds(mid)
        wanted = remote_http.remote_model(self)
        serves = wanted in models
        return {"ok": True, "url": self.url, "models": models, "kinds_by_model": kinds, "model": wanted,
                "serves": serves, "kinds": [self.spec.kind] if serves else []}

    def chat_extras(self, params: dict) -> dict:
        """More fields for /chat/completions: the managed llama.cpp engine adds its own sampling knobs."""
        return {}

    async def run(self, intent: Intent, emit: Emit) -> dict:
        handler = {"chat": self._chat, "vision": self._chat, "transcribe": self._transcribe,
                   "speak": self._speak, "imagine": self._imagine}[intent.kind]
        return await handler(intent, emit)

    # ------------------------------------------------------------ chat / vision

    async def _chat(self, intent: Intent, emit: Emit) -> dict:
        p = intent.params
        if intent.kind == "vision":
            url = f"data:{remote_http.sniff_image_mime(intent.image)};base64,{base64.b64encode(intent.image).decode()}"
            messages = [{"role": "user", "content": [{"type": "text", "text": intent.prompt},
                                                     {"type": "image_url", "image_url": {"url": url}}]}]
        else:
            messages = self.messages(intent)
        temperature, top_p = self.sampling(p)
        payload = {"model": remote_http.remote_model(self), "messages": messages, "stream": True,
                   "max_tokens": p.get("max_tokens", 256), "temperature": temperature, "top_p": top_p}
        if p.get("stop"):
            payload["stop"] = p["stop"]
        if p.get("seed") is not None:
            payload["seed"] = p["seed"]
        if self.spec.options.get("stream_usage", True):
            payload["stream_options"] = {"include_usage": True}
        payload.update(self.chat_extras(p))
        text, finish, usage, pieces = [], None, None, 0
        async with remote_http.client(self, self.url) as c:
            async with c.stream("POST", f"{self.v1}/chat/completions", json=payload) as resp:
                if resp.status_code >= 400:
                    remote_http.raise_for_status(resp, self.what, await resp.aread())
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, ": keep-alive" comments, "event:" lines
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        obj = json.loads(data)
                    except ValueError:
                        raise BackendError("remote_error", f"{self.what} sent an event that is not JSON: {data[:200]!r}") from None
                    if obj.get("error"):
                        raise BackendError("remote_error", f"{self.what}: {remote_http.error_message(json.dumps(obj))}")
                    if obj.get("usage"):
                        usage = obj["usage"]
                    for choice in obj.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content") or ""
                        if piece:
                            text.append(piece)
                            pieces += 1
                            await emit({"type": "chunk", "text": piece})
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
        if finish is None and usage is None and not text:
            raise BackendError("remote_error", f"{self.what} closed the stream without an answer")
        completion = int((usage or {}).get("completion_tokens") or pieces)
        return {"text": "".join(text), "units": completion, "finish_reason": "length" if finish == "length" else "stop",
                "usage": {"prompt_tokens": int((usage or {}).get("prompt_tokens") or 0), "completion_tokens": completion}}

    # ------------------------------------------------------------ transcribe

    async def _transcribe(self, intent: Intent, emit: Emit) -> dict:
        import trio

        from ._media import seconds_units
        from .transcribe_whisper import SAMPLE_RATE, decode

        samples = await trio.to_thread.run_sync(decode, intent.audio)  # bad_audio before any upload
        duration = len(samples) / SAMPLE_RATE
        limit = intent.params.get("max_seconds")
        if limit is not None and duration > float(limit):
            raise BackendError("too_large", f"the audio lasts {duration:.1f} s; the limit is {float(limit):g} s")
        name, mime = remote_http.sniff_audio(intent.audio)
        fields = {"model": remote_http.remote_model(self), "response_format": "verbose_json" if intent.params.get("timestamps") else "json"}
        if intent.params.get("language"):
            fields["language"] = intent.params["language"]
        async with remote_http.client(self, self.url) as c:
            data = await self._post_multipart(c, fields, name, mime, intent.audio)
        text = str(data.get("text", "")).strip()
        if text:
            await emit({"type": "chunk", "text": text})
        result = {"text": text, "language": data.get("language") or intent.params.get("language"),
                  "duration": round(duration, 3), "units": seconds_units(duration)}
        if intent.params.get("timestamps"):
            result["segments"] = [{"start": s.get("start"), "end": s.get("end"), "text": str(s.get("text", "")).strip()}
                                  for s in data.get("segments") or []]
        return result

    async def _post_multipart(self, c, fields, name, mime, audio) -> dict:
        resp = await c.post(f"{self.v1}/audio/transcriptions", data=fields, files={"file": (name, audio, mime)})
        remote_http.raise_for_status(resp, self.what)
        if "json" not in resp.headers.get("content-type", "json"):
            return {"text": resp.text}
        try:
            return resp.json()
        except ValueError:
            return {"text": resp.text}

    # ------------------------------------------------------------ speak

    async def _speak(self, intent: Intent, emit: Emit) -> dict:
        opts = self.spec.options
        groups = _group(split_sentences(intent.prompt), int(opts.get("chunk_chars", 600)))
        voice = intent.params.get("voice") or opts.get("voice", "alloy")
        parts = []
        async with remote_http.client(self, self.url) as c:
            for text in groups:
                resp = await c.post(f"{self.v1}/audio/speech", json={
                    "model": remote_http.remote_model(self), "input": text, "voice": voice,
                    "response_format": "wav", "speed": intent.params.get("speed", 1.0)})
                remote_http.raise_for_status(resp, self.what)
                if resp.content[:4] != b"RIFF":
                    raise BackendError("remote_error", f"{self.what} did not answer WAV audio (content-type {resp.headers.get('content-type')!r})")
                pcm, rate, channels, width = wav_pcm(resp.content)
                wav = wav_bytes(pcm, rate) if (channels, width) == (1, 2) else resp.content  # fix streamed headers' sizes
                parts.append(wav)
                await emit({"type": "chunk", "audio": wav, "format": "wav"})
        if not parts:
            raise BackendError("bad_input", "the text has nothing to speak")
        audio, rate = join_wavs(parts)
        return {"audio_wav": audio, "sample_rate": rate, "units": len(intent.prompt)}

    # ------------------------------------------------------------ imagine

    async def _imagine(self, intent: Intent, emit: Emit) -> dict:
        from .imagine_diffusers import work_units

        p = intent.params
        w, h = p.get("width", 512), p.get("height", 512)
        payload = {"model": remote_http.remote_model(self), "prompt": intent.prompt, "n": 1, "size": f"{w}x{h}", "response_format": "b64_json"}
        if p.get("negative_prompt"):
            payload["negative_prompt"] = p["negative_prompt"]
        if p.get("seed") is not None:
            payload["seed"] = p["seed"]
        if "steps" in p:
            payload["step"] = p["steps"]  # LocalAI's name; servers ignore keys they do not know
        async with remote_http.client(self, self.url) as c:
            data = await remote_http.post_json(c, f"{self.v1}/images/generations", self.what, payload)
            items = data.get("data") or []
            if not items:
                raise BackendError("remote_error", f"{self.what} returned no image")
            item = items[0]
            if item.get("b64_json"):
                raw = base64.b64decode(item["b64_json"])
            elif item.get("url"):
                resp = await c.get(item["url"])
                remote_http.raise_for_status(resp, self.what)
                raw = resp.content
            else:
                raise BackendError("remote_error", f"{self.what} returned an image with neither b64_json nor url")
        png, size = remote_http.png_of(raw)
        await emit({"type": "progress", "step": 1, "total": 1})
        return {"image_png": png, "width": size[0], "height": size[1], "units": work_units(size[0], size[1], int(p.get("steps", 20)))}


def _group(sentences: list[str], max_chars: int) -> list[str]:
    groups: list[str] = []
    for s in sentences:
        if groups and len(groups[-1]) + 1 + len(s) <= max_chars:
            groups[-1] += " " + s
        else:
            groups.append(s)
    return groups
