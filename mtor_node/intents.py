"""The typed intent: what a user asks the grid to do, validated before anything runs.

An intent is checked once, at the edge (HTTP, WebSocket, CLI, or an intent frame from a peer),
and every violation is an `IntentError` whose message names the field, the value and the limit.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from federation.kinds import KIND_NAMES as KINDS  # the one kind registry (federation/kinds.py)


class IntentError(ValueError):
    """A request that cannot be accepted; `code` is stable for programs, `message` for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def to_event(self) -> dict:
        return {"type": "error", "code": self.code, "message": self.message}


@dataclass(frozen=True)
class Limits:
    max_prompt_chars: int = 32_000
    max_messages: int = 200
    max_tokens: int = 4096
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_side: int = 1024
    max_steps: int = 100
    max_audio_bytes: int = 25 * 1024 * 1024
    max_audio_seconds: float = 600.0
    max_speak_chars: int = 10_000
    max_timeout: float = 3600.0


DEFAULT_LIMITS = Limits()


@dataclass
class Intent:
    kind: str
    model: str | None = None  # None: the node's default model for the kind
    user: str = "local"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    messages: list[dict] | None = None  # chat
    prompt: str | None = None  # vision, imagine; the text of speak
    image: bytes | None = None  # vision
    audio: bytes | None = None  # transcribe
    texts: list[str] | None = None  # embed
    params: dict[str, Any] = field(default_factory=dict)
    max_price: int | None = None  # micro-tokens; None means "any price"
    timeout: float = 300.0

    def to_dict(self) -> dict:
        """msgpack/JSON-friendly form (bytes stay bytes for msgpack)."""
        d = {
            "id": self.id, "kind": self.kind, "model": self.model, "user": self.user,
            "params": dict(self.params), "max_price": self.max_price, "timeout": self.timeout,
        }
        for name in ("messages", "prompt", "image", "audio", "texts"):
            value = getattr(self, name)
            if value is not None:
                d[name] = value
        return d

    @classmethod
    def from_dict(cls, d: Any, limits: Limits = DEFAULT_LIMITS) -> "Intent":
        """Build and validate an intent from untrusted input."""
        if not isinstance(d, dict):
            raise IntentError("bad_request", "an intent must be an object")
        kind = d.get("kind")
        if kind not in KINDS:
            raise IntentError("bad_kind", f"kind {kind!r} is not one of {', '.join(KINDS)}")
        intent = cls(
            kind=kind,
            model=_opt_str(d, "model", 200),
            user=_opt_str(d, "user", 64) or "local",
            id=_opt_str(d, "id", 64) or uuid.uuid4().hex,
            messages=d.get("messages"),
            prompt=d.get("prompt"),
            image=d.get("image"),
            audio=d.get("audio"),
            texts=d.get("texts"),
            params=d.get("params") or {},
            max_price=d.get("max_price"),
            timeout=d.get("timeout", 300.0),
        )
        intent.validate(limits)
        return intent

    def validate(self, limits: Limits = DEFAULT_LIMITS) -> None:
        if not isinstance(self.params, dict):
            raise IntentError("bad_params", "params must be an object")
        if self.max_price is not None and (
            not isinstance(self.max_price, int) or isinstance(self.max_price, bool) or self.max_price < 0
        ):
            raise IntentError("bad_max_price", f"max_price must be a whole number of micro-tokens ≥ 0, got {self.max_price!r}")
        self.timeout = _number(self.timeout, "timeout", 0.1, limits.max_timeout)
        _VALIDATORS[self.kind](self, limits)

    @property
    def text_input(self) -> str:
        """The user's words, for history and display."""
        if self.messages:
            return str(self.messages[-1].get("content", ""))
        if self.texts:
            return self.texts[0]
        return self.prompt or ""


def _opt_str(d: dict, key: str, max_len: int) -> str | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise IntentError("bad_request", f"{key} must be a string of at most {max_len} characters")
    return value


