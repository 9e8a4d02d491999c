"""Small media helpers shared by the local backends: WAV packing, sentence splitting, image decoding.

Nothing here imports torch; PIL and numpy are imported where needed.
"""

from __future__ import annotations

import io
import math
import re
import wave
from typing import Any

from .base import BackendError

# ---------------------------------------------------------------- audio


def wav_bytes(samples: Any, sample_rate: int) -> bytes:
    """Mono 16-bit PCM WAV from int16 PCM bytes or a float array in [-1, 1] (numpy or list)."""
    if isinstance(samples, (bytes, bytearray, memoryview)):
        pcm = bytes(samples)
    else:
        import numpy as np

        arr = np.asarray(samples)
        if arr.dtype != np.int16:
            arr = (np.clip(arr.astype(np.float32).reshape(-1), -1.0, 1.0) * 32767.0).astype(np.int16)
        pcm = arr.reshape(-1).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm)
    return buf.getvalue()


def wav_pcm(data: bytes) -> tuple[bytes, int, int, int]:
    """(frames, sample_rate, channels, sample_width) of a WAV file."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            return w.readframes(w.getnframes()), w.getframerate(), w.getnchannels(), w.getsampwidth()
    except (wave.Error, EOFError) as e:
        raise BackendError("backend_failed", f"the speech engine produced an unreadable WAV: {e}") from e


def join_wavs(parts: list[bytes]) -> tuple[bytes, int]:
    """Concatenate WAV files of one format into one WAV; returns (wav, sample_rate)."""
    frames, rate, channels, width = [], 0, 1, 2
    for part in parts:
        pcm, r, c, w = wav_pcm(part)
        if rate and (r, c, w) != (rate, channels, width):
            raise BackendError("backend_failed", "speech chunks came back in different audio formats")
        rate, channels, width = r, c, w
        frames.append(pcm)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate or 16000)
        out.writeframes(b"".join(frames))
    return buf.getvalue(), rate or 16000


_SENTENCE_END = re.compile(r"(?<=[.!?;:…。！？])\s+|\n{2,}")


def split_sentences(text: str, max_chars: int = 400) -> list[str]:
    """Split text into sentences, then cut sentences longer than `max_chars` at spaces.

    Chunks are what the speech backends synthesize and stream one by one, so a long text starts
    playing after its first sentence, and no single chunk exceeds what the model handles well.
    """
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = " ".join(sentence.split())
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            if cut <= 0:
                cut = max_chars
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    return out


DECODE_CHUNK_SAMPLES = 500_000  # frames resampled at once, as faster-whisper groups them


def decode_audio_bounded(data: bytes, sample_rate: int, max_seconds: float | None):
    """Decode any audio PyAV (FFmpeg) reads to mono float32 samples at `sample_rate`, never holding
    more than `max_seconds` of it: a small file can hold hours of silence (FLAC compresses it ~4,700×),
    so the limit is checked from the container's stated duration first and then on the decoded
    samples as they come, and decoding stops at the limit. Raises BackendError bad_audio / too_large."""
    import av
    import numpy as np

    def too_long(seconds: float):
        return BackendError("too_large", f"the audio lasts {'more than ' if seconds <= max_seconds else ''}"
                                         f"{seconds:.1f} s; the limit is {max_seconds:g} s")

    max_samples = None if max_seconds is None else int(max_seconds * sample_rate) + 1
    parts, total = [], 0
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise BackendError("bad_audio", "the audio could not be decoded: the file holds no audio stream (wav, webm, ogg, flac and mp3 are accepted)")
            stated = container.duration / 1_000_000 if container.duration else None  # av.time_base is µs
            if max_seconds is not None and stated is not None and stated > max_seconds + 1:
                raise too_long(stated)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    pcm = out.to_ndarray().reshape(-1)
                    total += len(pcm)
                    if max_samples is not None and total > max_samples:  # stated duration lied, or was absent
                        raise too_long(max_seconds)
                    parts.append(pcm)
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
    except BackendError:
        raise
    except Exception as e:  # noqa: BLE001 - PyAV raises InvalidDataError, ValueError, IndexError, ...
        raise BackendError("bad_audio", f"the audio could not be decoded (wav, webm, ogg, flac and mp3 are accepted): {e}") from None
    if not parts:
        raise BackendError("bad_audio", "the audio could not be decoded: it holds no audio samples")
    samples = np.concatenate(parts).astype(np.float32) / 32768.0
    if max_samples is not None and len(samples) > max_samples:
        raise too_long(len(samples) / sample_rate)
    return samples


def seconds_units(seconds: float) -> int:
    """Whole seconds, rounded up (at least 1 for any non-empty audio)."""
    return max(1, math.ceil(seconds - 1e-9)) if seconds > 0 else 0


# ---------------------------------------------------------------- images

DEFAULT_MAX_PIXELS = 40_000_000  # what we accept to decode at all (PIL's own default is ~89 M)


def decode_image(data: bytes, max_side: int = 1024, max_pixels: int = DEFAULT_MAX_PIXELS):
    """Decode image bytes to an RGB PIL image whose longest side is at most `max_side`.

    - bytes PIL cannot read, or a truncated file → BackendError("bad_image")
    - more than `max_pixels` pixels (a decompression bomb) → BackendError("too_large"), checked from
      the header before any pixel is decoded
    """
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise BackendError("bad_image", "the image could not be read: not a PNG, JPEG, WebP, GIF or other known image format") from None
    except Image.DecompressionBombError as e:
        raise BackendError("too_large", f"the image is too large to decode safely: {e}") from None
    except Exception as e:  # noqa: BLE001 - PIL raises many types for malformed headers
        raise BackendError("bad_image", f"the image could not be read: {e}") from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise BackendError("bad_image", f"the image has an invalid size {w}x{h}")
    if w * h > max_pixels:
        raise BackendError("too_large", f"the image is {w}x{h} = {w * h} pixels; the limit is {max_pixels} pixels")
    try:
        img.load()
        img = img.convert("RGB")
    except Image.DecompressionBombError as e:
        raise BackendError("too_large", f"the image is too large to decode safely: {e}") from None
    except Exception as e:  # noqa: BLE001 - truncated/corrupt data surfaces here
        raise BackendError("bad_image", f"the image data is corrupt or truncated: {e}") from None
    if max(w, h) > max_side:
        scale = max_side / max(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    return img


def png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
