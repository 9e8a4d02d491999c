"""Chat tokens/s through each client-compatible API vs the backend called directly, side by side.

    .venv/bin/python tests/benchmarks/bench_apis.py [--runs 3] [--tokens 64]

One node in this process serves the embedded chat model (whatever engine the default registry
uses); "direct" runs that same loaded backend without HTTP, queue or broker, with the params the
APIs produce (ui/compat.with_defaults: greedy, the same max_tokens, the model's defaults under
them). Each API is driven by its official client (openai, ollama, anthropic), streaming, greedy
(temperature 0 sent explicitly by every client), the same prompt and token budget; the script
checks that every path and run produced the same text and reports the token counts. Each client
first makes a one-token streamed request of the same kind, so that its connection is open and its
lazily built parsers exist before the clock starts. Runs are interleaved (direct, openai, ollama,
anthropic, then rotated by one each round) so machine noise hits all of them alike; the table
gives medians.

Besides tokens/s it reports CPU per token: "node" is this process (HTTP, broker, reading the
engine's stream; for the APIs it also includes the client's one-token warm-up request and starting
its process), "client" is the client process during the timed request. On a machine whose cores
are all busy, that CPU is taken from the model.

A second table runs the same four paths on the echo backend pacing its tokens at a fixed rate
(options.delay_s): the model then costs no CPU, so the ratio isolates what each API adds (HTTP,
queue, JSON per token, the client's parsing) from the model's noisy speed on a loaded machine.
"""

from __future__ import annotations

import argparse
import json
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


def client_call(path: str, url: str, name: str, tokens: int, prompt: str) -> tuple[int, float, float, str]:
    """One streamed request through an official client: (completion tokens, seconds, the client's
    CPU seconds, the text). Each client first makes a small request of the same kind, so that its
    connection is open and its lazily built parsers exist before the clock starts."""
    msgs = [{"role": "user", "content": prompt}]
    text = []
    if path == "openai":
        from openai import OpenAI

        c = OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=300)
        for _ in c.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=1,
                                           temperature=0, stream=True, stream_options={"include_usage": True}):
            pass
        t0, c0, usage = time.perf_counter(), time.process_time(), None
        for ch in c.chat.completions.create(model=name, messages=msgs, max_tokens=tokens, temperature=0, stream=True,
                                            stream_options={"include_usage": True}):
            usage = ch.usage or usage
            if ch.choices and ch.choices[0].delta.content:
                text.append(ch.choices[0].delta.content)
        return usage.completion_tokens, time.perf_counter() - t0, time.process_time() - c0, "".join(text)
    if path == "ollama":
        import ollama

        c = ollama.Client(host=url, timeout=300)
        for _ in c.chat(model=name, messages=[{"role": "user", "content": "hi"}], stream=True,
                        options={"num_predict": 1, "temperature": 0}):
            pass
        t0, c0, last = time.perf_counter(), time.process_time(), None
        for part in c.chat(model=name, messages=msgs, stream=True, options={"num_predict": tokens, "temperature": 0}):
            last = part
            text.append(part.message.content or "")
        return last.eval_count, time.perf_counter() - t0, time.process_time() - c0, "".join(text)
    import anthropic

    c = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0, timeout=300)
    with c.messages.stream(model=name, max_tokens=1, messages=[{"role": "user", "content": "hi"}],
                           extra_body={"temperature": 0}) as s:
        s.get_final_message()
    t0, c0 = time.perf_counter(), time.process_time()
    with c.messages.stream(model=name, max_tokens=tokens, messages=msgs,
                           extra_body={"temperature": 0}) as s:  # this SDK has no temperature argument
        for t in s.text_stream:
            text.append(t)
        n = s.get_final_message().usage.output_tokens
    return n, time.perf_counter() - t0, time.process_time() - c0, "".join(text)


