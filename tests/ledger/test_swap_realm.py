"""SWAP-style settlement in a realm of real nodes (in one trio process) against the LiteSVM-backed
Solana RPC stand-in on 127.0.0.1 (real SPL Token and Token-2022 programs): the payer settles by
itself when its debt passes the payment threshold, the worker records a settlement only after
checking it on chain, each worker's token account rises by exactly what its ledger says was
settled, and a payer that does not settle is refused past the disconnect threshold."""

from __future__ import annotations

import os
import re
from contextlib import AsyncExitStack

import pytest
import trio
from solders.pubkey import Pubkey

from ledger.keys import Signer
from ledger.solana_chain import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, LiteSVMChainClient
from litesvm_rpc import LiteSVMRpcServer
from mtor_node.intents import Intent
from test_ledger_solana import SOL, make_mint
from tests.conftest import running_node

ECHO = {"echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 4, "default": True}}
PRICE = 100_000  # µ per 1k tokens: 100 µ per echoed word
GRANT = 10_000_000
SWAP = {"settlement": "on", "payment_threshold": 1_000, "disconnect_threshold": 5_000}


def seeded(dir_, seed: bytes) -> None:
    dir_.mkdir(parents=True)
    fd = os.open(dir_ / "identity.key", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, seed)
    os.close(fd)


def chat(text: str, user: str) -> Intent:
    # these users accept the worker's surge (up to its 10x cap) rather than fail over
    i = Intent(kind="chat", messages=[{"role": "user", "content": text}], user=user, params={"max_tokens": 8},
               max_price=8_000)
    i.validate()
    return i


async def run(node, intent):
    with trio.fail_after(30):
        return [e async for e in node.broker.submit(intent).events][-1]


@pytest.mark.parametrize("program", [TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID], ids=["spl-token", "token-2022"])
async def test_settles_by_itself_and_refuses_a_payer_past_the_disconnect_threshold(tmp_path, program):
    with LiteSVMRpcServer() as srv:
        seeds = {n: os.urandom(32) for n in ("w", "b", "lazy")}
        keys = {n: Pubkey.from_bytes(Signer(s).pubkey) for n, s in seeds.items()}
        mint = make_mint(srv.svm, [keys["b"], keys["lazy"]], 1_000_000, program=program)
        for k in keys.values():
            srv.svm.airdrop(k, SOL)
        chain = {"rpc_url": srv.url, "mint": str(mint)}
        async with AsyncExitStack() as stack:
            for n in seeds:
                seeded(tmp_path / n, seeds[n])
            worker = await stack.enter_async_context(running_node(
                tmp_path / "w", ECHO, p2p={"enabled": True}, node={"roles": ["worker"]}, prices={"chat": PRICE},
                ledger={**chain, **SWAP}))
            # the worker's load is not under test here: its surge stays 1, so every charge is exact
            worker.network.surge.tick = lambda now, **kw: 1.0
            worker.network.surge.value = lambda now=None: 1.0
            addr = worker.federation.listen_addrs[0]
            brokers = {}
            for n, settlement in (("b", "on"), ("lazy", "off")):  # "lazy" never settles
                brokers[n] = await stack.enter_async_context(running_node(
                    tmp_path / n, {}, p2p={"enabled": True, "peers": [addr]}, node={"roles": ["broker"]},
                    ledger={**chain, **SWAP, "settlement": settlement, "dev_grant": GRANT}))
            with trio.fail_after(30):
                while not all(any(p["fresh"] and p["models"] for p in b.federation.peers.snapshot())
                              for b in brokers.values()):
                    await trio.sleep(0.05)
            b, lazy = brokers["b"], brokers["lazy"]

            costs = []
            for i in range(12):  # 5 words = 500 µ each: past the 1,000 µ threshold every 2nd intent
                final = await run(b, chat(f"pay as you go {i}", f"u{i % 3}"))
                assert final["type"] == "result", (i, final, b.network.settler.status(), worker.network.settler.status())
                costs.append(final["cost"])
            assert costs == [500] * 12  # 5 words at 100 µ
            with trio.fail_after(30):  # the settler caught up and the worker checked every transfer
                while (b.ledger.owed().get(worker.ledger.pubkey, 0) >= SWAP["payment_threshold"]
                       or worker.network.settler.stats["received"] < b.network.settler.stats["settled"]
                       or b.network.settler.stats["settled"] == 0):
                    await trio.sleep(0.05)
            settled_in = sum(e.body["amount"] for e in worker.ledger.entries(worker.ledger.pubkey)
                             if e.kind == "settle" and e.body["dir"] == "in")
            settled_out = sum(e.body["amount"] for e in b.ledger.entries(b.ledger.pubkey)
                              if e.kind == "settle" and e.body["dir"] == "out")
            client = LiteSVMChainClient(srv.svm)
            on_chain = await client.token_balance(keys["w"], mint, program)
            assert on_chain == settled_in == settled_out >= sum(costs) - SWAP["payment_threshold"]
            assert 3 <= b.network.settler.stats["settled"] <= 12 // 2  # one transaction per crossing, not per intent
            assert await client.token_balance(keys["b"], mint, program) == 1_000_000 - settled_out
            assert worker.ledger.balance() == sum(costs) and sum(costs) - settled_in < SWAP["payment_threshold"]

            # the lazy broker: served until its unsettled debt would pass 5,000 µ, then refused
            results = []
            while not results or results[-1]["type"] == "result":
                assert len(results) < 30, "the lazy payer was never refused"
                results.append(await run(lazy, chat(f"never settle {len(results)}", "eve")))
            spent = GRANT - lazy.ledger.balance()
            assert spent == sum(r["cost"] for r in results[:-1])
            msg = results[-1]["message"]
            job = int(re.search(r"a job of (\d+)", msg).group(1))  # the quote at the worker's surge
            assert job == 800 and spent == 4_500  # 15 x 300 µ; 4,500 + a quote of 800 > 5,000
            assert results[-1]["code"] == "credit" and f"you owe this worker {spent} micro-tokens unsettled" in msg, msg
            assert "wallet settle" in msg and worker.network.counters["refused_credit"] == 1
            assert lazy.ledger.available() == lazy.ledger.balance()  # nothing lost or held
            assert await client.token_balance(keys["lazy"], mint, program) == 1_000_000

            # a replayed or foreign settlement is refused by the worker
            from federation.messages import MessageFailed
            last = next(e for e in reversed(list(b.ledger.entries(b.ledger.pubkey))) if e.kind == "settle")
            with pytest.raises(MessageFailed) as e:
                await b.network.messenger.request(worker.peer_id, "settle", {"tx": last.body["tx"], "amount": last.body["amount"], "mint": str(mint)})
            assert e.value.code == "ReplayError"
            with pytest.raises(MessageFailed) as e:  # lazy claims b's transfer as its own
                await lazy.network.messenger.request(worker.peer_id, "settle", {"tx": last.body["tx"], "amount": 500, "mint": str(mint)})
            assert e.value.code in ("ReplayError", "SettlementError")
            with pytest.raises(MessageFailed) as e:
                await lazy.network.messenger.request(worker.peer_id, "settle", {"tx": last.body["tx"], "amount": 500, "mint": str(keys["w"])})
            assert e.value.code == "bad_settlement" and "not" in e.value.message
            for n in (worker, b, lazy):
                assert n.ledger.verify().ok
            assert sum(n.ledger.balance() for n in (worker, b, lazy)) == 2 * GRANT


async def test_grid_credit_is_no_more_than_the_payer_holds_on_chain(tmp_path):
    """Self-granted credit is worth nothing to others: where the RPC answers, a worker extends a
    payer no more credit than its $9000 on chain (issue 13 item 4), and says so."""
    with LiteSVMRpcServer() as srv:
        seeds = {n: os.urandom(32) for n in ("w", "broke", "rich")}
        keys = {n: Pubkey.from_bytes(Signer(s).pubkey) for n, s in seeds.items()}
        mint = make_mint(srv.svm, [keys["rich"]], 1_000_000)  # "broke" holds none of it
        for k in keys.values():
            srv.svm.airdrop(k, SOL)
        chain = {"rpc_url": srv.url, "mint": str(mint)}
        async with AsyncExitStack() as stack:
            for n in seeds:
                seeded(tmp_path / n, seeds[n])
            worker = await stack.enter_async_context(running_node(
                tmp_path / "w", ECHO, p2p={"enabled": True}, node={"roles": ["worker"]}, prices={"chat": PRICE},
                ledger={**chain, **SWAP}))
            worker.network.surge.tick = lambda now, **kw: 1.0
            worker.network.surge.value = lambda now=None: 1.0
            addr = worker.federation.listen_addrs[0]
            brokers = {n: await stack.enter_async_context(running_node(
                tmp_path / n, {}, p2p={"enabled": True, "peers": [addr]}, node={"roles": ["broker"]},
                ledger={**chain, **SWAP, "dev_grant": GRANT})) for n in ("broke", "rich")}
            with trio.fail_after(30):
                while not all(any(p["fresh"] and p["models"] for p in b.federation.peers.snapshot())
                              for b in brokers.values()):
                    await trio.sleep(0.05)
            refused = await run(brokers["broke"], chat("a self-granted fortune", "eve"))
            assert refused["type"] == "error" and refused["code"] == "credit", refused
            assert "what you hold on chain (0 micro-tokens of $9000)" in refused["message"], refused["message"]
            assert brokers["broke"].ledger.balance() == GRANT == brokers["broke"].ledger.available()
            served = await run(brokers["rich"], chat("backed by tokens", "ann"))
            assert served["type"] == "result" and served["cost"] > 0, served


async def test_jobs_running_at_once_count_against_the_disconnect_threshold(tmp_path):
    """A payer's jobs admitted at the same time all count against its credit: twelve concurrent
    jobs from a payer that never settles leave it owing the worker no more than the disconnect
    threshold (each used to be admitted against the settled debt alone, so N at once ran it up to
    N quotes past it; tests/test_economy_realm.py found it with real processes)."""
    slow = {"echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 16, "default": True,
                          "options": {"delay_s": 0.05}}}
    with LiteSVMRpcServer() as srv:
        seeds = {n: os.urandom(32) for n in ("w", "lazy")}
        keys = {n: Pubkey.from_bytes(Signer(s).pubkey) for n, s in seeds.items()}
        mint = make_mint(srv.svm, [keys["lazy"]], 1_000_000)
        for k in keys.values():
            srv.svm.airdrop(k, SOL)
        chain = {"rpc_url": srv.url, "mint": str(mint)}
        async with AsyncExitStack() as stack:
            for n in seeds:
                seeded(tmp_path / n, seeds[n])
            worker = await stack.enter_async_context(running_node(
                tmp_path / "w", slow, p2p={"enabled": True}, node={"roles": ["worker"]}, prices={"chat": PRICE},
                ledger={**chain, **SWAP}))
            worker.network.surge.tick = lambda now, **kw: 1.0
            worker.network.surge.value = lambda now=None: 1.0
            lazy = await stack.enter_async_context(running_node(
                tmp_path / "lazy", {}, p2p={"enabled": True, "peers": [worker.federation.listen_addrs[0]]},
                node={"roles": ["broker"]}, ledger={**chain, **SWAP, "settlement": "off", "dev_grant": GRANT}))
            with trio.fail_after(30):
                while not any(p["fresh"] and p["models"] for p in lazy.federation.peers.snapshot()):
                    await trio.sleep(0.05)
            results = []

            async def one(i):
                results.append(await run(lazy, chat(f"all at once {i} now", f"u{i}")))

            async with trio.open_nursery() as n:
                for i in range(12):  # 12 x 500 µ = 6,000 µ: more than the 5,000 µ threshold
                    n.start_soon(one, i)
            served = [r for r in results if r["type"] == "result"]
            refused = [r for r in results if r["type"] == "error"]
            assert refused and all(r["code"] == "credit" for r in refused), refused
            owed = lazy.ledger.owed().get(worker.ledger.pubkey, 0)
            assert owed == sum(r["cost"] for r in served) == GRANT - lazy.ledger.balance()
            assert owed <= SWAP["disconnect_threshold"], owed
