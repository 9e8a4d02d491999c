"""Federation benchmarks (targets: docs/benchmarks.md, "Targets"). Run: python tests/benchmarks/bench_federation.py [--quick]

(a) intent round trip broker -> echo worker in another process, vs a raw py-libp2p
    request/response (new stream, write, read) to the same process, interleaved in one run;
(b) throughput to 4 echo worker processes (16 concurrent requests) vs the raw ceiling;
(c) a price change (set_capabilities) seen by all 20 nodes of a realm (one process).
"""

import json
import os
import random
import statistics
import subprocess
import sys
import time

import trio

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from federation import Federation  # noqa: E402
from federation.config import FederationConfig  # noqa: E402
from libp2p.peer.id import ID  # noqa: E402

ECHO = os.path.join(ROOT, "tests", "federation", "echo_node.py")
QUICK = "--quick" in sys.argv
REQ = {"kind": "chat", "model": "echo", "inputs": {"text": "ping " * 8}}


def seed(i):
    return bytes([i]) * 32


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def spawn_worker(i, peers):
    env = dict(os.environ, ECHO_RAW="1", ANNOUNCE="1")
    proc = await trio.lowlevel.open_process([sys.executable, ECHO, seed(i).hex(), *peers], env=env,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    buf = b""
    with trio.fail_after(30):
        while b"\n" not in buf:
            buf += await proc.stdout.receive_some(4096)
    return proc, json.loads(buf.split(b"\n")[0])["peer_id"]


async def raw_request(host, pid):
    s = await host.new_stream(pid, ["/bench/raw/1"])
    await s.write(b"x" * 64)
    data = await s.read(1 << 16)
    await s.close()
    return data


async def wait_for(cond, timeout):
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.02)


async def bench_latency_and_throughput(rows):
    broker = Federation(seed(100), FederationConfig(announce_interval=1.0))
    procs = []
    async with trio.open_nursery() as n:
        await n.start(broker.run)
        try:
            for i in range(4):
                procs.append(await spawn_worker(101 + i, [broker.listen_addrs[0]]))
            workers = [p for _, p in procs]
            await wait_for(lambda: len(broker.candidates("chat", "echo")) == 4, 30)
            w0, w0id = workers[0], ID.from_base58(workers[0])
            for _ in range(20):  # warm up both paths
                await raw_request(broker.host, w0id)
                await broker.request_intent(w0, REQ, None, 10)
            # (a) interleaved blocks
            raw, intent = [], []
            rounds, per = (3, 50) if QUICK else (6, 100)
            for _ in range(rounds):
                for _ in range(per):
                    t = time.perf_counter()
                    await raw_request(broker.host, w0id)
                    raw.append((time.perf_counter() - t) * 1000)
                for _ in range(per):
                    t = time.perf_counter()
                    await broker.request_intent(w0, REQ, None, 10)
                    intent.append((time.perf_counter() - t) * 1000)
            r50, i50 = statistics.median(raw), statistics.median(intent)
            rows.append(("(a) raw new-stream req/resp p50 / p90 ms", f"{r50:.2f} / {pct(raw, 90):.2f}", ""))
            rows.append(("(a) intent round trip p50 / p90 ms", f"{i50:.2f} / {pct(intent, 90):.2f}", ""))
            rows.append(("(a) intent / raw (p50)", f"{i50 / r50:.2f}x", "<= 1.3x"))
            rows.append(("(a) added latency p50 ms", f"{i50 - r50:+.2f}", "<= 5 ms"))

            # (b) throughput, 16 concurrent requesters round-robin over 4 workers
            dur = 2.0 if QUICK else 4.0
            conc = 16

            async def load(fn):
                done = [0]
                stop = trio.current_time() + dur

                async def worker(k):
                    j = k
                    while trio.current_time() < stop:
                        await fn(workers[j % 4])
                        done[0] += 1
                        j += 1

                async with trio.open_nursery() as ln:
                    for k in range(conc):
                        ln.start_soon(worker, k)
                return done[0] / dur

            ids = {w: ID.from_base58(w) for w in workers}
            raw_rps = await load(lambda w: raw_request(broker.host, ids[w]))
            int_rps = await load(lambda w: broker.request_intent(w, REQ, None, 10))
            raw_rps2 = await load(lambda w: raw_request(broker.host, ids[w]))
            raw_best = max(raw_rps, raw_rps2)
            rows.append(("(b) raw ceiling req/s (best of 2)", f"{raw_best:.0f}", ""))
            rows.append(("(b) intents req/s, 4 workers", f"{int_rps:.0f}", ""))
            rows.append(("(b) intents / raw", f"{int_rps / raw_best:.2f}x", ">= 0.8x"))
        finally:
            for proc, _ in procs:
                proc.kill()
                with trio.move_on_after(5):
                    await proc.wait()
            n.cancel_scope.cancel()