def _number(value: Any, name: str, lo: float, hi: float, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        raise IntentError("bad_params", f"{name} must be a number, got {value!r}")
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise IntentError("bad_params", f"{name} must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise IntentError("bad_params", f"{name}={value!r} is out of range [{lo}, {hi}]")
    return int(value) if integer else value


def _text(value: Any, name: str, max_chars: int, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise IntentError("bad_input", f"{name} must be a non-empty string")
    if len(value) > max_chars:
        raise IntentError("too_large", f"{name} has {len(value)} characters; the limit is {max_chars}")
    return value


def _sampling(intent: Intent, limits: Limits, default_max_tokens: int = 256) -> None:
    p = intent.params
    p["max_tokens"] = _number(p.get("max_tokens", default_max_tokens), "max_tokens", 1, limits.max_tokens, integer=True)
    # temperature/top_p stay unset when not given: the model's own defaults apply (Backend.sampling)
    for key, lo, hi in (("temperature", 0.0, 2.0), ("top_p", 0.01, 1.0)):
        if p.get(key) is None:
            p.pop(key, None)
        else:
            p[key] = _number(p[key], key, lo, hi)
    stop = p.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and 0 < len(s) <= 64 for s in stop):
        raise IntentError("bad_params", "stop must be up to 4 strings of 1–64 characters")
    p["stop"] = stop
    if "seed" in p and p["seed"] is not None:
        p["seed"] = _number(p["seed"], "seed", 0, 2**32 - 1, integer=True)


def _validate_chat(intent: Intent, limits: Limits) -> None:
    msgs = intent.messages
    if msgs is None and intent.prompt is not None:
        msgs = intent.messages = [{"role": "user", "content": intent.prompt}]
        intent.prompt = None
    if not isinstance(msgs, list) or not msgs:
        raise IntentError("bad_input", "chat needs a non-empty list of messages")
    if len(msgs) > limits.max_messages:
        raise IntentError("too_large", f"{len(msgs)} messages; the limit is {limits.max_messages}")
    total = 0
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise IntentError("bad_input", f"messages[{i}] needs a role of system, user or assistant")
        content = m.get("content")
        if not isinstance(content, str):
            raise IntentError("bad_input", f"messages[{i}].content must be a string")
        total += len(content)
    if total > limits.max_prompt_chars:
        raise IntentError("too_large", f"the conversation has {total} characters; the limit is {limits.max_prompt_chars}")
    intent.messages = [{"role": m["role"], "content": m["content"]} for m in msgs]
    _sampling(intent, limits)


def _validate_vision(intent: Intent, limits: Limits) -> None:
    intent.prompt = _text(intent.prompt or "Describe this image.", "prompt", limits.max_prompt_chars)
    if not isinstance(intent.image, (bytes, bytearray)) or not intent.image:
        raise IntentError("bad_input", "vision needs image bytes")
    if len(intent.image) > limits.max_image_bytes:
        raise IntentError("too_large", f"the image has {len(intent.image)} bytes; the limit is {limits.max_image_bytes}")
    intent.image = bytes(intent.image)
    _sampling(intent, limits)


def _validate_imagine(intent: Intent, limits: Limits) -> None:
    intent.prompt = _text(intent.prompt, "prompt", 2000)
    p = intent.params
    for side in ("width", "height"):
        v = _number(p.get(side, 512), side, 64, limits.max_image_side, integer=True)
        if v % 8:
            raise IntentError("bad_params", f"{side}={v} must be a multiple of 8")
        p[side] = v
    p["steps"] = _number(p.get("steps", 20), "steps", 1, limits.max_steps, integer=True)
    p["guidance"] = _number(p.get("guidance", 7.5), "guidance", 0.0, 30.0)
    if p.get("seed") is not None:
        p["seed"] = _number(p["seed"], "seed", 0, 2**32 - 1, integer=True)
    p["negative_prompt"] = _text(p.get("negative_prompt"), "negative_prompt", 2000, required=False)


def _validate_transcribe(intent: Intent, limits: Limits) -> None:
    if not isinstance(intent.audio, (bytes, bytearray)) or not intent.audio:
        raise IntentError("bad_input", "transcribe needs audio bytes (wav, webm, ogg or mp3)")
    if len(intent.audio) > limits.max_audio_bytes:
        raise IntentError("too_large", f"the audio has {len(intent.audio)} bytes; the limit is {limits.max_audio_bytes}")
    intent.audio = bytes(intent.audio)
    p = intent.params
    lang = p.get("language")
    if lang is not None and (not isinstance(lang, str) or not 2 <= len(lang) <= 8):
        raise IntentError("bad_params", f"language must be a language code like 'en', got {lang!r}")
    p["timestamps"] = bool(p.get("timestamps", False))
    p["vad"] = bool(p.get("vad", True))
    p["max_seconds"] = limits.max_audio_seconds  # enforced by the backend after decoding


def _validate_speak(intent: Intent, limits: Limits) -> None:
    intent.prompt = _text(intent.prompt, "text", limits.max_speak_chars)
    p = intent.params
    voice = p.get("voice")
    if voice is not None and (not isinstance(voice, str) or len(voice) > 100):
        raise IntentError("bad_params", "voice must be a voice name")
    p["speed"] = _number(p.get("speed", 1.0), "speed", 0.25, 4.0)


def _validate_embed(intent: Intent, limits: Limits) -> None:
    texts = intent.texts
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise IntentError("bad_input", "embed needs texts: a non-empty list of strings")
    if len(texts) > MAX_EMBED_TEXTS:
        raise IntentError("too_large", f"{len(texts)} texts; the limit is {MAX_EMBED_TEXTS}")
    total = sum(len(t) for t in texts)
    if total > limits.max_prompt_chars * 8:
        raise IntentError("too_large", f"the texts have {total} characters; the limit is {limits.max_prompt_chars * 8}")
    intent.texts = list(texts)


MAX_EMBED_TEXTS = 2048  # OpenAI's own limit per embeddings request

_VALIDATORS = {
    "chat": _validate_chat,
    "vision": _validate_vision,
    "imagine": _validate_imagine,
    "transcribe": _validate_transcribe,
    "speak": _validate_speak,
    "embed": _validate_embed,
}
