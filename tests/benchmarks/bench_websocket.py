"""1,000 concurrent WebSocket clients submitting chat intents to an echo-backend node on 127.0.0.1.

Target (docs/benchmarks.md, "Targets"): p99 ≤ 1 s, no errors. Each client opens /ws, says hello, submits one chat
intent and reads its events to the result; latency is submit -> result as the client sees it.
All clients are connected before the first one submits (a barrier), so the intents really are
concurrent; connection set-up is reported separately. The node runs in its own process (as it
would in production), the clients in this one.

    python tests/benchmarks/bench_websocket.py [--clients 1000] [--rounds 1] [--words 8]
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
from trio_websocket import open_websocket_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.conftest import running_node  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


async def client(url: str, i: int, words: int, rounds: int, ready: trio.Semaphore, go: trio.Event,
                 results: list, errors: list, connect_times: list) -> None:
    t0 = time.perf_counter()
    try:
        with trio.fail_after(120):
            async with open_websocket_url(url, message_queue_size=64) as ws:
                await ws.send_message(json.dumps({"type": "hello", "user": f"bench-{i}"}))
                while json.loads(await ws.get_message())["type"] != "welcome":
                    pass
                connect_times.append(time.perf_counter() - t0)
                ready.release()
                await go.wait()
                prompt = " ".join(f"w{i}-{k}" for k in range(words))
                for r in range(rounds):
                    start = time.perf_counter()
                    await ws.send_message(json.dumps({"type": "submit", "ref": str(r), "intent": {"kind": "chat", "prompt": prompt}}))
                    streamed = ""
                    while True:
                        msg = json.loads(await ws.get_message())
                        if msg["type"] == "chunk":
                            streamed += msg["text"]  # a busy node may merge chunks; the text must add up
                        elif msg["type"] == "result":
                            if msg["text"] != prompt or streamed != prompt:
                                errors.append(f"client {i}: wrong answer {streamed!r}")
                            results.append(time.perf_counter() - start)
                            break
                        elif msg["type"] in ("error", "rejected"):
                            errors.append(f"client {i}: {msg.get('code')}: {msg.get('message')}")
                            break
    except Exception as e:  # noqa: BLE001 - every failure is counted and shown, none stops the run
        errors.append(f"client {i}: {type(e).__name__}: {e}")
        ready.release()


MODELS = {"echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 256, "default": True}}


async def serve() -> None:
    """The node process: print its URL and broker counters when stdin closes."""
    with tempfile.TemporaryDirectory() as tmp:
        async with running_node(Path(tmp) / "node", MODELS, queue={"max_size": 100_000, "max_inflight": 1024},
                                p2p={"enabled": False}, ledger={"enabled": False}) as node:
            print(node.http_url, flush=True)
            stdin = trio.lowlevel.FdStream(os.dup(0))
            while await stdin.receive_some():
                pass
            print(json.dumps(node.broker.counters), flush=True)


async def main(args) -> int:
    proc = await trio.lowlevel.open_process([sys.executable, __file__, "--serve"], stdin=-1, stdout=-1)
    lines = _lines(proc.stdout)
    with trio.fail_after(60):
        url = (await lines.__anext__()).replace("http://", "ws://") + "/ws"
    results, errors, connect_times = [], [], []
    ready, go = trio.Semaphore(0), trio.Event()
    wall0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(args.clients):
            nursery.start_soon(client, url, i, args.words, args.rounds, ready, go, results, errors, connect_times)
        for _ in range(args.clients):
            await ready.acquire()
        connected = time.perf_counter() - wall0
        t_go = time.perf_counter()
        go.set()
    burst = time.perf_counter() - t_go
    await proc.stdin.aclose()
    with trio.fail_after(30):
        outcomes = json.loads(await lines.__anext__())
        await proc.wait()
    n = len(results)
    rows = [
        ("clients", f"{args.clients}"), ("intents per client", f"{args.rounds}"), ("words per answer", f"{args.words}"),
        ("connect all (s)", f"{connected:.2f}"),
        ("connect p50 / p99 (ms)", f"{statistics.median(connect_times) * 1000:.0f} / {percentile(connect_times, 99) * 1000:.0f}" if connect_times else "—"),
        ("answers", f"{n}"), ("errors", f"{len(errors)}"),
        ("latency p50 (ms)", f"{statistics.median(results) * 1000:.1f}" if n else "—"),
        ("latency p90 (ms)", f"{percentile(results, 90) * 1000:.1f}" if n else "—"),
        ("latency p99 (ms)", f"{percentile(results, 99) * 1000:.1f}" if n else "—"),
        ("latency max (ms)", f"{max(results) * 1000:.1f}" if n else "—"),
        ("all answered in (s)", f"{burst:.2f}"), ("throughput (intents/s)", f"{n / burst:.0f}" if burst else "—"),
        ("broker counters", " ".join(f"{k}={v}" for k, v in outcomes.items())),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"\n{'WebSocket benchmark (echo backend, 127.0.0.1)':^{width + 20}}")
    print("-" * (width + 20))
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print("-" * (width + 20))
    for e in errors[:10]:
        print("  ", e)
    ok = not errors and n == args.clients * args.rounds and percentile(results, 99) <= 1.0
    print(f"target p99 ≤ 1 s, no errors: {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


async def _lines(stream):
    buf = b""
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line.decode()
        data = await stream.receive_some()
        if not data:
            return
        buf += data


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        if os.environ.get("BENCH_PROFILE"):  # where the node spends its time: python -m pstats FILE
            import cProfile
            cProfile.run("trio.run(serve)", os.environ["BENCH_PROFILE"])
        else:
            trio.run(serve)
        sys.exit(0)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--words", type=int, default=8)
    args = ap.parse_args()
    sys.exit(trio.run(main, args))
