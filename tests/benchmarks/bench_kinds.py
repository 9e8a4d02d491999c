"""Per-kind throughput through the node vs the same backend called directly, side by side.

    .venv/bin/python tests/benchmarks/bench_kinds.py [--runs 5]

Kinds with an embedded default model (offline): transcribe (packaged Whisper base) and speak
(Piper joe). Chat is in bench_daemon.py; vision and imagine have no embedded model (hub only),
so their tiny-model tests prove the code path but a throughput ratio on random weights would
say nothing. Runs are interleaved (direct, node, direct, node ...) so machine noise hits both.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ["HF_HUB_OFFLINE"] = "1"

from tests.benchmarks.bench_daemon import start_node, stop, wait_ready  # noqa: E402
from tests.conftest import free_port  # noqa: E402

TEXT = "The grid routes every request to the cheapest healthy peer. Workers earn tokens for each answer."


def speech_wav(path: Path) -> bytes:
    if not shutil.which("espeak-ng"):
        raise SystemExit("espeak-ng is needed to make the test speech (apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", "-w", str(path), TEXT], check=True)
    return path.read_bytes()


def through_node(url: str, body: dict) -> float:
    t0 = time.perf_counter()
    r = httpx.post(url + "/api/v1/intents", json=body, timeout=300)
    r.raise_for_status()
    return time.perf_counter() - t0


async def direct_backend(name: str, cache: str):
    from mtor_node.backends import backend_class
    from mtor_node.config import DEFAULT_MODELS
    from mtor_node.backends.base import ModelSpec

    fields = {k: v for k, v in DEFAULT_MODELS[name].items() if k not in ("default", "preload")}
    spec = ModelSpec(name=name, **fields)
    backend = backend_class(spec.backend)(spec, cache)
    await trio.to_thread.run_sync(backend.load_sync, lambda *a: None)
    return backend


async def direct_run(backend, intent_dict: dict) -> float:
    from mtor_node.intents import Intent

    intent = Intent.from_dict(intent_dict)

    async def emit(_):
        pass

    t0 = time.perf_counter()
    await backend.run(intent, emit)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--with-chat", action="store_true",
                    help="keep the default chat model loaded in the node too (it competes for the CPU's threads)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        audio = speech_wav(tmp / "speech.wav")
        cases = {
            "transcribe": ("whisper-base", {"kind": "transcribe", "audio": audio}),
            "speak": ("piper-joe", {"kind": "speak", "prompt": TEXT}),
        }
        port = free_port()
        if not args.with_chat:  # the node serves what is measured, as the direct side does
            from mtor_node.config import DEFAULT_MODELS
            from tests.conftest import write_config

            write_config(tmp / "node", {k: v for k, v in DEFAULT_MODELS.items() if v["kind"] in ("transcribe", "speak")})
        proc = start_node(tmp / "node", port, "--no-p2p")
        url = f"http://127.0.0.1:{port}"
        rows = []
        try:
            wait_ready(url, proc, timeout=600, model_ready=args.with_chat)  # the chat model's first-start conversion is done
            for kind, (model, intent) in cases.items():
                body = {k: v for k, v in intent.items() if k != "audio"}
                if "audio" in intent:
                    body["audio_b64"] = base64.b64encode(intent["audio"]).decode()
                through_node(url, body)  # warm-up: loads the model in the node
                backend = trio.run(direct_backend, model, str(tmp / "cache"))
                trio.run(direct_run, backend, intent)  # warm-up
                direct, node = [], []
                for _ in range(args.runs):
                    direct.append(trio.run(direct_run, backend, intent))
                    node.append(through_node(url, body))
                backend.unload_sync()
                rows.append((kind, model, statistics.median(direct), statistics.median(node)))
        finally:
            stop(proc)
    print(f"\n## per-kind throughput, {args.runs} interleaved runs (requests/s = 1 / median seconds)\n")
    print("| kind | model | direct req/s | through the node req/s | ratio node / direct (target ≥ 0.95) |")
    print("|---|---|---|---|---|")
    for kind, model, d, n in rows:
        print(f"| {kind} | {model} | {1 / d:.2f} | {1 / n:.2f} | **{d / n:.3f}** |")


if __name__ == "__main__":
    main()
