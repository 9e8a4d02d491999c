"""Text to speech with the espeak-ng program: robotic but tiny, fast and many languages.

The fallback voice when no neural voice loads. Needs the system package (``apt-get install
espeak-ng``). Each sentence is one ``espeak-ng --stdout`` run (trio.run_process, so a cancelled
intent kills it), streamed as it finishes.

Source: the program, empty for ``espeak-ng`` (then ``espeak``) on PATH, or a path.
Options: ``voice`` (default ``en-us``; an intent's params.voice overrides it), ``words_per_minute``
(default 175, scaled by params.speed), ``pitch`` (0-99, default 50), ``timeout_s`` per sentence
(default 60), ``max_chunk_chars`` (default 400).
"""

from __future__ import annotations

import re
import shutil
from typing import Callable

import trio

from ..intents import Intent
from ._media import join_wavs, split_sentences, wav_bytes, wav_pcm
from .base import Backend, BackendError, Emit

_VOICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+\-]{0,39}$")


class EspeakSpeak(Backend):
    kinds = ("speak",)

    def __init__(self, spec, cache_dir):
        super().__init__(spec, cache_dir)
        self.program: str | None = None

    def load_sync(self, progress: Callable[[str, float | None], None]) -> None:
        source = self.spec.source.removeprefix("path:")
        found = shutil.which(source) if source else (shutil.which("espeak-ng") or shutil.which("espeak"))
        if not found:
            raise BackendError("unavailable", f"{source or 'espeak-ng'} is not installed (apt-get install espeak-ng)")
        self.program = found

    def unload_sync(self) -> None:
        self.program = None

    def describe(self) -> dict:
        return {"device": "cpu", "program": self.program or ""}

    async def _say(self, text: str, voice: str, wpm: int, pitch: int, timeout: float) -> bytes:
        try:
            with trio.fail_after(timeout):
                proc = await trio.run_process(
                    [self.program, "--stdout", "-v", voice, "-s", str(wpm), "-p", str(pitch), "--stdin"],
                    stdin=text.encode(), capture_stdout=True, capture_stderr=True, check=False,
                )
        except trio.TooSlowError:
            raise BackendError("timeout", f"espeak-ng took more than {timeout:g} s for one sentence") from None
        if proc.returncode != 0 or not proc.stdout:
            err = proc.stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}"
            raise BackendError("backend_failed", f"espeak-ng failed: {err}")
        # espeak-ng writing to a pipe cannot seek back to fill in the sizes; re-pack the samples.
        pcm, rate, _channels, _width = wav_pcm(proc.stdout)
        return wav_bytes(pcm, rate)

    async def run(self, intent: Intent, emit: Emit) -> dict:
        if not self.program:
            raise BackendError("not_loaded", f"model {self.spec.name!r} is not loaded")
        opts = self.spec.options
        voice = intent.params.get("voice") or opts.get("voice", "en-us")
        if not _VOICE.match(voice):
            raise BackendError("bad_params", f"voice {voice!r} is not an espeak-ng voice name (see espeak-ng --voices)")
        wpm = max(80, min(450, round(int(opts.get("words_per_minute", 175)) * float(intent.params.get("speed", 1.0)))))
        pitch = int(opts.get("pitch", 50))
        timeout = float(opts.get("timeout_s", 60))
        parts = []
        for text in split_sentences(intent.prompt, int(opts.get("max_chunk_chars", 400))):
            wav = await self._say(text, voice, wpm, pitch, timeout)
            parts.append(wav)
            await emit({"type": "chunk", "audio": wav, "format": "wav"})
        if not parts:
            raise BackendError("bad_input", "the text has nothing to speak")
        audio, rate = join_wavs(parts)
        return {"audio_wav": audio, "sample_rate": rate, "units": len(intent.prompt)}
