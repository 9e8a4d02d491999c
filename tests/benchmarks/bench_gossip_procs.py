"""A price change seen by every node of a 20-node realm, one process per node (as in real life).

    .venv/bin/python tests/benchmarks/bench_gossip_procs.py [--nodes 20] [--changes 10]

Node 0 changes its announced chat price; every other node prints when it first sees each price.
All processes are on 127.0.0.1 and share the machine's clock, so latency = seen - sent.
Target (docs/benchmarks.md, "Targets"): p99 <= 1 s. bench_federation.py measures the same with all nodes in one
process, where 20 nodes starve one event loop.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def seed(i: int) -> bytes:
    return bytes([i + 1]) * 32


def child(idx: int, peers: list[str], source: str, flood: bool = True) -> None:
    import trio

    from federation import Federation
    from federation.config import FederationConfig

    def caps(price: int) -> dict:
        return {"models": {"chat": ["echo"]}, "prices": {"chat": price}}

    async def main() -> None:
        fed = Federation(seed(idx), FederationConfig(peers=peers, announce_interval=5.0, enable_dht=False, flood_publish=flood))
        fed.set_capabilities(caps(1000))
        orig = fed.peers.record_announcement
        seen: set[int] = set()

        def record(peer_id, ann):
            if peer_id == source:
                price = ann["prices"].get("chat")
                if price not in seen:
                    seen.add(price)
                    print(f"SEEN {price} {time.time():.6f}", flush=True)
            return orig(peer_id, ann)

        fed.peers.record_announcement = record
        async with trio.open_nursery() as n:
            await n.start(fed.run)
            print(json.dumps({"addr": fed.listen_addrs[0]}), flush=True)
            stdin = trio.lowlevel.FdStream(os.dup(0))
            buf = b""
            while True:
                data = await stdin.receive_some()
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    cmd = line.decode().split()
                    if cmd and cmd[0] == "PRICE":
                        print(f"SENT {cmd[1]} {time.time():.6f}", flush=True)
                        fed.set_capabilities(caps(int(cmd[1])))
            n.cancel_scope.cancel()

    trio.run(main)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--changes", type=int, default=10)
    ap.add_argument("--child", type=int, default=None)
    ap.add_argument("--peers", default="")
    ap.add_argument("--source", default="")
    ap.add_argument("--no-flood", action="store_true", help="mesh-only publishing (py-libp2p's default), to compare")
    args = ap.parse_args()
    if args.child is not None:
        return child(args.child, [p for p in args.peers.split(",") if p], args.source, not args.no_flood)

    from mtor_node.identity import Identity

    source = Identity(seed(0)).peer_id
    rng = random.Random(7)
    procs, addrs = [], []
    seen: dict[tuple[int, int], float] = {}
    import threading

    def reader(i: int, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            parts = line.split()
            if parts and parts[0] == "SEEN":
                seen[(i, int(parts[1]))] = float(parts[2])

    try:
        for i in range(args.nodes):
            peers = rng.sample(addrs, min(3, len(addrs)))
            proc = subprocess.Popen([sys.executable, __file__, "--child", str(i), "--peers", ",".join(peers),
                                     "--source", source] + (["--no-flood"] if args.no_flood else []), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
            while True:  # the child may hear node 0 (SEEN lines) before it prints its address
                line = proc.stdout.readline()
                if not line:
                    raise SystemExit(f"node {i} exited while starting")
                parts = line.split()
                if parts and parts[0] == "SEEN":
                    seen[(i, int(parts[1]))] = float(parts[2])
                    continue
                addrs.append(json.loads(line)["addr"])
                break
            procs.append(proc)
            threading.Thread(target=reader, args=(i, proc), daemon=True).start()
        deadline = time.time() + 60
        while not all((i, 1000) in seen for i in range(1, args.nodes)) and time.time() < deadline:
            time.sleep(0.05)  # the realm forms: every node hears node 0's first announcement (bounded)
        formed = sum((i, 1000) in seen for i in range(1, args.nodes))
        time.sleep(2)  # let the mesh settle (heartbeat 1 s)
        lat, missed = [], 0
        for c in range(args.changes):
            price = 2000 + c
            sent = time.time()
            procs[0].stdin.write(f"PRICE {price}\n")
            procs[0].stdin.flush()
            limit = time.time() + 5
            while time.time() < limit and not all((i, price) in seen for i in range(1, args.nodes)):
                time.sleep(0.005)
            for i in range(1, args.nodes):
                t = seen.get((i, price))
                if t is None:
                    missed += 1
                    lat.append(5000.0)
                else:
                    lat.append((t - sent) * 1000)
            time.sleep(0.3)
    finally:
        for p in procs:
            p.stdin.close()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    print(f"\n## price change seen by all {args.nodes} nodes, one process each ({args.changes} changes)\n")
    print("| nodes that heard node 0 at all | p50 ms | p99 ms | max ms | missed (counted as 5000 ms) | target |")
    print("|---|---|---|---|---|---|")
    print(f"| {formed} of {args.nodes - 1} | {statistics.median(lat):.1f} | {p99:.1f} | {lat[-1]:.1f} | {missed} of {len(lat)} "
          f"| p99 ≤ 1000 ms |")


if __name__ == "__main__":
    main()
