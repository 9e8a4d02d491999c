"""What every model backend is: load a model, run one intent, stream events back.

Backends never import networking. Inference runs in a worker thread (`run_in_thread`) so the trio
loop never blocks; the thread pushes events (tokens, progress) back onto the loop as it goes.

Events a backend emits (plain dicts, msgpack/JSON-friendly):
  {"type": "chunk", "text": "..."}                     streamed text (chat, vision, transcribe)
  {"type": "chunk", "audio": b"...", "format": "wav"}  a streamed piece of speech
  {"type": "progress", "step": i, "total": n}          long work (imagine steps, conversion)
`run` returns the result payload (kind-specific: text / image_png / audio_wav / segments, and
"units": what the price is computed from, e.g. output tokens).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import trio

from ..intents import Intent

Emit = Callable[[dict], Awaitable[None]]


SAMPLING_DEFAULTS = {"temperature": 0.7, "top_p": 0.95}  # when neither the intent nor the model says


class BackendError(Exception):
    """A failure the user should see, with a stable code."""

    def __init__(self, code: str, message: str, retryable: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class Stopped(Exception):
    """Raised inside a backend thread when the intent was cancelled; the thread should unwind."""


@dataclass
class ModelSpec:
    """One entry of the model registry in mtor.toml."""

    name: str
    kind: str
    backend: str
    source: str = ""
    concurrency: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    idle_unload_s: float = 0.0  # 0: keep loaded
    options: dict[str, Any] = field(default_factory=dict)


class Backend:
    """Base class. Subclasses set `kinds` and implement `load_sync` and `run`."""

    kinds: tuple[str, ...] = ()

    def __init__(self, spec: ModelSpec, cache_dir: str):
        self.spec = spec
        self.cache_dir = cache_dir

    def load_sync(self, progress: Callable[[str, float | None], None]) -> None:
        """Load weights (called in a worker thread). `progress(message, fraction or None)`."""

    def unload_sync(self) -> None:
        """Drop weights so memory can be reclaimed."""

    async def run(self, intent: Intent, emit: Emit) -> dict:
        raise NotImplementedError

    def describe(self) -> dict:
        """Facts for status and announcements (device, dtype, ...)."""
        return {}

    def messages(self, intent: Intent) -> list[dict]:
        """The intent's chat messages, opened by the model's own system prompt (options.system) when
        the conversation brings none: small models answer far better with one (docs/backends.md)."""
        system = self.spec.options.get("system")
        if system and not any(m.get("role") == "system" for m in intent.messages):
            return [{"role": "system", "content": str(system)}, *intent.messages]
        return intent.messages

    def sampling(self, params: dict) -> tuple[float, float]:
        """(temperature, top_p) for one intent: the intent's when it set them, else the model's own
        (options.sampling in mtor.toml or config.DEFAULT_MODELS), else SAMPLING_DEFAULTS."""
        model = self.spec.options.get("sampling") or {}
        return tuple(float(params[k] if params.get(k) is not None else model.get(k, SAMPLING_DEFAULTS[k]))
                     for k in ("temperature", "top_p"))


class ThreadContext:
    """Handed to code running in a worker thread: push events, see cancellation."""

    def __init__(self, emit: Emit, token: trio.lowlevel.TrioToken):
        self._emit = emit
        self._token = token
        self.stop = threading.Event()

    @property
    def stopped(self) -> bool:
        return self.stop.is_set()

    def push(self, event: dict) -> None:
        if self.stop.is_set():
            raise Stopped()
        try:
            trio.from_thread.run(self._emit, event, trio_token=self._token)
        except (trio.RunFinishedError, trio.Cancelled) as e:
            self.stop.set()
            raise Stopped() from e

    def check(self) -> None:
        if self.stop.is_set():
            raise Stopped()


async def run_in_thread(fn: Callable[[ThreadContext], Any], emit: Emit) -> Any:
    """Run blocking `fn(ctx)` in a thread; on cancellation tell the thread to stop and return at once.

    The thread is abandoned on cancel (it unwinds at its next `ctx.push`/`ctx.check`), so a
    cancelled or timed-out intent frees its caller immediately.
    """
    ctx = ThreadContext(emit, trio.lowlevel.current_trio_token())
    try:
        return await trio.to_thread.run_sync(fn, ctx, abandon_on_cancel=True)
    except Stopped:
        raise BackendError("cancelled", "the intent was cancelled") from None
    finally:
        ctx.stop.set()
