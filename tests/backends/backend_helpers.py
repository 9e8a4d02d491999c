"""Helpers to drive a backend the way the node's model manager does (imported by the backend tests)."""

from __future__ import annotations

import os

import trio

from mtor_node.backends import ModelSpec, backend_class
from mtor_node.intents import Intent

LOAD_TIMEOUT = 120.0
RUN_TIMEOUT = 120.0


class Recorder:
    """An `emit` that records events."""

    def __init__(self):
        self.events: list[dict] = []

    async def __call__(self, event: dict) -> None:
        self.events.append(event)

    def of(self, type_: str) -> list[dict]:
        return [e for e in self.events if e["type"] == type_]

    @property
    def text(self) -> str:
        return "".join(e.get("text", "") for e in self.of("chunk"))


async def load_backend(backend: str, kind: str, source: str = "", cache_dir: str | os.PathLike = "", **spec_kw):
    """Build a backend through the registry and load it in a thread, as the model manager does."""
    spec = ModelSpec(name=spec_kw.pop("name", f"test-{backend}"), kind=kind, backend=backend, source=source, **spec_kw)
    b = backend_class(backend)(spec, str(cache_dir))
    messages = []
    with trio.fail_after(LOAD_TIMEOUT):
        await trio.to_thread.run_sync(b.load_sync, lambda m, f: messages.append((m, f)))
    b._test_progress = messages
    return b


async def run_intent(backend, intent: Intent):
    intent.validate()
    rec = Recorder()
    with trio.fail_after(RUN_TIMEOUT):
        result = await backend.run(intent, rec)
    return result, rec
