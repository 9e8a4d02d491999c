"""The local worker's models: loaded lazily (or at start), one concurrency limit each, unloaded when idle."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from .backends import Backend, BackendError, ModelSpec, backend_class
from .backends.base import Emit
from .intents import Intent

log = logging.getLogger("mtor.models")

RETRY_FAILED_AFTER_S = 30.0
REMOTE_BACKENDS = ("ollama", "openai", "a1111", "anthropic")


@dataclass
class ModelState:
    spec: ModelSpec
    status: str = "unloaded"  # unloaded | loading | ready | failed | unavailable
    error: str = ""
    progress: str = ""
    fraction: float | None = None  # of the load in progress, when the backend knows it
    checked: bool = False  # availability checked (cheap, no weights read): only then is it announced
    backend: Backend | None = None
    inflight: int = 0
    served: int = 0
    last_used: float = 0.0
    failed_at: float = 0.0
    load_seconds: float | None = None
    lock: trio.Lock = field(default_factory=trio.Lock)

    def snapshot(self) -> dict:
        return {
            "name": self.spec.name, "kind": self.spec.kind, "backend": self.spec.backend,
            "status": self.status, "error": self.error, "progress": self.progress, "fraction": self.fraction,
            "inflight": self.inflight, "concurrency": self.spec.concurrency, "served": self.served,
            "load_seconds": self.load_seconds,
            **(self.backend.describe() if self.backend and self.status == "ready" else {}),
        }


class ModelManager:
    def __init__(self, specs: list[ModelSpec], cache_dir: Path, defaults: dict[str, str | None]):
        self.cache_dir = cache_dir
        self.states = {s.name: ModelState(s) for s in specs}
        self.defaults = defaults  # kind -> default model name

    def resolve(self, kind: str, model: str | None) -> str | None:
        """The local model name that serves (kind, model), or None.

        No model named: the kind's default, or the next usable model of that kind when the
        default is unavailable (piper missing -> espeak).
        """
        if model is not None:
            state = self.states.get(model)
            return model if state and state.spec.kind == kind and self._usable(state) else None
        default = self.defaults.get(kind)
        order = ([default] if default else []) + [n for n, s in self.states.items() if s.spec.kind == kind and n != default]
        return next((n for n in order if self._usable(self.states[n])), None)

    def why_not(self, kind: str, model: str | None) -> str:
        """Why no local model serves (kind, model): for the error the user reads."""
        states = [s for s in self.states.values() if s.spec.kind == kind and (model is None or s.spec.name == model)]
        reasons = [f"{s.spec.name}: {s.error}" for s in states if s.error]
        return "; ".join(reasons)

    @staticmethod
    def _usable(state: "ModelState") -> bool:
        return state.status not in ("failed", "unavailable") or time.monotonic() - state.failed_at >= RETRY_FAILED_AFTER_S

    @staticmethod
    def _can_serve(s: "ModelState") -> bool:
        """Announce a model only when a routed intent can run on it now: loaded, or checked loadable
        and loaded on demand; never while loading (a start-time load, a conversion) or broken."""
        return s.status == "ready" or (s.status == "unloaded" and (s.checked or s.spec.backend == "echo"))

    def models_by_kind(self) -> dict[str, list[str]]:
        """What the worker announces: kind -> names of the models that can serve now."""
        out: dict[str, list[str]] = {}
        for s in self.states.values():
            if self._can_serve(s):
                out.setdefault(s.spec.kind, []).append(s.spec.name)
        return out

    def states_by_kind(self) -> dict[str, dict[str, dict]]:
        """Every model's state for an announcement that also carries the ones not ready yet:
        kind -> name -> {"state": ready | loading | unavailable, "progress": 0..1 or None, "reason"}."""
        out: dict[str, dict[str, dict]] = {}
        for s in self.states.values():
            if self._can_serve(s):
                state = {"state": "ready", "progress": None, "reason": ""}
            elif s.status in ("loading", "unloaded"):
                state = {"state": "loading", "progress": s.fraction, "reason": s.progress}
            else:
                state = {"state": "unavailable", "progress": None, "reason": s.error}
            out.setdefault(s.spec.kind, {})[s.spec.name] = state
        return out

    async def check_availability(self) -> None:
        """Mark models that cannot load here (offline hub model, missing program, remote server
        down) as unavailable with the reason, without reading any weights."""
        from .backends.defaults import availability

        # a copy: the sysop may add or remove models (model_registry.py) while this awaits
        for state in list(self.states.values()):
            if state.status != "unloaded" or state.spec.backend == "echo":
                continue
            if state.spec.backend in REMOTE_BACKENDS:
                await self._check_remote(state)
                continue
            verdict = await trio.to_thread.run_sync(availability, state.spec)
            if not verdict["available"]:
                state.status, state.error, state.failed_at = "unavailable", verdict["reason"], time.monotonic()
                log.warning("model %s is unavailable: %s", state.spec.name, verdict["reason"])
            state.checked = True

    async def _check_remote(self, state: "ModelState") -> None:
        """A remote adapter is usable only while its server answers and serves the model."""
        try:
            backend = state.backend or await self.ensure_loaded(state.spec.name)
            with trio.fail_after(10):
                health = await backend.health()
        except (BackendError, trio.TooSlowError) as e:
            health = {"serves": False, "error": getattr(e, "message", "no answer in 10 s")}
        if health.get("serves"):
            if state.status == "unavailable":
                state.status, state.error = "ready", ""
        else:
            state.status, state.error, state.failed_at = "unavailable", health.get("error") or "the server does not serve this model", time.monotonic()

    async def watch_remotes(self, period: float = 30.0) -> None:
        while True:
            await trio.sleep(period)
            for state in list(self.states.values()):  # models come and go while this awaits
                if state.spec.backend in REMOTE_BACKENDS:
                    await self._check_remote(state)

    def has_capacity(self, name: str) -> bool:
        s = self.states[name]
        return s.inflight < s.spec.concurrency

    def reserve(self, name: str) -> None:
        """Take one concurrency slot; the broker does this when it dispatches, before the run starts."""
        self.states[name].inflight += 1

    def release(self, name: str) -> None:
        s = self.states[name]
        s.inflight = max(0, s.inflight - 1)
        s.last_used = time.monotonic()

    def snapshot(self) -> list[dict]:
        return [s.snapshot() for s in self.states.values()]

    async def ensure_loaded(self, name: str) -> Backend:
        state = self.states[name]
        async with state.lock:
            if state.status == "ready":
                return state.backend
            if state.status in ("failed", "unavailable") and time.monotonic() - state.failed_at < RETRY_FAILED_AFTER_S:
                raise BackendError("unavailable", f"model {name!r} is unavailable: {state.error}")
            state.status, state.error = "loading", ""
            t0 = time.monotonic()
            backend = backend_class(state.spec.backend)(state.spec, str(self.cache_dir))

            def progress(message: str, fraction: float | None = None) -> None:
                state.progress = message if fraction is None else f"{message} ({fraction:.0%})"
                state.fraction = fraction
                log.info("model %s: %s", name, state.progress)

            try:
                # Loading is blocking work (disk, conversion): keep it off the event loop.
                await trio.to_thread.run_sync(backend.load_sync, progress, abandon_on_cancel=True)
            except BackendError as e:
                state.status, state.error, state.failed_at = "failed", e.message, time.monotonic()
                log.warning("model %s is unavailable: %s", name, e.message)
                raise
            except Exception as e:
                state.status, state.error, state.failed_at = "failed", f"{type(e).__name__}: {e}", time.monotonic()
                log.exception("model %s failed to load", name)
                raise BackendError("unavailable", f"model {name!r} failed to load: {state.error}") from e
            state.backend, state.status, state.progress, state.fraction = backend, "ready", "", None
            state.load_seconds = round(time.monotonic() - t0, 2)
            log.info("model %s ready in %.1f s", name, state.load_seconds)
            return backend

    async def run(self, name: str, intent: Intent, emit: Emit) -> dict:
        """Run one intent on a local model, in a slot the caller reserved."""
        backend = await self.ensure_loaded(name)
        result = await backend.run(intent, emit)
        self.states[name].served += 1
        return result

    async def preload(self, names: list[str]) -> None:
        for name in names:
            if name not in self.states:  # removed by the sysop meanwhile
                continue
            try:
                await self.ensure_loaded(name)
            except BackendError:
                pass  # recorded in the model's state; the node keeps running

    async def unload_idle(self, period: float = 5.0) -> None:
        """Unload models idle longer than their idle_unload_s; when the node stops (this task is
        cancelled), unload every model, so engine processes end with the node even in-process."""
        try:
            while True:
                await trio.sleep(period)
                now = time.monotonic()
                for s in list(self.states.values()):  # models come and go while this awaits
                    idle = s.spec.idle_unload_s
                    if idle and s.status == "ready" and s.inflight == 0 and now - s.last_used > idle:
                        async with s.lock:
                            backend, s.backend, s.status = s.backend, None, "unloaded"
                            await trio.to_thread.run_sync(backend.unload_sync)
                            log.info("model %s unloaded after %.0f s idle", s.spec.name, idle)
        finally:
            self.unload_all()

    def unload_all(self) -> None:
        for s in list(self.states.values()):
            backend, s.backend = s.backend, None
            if backend is not None and s.status == "ready":
                s.status = "unloaded"
                try:
                    backend.unload_sync()
                except Exception:  # noqa: BLE001 - stopping: log and go on with the others
                    log.exception("model %s did not unload cleanly", s.spec.name)
