"""THE one definition of each intent kind: its name, its unit, how many units one base price
buys, how to estimate the units before the work, how a backend reports them after it, and the
default price a grid worker charges.

Everything that speaks of kinds or units reads this module: pricing (quotes and charges), the
node's config and intent validation, the backends' unit reporting (echo too), the broker's check
of a worker's receipt, the UI and the market simulation. Pure: no networking, no mtor_node
import, no clock.

| kind       | unit                              | one base price buys          | default price (µ) |
|------------|-----------------------------------|------------------------------|-------------------|
| chat       | output tokens                     | 1,000 tokens                 | 1,000             |
| vision     | output tokens (+ a request price) | 1,000 tokens                 | 1,000 + 2,000/req |
| imagine    | pixel-steps: width x height x steps x n | one 512x512 image at 20 steps | 20,000     |
| transcribe | audio seconds, rounded up         | 60 seconds                   | 5,000             |
| speak      | characters of the text            | 1,000 characters             | 2,000             |
| embed      | input tokens                      | 1,000 tokens                 | 100               |

(µ = micro-tokens, 1 $9000 = 10**6 µ.) The default prices apply on the public grid realm when
the operator sets none; a private realm defaults to free (0).
"""

from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass
from typing import Any, Callable, Mapping

DEFAULT_MAX_TOKENS = 256
ASSUMED_AUDIO_BYTES_PER_S = 4000  # 32 kbit/s: an over-estimate of seconds for most compressed audio
DEFAULT_MAX_AUDIO_S = 600.0
REF_IMAGE_PIXEL_STEPS = 512 * 512 * 20  # imagine: one 512x512 image at 20 steps
# A chat answer of B UTF-8 bytes took at most B + this many tokens (every token but the
# end-of-text/stop ones decodes to at least one byte); used to bound what a worker may claim.
TOKEN_SLACK = 16


class UnitsError(ValueError):
    """A parameter that units cannot be computed from; the message says which and why."""


Params = Mapping[str, Any]


@dataclass(frozen=True)
class Kind:
    name: str
    unit: str  # what one unit is, for people
    per: int  # how many units one base price buys
    price_unit: str  # "per 1,000 output tokens", for people
    default_price: int  # µ per `per` units on the grid realm
    default_request_price: int  # µ per request on top (price key "KIND.request"; vision only)
    _estimate: Callable[[Params, Params], int]
    _bound: Callable[[Params, Params, Params, int], int]

    def estimate(self, params: Params | None = None, inputs: Params | None = None) -> int:
        """Units to quote for, before the work runs: an upper bound of what it can take.
        `inputs` may be an intent's to_dict() (prompt, audio, ...)."""
        return self._estimate(params or {}, inputs or {})

    def max_units(self, params: Params | None, inputs: Params | None, output: Params) -> int:
        """The most units consistent with a delivered result: never above the estimate, and 0
        for an empty answer (no text, image or audio). A broker pays for no more than this."""
        params, inputs = params or {}, inputs or {}
        return max(0, min(self._estimate(params, inputs), self._bound(params, inputs, output or {}, 0)))

    def settle_units(self, params: Params | None, inputs: Params | None, output: Params, reported: Any) -> int:
        """Units to charge for a result: what the backend reported, clamped to max_units (a
        backend that reports nothing is charged for nothing)."""
        try:
            r = whole(reported, "units")
        except UnitsError:
            r = 0
        return min(r, self.max_units(params, inputs, output))

    @property
    def price_keys(self) -> tuple[str, ...]:
        return (self.name, f"{self.name}.request") if self.default_request_price else (self.name,)


# ------------------------------------------------------------------------------------ helpers

