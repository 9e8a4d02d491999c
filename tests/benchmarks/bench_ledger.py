"""Ledger benchmark: sign+append, verify, anchoring cost per batch. Prints a table.

    python tests/benchmarks/bench_ledger.py [N]

Targets (docs/benchmarks.md, "Targets"): sign + append >= 5,000 entries/s; verify >= 10,000 entries/s;
anchoring: one transaction per batch whatever its size. Noisy shared machines: read ratios.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import trio  # noqa: E402
from solders.litesvm import LiteSVM  # noqa: E402

from ledger import Ledger  # noqa: E402
from ledger.entry import ZERO_HASH, Entry  # noqa: E402
from ledger.keys import Signer  # noqa: E402
from ledger.merkle import merkle_root  # noqa: E402
from ledger.solana_chain import LiteSVMChainClient  # noqa: E402
from ledger.verify import verify_chain  # noqa: E402


def body(i: int) -> dict:
    return {"amount": 1_000 + i, "tx": f"bench-{i}", "mint": "So11111111111111111111111111111111111111112", "slot": i}


def bench(n: int) -> list[tuple[str, str, str]]:
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    signer = Signer(os.urandom(32))

    t = time.perf_counter()
    prev = ZERO_HASH
    for i in range(n):
        e = Entry.create(signer, i + 1, prev if i else os.urandom(32), "deposit", body(i))
        prev = e.hash
    dt = time.perf_counter() - t
    rows.append(("sign only (no storage)", f"{n / dt:,.0f} entries/s", "-"))

    led = Ledger.open(tmp / "single.db", os.urandom(32))
    m = min(n, 2000)
    t = time.perf_counter()
    for i in range(m):
        led.store.append("deposit", body(i))
    dt = time.perf_counter() - t
    rows.append(("sign+append, 1 entry/commit, FULL", f"{m / dt:,.0f} entries/s", ">= 5,000 (see batched)"))
    led.close()

    for batch in (10, 100):
        led = Ledger.open(tmp / f"batch{batch}.db", os.urandom(32))
        t = time.perf_counter()
        for s in range(0, n, batch):
            led.store.append_many([("deposit", body(i)) for i in range(s, min(n, s + batch))])
        dt = time.perf_counter() - t
        rows.append((f"sign+append, {batch} entries/commit, FULL", f"{n / dt:,.0f} entries/s", ">= 5,000"))
        if batch == 100:
            keep = led
        else:
            led.close()

    led = keep
    t = time.perf_counter()
    rep = verify_chain(led.store)
    dt = time.perf_counter() - t
    assert rep.ok, rep.problems[:3]
    rows.append((f"verify chain ({rep.entries:,} entries, from disk), 1 process", f"{rep.entries / dt:,.0f} entries/s", ">= 10,000"))
    t = time.perf_counter()
    rep = verify_chain(led.store, workers=os.cpu_count() or 1)
    dt = time.perf_counter() - t
    assert rep.ok, rep.problems[:3]
    rows.append((f"verify chain, {os.cpu_count()} processes (incl. start)", f"{rep.entries / dt:,.0f} entries/s", ">= 10,000"))
    led.close()

    async def anchors() -> list[tuple[str, str, str]]:
        out = []
        for size in (10, 10_000):
            svm = LiteSVM()
            client = LiteSVMChainClient(svm)
            al = Ledger.open(tmp / f"anchor{size}.db", os.urandom(32))
            svm.airdrop(al.keypair.pubkey(), 10**9)
            for s in range(0, size - 1, 500):
                al.store.append_many([("deposit", body(i)) for i in range(s, min(size - 1, s + 500))])
            first, last = al.pending_anchor_range()
            t = time.perf_counter()
            a = await al.anchor_now(client)
            dt = time.perf_counter() - t
            txs = list(client._sent.values())
            nbytes = sum(len(bytes(tx)) for tx, _slot in txs)
            out.append((f"anchor {last - first + 1:,} entries", f"{len(txs)} tx, {nbytes} bytes, {dt * 1000:.1f} ms",
                        "1 tx per batch"))
            assert a is not None and len(txs) == 1
            al.close()
        return out

    rows += trio.run(anchors)
    t = time.perf_counter()
    merkle_root([os.urandom(32) for _ in range(100_000)])
    rows.append(("Merkle root of 100,000 hashes", f"{(time.perf_counter() - t) * 1000:.0f} ms", "-"))
    return rows


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rows = bench(n)
    w = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    print(f"{'measure':<{w}}  {'result':>{w2}}  target")
    print("-" * (w + w2 + 12))
    for a, b, c in rows:
        print(f"{a:<{w}}  {b:>{w2}}  {c}")


if __name__ == "__main__":
    main()
