"""Audio decompression bombs (issue 12, finding 10): a FLAC of a few hundred KiB can hold hours of
silence. The transcribe path must refuse it from the container's duration or stop decoding at the
limit, never decode it whole. Real PyAV, real faster-whisper (the packaged base) behind a real node."""

from __future__ import annotations

import base64
import io
import subprocess
import sys

import httpx
import pytest
import trio

from tests.conftest import running_node

HOURS = 3


def silent_flac(hours: float, rate: int = 8000) -> bytes:
    import av
    import numpy as np

    out = io.BytesIO()
    with av.open(out, "w", format="flac") as c:
        stream = c.add_stream("flac", rate=rate)
        stream.layout = "mono"
        minute = np.zeros((1, rate * 60), dtype=np.int16)
        for _ in range(int(hours * 60)):
            frame = av.AudioFrame.from_ndarray(minute, format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return out.getvalue()


def without_stated_length(flac: bytes) -> bytes:
    """Zero STREAMINFO's total-samples field (36 bits after rate, channels, bits per sample): the
    length is then 'unknown', so only the decoded samples can tell."""
    assert flac[:4] == b"fLaC"
    field = int.from_bytes(flac[18:26], "big")
    field &= ((1 << 64) - 1) ^ ((1 << 36) - 1)
    return flac[:18] + field.to_bytes(8, "big") + flac[26:]


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    path = tmp_path_factory.mktemp("bomb") / "silence.flac"
    path.write_bytes(silent_flac(HOURS))
    return path


PEAK_RSS = """
import resource, sys
from mtor_node.backends._media import decode_audio_bounded
from mtor_node.backends.base import BackendError
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    decode_audio_bounded(data, 16000, 600.0)
    print("decoded")
except BackendError as e:
    print(e.code, e.message)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.mark.parametrize("stated", [True, False], ids=["stated-duration", "unknown-duration"])
async def test_decoder_stops_at_the_limit(bomb, tmp_path, stated):
    data = bomb.read_bytes()
    assert len(data) < 3 * 1024 * 1024  # 3 h of audio in ~2 MiB (an upload may be 25 MiB)
    if not stated:
        data = without_stated_length(data)
    path = tmp_path / "in.flac"
    path.write_bytes(data)
    with trio.fail_after(60):  # a fresh process: its peak RSS is this decode's alone
        out = await trio.run_process([sys.executable, "-c", PEAK_RSS, str(path)], capture_stdout=True, check=True)
    lines = out.stdout.decode().strip().splitlines()
    assert lines[0].startswith("too_large") and "the limit is 600 s" in lines[0], lines
    # decoded whole, 3 h at 16 kHz is 346 MB of int16 plus 691 MB of float32; the limit holds 19 MB
    assert int(lines[1]) < 120, f"peak RSS grew {lines[1]} MiB"


@pytest.mark.slow  # loads the packaged Whisper base (~10 s)
async def test_node_refuses_the_bomb_with_413(tmp_path, bomb):
    models = {"whisper": {"kind": "transcribe", "backend": "faster-whisper", "source": "packaged:whisper-base", "default": True}}
    async with running_node(tmp_path / "node", models) as node:
        body = {"kind": "transcribe", "audio_b64": base64.b64encode(without_stated_length(bomb.read_bytes())).decode()}
        async with httpx.AsyncClient(base_url=node.http_url, timeout=60) as c:
            with trio.fail_after(90):
                r = await c.post("/api/v1/intents", json=body)
        assert r.status_code == 413, r.text
        err = r.json()["error"]
        assert err["code"] == "too_large" and "limit is 600 s" in err["message"], err
