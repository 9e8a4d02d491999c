"""The wallet and ledger REST API on real in-process nodes (real SQLite), anchoring and
settlement through solana-py against the LiteSVM-backed RPC stand-in on 127.0.0.1, grant
delivery over a real libp2p /mtor/msg/1 stream. Every wait is bounded."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import base58
import httpx
import pytest
import trio
from solders.pubkey import Pubkey

from ledger import Entry, issue_grant
from ledger.keys import Signer
from mtor_node import onchain as chain_mod
from mtor_node.onchain import address_from_peer_id, decode_voucher, peer_id_from_address

from .conftest import running_node

sys.path.insert(0, str(Path(__file__).parent / "ledger"))
from litesvm_rpc import LiteSVMRpcServer  # noqa: E402

SOL = 10**9
DEV = 5_000_000


def http(node) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=node.http_url, timeout=30)


def sysop(node) -> dict:
    return {"X-Sysop-Token": node.sysop_token}


def addr_of(seed: bytes) -> str:
    return Signer(seed).address


# ---- addresses ----------------------------------------------------------------------------

def test_peer_id_and_address_are_one_key():
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    for _ in range(5):
        seed = os.urandom(32)
        kp = create_new_key_pair(seed)
        pid = ID.from_pubkey(kp.public_key).to_base58()
        address = base58.b58encode(kp.public_key.to_bytes()).decode()
        assert address == addr_of(seed)  # the Solana/ledger view of the same seed
        assert peer_id_from_address(address) == pid
        assert address_from_peer_id(pid) == address
    with pytest.raises(ValueError, match="not an Ed25519 peer id"):
        address_from_peer_id(address)
    with pytest.raises(ValueError, match="not a Solana address"):
        peer_id_from_address(pid)
    with pytest.raises(ValueError, match="not base58"):
        peer_id_from_address("0OIl")


# ---- wallet, grants, redeem ---------------------------------------------------------------

async def test_wallet_shows_dev_grant_and_authority_grants_to_itself(tmp_path):
    async with running_node(tmp_path / "a", ledger={"dev_grant": DEV}) as node, http(node) as c:
        w = (await c.get("/api/v1/wallet")).json()
        assert w["address"] == node.identity.solana_address
        assert w["is_authority"] and w["authority"] == w["address"]
        assert (w["balance"], w["available"], w["held"], w["holds"]) == (DEV, DEV, 0, [])
        assert [(e["kind"], e["seq"], e["amount"], e["delta"]) for e in w["recent"]] == [
            ("grant", 1, DEV, DEV), ("genesis", 0, 0, 0)]
        assert w["owed"] == {}

        node.ledger.hold("job-1", 1_000_000)
        w = (await c.get("/api/v1/wallet")).json()
        assert (w["available"], w["held"], w["holds"]) == (DEV - 1_000_000, 1_000_000,
                                                           [{"job": "job-1", "amount": 1_000_000}])

        body = {"address": w["address"], "amount": 2_500_000}
        r = await c.post("/api/v1/wallet/grant", json=body)
        assert r.status_code == 403 and "sysop token" in r.json()["error"]["message"]
        r = await c.post("/api/v1/wallet/grant", json=body, headers=sysop(node))
        assert r.status_code == 200, r.text
        g = r.json()
        assert g["applied"] and g["balance"] == DEV + 2_500_000 and g["seq"] == 2
        v = decode_voucher(g["voucher"])
        assert (v.amount, v.to, v.realm, v.id) == (2_500_000, node.ledger.pubkey, "grid", g["id"])
        # the returned string is the canonical bytes, base64url: what the entry quotes
        assert node.ledger.store.get(node.ledger.pubkey, 2).body["voucher"] == v.to_dict()

        for bad, code in (({"address": "nope", "amount": 1}, "bad_address"),
                          ({"address": w["address"], "amount": 1.5}, "bad_amount"),
                          ({"address": w["address"], "amount": 0}, "bad_amount"),
                          ({"address": w["address"], "amount": True}, "bad_amount")):
            r = await c.post("/api/v1/wallet/grant", json=bad, headers=sysop(node))
            assert (r.status_code, r.json()["error"]["code"]) == (400, code)


async def test_a_member_node_refuses_to_grant(tmp_path):
    authority = addr_of(os.urandom(32))
    async with running_node(tmp_path / "m", ledger={"authority": authority}) as node, http(node) as c:
        r = await c.post("/api/v1/wallet/grant", json={"address": node.identity.solana_address, "amount": 5},
                         headers=sysop(node))
        assert r.status_code == 403
        err = r.json()["error"]
        assert err["code"] == "not_authority"
        assert authority in err["message"] and "not the authority of realm 'grid'" in err["message"]
        assert (await c.get("/api/v1/wallet")).json()["balance"] == 0


async def test_voucher_redeemed_on_a_member_node(tmp_path):
    async with running_node(tmp_path / "auth", ledger={"dev_grant": DEV}) as a, http(a) as ca:
        async with running_node(tmp_path / "mem", ledger={"authority": a.identity.solana_address}) as b, \
                http(b) as cb:
            b_addr = b.identity.solana_address
            r = await ca.post("/api/v1/wallet/grant", json={"address": b_addr, "amount": 1_234_567},
                              headers=sysop(a))
            g = r.json()
            assert r.status_code == 200 and not g["applied"] and not g["delivered"]
            assert "voucher string" in g["note"]
            assert (await ca.get("/api/v1/wallet")).json()["balance"] == DEV  # the authority keeps its own

            r = await cb.post("/api/v1/wallet/redeem", json={"voucher": g["voucher"]})
            assert r.status_code == 200, r.text
            assert (r.json()["credited"], r.json()["balance"]) == (1_234_567, 1_234_567)
            # twice: a replay
            r = await cb.post("/api/v1/wallet/redeem", json={"voucher": g["voucher"]})
            assert (r.status_code, r.json()["error"]["code"]) == (409, "replay")
            assert "already credited" in r.json()["error"]["message"]

            # a voucher for another member
            other = addr_of(os.urandom(32))
            g2 = (await ca.post("/api/v1/wallet/grant", json={"address": other, "amount": 7},
                                headers=sysop(a))).json()
            r = await cb.post("/api/v1/wallet/redeem", json={"voucher": g2["voucher"]})
            err = r.json()["error"]
            assert (r.status_code, err["code"]) == (403, "wrong_member")
            assert other in err["message"] and b_addr in err["message"]

            # another realm; a key that is not the authority; an altered amount; garbage
            wrong_realm = issue_grant(a.identity.seed, "elsewhere", b.ledger.pubkey, 9, "x1")
            not_auth = issue_grant(os.urandom(32), "grid", b.ledger.pubkey, 9, "x2")
            good = issue_grant(a.identity.seed, "grid", b.ledger.pubkey, 9, "x3")
            from dataclasses import replace
            altered = replace(good, amount=9_000_000)
            cases = [(chain_mod.encode_voucher(wrong_realm), 400, "wrong_realm", "realm 'elsewhere'"),
                     (chain_mod.encode_voucher(not_auth), 403, "wrong_authority", a.identity.solana_address),
                     (chain_mod.encode_voucher(altered), 403, "bad_signature", "does not verify"),
                     (g["voucher"][:-8], 400, "bad_voucher", "copy it whole"),
                     ("!!!", 400, "bad_voucher", "")]
            for text, status, code, words in cases:
                r = await cb.post("/api/v1/wallet/redeem", json={"voucher": text})
                err = r.json()["error"]
                assert (r.status_code, err["code"]) == (status, code), (code, err)
                assert words in err["message"]
            assert (await cb.get("/api/v1/wallet")).json()["balance"] == 1_234_567
            r = await cb.post("/api/v1/ledger/verify", json={})
            assert r.json()["ok"], r.json()


async def test_grant_handler_credits_a_voucher_sent_as_a_message(tmp_path):
    """The member side of p2p delivery, without a network: the handler install_grant_handler
    registers applies the voucher; a replay is refused with a MessageFailed the sender reads."""
    from federation.messages import MessageFailed

    class FakeMessenger:
        def __init__(self):
            self.handlers = {}

        def on(self, msg_type, handler):
            self.handlers[msg_type] = handler

    auth_seed = os.urandom(32)
    async with running_node(tmp_path / "m", ledger={"authority": addr_of(auth_seed)}) as b:
        class Net:
            messenger = FakeMessenger()
        b.network = Net()
        chain_mod.install_grant_handler(b)
        handler = Net.messenger.handlers["grant"]
        v = issue_grant(auth_seed, "grid", b.ledger.pubkey, 42, "g-1")
        with trio.fail_after(10):
            out = await handler("12D3KooWsender", {"voucher": v.to_dict()})
            assert out["balance"] == 42 and b.ledger.balance() == 42
            with pytest.raises(MessageFailed) as exc:
                await handler("12D3KooWsender", {"voucher": v.to_dict()})
            assert exc.value.code == "replay"
            with pytest.raises(MessageFailed) as exc:
                await handler("12D3KooWsender", {"voucher": {"v": 1}})
            assert exc.value.code == "bad_voucher"
        b.network = None


async def test_grant_delivered_over_p2p(tmp_path):
    """Authority and member in one realm over real libp2p: the grant goes to the member as a
    /mtor/msg/1 "grant" message and is credited there; the voucher string is returned anyway."""
    from federation.messages import Messenger

    p2p = {"enabled": True, "port": 0, "host": "127.0.0.1"}
    async with running_node(tmp_path / "auth", p2p=dict(p2p), ledger={"dev_grant": DEV}) as a, http(a) as ca:
        async with running_node(tmp_path / "mem", p2p=dict(p2p, peers=a.federation.listen_addrs),
                                ledger={"authority": a.identity.solana_address}) as b:
            for n in (a, b):
                if getattr(n.network, "messenger", None) is None:
                    n.network.messenger = Messenger(n.federation.host)
            chain_mod.install_grant_handler(b)
            with trio.fail_after(20):
                while not chain_mod.peer_connected(a, b.peer_id):
                    await trio.sleep(0.05)  # polling a condition, bounded by fail_after
                r = await ca.post("/api/v1/wallet/grant", json={"address": b.identity.solana_address,
                                                                "amount": 3_000_000}, headers=sysop(a))
            g = r.json()
            assert r.status_code == 200 and g["delivered"], g
            assert b.ledger.balance() == 3_000_000
            assert decode_voucher(g["voucher"]).amount == 3_000_000


# ---- verify, export -----------------------------------------------------------------------

async def test_verify_and_export_fresh_node(tmp_path):
    async with running_node(tmp_path / "a", ledger={"dev_grant": DEV}) as node, http(node) as c:
        rep = (await c.post("/api/v1/ledger/verify", json={})).json()
        assert rep["ok"] and rep["entries"] == 2 and rep["problems"] == [] and not rep["chain_checked"]
        ex = (await c.get("/api/v1/ledger/export")).json()
        assert ex["count"] == 2 and ex["author"] == node.identity.solana_address
        prev = bytes(32)
        for row in ex["entries"]:
            e = Entry.from_wire(base64.b64decode(row["raw"]))  # strict decode + signature
            assert (e.seq, e.kind, e.hash.hex(), e.prev) == (row["seq"], row["kind"], row["hash"], prev)
            prev = e.hash
        lines = (await c.get("/api/v1/ledger/export", params={"format": "jsonl"})).text.splitlines()
        assert len(lines) == 2
        # no anchors yet: nothing to fetch, so the chain check passes without any RPC call
        rep = (await c.post("/api/v1/ledger/verify", json={"chain": True})).json()
        assert rep["ok"] and rep["chain_checked"] and rep["anchors"] == 0
        r = await c.post("/api/v1/ledger/verify", json={"chain": "yes"})
        assert r.status_code == 400


# ---- anchoring and settlement through the RPC stand-in ------------------------------------

async def test_anchor_now_and_verify_on_chain(tmp_path):
    with LiteSVMRpcServer() as srv:
        async with running_node(tmp_path / "a", ledger={"dev_grant": DEV, "rpc_url": srv.url, "anchor": True}) as node, \
                http(node) as c:
            srv.svm.airdrop(Pubkey.from_string(node.identity.solana_address), SOL)
            r = await c.post("/api/v1/ledger/anchor")
            assert r.status_code == 403
            r = await c.post("/api/v1/ledger/anchor", headers=sysop(node))
            assert r.status_code == 200, r.text
            a = r.json()
            assert a["anchored"] and (a["first"], a["last"], a["seq"]) == (0, 1, 2) and a["cluster"] == "custom"
            assert a["tx"] in srv.rpc.txs
            again = (await c.post("/api/v1/ledger/anchor", headers=sysop(node))).json()
            assert again == {"anchored": False, "reason": "nothing new to anchor since the last anchor"}

            n_fetch = srv.rpc.calls.count("getTransaction")
            rep = (await c.post("/api/v1/ledger/verify", json={"chain": True})).json()
            assert rep["ok"] and rep["chain_checked"] and rep["anchors"] == 1, rep
            assert rep["anchor_txs"][0]["tx"] == a["tx"]
            assert srv.rpc.calls.count("getTransaction") == n_fetch + 1  # it did look on chain

            # an anchor entry naming a transaction the chain does not have is reported by entry
            bad = node.ledger.store.append("anchor", {"root": bytes.fromhex(a["root"]), "first": 0, "last": 1,
                                                      "tx": "1" * 64, "slot": 1, "cluster": "custom"})
            rep = (await c.post("/api/v1/ledger/verify", json={"chain": True})).json()
            assert not rep["ok"]
            assert [(p["seq"], p["what"]) for p in rep["problems"]] == [
                (bad.seq, f"anchor transaction {'1' * 64} not found on chain")]


async def test_anchor_refused_when_off_or_airgapped(tmp_path):
    async with running_node(tmp_path / "off", ledger={"dev_grant": DEV}) as node, http(node) as c:
        r = await c.post("/api/v1/ledger/anchor", headers=sysop(node))
        assert r.status_code == 409 and "anchoring is off" in r.json()["error"]["message"]
        assert chain_mod.make_chain_client(node.config) is None
    async with running_node(tmp_path / "air", p2p={"enabled": False, "airgap": True},
                            ledger={"dev_grant": DEV, "anchor": True, "rpc_url": "http://127.0.0.1:9"}) as node, \
            http(node) as c:
        r = await c.post("/api/v1/ledger/anchor", headers=sysop(node))
        assert r.status_code == 409 and "air-gapped" in r.json()["error"]["message"]
        r = await c.post("/api/v1/ledger/verify", json={"chain": True})
        assert r.status_code == 409 and "air-gapped" in r.json()["error"]["message"]
        r = await c.post("/api/v1/wallet/settle", headers=sysop(node), json={})
        assert r.status_code == 409 and "air-gapped" in r.json()["error"]["message"]
        assert chain_mod.make_chain_client(node.config) is None
        assert chain_mod.make_chain_client(node.config, anchoring=False) is None
        with trio.fail_after(5):
            await chain_mod.run_chain_tasks(node)  # returns at once: nothing to run


async def test_anchorer_task_anchors_and_survives_a_dead_rpc(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(chain_mod, "CHECK_S", 0.2)
    monkeypatch.setattr(chain_mod, "RESTART_S", 0.1)

    with LiteSVMRpcServer() as srv:
        async with running_node(tmp_path / "a", ledger={"dev_grant": DEV, "rpc_url": srv.url, "anchor": True,
                                                        "anchor_every_entries": 1}) as node:
            srv.svm.airdrop(Pubkey.from_string(node.identity.solana_address), SOL)
            # the node started run_chain_tasks itself (ledger.anchor = true)
            with trio.fail_after(30):
                while node.ledger.pending_anchor_range() is not None:
                    await trio.sleep(0.1)  # polling a condition, bounded by fail_after
            rep = node.ledger.verify()
            assert rep.ok and len(rep.anchors) == 1
    # with the RPC endpoint gone, the task logs and keeps running instead of ending the node
    async with running_node(tmp_path / "b", ledger={"rpc_url": "http://127.0.0.1:9", "anchor": True,
                                                    "anchor_every_entries": 1}) as node:
        caplog.set_level("WARNING", logger="mtor.chain")
        with trio.move_on_after(3) as scope:
            await chain_mod.run_chain_tasks(node)
        assert scope.cancelled_caught  # still running after failed attempts
        assert sum("anchoring failed" in r.getMessage() for r in caplog.records) >= 2, caplog.text


from tests.ledger.test_ledger_solana import make_mint  # noqa: E402 - one test mint helper for both suites


async def test_settle_pays_what_we_owe_with_spl(tmp_path):
    from ledger import Ledger
    from ledger.solana_chain import associated_token_address

    with LiteSVMRpcServer() as srv:
        me_seed = os.urandom(32)
        # without a mint: a clear refusal naming the setting
        async with running_node(tmp_path / "nomint", ledger={"dev_grant": DEV, "rpc_url": srv.url}) as node, \
                http(node) as c:
            r = await c.post("/api/v1/wallet/settle", headers=sysop(node), json={})
            assert r.status_code == 409 and "ledger.mint" in r.json()["error"]["message"]

        (tmp_path / "a").mkdir()
        fd = os.open(tmp_path / "a" / "identity.key", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, me_seed)
        os.close(fd)
        me = Pubkey.from_string(addr_of(me_seed))
        worker = Ledger.open(tmp_path / "worker.db", os.urandom(32), realm="grid")
        mint = make_mint(srv.svm, [me], 10_000_000)
        srv.svm.airdrop(me, SOL)
        try:
            async with running_node(tmp_path / "a", ledger={"dev_grant": DEV, "rpc_url": srv.url,
                                                            "mint": str(mint)}) as node, http(node) as c:
                r = await c.post("/api/v1/wallet/settle", headers=sysop(node), json={})
                assert r.json() == {"settled": [], "errors": [], "note": "this node owes nothing to any peer"}
                # a job: hold, the worker's receipt, pay -> we owe the worker 1.5 $9000
                node.ledger.hold("job-9", 1_500_000, worker.pubkey)
                node.ledger.pay(worker.make_receipt("job-9", node.ledger.pubkey, "chat", "m", 10, 1_500_000,
                                                    bytes(32)))
                w = (await c.get("/api/v1/wallet")).json()
                assert w["owed"] == {worker.address: 1_500_000}
                r = await c.post("/api/v1/wallet/settle", headers=sysop(node), json={"peer": worker.address,
                                                                                      "amount": 2_000_000})
                assert r.status_code == 400 and "1..1500000" in r.json()["error"]["message"]
                r = await c.post("/api/v1/wallet/settle", headers=sysop(node), json={})
                assert r.status_code == 200, r.text
                s = r.json()["settled"]
                assert [(x["peer"], x["amount"]) for x in s] == [(worker.address, 1_500_000)]
                ata = associated_token_address(Pubkey.from_bytes(worker.pubkey), mint)
                assert int.from_bytes(bytes(srv.svm.get_account(ata).data)[64:72], "little") == 1_500_000
                assert (await c.get("/api/v1/wallet")).json()["owed"] == {}
        finally:
            worker.close()