def whole(v: Any, name: str) -> int:
    """A number >= 0 as a whole number, rounded up; anything else is a UnitsError."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise UnitsError(f"{name} must be a whole number >= 0, got {v!r}")
    return math.ceil(v)


def pixel_steps(width: int, height: int, steps: int, n: int = 1) -> int:
    """imagine units: the work of n images of width x height at `steps` denoising steps."""
    return whole(width, "width") * whole(height, "height") * whole(steps, "steps") * max(1, whole(n or 1, "n"))


def seconds_units(seconds: float) -> int:
    """transcribe units: whole audio seconds, rounded up (at least 1 for any non-empty audio)."""
    return max(1, math.ceil(seconds - 1e-9)) if seconds > 0 else 0


def audio_seconds(audio: bytes) -> float:
    """Duration of WAV bytes from the header; other formats: len / 4000 B/s (an over-estimate)."""
    if not audio:
        return 0.0
    if audio[:4] == b"RIFF" and audio[8:12] == b"WAVE":
        try:
            with wave.open(io.BytesIO(audio)) as w:
                rate = w.getframerate()
                if rate > 0:
                    return w.getnframes() / rate
        except (wave.Error, EOFError, ValueError):
            pass
    return len(audio) / ASSUMED_AUDIO_BYTES_PER_S


def _text_of(inputs: Params) -> str:
    text = inputs.get("text")
    if text is None:
        text = inputs.get("prompt")
    return text if isinstance(text, str) else ""


def _nonempty(output: Params, *keys: str) -> bool:
    return any(isinstance(output.get(k), (bytes, bytearray, str, list)) and len(output[k]) > 0 for k in keys)


# ------------------------------------------------------------------------------------ per kind

def _est_tokens(params: Params, inputs: Params) -> int:
    return whole(params.get("max_tokens", DEFAULT_MAX_TOKENS), "max_tokens")


def _bound_tokens(params: Params, inputs: Params, output: Params, _: int) -> int:
    text = output.get("text")
    if not isinstance(text, str) or not text:
        return 0
    return len(text.encode("utf-8", "surrogatepass")) + TOKEN_SLACK


def _est_imagine(params: Params, inputs: Params) -> int:
    return pixel_steps(params.get("width", 512), params.get("height", 512), params.get("steps", 20), params.get("n", 1))


def _bound_imagine(params: Params, inputs: Params, output: Params, _: int) -> int:
    if not _nonempty(output, "image_png", "images"):
        return 0
    est = _est_imagine(params, inputs)
    try:  # a turbo model may run fewer steps than asked: the result says how many
        return pixel_steps(output.get("width", params.get("width", 512)), output.get("height", params.get("height", 512)),
                           output.get("steps", params.get("steps", 20)), params.get("n", 1))
    except UnitsError:
        return est


def _est_transcribe(params: Params, inputs: Params) -> int:
    cap = params.get("max_seconds", DEFAULT_MAX_AUDIO_S)
    secs = inputs.get("audio_seconds")
    if secs is None:
        secs = audio_seconds(inputs.get("audio") or b"")
    if isinstance(secs, bool) or not isinstance(secs, (int, float)) or not math.isfinite(secs) or secs < 0:
        raise UnitsError(f"audio_seconds must be a number >= 0, got {secs!r}")
    if isinstance(cap, (int, float)) and not isinstance(cap, bool) and math.isfinite(cap):
        secs = min(secs, cap)
    return math.ceil(secs)


def _bound_transcribe(params: Params, inputs: Params, output: Params, _: int) -> int:
    if not isinstance(output.get("text"), str):  # silence transcribes to "" and still cost the work
        return 0
    d = output.get("duration")
    if isinstance(d, (int, float)) and not isinstance(d, bool) and math.isfinite(d) and d >= 0:
        return seconds_units(d)
    return _est_transcribe(params, inputs)


def _est_speak(params: Params, inputs: Params) -> int:
    return len(_text_of(inputs))


def _bound_speak(params: Params, inputs: Params, output: Params, _: int) -> int:
    return len(_text_of(inputs)) if _nonempty(output, "audio_wav", "audio") else 0


def _est_embed(params: Params, inputs: Params) -> int:
    """Input tokens: at most one per UTF-8 byte, plus the model's two special tokens per text."""
    texts = inputs.get("texts")
    if not isinstance(texts, (list, tuple)):
        return 0
    return sum(len(t.encode("utf-8", "surrogatepass")) + 2 for t in texts if isinstance(t, str))


def _bound_embed(params: Params, inputs: Params, output: Params, _: int) -> int:
    return _est_embed(params, inputs) if _nonempty(output, "embeddings") else 0


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("chat", "output tokens", 1000, "per 1,000 output tokens", 1_000, 0, _est_tokens, _bound_tokens),
    Kind("vision", "output tokens", 1000, "per 1,000 output tokens, plus a price per request", 1_000, 2_000,
         _est_tokens, _bound_tokens),
    Kind("imagine", "pixel-steps (width x height x steps x images)", REF_IMAGE_PIXEL_STEPS,
         "per 512x512 image at 20 steps", 20_000, 0, _est_imagine, _bound_imagine),
    Kind("transcribe", "audio seconds", 60, "per audio minute", 5_000, 0, _est_transcribe, _bound_transcribe),
    Kind("speak", "characters", 1000, "per 1,000 characters", 2_000, 0, _est_speak, _bound_speak),
    Kind("embed", "input tokens", 1000, "per 1,000 input tokens", 100, 0, _est_embed, _bound_embed),
)}
KIND_NAMES: tuple[str, ...] = tuple(KINDS)


def kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise UnitsError(f"unknown kind {name!r}; kinds are {', '.join(KIND_NAMES)}") from None


def default_prices() -> dict[str, int]:
    """The grid realm's default price table: {"chat": 1000, "vision.request": 2000, ...}."""
    out: dict[str, int] = {}
    for k in KINDS.values():
        out[k.name] = k.default_price
        if k.default_request_price:
            out[f"{k.name}.request"] = k.default_request_price
    return out


def estimate_units(name: str, params: Params | None = None, inputs: Params | None = None) -> int:
    return kind(name).estimate(params, inputs)


def describe() -> list[dict]:
    """The registry for people and the UI (GET /api/v1/... and docs)."""
    return [{"kind": k.name, "unit": k.unit, "per": k.per, "price_unit": k.price_unit,
             "default_price": k.default_price, "default_request_price": k.default_request_price}
            for k in KINDS.values()]
