"""Daemon benchmarks: start-to-ready, and chat tokens/s through the node vs the model called directly.

    .venv/bin/python tests/benchmarks/bench_daemon.py [--runs 5] [--tokens 96]

Both comparisons run side by side in one run, interleaved, so a noisy machine hurts both equally.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ["HF_HUB_OFFLINE"] = "1"

from tests.conftest import ECHO_MODELS, free_port, write_config  # noqa: E402

PROMPT = "Write a short story about a lighthouse keeper."


def start_node(data_dir: Path, port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mtor_node", "start", "--data-dir", str(data_dir), "--port", str(port),
                             "--p2p-host", "127.0.0.1", "--p2p-port", "0", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120, model_ready: bool = False) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, "node exited"
        try:
            st = httpx.get(url + "/api/v1/status", timeout=1).json()
            if not model_ready or any(m["kind"] == "chat" and m["status"] == "ready" for m in st["models"]):
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(15)


def bench_start(runs: int) -> dict:
    interp = []
    ready = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "n"
        write_config(d, ECHO_MODELS)
        for _ in range(runs):
            t0 = time.monotonic()
            subprocess.run([sys.executable, "-c", "import trio, httpx"], check=True)
            interp.append(time.monotonic() - t0)
            port = free_port()
            t0 = time.monotonic()
            proc = start_node(d, port)
            wait_ready(f"http://127.0.0.1:{port}", proc)
            ready.append(time.monotonic() - t0)
            stop(proc)
    return {"ready": ready, "python": interp}


def direct_tokens_per_s(model, tok, max_tokens: int) -> tuple[float, int]:
    import torch

    enc = tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    t0 = time.monotonic()
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False)
    n = out.shape[1] - enc["input_ids"].shape[1]
    return n / (time.monotonic() - t0), n


def node_tokens_per_s(url: str, max_tokens: int) -> tuple[float, int]:
    body = {"kind": "chat", "messages": [{"role": "user", "content": PROMPT}], "params": {"max_tokens": max_tokens, "temperature": 0}}
    t0 = time.monotonic()
    final = None
    with httpx.stream("POST", url + "/api/v1/intents", params={"stream": "1"}, json=body, timeout=300) as r:
        for line in r.iter_lines():
            if line:
                ev = json.loads(line)
                if ev["type"] in ("result", "error"):
                    final = ev
    assert final and final["type"] == "result", final
    return final["units"] / (time.monotonic() - t0), final["units"]


def bench_chat(runs: int, max_tokens: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "smol"
        port = free_port()
        t0 = time.monotonic()
        proc = start_node(d, port, "--no-p2p")  # default config: the embedded SmolLM2; no realm: node overhead only
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc, timeout=600, model_ready=True)
            first_load = time.monotonic() - t0
            ckpt = next(p for p in (d / "models").iterdir() if p.name.startswith("SmolLM2"))
            t0 = time.monotonic()
            tok = AutoTokenizer.from_pretrained(ckpt)
            model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
            cached_load = time.monotonic() - t0
            direct, node = [], []
            for _ in range(runs):  # interleaved: A, B, A, B ...
                direct.append(direct_tokens_per_s(model, tok, max_tokens)[0])
                node.append(node_tokens_per_s(url, max_tokens)[0])
        finally:
            stop(proc)
    return {"direct": direct, "node": node, "first_load_s": first_load, "cached_load_s": cached_load}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=96)
    args = ap.parse_args()
    torch_threads = os.environ.get("OMP_NUM_THREADS", "default")

    s = bench_start(args.runs)
    med = statistics.median
    print("\n## start to ready (echo model: model load excluded)\n")
    print("| what | median s | min s | max s |\n|---|---|---|---|")
    print(f"| `mtor-node start` → HTTP status answers | {med(s['ready']):.2f} | {min(s['ready']):.2f} | {max(s['ready']):.2f} |")
    print(f"| reference: `python -c 'import trio, httpx'` | {med(s['python']):.2f} | {min(s['python']):.2f} | {max(s['python']):.2f} |")

    c = bench_chat(args.runs, args.tokens)
    ratio = med(c["node"]) / med(c["direct"])
    print(f"\n## chat tokens/s: SmolLM2-135M, {args.tokens} tokens greedy, {args.runs} interleaved runs, torch threads: {torch_threads}\n")
    print("| path | median tok/s | min | max |\n|---|---|---|---|")
    print(f"| model.generate() called directly | {med(c['direct']):.1f} | {min(c['direct']):.1f} | {max(c['direct']):.1f} |")
    print(f"| through the node (HTTP stream, queue, backend thread) | {med(c['node']):.1f} | {min(c['node']):.1f} | {max(c['node']):.1f} |")
    print(f"| **ratio node / direct** | **{ratio:.3f}** (target ≥ 0.95) | | |")
    print(f"\nmodel load, reported separately: first start (GGUF conversion + load) {c['first_load_s']:.1f} s; "
          f"load of the cached checkpoint {c['cached_load_s']:.1f} s")


if __name__ == "__main__":
    main()
