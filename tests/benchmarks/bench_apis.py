"""Chat tokens/s through each client-compatible API vs the backend called directly, side by side.

    .venv/bin/python tests/benchmarks/bench_apis.py [--runs 8] [--tokens 96] [--echo-tokens 96]

One node in this process serves the embedded chat model (whatever engine the default registry
uses); "direct" runs that same loaded backend without HTTP, queue or broker, with the params the
APIs produce (ui/compat.with_defaults: greedy, the same max_tokens, the model's defaults under
them). Each API is driven by its official client (openai, ollama, anthropic), streaming, greedy
(temperature 0 sent explicitly by every client), the same prompt and token budget; the script
checks that every path and run produced the same text and reports the token counts. Each client
first makes a one-token streamed request with the same prompt, so that its connection is open, its
lazily built parsers exist and the engine's prompt cache holds the prompt before the clock starts
(the direct runs find it cached by the run before). Runs are interleaved (direct, openai, ollama,
anthropic, then rotated by one each round) so machine noise hits all of them alike; the table
gives medians, and the median of per-round ratios (each API run against the direct run of the
same round, seconds apart).

Besides tokens/s it reports CPU per token over the timed request only, read from /proc: the
engine (llama.cpp's process and its children), the node (this process: HTTP, broker, reading the
engine's stream) and the client process. When every core is busy, what the node and the client
spend is taken from the model.

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


def cpu_of(pid: int, with_children: bool) -> float:
    """CPU seconds so far of a process (and of its descendants), from /proc; 0 for pid 0."""
    pids, total = [pid] if pid else [], 0.0
    while pids:
        p = pids.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
            if with_children:
                for task in Path(f"/proc/{p}/task").iterdir():
                    pids += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


def snapshot(node_pid: int, engine_pid: int) -> tuple[float, float, float, float]:
    """(wall, this process's CPU, the node's CPU, the engine's CPU with its children), seconds."""
    return time.perf_counter(), time.process_time(), cpu_of(node_pid, False), cpu_of(engine_pid, True)


def client_call(path: str, url: str, name: str, tokens: int, prompt: str, snap) -> tuple[int, str, tuple, tuple]:
    """One streamed request through an official client: (completion tokens, the text, snap() before,
    snap() after). Each client first makes a one-token streamed request of the same kind with the
    same prompt, so that its connection is open, its lazily built parsers exist and the engine's
    prompt cache holds the prompt before the clock starts, as for the direct runs."""
    msgs = [{"role": "user", "content": prompt}]
    text = []
    if path == "openai":
        from openai import OpenAI

        c = OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=300)

        def run(max_tokens: int):
            usage = None
            for ch in c.chat.completions.create(model=name, messages=msgs, max_tokens=max_tokens, temperature=0, stream=True,
                                                stream_options={"include_usage": True}):
                usage = ch.usage or usage
                if ch.choices and ch.choices[0].delta.content:
                    text.append(ch.choices[0].delta.content)
            return usage.completion_tokens
    elif path == "ollama":
        import ollama

        c = ollama.Client(host=url, timeout=300)

        def run(max_tokens: int):
            last = None
            for part in c.chat(model=name, messages=msgs, stream=True, options={"num_predict": max_tokens, "temperature": 0}):
                last = part
                text.append(part.message.content or "")
            return last.eval_count
    else:
        import anthropic

        c = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0, timeout=300)

        def run(max_tokens: int):
            with c.messages.stream(model=name, max_tokens=max_tokens, messages=msgs,
                                   extra_body={"temperature": 0}) as s:  # this SDK has no temperature argument
                for t in s.text_stream:
                    text.append(t)
                return s.get_final_message().usage.output_tokens
    run(1)
    text.clear()
    before = snap()
    n = run(tokens)
    return n, "".join(text), before, snap()


