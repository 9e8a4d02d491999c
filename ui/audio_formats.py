"""Audio and subtitle formats for the OpenAI-compatible audio endpoints.

Speech backends answer WAV; OpenAI's clients ask for mp3 (its default), opus, aac, flac, wav or
pcm (raw 24 kHz 16-bit mono little-endian, as OpenAI sends it). PyAV (FFmpeg) encodes them.
Transcripts become SubRip (srt) or WebVTT (vtt) from the backend's timed segments.
"""

from __future__ import annotations

import io
import wave

SPEECH_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
                "wav": "audio/wav", "pcm": "audio/pcm"}
# format -> (container, codec, sample rate or None to keep the source's)
_ENCODERS = {"mp3": ("mp3", "libmp3lame", None), "opus": ("ogg", "libopus", 48000), "aac": ("adts", "aac", None),
             "flac": ("flac", "flac", None)}
PCM_RATE = 24000


class AudioFormatError(ValueError):
    pass


def _read_wav(data: bytes):
    try:
        with wave.open(io.BytesIO(data)) as w:
            if w.getsampwidth() != 2:
                raise AudioFormatError("the speech backend returned WAV that is not 16-bit")
            return w.getframerate(), w.getnchannels(), w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise AudioFormatError(f"the speech backend returned audio that is not WAV ({e})") from None


def _frames(rate: int, channels: int, pcm: bytes, out_rate: int | None, out_format: str):
    """Yield resampled av.AudioFrames of the PCM, 1024 samples at a time, then the resampler's tail."""
    import av
    import numpy as np

    layout = "mono" if channels == 1 else "stereo"
    samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, channels).T.reshape(1, -1) if channels > 1 else \
        np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
    resampler = av.AudioResampler(format=out_format, layout=layout, rate=out_rate or rate)
    step = 1024
    total = samples.shape[1] // channels
    for start in range(0, total, step):
        chunk = samples[:, start * channels:(start + step) * channels]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="s16", layout=layout)
        frame.sample_rate = rate
        yield from resampler.resample(frame)
    yield from resampler.resample(None)


def encode_speech(wav: bytes, fmt: str) -> bytes:
    """WAV bytes as `fmt` (one of SPEECH_TYPES)."""
    if fmt == "wav":
        return wav
    rate, channels, pcm = _read_wav(wav)
    if fmt == "pcm":
        if rate == PCM_RATE and channels == 1:
            return pcm
        return b"".join(bytes(f.planes[0])[: f.samples * 2] for f in _frames(rate, channels, pcm, PCM_RATE, "s16")
                        if f.samples)
    if fmt not in _ENCODERS:
        raise AudioFormatError(f"unknown speech format {fmt!r}")
    import av

    container, codec, out_rate = _ENCODERS[fmt]
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=out_rate or rate)
        stream.layout = "mono" if channels == 1 else "stereo"
        fmt_name = stream.codec_context.codec.audio_formats[0].name
        # Encoders take fixed frame sizes (mp3 1152, aac 1024, opus 960): a FIFO regroups the samples.
        fifo = av.AudioFifo()
        size = stream.codec_context.frame_size or 1024
        for frame in _frames(rate, channels, pcm, out_rate or rate, fmt_name):
            frame.pts = None
            fifo.write(frame)
            while fifo.samples >= size:
                out.mux(stream.encode(fifo.read(size)))
        if fifo.samples:
            out.mux(stream.encode(fifo.read()))
        out.mux(stream.encode(None))
    return buf.getvalue()


# ---- subtitles --------------------------------------------------------------------------------

def _stamp(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def cues(result: dict) -> list[dict]:
    """The timed segments of a transcript; one cue over the whole audio when the backend gave none."""
    segs = [s for s in result.get("segments") or [] if isinstance(s, dict) and isinstance(s.get("text"), str)]
    if segs:
        return segs
    text = (result.get("text") or "").strip()
    duration = result.get("duration") if isinstance(result.get("duration"), (int, float)) else 0.0
    return [{"start": 0.0, "end": float(duration), "text": text}] if text else []


def to_srt(result: dict) -> str:
    return "".join(f"{i}\n{_stamp(c['start'], ',')} --> {_stamp(c['end'], ',')}\n{c['text'].strip()}\n\n"
                   for i, c in enumerate(cues(result), start=1))


def to_vtt(result: dict) -> str:
    return "WEBVTT\n\n" + "".join(f"{_stamp(c['start'], '.')} --> {_stamp(c['end'], '.')}\n{c['text'].strip()}\n\n"
                                  for c in cues(result))
