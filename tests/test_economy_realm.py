"""The $9000 economy between real `mtor-node` processes (issue 13, the first "done when"): two
workers (one peaking), two brokers with several users each (sub-accounts), 500 paid intents over
every kind (echo backends: the real models cannot all run here), SWAP-style settlement against a
Solana RPC stand-in on 127.0.0.1 backed by LiteSVM (the real Token-2022 program).

Afterwards, read from the processes' HTTP APIs, `mtor-node ledger verify` and the LiteSVM accounts:
every charge is the accepted quote's price for the delivered units; settlement fired by itself at
the payment threshold and each worker's token account rose by exactly what its ledger says was
settled; the broker that does not settle is refused past the disconnect threshold; the balances sum
to the grants; every ledger verifies; the peaking worker served only at a surge at or above its
threshold (and not at all while the market was calm).

The market is driven by real load: in the calm phase no worker queues anything (ample slots, a
modelled per-token cost far above the machine's jitter); in the surge phase paid intents for a slow
model that only the regular worker serves queue up there, its announced surge climbs, the peaker
sees the market and takes the work.
"""

from __future__ import annotations

import base64
import io
import sys
import itertools
import json
import os
import struct
import wave

import httpx
import pytest
import trio
from solders.pubkey import Pubkey

from federation.kinds import KINDS
from federation.pricing import PriceTable
from ledger.keys import Signer
from ledger.solana_chain import TOKEN_2022_PROGRAM_ID, associated_token_address
from tests.conftest import free_port, write_config
from tests.ledger import litesvm_rpc
from tests.ledger.litesvm_rpc import LiteSVMRpcServer
from tests.test_cli import RunningNode, cli

pytestmark = pytest.mark.slow

SOL = 10**9
PROGRAM = TOKEN_2022_PROGRAM_ID
MINTED = 1_000_000_000  # each broker's $9000 on chain (1,000 tokens): it backs the credit workers extend
GRANT = 100_000_000  # each broker's dev grant
DEMO = 20_000_000  # each user's demo grant on a broker
SWAP = {"settlement": "on", "payment_threshold": 10_000, "disconnect_threshold": 100_000}
PEAK = 2.5  # the peaker's threshold, every kind
# The regular worker's prices (µ per price unit); the peaker asks a tenth, so it wins whenever it works
W_PRICES = {"chat": 200_000, "vision": 200_000, "imagine": 40_000, "transcribe": 60_000,
            "speak": 100_000, "embed": 100_000}
