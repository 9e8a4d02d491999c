"""Energy-based voice activity detection: cut a 16 kHz mono PCM stream into utterances.

Simple on purpose: frames of 30 ms, an adaptive noise floor, speech when a frame is clearly above
it, an utterance ends after enough quiet. Good enough to find "Computer" between pauses; the
transcription model does the hard part.
"""

from __future__ import annotations

import io
import wave
from collections import deque

import numpy as np

SAMPLE_RATE = 16000
FRAME_MS = 30


class Segmenter:
    def __init__(self, sample_rate: int = SAMPLE_RATE, *, min_rms: float = 300.0, ratio: float = 3.0,
                 start_frames: int = 3, end_silence_ms: int = 600, pre_roll_ms: int = 240,
                 min_speech_ms: int = 200, max_utterance_s: float = 15.0):
        self.rate = sample_rate
        self.frame = sample_rate * FRAME_MS // 1000  # samples per frame
        self.min_rms = min_rms  # int16 scale: never call quieter than this speech
        self.ratio = ratio  # speech is this many times the noise floor
        self.start_frames = start_frames  # loud frames in a row that start an utterance
        self.end_frames = max(1, end_silence_ms // FRAME_MS)
        self.min_frames = max(1, min_speech_ms // FRAME_MS)
        self.max_frames = int(max_utterance_s * 1000 // FRAME_MS)
        self.pre_roll: deque[np.ndarray] = deque(maxlen=max(1, pre_roll_ms // FRAME_MS))
        self.noise = min_rms / ratio
        self.pending = np.zeros(0, dtype=np.int16)
        self.odd_byte = b""
        self.current: list[np.ndarray] | None = None
        self.loud_run = 0
        self.quiet_run = 0
        self.speech_frames = 0

    def feed(self, pcm: bytes) -> list[bytes]:
        """Add little-endian int16 samples; returns the utterances that ended (as PCM bytes)."""
        pcm = self.odd_byte + pcm  # a chunk may end mid-sample
        self.odd_byte = pcm[-1:] if len(pcm) % 2 else b""
        samples = np.concatenate([self.pending, np.frombuffer(pcm[:len(pcm) // 2 * 2], dtype="<i2")])
        n = len(samples) // self.frame * self.frame
        self.pending = samples[n:].copy()
        out: list[bytes] = []
        for start in range(0, n, self.frame):
            done = self._frame(samples[start:start + self.frame])
            if done is not None:
                out.append(done)
        return out

    def flush(self) -> list[bytes]:
        """End of stream: return the utterance in progress, if it is long enough."""
        if self.current is not None and self.speech_frames >= self.min_frames:
            done = np.concatenate(self.current).tobytes()
            self.current = None
            return [done]
        self.current = None
        return []

    def _frame(self, frame: np.ndarray) -> bytes | None:
        rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
        loud = rms >= max(self.min_rms, self.noise * self.ratio)
        if self.current is None:
            if not loud:  # the floor follows the room slowly, and only while nobody speaks
                self.noise = 0.95 * self.noise + 0.05 * rms
            self.pre_roll.append(frame)
            self.loud_run = self.loud_run + 1 if loud else 0
            if self.loud_run >= self.start_frames:
                self.current = list(self.pre_roll)
                self.pre_roll.clear()
                self.speech_frames, self.quiet_run = self.loud_run, 0
            return None
        self.current.append(frame)
        if loud:
            self.speech_frames += 1
            self.quiet_run = 0
        else:
            self.quiet_run += 1
        if self.quiet_run >= self.end_frames or len(self.current) >= self.max_frames:
            done = np.concatenate(self.current).tobytes() if self.speech_frames >= self.min_frames else None
            self.current, self.loud_run, self.quiet_run = None, 0, 0
            return done
        return None


def wav_bytes(pcm: bytes, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Wrap mono int16 PCM in a WAV container, the form the transcribe intent takes."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()