async def bench(runs: int, tokens: int, name: str, entry: dict, title: str, prompt: str) -> None:
    """The node runs in this process; each client runs in its own process, as real clients do
    (in one process their per-chunk parsing would compete with the node for the GIL)."""
    from ui.compat import with_defaults

    with tempfile.TemporaryDirectory() as tmp:
        async with running_node(Path(tmp) / "n", {name: entry}) as node:
            backend = await node.models.ensure_loaded(name)
            # the params the APIs send for greedy + max_tokens, with the model's defaults under them
            params = with_defaults(node.http_app.extensions["mtor_service"], "chat", name, {"max_tokens": tokens, "temperature": 0.0})

            node_pid = os.getpid()
            engine = getattr(getattr(backend, "server", None), "proc", None)  # llama.cpp runs in a process of its own
            engine_pid = engine.pid if engine is not None else 0

            async def direct() -> tuple[int, str, tuple, tuple]:
                text = []

                async def emit(event):
                    if event.get("type") == "chunk":
                        text.append(event.get("text") or "")
                intent = Intent(kind="chat", messages=[{"role": "user", "content": prompt}], params=dict(params))
                intent.validate()
                before = snapshot(node_pid, engine_pid)
                n = (await backend.run(intent, emit))["units"]
                after = snapshot(node_pid, engine_pid)
                return n, "".join(text), before, after

            def via(path: str):
                async def call() -> tuple[int, str, tuple, tuple]:
                    proc = await trio.run_process([sys.executable, __file__, "--client", path, node.http_url, name,
                                                   str(tokens), prompt, str(node_pid), str(engine_pid)],
                                                  capture_stdout=True, cwd=str(ROOT))
                    return json.loads(proc.stdout)
                return call

            paths = {"backend called directly": direct, "OpenAI API (openai client, SSE)": via("openai"),
                     "Ollama API (ollama client, NDJSON)": via("ollama"), "Anthropic API (anthropic client, SSE)": via("anthropic")}
            await direct()  # warm-up: prompt cache, first allocation
            rows: dict[str, list[tuple[float, int, float, float, float]]] = {p: [] for p in paths}
            texts: dict[str, set[str]] = {p: set() for p in paths}
            order = list(paths.items())
            for i in range(runs):
                for label, fn in order[i % len(order):] + order[:i % len(order)]:  # rotated: no path always first
                    n, text, before, after = await fn()
                    wall, client, node_cpu, engine_cpu = (b - a for a, b in zip(before, after))
                    if label == "backend called directly":
                        client = 0.0  # the "client" is this process, the node
                    rows[label].append((n / wall, n, node_cpu, client, engine_cpu))
                    texts[label].add(text)
    base = statistics.median(r[0] for r in rows["backend called directly"])
    print(f"## {title}, {tokens} tokens, {runs} interleaved runs, load average {os.getloadavg()[0]:.1f}\n")
    # "per round": each API run over the direct run of the same round (seconds apart, so under about
    # the same load), then the median of those; the ratio of medians mixes rounds of different load
    print("| path | median tok/s | min | max | ratio of medians | median per-round ratio | tokens | engine CPU ms/token | node CPU ms/token | client CPU ms/token | CPU ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    # "CPU ratio": direct's CPU per token (engine + node) over this path's (engine + node + client):
    # the tokens/s ratio to expect when every core is busy, whatever else runs; a free core hides it
    cpu = {label: [statistics.median(x[i] / x[1] * 1000 for x in r) for i in (4, 2, 3)] for label, r in rows.items()}
    for label, r in rows.items():
        rates, n = [x[0] for x in r], statistics.median(x[1] for x in r)
        paired = statistics.median(x[0] / d[0] for x, d in zip(r, rows["backend called directly"]))
        engine, node_cpu, client = cpu[label]
        cpu_ratio = f"{sum(cpu['backend called directly']) / sum(cpu[label]):.3f}" if cpu["backend called directly"][0] else "-"
        print(f"| {label} | {statistics.median(rates):.1f} | {min(rates):.1f} | {max(rates):.1f} | "
              f"{statistics.median(rates) / base:.3f} | {paired:.3f} | {n:g} | {engine:.2f} | {node_cpu:.2f} | {client:.2f} | {cpu_ratio} |")
    same = len(set().union(*texts.values())) == 1
    print(f"\nsame text on every path and run: {'yes' if same else 'NO: ' + repr({k: sorted(v) for k, v in texts.items()})}\n")


def main() -> None:
    if sys.argv[1:2] == ["--client"]:
        path, url, name, tokens, prompt, node_pid, engine_pid = sys.argv[2:9]
        print(json.dumps(client_call(path, url, name, int(tokens), prompt,
                                     lambda: snapshot(int(node_pid), int(engine_pid)))))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=8)  # about 3 min on a 2-core machine at load 3
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--echo-tokens", type=int, default=96, help="for the echo table (0: skip it)")
    args = ap.parse_args()
    name, entry = next((n, e) for n, e in _default_models().items() if e["kind"] == "chat" and e.get("default"))
    trio.run(bench, args.runs, args.tokens, name, entry, f"chat tokens/s per API: {name} ({entry['backend']}), greedy", PROMPT)
    if args.echo_tokens:
        words = " ".join(["word"] * args.echo_tokens)  # echo answers the prompt's words, one token each
        echo = {"kind": "chat", "backend": "echo", "default": True, "options": {"delay_s": 0.02}}
        trio.run(bench, args.runs, args.echo_tokens, "echo-paced", echo, "API overhead: echo backend paced at 50 tokens/s", words)


if __name__ == "__main__":
    main()