async def bench_gossip(rows, n_nodes=20, changes=10):
    rng = random.Random(7)
    feds = []
    seen = {}  # (node idx, price) -> time seen
    sent = {}
    async with trio.open_nursery() as n:
        for i in range(n_nodes):
            earlier = [f.listen_addrs[0] for f in feds]
            peers = rng.sample(earlier, min(3, len(earlier)))
            fed = Federation(seed(1 + i), FederationConfig(peers=peers, announce_interval=5.0, enable_dht=False))
            fed.set_capabilities({"models": {"chat": ["echo"]}, "prices": {"chat": 1000}})
            await n.start(fed.run)
            feds.append(fed)
        src = feds[0]

        def hook(idx, fed):
            orig = fed.peers.record_announcement

            def rec(peer_id, ann):
                if peer_id == src.peer_id:
                    seen.setdefault((idx, ann["prices"].get("chat")), time.perf_counter())
                return orig(peer_id, ann)

            fed.peers.record_announcement = rec

        for i, f in enumerate(feds[1:], 1):
            hook(i, f)
        await wait_for(lambda: all(src.peer_id in f.candidates("chat", "echo") for f in feds[1:]), 60)
        await trio.sleep(2)  # let the mesh settle (heartbeat 1 s)
        lat = []
        for c in range(changes):
            price = 2000 + c
            sent[price] = time.perf_counter()
            src.set_capabilities({"models": {"chat": ["echo"]}, "prices": {"chat": price}})
            with trio.move_on_after(5):
                while not all((i, price) in seen for i in range(1, n_nodes)):
                    await trio.sleep(0.005)
            if "--debug" in sys.argv:
                print(price, feds[1].peers.get(src.peer_id).announcement["prices"], src._caps["prices"], len(seen), src.counters["announced"], src.validator.accepted, [f.validator.accepted for f in feds[1:6]],
                      [f.stats["caps_rejected"] for f in feds[1:4]], len(src.gossip.mesh.get(src.realm.caps_topic, ())))
            for i in range(1, n_nodes):
                t = seen.get((i, price))
                lat.append((t - sent[price]) * 1000 if t else 5000.0)
            await trio.sleep(0.3)
        rows.append((f"(c) price change seen by all {n_nodes} nodes p50 / p99 ms",
                     f"{statistics.median(lat):.1f} / {pct(lat, 99):.1f}", "p99 <= 1000 ms"))
        missed = sum(1 for x in lat if x >= 5000)
        rows.append(("(c) deliveries missed (of %d)" % len(lat), str(missed), "0"))
        n.cancel_scope.cancel()


async def main():
    rows = []
    if "--gossip-only" not in sys.argv:
        await bench_latency_and_throughput(rows)
    await bench_gossip(rows, n_nodes=int(os.environ.get("GOSSIP_NODES", "20")))
    w = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(w)} | {'value':>18} | target")
    print("-" * (w + 34))
    for name, val, target in rows:
        print(f"{name.ljust(w)} | {val:>18} | {target}")


if __name__ == "__main__":
    trio.run(main)
