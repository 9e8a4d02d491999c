"""Accounts for the people behind a broker (issue 13 item 5), in a realm of real nodes: each user
has a sub-account in the broker's ledger (signed, hash-chained entries); a new user gets the demo
grant once; each intent's cost is debited to the user who asked; a user without credit for the
quote is refused before anything runs; the sysop credits users over the REST API."""

from __future__ import annotations

from contextlib import AsyncExitStack

import httpx
import pytest
import trio

from mtor_node.intents import Intent, IntentError
from tests.conftest import running_node

ECHO = {"echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 4, "default": True}}


def chat(text: str, user: str) -> Intent:
    i = Intent(kind="chat", messages=[{"role": "user", "content": text}], user=user, params={"max_tokens": 8})
    i.validate()
    return i


async def test_each_user_spends_their_own_credit(tmp_path):
    async with AsyncExitStack() as stack:
        w = await stack.enter_async_context(running_node(
            tmp_path / "w", ECHO, p2p={"enabled": True}, node={"roles": ["worker"]}, prices={"chat": 100_000}))
        w.network.surge.tick = lambda now, **kw: 1.0  # exact prices: load is not under test
        b = await stack.enter_async_context(running_node(
            tmp_path / "b", {}, p2p={"enabled": True, "peers": [w.federation.listen_addrs[0]]}, node={"roles": ["broker"]},
            ledger={"dev_grant": 1_000_000, "user_accounts": True, "demo_grant": 1_000}))
        with trio.fail_after(30):
            while not any(p["fresh"] and p["models"] for p in b.federation.peers.snapshot()):
                await trio.sleep(0.05)

        async def run(intent):
            with trio.fail_after(30):
                return [e async for e in b.broker.submit(intent).events][-1]

        # alice is new: the demo grant (1,000 µ) covers one quote of 800 µ; the 500 µ it cost is hers
        final = await run(chat("one two three four five", "alice"))
        assert final["type"] == "result" and final["cost"] == 500
        assert b.broker.accounts.balance("alice") == 500
        with pytest.raises(IntentError) as e:
            b.broker.submit(chat("again please", "alice"))
        assert e.value.code == "credit" and "has 500 micro-tokens" in e.value.message and "the price is 800" in e.value.message
        assert w.broker.counters["submitted"] == 1  # refused before anything ran

        async with httpx.AsyncClient(base_url=b.http_url) as c:
            hdr = {"X-Sysop-Token": b.sysop_token}
            assert (await c.post("/api/v1/wallet/users/credit", json={"user": "bob", "amount": 5_000})).status_code in (401, 403)
            r = await c.post("/api/v1/wallet/users/credit", headers=hdr, json={"user": "bob", "amount": 5_000, "id": "c1"})
            assert r.status_code == 200 and r.json()["balance"] == 5_000, r.text
            r = await c.post("/api/v1/wallet/users/credit", headers=hdr, json={"user": "bob", "amount": 5_000, "id": "c1"})
            assert r.status_code == 409  # once per id
            for i in range(3):
                final = await run(chat(f"bob asks {i}", "bob"))
                assert final["type"] == "result" and final["cost"] == 300
            users = (await c.get("/api/v1/wallet/users", headers=hdr)).json()["users"]
            w = await c.get("/api/v1/wallet", headers=hdr)  # recent entries name the sub-account
            assert w.status_code == 200 and any(e.get("peer") == "user:bob" for e in w.json()["recent"]), w.text[:300]
        assert users["bob"] == {"credited": 5_000, "spent": 900, "balance": 4_100}
        assert users["alice"] == {"credited": 1_000, "spent": 500, "balance": 500}
        # the node paid the worker exactly what its users were debited
        assert 1_000_000 - b.ledger.balance() == 500 + 900
        assert b.ledger.verify().ok
