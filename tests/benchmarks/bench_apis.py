"""Chat tokens/s through each client-compatible API vs the backend called directly, side by side.

    .venv/bin/python tests/benchmarks/bench_apis.py [--runs 3] [--tokens 64]

One node in this process serves the embedded chat model (whatever engine the default registry
uses); "direct" runs that same loaded backend without HTTP, queue or broker. Each API is driven by
its official client (openai, ollama, anthropic), streaming, greedy, the same prompt and token
budget, so every path produces the same tokens. Runs are interleaved (direct, openai, ollama,
anthropic, then rotated by one each round) so machine noise hits all of them alike.

A second table runs the same four paths on the echo backend pacing its tokens at a fixed rate
(options.delay_s): the model then costs no CPU, so the ratio isolates what each API adds (HTTP,
queue, JSON per token, the client's parsing) from the model's noisy speed on a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ["HF_HUB_OFFLINE"] = "1"

from mtor_node.config import _default_models  # noqa: E402
from mtor_node.intents import Intent  # noqa: E402
from tests.conftest import running_node  # noqa: E402

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def client_call(path: str, url: str, name: str, tokens: int, prompt: str) -> tuple[int, float]:
    """One streamed request through an official client: (completion tokens, seconds)."""
    msgs = [{"role": "user", "content": prompt}]
    if path == "openai":
        from openai import OpenAI

        c = OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=300)
        c.models.list()  # the connection is open before the clock starts, as in a long-lived client
        t0, usage = time.perf_counter(), None
        for ch in c.chat.completions.create(model=name, messages=msgs, max_tokens=tokens, temperature=0, stream=True,
                                            stream_options={"include_usage": True}):
            usage = ch.usage or usage
        return usage.completion_tokens, time.perf_counter() - t0
    if path == "ollama":
        import ollama

        c = ollama.Client(host=url, timeout=300)
        c.list()
        t0, last = time.perf_counter(), None
        for part in c.chat(model=name, messages=msgs, stream=True, options={"num_predict": tokens, "temperature": 0}):
            last = part
        return last.eval_count, time.perf_counter() - t0
    import anthropic

    c = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0, timeout=300)
    c.messages.create(model=name, max_tokens=1, messages=[{"role": "user", "content": "hi"}])
    t0 = time.perf_counter()
    with c.messages.stream(model=name, max_tokens=tokens, messages=msgs) as s:
        for _ in s.text_stream:
            pass
        n = s.get_final_message().usage.output_tokens
    return n, time.perf_counter() - t0


async def bench(runs: int, tokens: int, name: str, entry: dict, title: str, prompt: str) -> None:
    """The node runs in this process; each client runs in its own process, as real clients do
    (in one process their per-chunk parsing would compete with the node for the GIL)."""
    with tempfile.TemporaryDirectory() as tmp:
        async with running_node(Path(tmp) / "n", {name: entry}) as node:
            backend = await node.models.ensure_loaded(name)

            async def direct() -> float:
                async def emit(_):
                    pass
                intent = Intent(kind="chat", messages=[{"role": "user", "content": prompt}],
                                params={"max_tokens": tokens, "temperature": 0.0})
                intent.validate()
                t0 = time.perf_counter()
                n = (await backend.run(intent, emit))["units"]
                return n / (time.perf_counter() - t0)

            def via(path: str):
                async def call() -> float:
                    proc = await trio.run_process([sys.executable, __file__, "--client", path, node.http_url, name,
                                                   str(tokens), prompt], capture_stdout=True, cwd=str(ROOT))
                    n, seconds = proc.stdout.decode().split()
                    return int(n) / float(seconds)
                return call

            paths = {"backend called directly": direct, "OpenAI API (openai client, SSE)": via("openai"),
                     "Ollama API (ollama client, NDJSON)": via("ollama"), "Anthropic API (anthropic client, SSE)": via("anthropic")}
            await direct()  # warm-up: prompt cache, first allocation
            rates: dict[str, list[float]] = {p: [] for p in paths}
            order = list(paths.items())
            for i in range(runs):
                for label, fn in order[i % len(order):] + order[:i % len(order)]:  # rotated: no path always first
                    rates[label].append(await fn())
    base = statistics.median(rates["backend called directly"])
    print(f"## {title}, {tokens} tokens, {runs} interleaved runs\n")
    print("| path | median tok/s | min | max | ratio to direct |")
    print("|---|---|---|---|---|")
    for label, r in rates.items():
        print(f"| {label} | {statistics.median(r):.1f} | {min(r):.1f} | {max(r):.1f} | {statistics.median(r) / base:.3f} |")
    print()


def main() -> None:
    if sys.argv[1:2] == ["--client"]:
        path, url, name, tokens, prompt = sys.argv[2:7]
        print(*client_call(path, url, name, int(tokens), prompt))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)  # about 3 min on a loaded 2-core machine
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    name, entry = next((n, e) for n, e in _default_models().items() if e["kind"] == "chat" and e.get("default"))
    trio.run(bench, args.runs, args.tokens, name, entry, f"chat tokens/s per API: {name} ({entry['backend']}), greedy", PROMPT)
    words = " ".join(["word"] * args.tokens)  # echo answers the prompt's words, one token each
    echo = {"kind": "chat", "backend": "echo", "default": True, "options": {"delay_s": 0.02}}
    trio.run(bench, args.runs, args.tokens, "echo-paced", echo, "API overhead: echo backend paced at 50 tokens/s", words)


if __name__ == "__main__":
    main()
