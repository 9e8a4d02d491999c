"""Privacy of the browser's voice: wake-word audio and transcribe intents from a page stay on the
node's own worker unless the user allows the realm. A real two-node realm on 127.0.0.1: the broker
has no transcription model, the worker peer has one (echo)."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack

import numpy as np
import trio
from trio_websocket import open_websocket_url

from tests.conftest import running_node

ECHO_CHAT = {"echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 4, "default": True}}
ECHO_EARS = {"echo-ears": {"kind": "transcribe", "backend": "echo", "default": True}}


async def until(ws, *types: str) -> dict:
    while True:
        m = json.loads(await ws.get_message())
        if m.get("type") in types:
            return m


def speech_pcm() -> bytes:
    t = np.arange(int(1.0 * 16000)) / 16000
    tone = (8000 * np.sin(2 * np.pi * 220 * t)).astype("<i2")
    return np.concatenate([np.zeros(8000, "<i2"), tone, np.zeros(16000, "<i2")]).tobytes()


async def send_audio(ws) -> None:
    pcm = speech_pcm()
    for i in range(0, len(pcm), 3200):  # 100 ms frames, as the page sends them
        await ws.send_message(pcm[i:i + 3200])


async def test_voice_stays_local_unless_allowed(tmp_path):
    async with AsyncExitStack() as stack:
        worker = await stack.enter_async_context(running_node(
            tmp_path / "w", ECHO_EARS, p2p={"enabled": True}, node={"roles": ["worker"]}))
        broker = await stack.enter_async_context(running_node(
            tmp_path / "b", ECHO_CHAT, p2p={"enabled": True, "peers": [worker.federation.listen_addrs[0]]}))
        with trio.fail_after(30):  # the worker's offer has reached the broker
            while not any(p["fresh"] and p["models"].get("transcribe") for p in broker.federation.peers.snapshot()):
                await trio.sleep(0.05)
        url = broker.http_url.replace("http://", "ws://") + "/ws"
        async with open_websocket_url(url, max_message_size=1 << 24) as ws:
            with trio.fail_after(30):
                # push-to-talk: a transcribe intent is refused rather than sent to the peer
                await ws.send_message(json.dumps({"type": "submit", "ref": "1", "intent": {"kind": "transcribe", "audio_b64": "UklGRg=="}}))
                m = await until(ws, "rejected", "accepted")
                assert m["type"] == "rejected" and m["code"] == "no_model"
                # the wake word: its utterances are not transcribed by the peer either
                await ws.send_message(json.dumps({"type": "audio_start", "sample_rate": 16000}))
                await send_audio(ws)
                m = await until(ws, "wake_error", "heard")
                assert m["type"] == "wake_error" and "stays on this node" in m["message"]
                assert worker.store.history(None, 10) == []  # the peer heard nothing
                # the user allows the realm: now the peer transcribes
                await ws.send_message(json.dumps({"type": "voice_privacy", "allow_remote": True}))
                assert (await until(ws, "voice_privacy"))["allow_remote"] is True
                await send_audio(ws)
                m = await until(ws, "heard", "wake_error")
                assert m["type"] == "heard" and "bytes of audio" in m["text"], m
                await ws.send_message(json.dumps({"type": "submit", "ref": "2", "intent": {"kind": "transcribe", "audio_b64": "UklGRg=="}}))
                assert (await until(ws, "rejected", "accepted"))["type"] == "accepted"
            assert [h["kind"] for h in worker.store.history(None, 10)].count("transcribe") >= 1
