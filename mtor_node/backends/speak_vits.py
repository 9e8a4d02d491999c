"""Text to speech with a transformers VITS model (Meta's MMS-TTS voices, ``facebook/mms-tts-*``, and
other `VitsModel` checkpoints): one language per checkpoint, character-level tokenizer.

Source: a hub id (e.g. ``facebook/mms-tts-eng``) or a local folder saved with ``save_pretrained``
(model + tokenizer). MMS voices for languages that need romanisation (``is_uroman``) expect the text
already romanised.

Options: ``max_chunk_chars`` (default 300: VITS attention grows with the square of the length),
``noise_scale`` / ``noise_scale_duration`` (override the config's), ``seed`` (default 0: VITS samples
noise, a fixed seed makes the same text sound the same every time).
Intent params: ``speed`` (the model's ``speaking_rate``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from ..intents import Intent
from . import sources
from ._media import split_sentences, wav_bytes
from .base import Backend, BackendError, Emit, ThreadContext, run_in_thread
from .device import check_fits, pick_device, pick_dtype
from .vision_transformers import checkpoint_bytes


class VitsSpeak(Backend):
    kinds = ("speak",)

    def __init__(self, spec, cache_dir):
        super().__init__(spec, cache_dir)
        self.model = self.tokenizer = None
        self.device, self.dtype = "cpu", None
        self._lock = threading.Lock()  # speaking_rate/noise live on the model object

    def load_sync(self, progress: Callable[[str, float | None], None]) -> None:
        import torch
        from transformers import AutoTokenizer, VitsModel

        if not self.spec.source:
            raise BackendError("bad_config", f"model {self.spec.name!r} needs a source (e.g. facebook/mms-tts-eng or a folder)")
        path = sources.resolve(self.spec.source, progress)
        self.device = pick_device(self.spec)
        self.dtype = pick_dtype(self.spec, self.device)
        check_fits(self.spec, self.device, int(checkpoint_bytes(Path(path)) * 1.5))
        progress(f"loading {Path(path).name} on {self.device}", None)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = VitsModel.from_pretrained(str(path), dtype=self.dtype)
        except (OSError, ValueError, KeyError) as e:
            raise BackendError("unavailable", f"could not load VITS model from {path}: {e}") from e
        opts = self.spec.options
        if "noise_scale" in opts:
            model.noise_scale = float(opts["noise_scale"])
        if "noise_scale_duration" in opts:
            model.noise_scale_duration = float(opts["noise_scale_duration"])
        self.model = model.to(self.device).eval()
        self.torch = torch

    def unload_sync(self) -> None:
        self.model = self.tokenizer = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def describe(self) -> dict:
        rate = self.model.config.sampling_rate if self.model is not None else None
        return {"device": self.device, "dtype": str(self.dtype).removeprefix("torch."), "sample_rate": rate}

    async def run(self, intent: Intent, emit: Emit) -> dict:
        if self.model is None:
            raise BackendError("not_loaded", f"model {self.spec.name!r} is not loaded")
        chunks = split_sentences(intent.prompt, int(self.spec.options.get("max_chunk_chars", 300)))
        return await run_in_thread(lambda ctx: self._speak(intent, chunks, ctx), emit)

    def _speak(self, intent: Intent, chunks: list[str], ctx: ThreadContext) -> dict:
        import numpy as np

        torch, model, rate = self.torch, self.model, int(self.model.config.sampling_rate)
        speed = float(intent.params.get("speed", 1.0))
        generator_seed = int(self.spec.options.get("seed", 0))
        pcm: list[bytes] = []
        for text in chunks:
            ctx.check()
            inputs = self.tokenizer(text, return_tensors="pt")
            ids = inputs["input_ids"]
            if ids.shape[1] == 0 or bool((ids == self.tokenizer.unk_token_id).all()):
                continue  # nothing this voice's alphabet can say
            with self._lock, torch.inference_mode():
                torch.manual_seed(generator_seed)
                wave = model(**inputs.to(self.device), speaking_rate=speed).waveform[0]
            samples = wave.float().cpu().numpy()
            peak = float(np.abs(samples).max()) if samples.size else 0.0
            if peak > 1.0:
                samples = samples / peak
            data = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
            pcm.append(data)
            ctx.push({"type": "chunk", "audio": wav_bytes(data, rate), "format": "wav"})
        if not pcm:
            raise BackendError("bad_input", "the text has no characters this voice can speak")
        return {"audio_wav": wav_bytes(b"".join(pcm), rate), "sample_rate": rate, "units": len(intent.prompt)}
