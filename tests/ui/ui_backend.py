"""A test-only echo that returns media a browser can show and play: a real PNG, a real WAV.

The packaged echo backend returns raw bytes (a hash for imagine, the text for speak), which is
right for measuring overhead but not displayable; the UI tests need an <img> that loads.
"""

from __future__ import annotations

import io
import struct
import wave
import zlib

import trio

from mtor_node.backends.echo import EchoBackend


def tiny_png(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (40, 160, 220)) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def silent_wav(seconds: float = 0.2, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate))
    return buf.getvalue()


class UiEcho(EchoBackend):
    async def run(self, intent, emit):
        if intent.kind == "imagine":
            steps = min(int(intent.params.get("steps", 4)), 4)
            for step in range(1, steps + 1):
                await trio.lowlevel.checkpoint()
                await emit({"type": "progress", "step": step, "total": steps})
            return {"image_png": tiny_png(), "units": 1}
        if intent.kind == "speak":
            return {"audio_wav": silent_wav(), "units": len(intent.prompt)}
        return await super().run(intent, emit)