P_PRICES = {k: v // 10 for k, v in W_PRICES.items()}
DELAY = 0.1  # the echo's modelled cost (per token for chat and vision): far above the scheduling jitter
ECHO = {f"echo-{k}": {"kind": k, "backend": "echo", "concurrency": 8, "default": True, "options": {"delay_s": DELAY}}
        for k in KINDS}
SLOW = {"echo-slow": {"kind": "chat", "backend": "echo", "concurrency": 1, "options": {"delay_s": 0.4}}}
USERS = {"b": ["ann", "bob", "cat"], "lazy": ["dan", "eve", "fay"]}
CALM, TOTAL = 200, 500  # paid intents in the calm phase, and in all
LIMIT = 10**7  # the users' max price: they accept any surge (up to the 10x cap)
SURGES = [x / 2 for x in range(2, 21)]  # announced surges are on the 0.5 grid, 1 .. 10


def wav(seconds: float, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return buf.getvalue()


AUDIO = base64.b64encode(wav(1.0)).decode()
IMAGE = base64.b64encode(b"\x89PNG fake image bytes").decode()


def intent_body(kind: str, i: int, user: str) -> dict:
    body: dict = {"kind": kind, "user": user, "max_price": LIMIT, "timeout": 60}
    if kind == "chat":
        body |= {"messages": [{"role": "user", "content": f"chat {i} from {user} please"}], "params": {"max_tokens": 8}}
    elif kind == "vision":
        body |= {"prompt": f"what is in picture {i}", "image_b64": IMAGE, "params": {"max_tokens": 8}}
    elif kind == "imagine":
        body |= {"prompt": f"a red fox number {i}", "params": {"width": 256, "height": 256, "steps": 4}}
    elif kind == "transcribe":
        body |= {"audio_b64": AUDIO}
    elif kind == "speak":
        body |= {"prompt": f"Hello number {i}, how are you?"}
    elif kind == "embed":
        body |= {"texts": [f"embed {i} of {user}", "a second text"]}
    return body


def slow_body(i: int, user: str) -> dict:
    return {"kind": "chat", "model": "echo-slow", "user": user, "max_price": LIMIT, "timeout": 60,
            "messages": [{"role": "user", "content": f"slow {i}"}], "params": {"max_tokens": 4}}


def inputs_of(body: dict) -> dict:
    out = {k: body[k] for k in ("messages", "prompt", "texts") if k in body}
    if "image_b64" in body:
        out["image"] = base64.b64decode(body["image_b64"])
    if "audio_b64" in body:
        out["audio"] = base64.b64decode(body["audio_b64"])
    return out


class Proc:
    """A real `mtor-node start` process and its HTTP API."""

    def __init__(self, tmp_path, name: str, seed: bytes, models: dict, peers=(), **sections):
        self.name, self.dir = name, tmp_path / name
        self.dir.mkdir(parents=True)
        fd = os.open(self.dir / "identity.key", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, seed)  # seeded, so the mint can fund its token account before it starts
        os.close(fd)
        self.pubkey = Signer(seed).pubkey
        write_config(self.dir, models, http={"port": free_port()},
                     p2p={"port": 0, "host": "127.0.0.1", "peers": list(peers)}, **sections)
        self.node = RunningNode(self.dir)

    def ready(self) -> None:
        self.node.wait_ready(90)
        st = json.loads(cli("status", "--json", data_dir=self.dir, check=True).stdout)
        self.peer_id, self.addr, self.url = st["peer_id"], st["listen_addrs"][0], st["http"]
        self.sysop = (self.dir / "sysop.token").read_text().strip()

    def stop(self) -> None:
        if self.node.proc.poll() is None:
            self.node.proc.kill()
            self.node.proc.wait(10)


async def get(client: httpx.AsyncClient, node: Proc, path: str, sysop: bool = False) -> dict:
    r = await client.get(node.url + path, headers={"X-Sysop-Token": node.sysop} if sysop else {})
    assert r.status_code == 200, (node.name, path, r.text)
    return r.json()


async def run_intent(client: httpx.AsyncClient, broker: Proc, body: dict) -> dict:
    """POST /api/v1/intents?stream=1: the final event, with the price of the quote its worker accepted."""
    accepted = None
    async with client.stream("POST", broker.url + "/api/v1/intents", params={"stream": "1"}, json=body,
                             timeout=90) as resp:
        assert resp.status_code == 200, await resp.aread()
        async for line in resp.aiter_lines():
            if not line:
                continue
            ev = json.loads(line)
            if ev["type"] == "accepted" and "price" in ev:
                accepted = ev["price"]
            if ev["type"] in ("result", "error"):
                return {**ev, "accepted": accepted, "body": body, "broker": broker.name}
    raise AssertionError(f"no final event for {body['kind']}")


async def until(check, timeout: float, what: str) -> None:
    """Poll `check()` -> (ok, detail) until ok, for at most `timeout` s; else fail with the detail."""
    detail = None
    with trio.move_on_after(timeout):
        while True:
            ok, detail = await check()
            if ok:
                return
            await trio.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}; last seen: {detail}")


def surges_of(table: PriceTable, kind: str, est: int, accepted: int) -> list[float]:
    """The surges at which `table` quotes `accepted` for `est` units."""
    return [s for s in SURGES if table.price(kind, est, s) == accepted]


def token_balance(srv: LiteSVMRpcServer, owner: bytes, mint: Pubkey) -> int:
    with srv.rpc.lock:
        acct = srv.svm.get_account(associated_token_address(Pubkey.from_bytes(owner), mint, PROGRAM))
    return 0 if acct is None or len(acct.data) < 72 else struct.unpack_from("<Q", bytes(acct.data), 64)[0]


def settled(entries: list[dict], direction: str, peer: bytes | None = None) -> list[int]:
    return [e["body"]["amount"] for e in entries if e["kind"] == "settle" and e["body"]["dir"] == direction
            and (peer is None or e["body"]["peer"] == peer.hex())]


async def test_economy_of_real_processes_settles_on_chain_and_peaks_under_surge(tmp_path):
    sys.modules.setdefault("litesvm_rpc", litesvm_rpc)  # what the ledger tests import it as
    from tests.ledger.test_ledger_solana import make_mint

    procs: list[Proc] = []
    with LiteSVMRpcServer() as srv:
        seeds = {n: os.urandom(32) for n in ("w", "p", "b", "lazy")}
        keys = {n: Pubkey.from_bytes(Signer(s).pubkey) for n, s in seeds.items()}
        mint = make_mint(srv.svm, [keys["b"], keys["lazy"]], MINTED, program=PROGRAM)
        for k in keys.values():
            srv.svm.airdrop(k, SOL)  # fees
        chain = {"rpc_url": srv.url, "mint": str(mint), **SWAP}
        try:
            # two workers: the regular one (with a slow model only it serves) and the peaker
            w = Proc(tmp_path, "w", seeds["w"], {**ECHO, **SLOW}, node={"roles": ["worker"]}, prices=W_PRICES,
                     ledger=chain)
            p = Proc(tmp_path, "p", seeds["p"], ECHO, node={"roles": ["worker"]},
                     prices={**P_PRICES, "peaking": PEAK}, ledger=chain)
            procs += [w, p]
            async with trio.open_nursery() as n:
                for x in (w, p):
                    n.start_soon(trio.to_thread.run_sync, x.ready)
            # two brokers, users with sub-accounts; "lazy" never settles
            b = Proc(tmp_path, "b", seeds["b"], {}, peers=[w.addr, p.addr], node={"roles": ["broker"]},
                     ledger={**chain, "dev_grant": GRANT, "user_accounts": True, "demo_grant": DEMO})
            lazy = Proc(tmp_path, "lazy", seeds["lazy"], {}, peers=[w.addr, p.addr], node={"roles": ["broker"]},
                        ledger={**chain, "settlement": "off", "dev_grant": GRANT, "user_accounts": True,
                                "demo_grant": DEMO})
            procs += [b, lazy]
            async with trio.open_nursery() as n:
                for x in (b, lazy):
                    n.start_soon(trio.to_thread.run_sync, x.ready)
            brokers = {"b": b, "lazy": lazy}
            tables = {w.peer_id: PriceTable(W_PRICES), p.peer_id: PriceTable(P_PRICES)}

            async with httpx.AsyncClient(timeout=30) as client:
                async def offers_seen():
                    seen, raw = {}, {}
                    for name, br in brokers.items():
                        peers = (await get(client, br, "/api/v1/peers"))["peers"]
                        seen[name] = {x["peer_id"] for x in peers if x["fresh"] and all(x["models"].get(k) for k in KINDS)}
                        raw[name] = [(x["peer_id"][-6:], x["fresh"], x.get("connected"), sorted(x["models"] or {}))
                                     for x in peers]
                    return all({w.peer_id, p.peer_id} <= v for v in seen.values()), raw

                await until(offers_seen, 60, "both workers' offers (every kind) reach both brokers")

                results: list[dict] = []
                paid = {"n": 0}
                counter = itertools.count()
                lazy_refused = {"calm": 0, "surge": 0}

                async def user_task(phase: str, target: int) -> None:
                    while paid["n"] < target:
                        i = next(counter)
                        assert i < TOTAL + 300, "too many intents needed to reach the paid target"
                        # a third of the traffic comes from the lazy broker's users until it is refused
                        name = "lazy" if i % 3 == 0 and lazy_refused[phase] < 3 else "b"
                        user = USERS[name][(i // 3 + i) % 3]
                        kind = list(KINDS)[(i // 3) % len(KINDS)]  # every kind at both brokers
                        r = await run_intent(client, brokers[name], intent_body(kind, i, user))
                        r["phase"] = phase
                        results.append(r)
                        if r["type"] == "result":
                            paid["n"] += 1
                        elif name == "lazy" and r["code"] == "credit":
                            lazy_refused[phase] += 1

                async def w_surge() -> float:
                    return (await get(client, w, "/api/v1/status"))["charges"]["surge"]

                # --- the calm market: nothing queues; the peaker stays idle -----------------------
                calm_surges: list[float] = []

                async def watch(into: list, stop: trio.Event) -> None:
                    while not stop.is_set():
                        into.append(await w_surge())
                        with trio.move_on_after(0.5):
                            await stop.wait()

                stop = trio.Event()
                async with trio.open_nursery() as n:
                    n.start_soon(watch, calm_surges, stop)
                    async with trio.open_nursery() as users:
                        for _ in range(8):  # 8 intents in flight
                            users.start_soon(user_task, "calm", CALM)
                    stop.set()
                assert max(calm_surges) < PEAK, calm_surges

                # --- the surge: paid intents for the slow model queue at the regular worker --------
                load_stop = trio.Event()
                load_results: list[dict] = []

                async def load(slot: int) -> None:
                    for j in itertools.count():
                        if load_stop.is_set():
                            return
                        r = await run_intent(client, b, slow_body(j * 10 + slot, USERS["b"][slot % 3]))
                        r["phase"] = "load"
                        load_results.append(r)

                async with trio.open_nursery() as n:
                    for s in range(4):
                        n.start_soon(load, s)

                    async def peaker_follows():
                        ch = {k: (await get(client, x, "/api/v1/status"))["charges"] for k, x in (("w", w), ("p", p))}
                        return ch["p"]["surge"] >= PEAK, {k: (c["surge"], c["market_surge"]) for k, c in ch.items()}

                    await until(peaker_follows, 60, "the regular worker's surge passes the threshold, the peaker follows")
                    async with trio.open_nursery() as users:
                        for _ in range(8):
                            users.start_soon(user_task, "surge", TOTAL)
                    load_stop.set()

                everything = results + load_results
                done = [r for r in everything if r["type"] == "result"]
                assert len(done) >= TOTAL

                # --- every charge is the accepted quote's price for the delivered units -----------
                by_peer = {w.peer_id: [], p.peer_id: []}
                for r in done:
                    body = r["body"]
                    kind = KINDS[body["kind"]]
                    table = tables[r["peer"]]
                    est = kind.estimate(body.get("params") or {}, inputs_of(body))
                    assert r["accepted"] is not None, r
                    surges = surges_of(table, body["kind"], est, r["accepted"])
                    assert surges, ("the accepted price is no quote of the worker's table", r)
                    charges = {min(r["accepted"], table.price(body["kind"], r["units"], s)) for s in surges}
                    assert charges == {r["cost"]}, ("charge != quote for the delivered units", r, surges)
                    assert 0 < r["units"] <= est and r["cost"] <= r["accepted"]
                    if body["kind"] in ("imagine", "transcribe", "speak", "embed"):  # work known up front
                        assert r["units"] == est and r["cost"] == r["accepted"], r
                    by_peer[r["peer"]].append((r, min(surges)))

                # --- the peaker served only at a surge at or above its threshold -------------------
                assert not [r for r, _ in by_peer[p.peer_id] if r["phase"] == "calm"], "the peaker served a calm market"
                assert [r for r, _ in by_peer[p.peer_id] if r["phase"] == "surge"], "the peaker never served"
                assert all(s >= PEAK for _, s in by_peer[p.peer_id]), sorted({s for _, s in by_peer[p.peer_id]})
                assert all(r["peer"] == w.peer_id for r in done if r["body"].get("model") == "echo-slow")

                # --- the good broker was never refused; the lazy one was, past the threshold -------
                failed = [r for r in everything if r["type"] != "result"]
                assert not [r for r in failed if r["broker"] == "b"], [r["message"] for r in failed if r["broker"] == "b"][:3]
                refusals = [r for r in failed if r["broker"] == "lazy"]
                assert refusals and all(r["code"] == "credit" for r in refusals), refusals[:3]
                d = SWAP["disconnect_threshold"]
                assert any(f"its disconnect threshold of {d}" in r["message"] and "you owe this worker" in r["message"]
                           and "wallet settle" in r["message"] for r in refusals), refusals[:3]

                # --- settlement catches up; every pay entry reaches its worker --------------------
                nodes = {"w": w, "p": p, "b": b, "lazy": lazy}

                async def state():
                    wallets = {k: await get(client, x, "/api/v1/wallet?limit=1") for k, x in nodes.items()}
                    exports = {k: (await get(client, x, "/api/v1/ledger/export"))["entries"] for k, x in nodes.items()}
                    return wallets, exports

                async def caught_up():
                    nonlocal wallets, exports
                    wallets, exports = await state()
                    sums = {"balances": sum(x["balance"] for x in wallets.values()), "b owes": wallets["b"]["owed"],
                            **{f"{k} in/out": (sum(settled(exports[k], "in", b.pubkey)),
                                               sum(settled(exports["b"], "out", nodes[k].pubkey))) for k in ("w", "p")}}
                    return (sums["balances"] == 2 * GRANT  # every pay entry reached its worker
                            and all(i == o for i, o in (sums["w in/out"], sums["p in/out"]))
                            and all(v < SWAP["payment_threshold"] for v in wallets["b"]["owed"].values())), sums

                wallets: dict = {}
                exports: dict = {}
                await until(caught_up, 60, "settlement catches up and every pay entry is earned")

                # --- balances: the sum is the grants (no deposits); users' debits are the spend ---
                spent = {k: GRANT - wallets[k]["balance"] for k in ("b", "lazy")}
                for k in ("b", "lazy"):
                    assert spent[k] == sum(r["cost"] for r in done if r["broker"] == k)
                    assert wallets[k]["held"] == 0
                    users = (await get(client, nodes[k], "/api/v1/wallet/users", sysop=True))["users"]
                    assert set(users) == set(USERS[k]), users
                    assert sum(u["spent"] for u in users.values()) == spent[k]
                    for u, a in users.items():
                        assert a["credited"] == DEMO and a["spent"] == sum(
                            r["cost"] for r in done if r["broker"] == k and r["body"]["user"] == u)
                for k in ("w", "p"):
                    assert wallets[k]["balance"] == sum(r["cost"] for r in done if r["peer"] == nodes[k].peer_id)

                # --- settlement: on its own, at the threshold, and exactly what is on chain ------
                for k in ("w", "p"):
                    ins = settled(exports[k], "in", b.pubkey)
                    outs = settled(exports["b"], "out", nodes[k].pubkey)
                    assert ins == outs and all(a >= SWAP["payment_threshold"] for a in outs), (k, ins, outs)
                    assert token_balance(srv, nodes[k].pubkey, mint) == sum(ins), k  # rose by exactly that
                    assert not settled(exports[k], "in", lazy.pubkey)
                    earned_from_b = sum(r["cost"] for r in done if r["peer"] == nodes[k].peer_id and r["broker"] == "b")
                    assert 0 <= earned_from_b - sum(ins) < SWAP["payment_threshold"]
                    # the lazy broker's unsettled debt never passed the disconnect threshold
                    owed_lazy = sum(r["cost"] for r in done if r["peer"] == nodes[k].peer_id and r["broker"] == "lazy")
                    assert owed_lazy <= d, (k, owed_lazy)
                outs = settled(exports["b"], "out")
                assert len(settled(exports["w"], "in")) >= 2 and settled(exports["p"], "in"), "no settlement fired"
                assert token_balance(srv, bytes(keys["b"]), mint) == MINTED - sum(outs)
                assert token_balance(srv, bytes(keys["lazy"]), mint) == MINTED  # it never settled
                assert not settled(exports["lazy"], "out")

            # --- every ledger verifies (`mtor-node ledger verify`) ---------------------------------
            async def verify(x: Proc) -> None:
                r = await trio.to_thread.run_sync(lambda: cli("ledger", "verify", "--json", data_dir=x.dir))
                rep = json.loads(r.stdout)
                assert r.returncode == 0 and rep["ok"] and rep["entries"] > 0, (x.name, r.stdout, r.stderr)

            async with trio.open_nursery() as n:
                for x in procs:
                    n.start_soon(verify, x)
        finally:
            for x in procs:
                x.stop()
                print(f"--- {x.name} ({getattr(x, 'peer_id', '?')}): the end of its log ---\n{x.node.output()[-4000:]}")
