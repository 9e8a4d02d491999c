"""transformers-vision backend on a tiny random LLaVA; image decoding limits."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from mtor_node.backends import BackendError
from mtor_node.backends._media import decode_image, png_bytes
from mtor_node.intents import Intent

from backend_helpers import load_backend, run_intent


def png(w: int, h: int, color=(200, 30, 30)) -> bytes:
    return png_bytes(Image.new("RGB", (w, h), color))


def bomb_png(w: int, h: int) -> bytes:
    """A valid PNG header claiming w×h pixels, with (almost) no pixel data: costs nothing to send."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
async def llava(tiny_llava_dir, cache_dir):
    return await load_backend("transformers-vision", "vision", str(tiny_llava_dir), cache_dir, options={"max_image_side": 64})


async def test_llava_streams_text(llava):
    intent = Intent(kind="vision", prompt="what is in the picture?", image=png(80, 60), params={"max_tokens": 12, "temperature": 0})
    result, rec = await run_intent(llava, intent)
    assert rec.of("chunk"), "no streamed text"
    assert rec.text == result["text"]
    assert 1 <= result["units"] <= 12
    assert result["finish_reason"] in ("stop", "length")
    assert result["usage"]["completion_tokens"] == result["units"]
    assert result["image_size"] == [64, 48]  # longest side resized to max_image_side
    again, _ = await run_intent(llava, Intent(kind="vision", prompt="what is in the picture?", image=png(80, 60), params={"max_tokens": 12, "temperature": 0}))
    assert again["text"] == result["text"]  # greedy is deterministic


async def test_llava_sampling_and_max_tokens(llava):
    intent = Intent(kind="vision", prompt="describe", image=png(20, 20), params={"max_tokens": 3, "temperature": 1.2, "top_p": 0.9, "seed": 7})
    a, _ = await run_intent(llava, intent)
    b, _ = await run_intent(llava, Intent(kind="vision", prompt="describe", image=png(20, 20), params={"max_tokens": 3, "temperature": 1.2, "top_p": 0.9, "seed": 7}))
    assert a["units"] <= 3 and a["text"] == b["text"]


async def test_corrupt_image(llava):
    good = png(40, 40)
    for junk, code in ((b"definitely not an image", "bad_image"), (good[: len(good) // 2], "bad_image"), (bomb_png(20000, 20000), "too_large")):
        with pytest.raises(BackendError) as e:
            await run_intent(llava, Intent(kind="vision", prompt="hi", image=junk))
        assert e.value.code == code, e.value.message


def test_decode_limits():
    with pytest.raises(BackendError) as e:
        decode_image(bomb_png(30000, 30000))  # 900 M pixels: PIL's own bomb check
    assert e.value.code == "too_large" and "too large" in e.value.message
    with pytest.raises(BackendError) as e:
        decode_image(png(100, 100), max_pixels=5000)
    assert e.value.code == "too_large" and "limit is 5000 pixels" in e.value.message
    img = decode_image(png(300, 100), max_side=150)
    assert img.size == (150, 50) and img.mode == "RGB"
    rgba = io.BytesIO()
    Image.new("RGBA", (10, 10)).save(rgba, format="WEBP")
    assert decode_image(rgba.getvalue()).mode == "RGB"


async def test_offline_hub_id_is_unavailable(cache_dir):
    with pytest.raises(BackendError) as e:
        await load_backend("transformers-vision", "vision", "HuggingFaceTB/SmolVLM-256M-Instruct-not-cached", cache_dir)
    assert e.value.code == "unavailable" and "offline" in e.value.message