async def bench(runs: int, tokens: int, name: str, entry: dict, title: str, prompt: str) -> None:
    """The node runs in this process; each client runs in its own process, as real clients do
    (in one process their per-chunk parsing would compete with the node for the GIL)."""
    from ui.compat import with_defaults

    with tempfile.TemporaryDirectory() as tmp:
        async with running_node(Path(tmp) / "n", {name: entry}) as node:
            backend = await node.models.ensure_loaded(name)
            # the params the APIs send for greedy + max_tokens, with the model's defaults under them
            params = with_defaults(node.http_app.extensions["mtor_service"], "chat", name, {"max_tokens": tokens, "temperature": 0.0})

            async def direct() -> tuple[int, float, float, str]:
                text = []

                async def emit(event):
                    if event.get("type") == "chunk":
                        text.append(event.get("text") or "")
                intent = Intent(kind="chat", messages=[{"role": "user", "content": prompt}], params=dict(params))
                intent.validate()
                t0 = time.perf_counter()
                n = (await backend.run(intent, emit))["units"]
                return n, time.perf_counter() - t0, 0.0, "".join(text)

            def via(path: str):
                async def call() -> tuple[int, float, float, str]:
                    proc = await trio.run_process([sys.executable, __file__, "--client", path, node.http_url, name,
                                                   str(tokens), prompt], capture_stdout=True, cwd=str(ROOT))
                    n, seconds, cpu, text = proc.stdout.decode().split(" ", 3)
                    return int(n), float(seconds), float(cpu), json.loads(text)
                return call

            paths = {"backend called directly": direct, "OpenAI API (openai client, SSE)": via("openai"),
                     "Ollama API (ollama client, NDJSON)": via("ollama"), "Anthropic API (anthropic client, SSE)": via("anthropic")}
            await direct()  # warm-up: prompt cache, first allocation
            rows: dict[str, list[tuple[float, int, float, float]]] = {p: [] for p in paths}
            texts: dict[str, set[str]] = {p: set() for p in paths}
            order = list(paths.items())
            for i in range(runs):
                for label, fn in order[i % len(order):] + order[:i % len(order)]:  # rotated: no path always first
                    c0 = time.process_time()  # this process: the node (HTTP, broker, reading the engine's stream)
                    n, seconds, client_cpu, text = await fn()
                    rows[label].append((n / seconds, n, time.process_time() - c0, client_cpu))
                    texts[label].add(text)
    base = statistics.median(r[0] for r in rows["backend called directly"])
    print(f"## {title}, {tokens} tokens, {runs} interleaved runs, load average {os.getloadavg()[0]:.1f}\n")
    print("| path | median tok/s | min | max | ratio to direct | tokens | node CPU ms/token | client CPU ms/token |")
    print("|---|---|---|---|---|---|---|---|")
    for label, r in rows.items():
        rates, n = [x[0] for x in r], statistics.median(x[1] for x in r)
        print(f"| {label} | {statistics.median(rates):.1f} | {min(rates):.1f} | {max(rates):.1f} | "
              f"{statistics.median(rates) / base:.3f} | {n:g} | {statistics.median(x[2] for x in r) / n * 1000:.2f} | "
              f"{statistics.median(x[3] for x in r) / n * 1000:.2f} |")
    same = len(set().union(*texts.values())) == 1
    print(f"\nsame text on every path and run: {'yes' if same else 'NO: ' + repr({k: sorted(v) for k, v in texts.items()})}\n")


def main() -> None:
    if sys.argv[1:2] == ["--client"]:
        path, url, name, tokens, prompt = sys.argv[2:7]
        n, seconds, cpu, text = client_call(path, url, name, int(tokens), prompt)
        print(n, seconds, cpu, json.dumps(text))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=8)  # about 3 min on a 2-core machine at load 3
    ap.add_argument("--tokens", type=int, default=96)
    args = ap.parse_args()
    name, entry = next((n, e) for n, e in _default_models().items() if e["kind"] == "chat" and e.get("default"))
    trio.run(bench, args.runs, args.tokens, name, entry, f"chat tokens/s per API: {name} ({entry['backend']}), greedy", PROMPT)
    words = " ".join(["word"] * args.tokens)  # echo answers the prompt's words, one token each
    echo = {"kind": "chat", "backend": "echo", "default": True, "options": {"delay_s": 0.02}}
    trio.run(bench, args.runs, args.tokens, "echo-paced", echo, "API overhead: echo backend paced at 50 tokens/s", words)


if __name__ == "__main__":
    main()
