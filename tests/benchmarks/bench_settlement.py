"""Cost of automatic (SWAP) settlement per intent: broker throughput to an echo worker with
settlement off and on, side by side in one run, against the LiteSVM-backed RPC stand-in on
127.0.0.1 (real SPL Token program). Prints a table; read the ratio, not the absolute numbers.

    python tests/benchmarks/bench_settlement.py [INTENTS]

"on, worst case": a payment threshold crossed every 2nd intent (one SPL transaction per 2
intents); "on, default": the default thresholds (100,000 µ) with the grid's default chat price:
settlement never fires within the run, only the bookkeeping (owed() per pay) is paid.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "ledger"))

import trio  # noqa: E402
from solders.pubkey import Pubkey  # noqa: E402

from ledger.keys import Signer  # noqa: E402
from litesvm_rpc import LiteSVMRpcServer  # noqa: E402
from mtor_node.intents import Intent  # noqa: E402
from test_ledger_solana import SOL, make_mint  # noqa: E402
from tests.conftest import running_node  # noqa: E402

ECHO = {"echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 8, "default": True}}
USERS = 4


async def one_run(tmp: Path, srv, mint, seeds, settlement: str, price: int, threshold: int, n: int) -> dict:
    chain = {"rpc_url": srv.url, "mint": str(mint), "settlement": settlement, "payment_threshold": threshold,
             "disconnect_threshold": 10**12}
    async with AsyncExitStack() as stack:
        for name in ("w", "b"):
            d = tmp / name
            d.mkdir(parents=True)
            fd = os.open(d / "identity.key", os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, seeds[name])
            os.close(fd)
        w = await stack.enter_async_context(running_node(tmp / "w", ECHO, p2p={"enabled": True},
                                                         node={"roles": ["worker"]}, prices={"chat": price}, ledger=chain))
        w.network.surge.tick = lambda now, **kw: 1.0  # same prices in every run
        b = await stack.enter_async_context(running_node(
            tmp / "b", {}, p2p={"enabled": True, "peers": [w.federation.listen_addrs[0]]}, node={"roles": ["broker"]},
            ledger={**chain, "dev_grant": 10**12}))
        with trio.fail_after(30):
            while not any(p["fresh"] and p["models"] for p in b.federation.peers.snapshot()):
                await trio.sleep(0.05)
        done = []

        async def user(u):
            for i in range(n // USERS):
                it = Intent(kind="chat", messages=[{"role": "user", "content": f"u{u} intent {i} five words"}],
                            user=f"u{u}", params={"max_tokens": 8}, max_price=10**9)
                it.validate()
                final = [e async for e in b.broker.submit(it).events][-1]
                assert final["type"] == "result", final
                done.append(final["cost"])

        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for u in range(USERS):
                nursery.start_soon(user, u)
        dt = time.perf_counter() - t
        s = b.network.settler.stats
        return {"rate": len(done) / dt, "n": len(done), "settled": s["settled"], "amount": s["settled_amount"]}


async def main(n: int) -> None:
    rows = []
    with LiteSVMRpcServer() as srv:
        for label, settlement, price, threshold in (("off", "off", 100_000, 10**9),
                                                    ("on, default thresholds", "on", 1_000, 100_000),
                                                    ("on, worst case (every 2nd intent)", "on", 100_000, 1_000)):
            seeds = {k: os.urandom(32) for k in ("w", "b")}
            keys = {k: Pubkey.from_bytes(Signer(s).pubkey) for k, s in seeds.items()}
            mint = make_mint(srv.svm, [keys["b"]], 10**12)
            for k in keys.values():
                srv.svm.airdrop(k, SOL)
            with tempfile.TemporaryDirectory(prefix="bench-settle-") as tmp:
                r = await one_run(Path(tmp), srv, mint, seeds, settlement, price, threshold, n)
            rows.append((label, r))
    base = rows[0][1]["rate"]
    print(f"{'settlement':<36} {'intents':>8} {'intents/s':>10} {'vs off':>8} {'SPL txs':>8}")
    for label, r in rows:
        print(f"{label:<36} {r['n']:>8} {r['rate']:>10.1f} {r['rate'] / base:>8.2f} {r['settled']:>8}")


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 200)
