"""Echo backend: answers every kind instantly with what it was given.

Not a stand-in for a model in model tests: it exists so that benchmarks and network tests can
measure the node's own overhead (routing, queue, protocol) with nothing else in the way.
"""

from __future__ import annotations

import hashlib

import trio

from federation.kinds import KIND_NAMES, KINDS

from ..intents import Intent
from .base import Backend, Emit


class EchoBackend(Backend):
    kinds = KIND_NAMES

    async def run(self, intent: Intent, emit: Emit) -> dict:
        delay = float(self.spec.options.get("delay_s", 0.0))
        if intent.kind in ("chat", "vision"):
            words = intent.text_input.split() or ["(empty)"]
            words = words[: intent.params.get("max_tokens", len(words))]
            for i, word in enumerate(words):
                if delay:
                    await trio.sleep(delay)  # a modelled per-token cost, not synchronisation
                await emit({"type": "chunk", "text": word if i == 0 else " " + word})
            return {"text": " ".join(words), "units": len(words)}
        if delay:
            await trio.sleep(delay)
        # units as federation/kinds.py defines them, the same a real backend reports
        units = KINDS[intent.kind].estimate(intent.params, intent.to_dict())
        if intent.kind == "imagine":
            return {"image_png": hashlib.sha256(intent.prompt.encode()).digest(), "units": units}
        if intent.kind == "transcribe":
            return {"text": f"{len(intent.audio)} bytes of audio", "units": units}
        if intent.kind == "embed":  # 8 numbers per text from its hash: same text, same vector
            return {"embeddings": [[b / 255 for b in hashlib.sha256(t.encode()).digest()[:8]] for t in intent.texts],
                    "units": units}
        return {"audio_wav": intent.prompt.encode(), "units": units}
