"""Issue 12 findings 12–14 (and issue 17's privacy item): the sysop token and the data dir's
permissions; intent ids are the node's; queue details, cancel and history belong to their user
(or the sysop). Two users, alice and bob, against one real node."""

from __future__ import annotations

import os
import stat
from functools import partial

import httpx
import pytest
import trio

from tests.conftest import running_node

SLOW = {"slow-chat": {"kind": "chat", "backend": "echo", "concurrency": 1, "default": True, "options": {"delay_s": 0.2}}}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_data_dir_and_secrets_are_private(tmp_path):
    d = tmp_path / "node"
    async with running_node(d) as node:  # write_config wrote mtor.toml with the default umask (0644)
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as c:
            assert (await c.post("/api/v1/intents", json={"kind": "chat", "prompt": "a secret prompt"})).status_code == 200
        assert mode(d) == 0o700
        for name in ("mtor.toml", "mtor.db", "mtor.db-wal", "sysop.token", "identity.key"):
            assert mode(d / name) == 0o600, name


@pytest.mark.parametrize("content, perm, says", [("", 0o600, "is empty"), ("\n  \n", 0o600, "is empty"),
                                                 ("s3cret-token", 0o644, "readable by other users")])
async def test_bad_sysop_token_stops_the_start(tmp_path, content, perm, says):
    from mtor_node.node import StartError

    d = tmp_path / "node"
    d.mkdir()
    (d / "sysop.token").write_text(content)
    os.chmod(d / "sysop.token", perm)
    with pytest.raises(StartError, match=says):
        async with running_node(d):
            pass


async def test_intents_queue_cancel_and_history_are_their_users(tmp_path):
    async with running_node(tmp_path / "node", SLOW) as node:
        sysop = {"X-Sysop-Token": node.sysop_token}
        async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as c:
            # alice's finished query; bob tries to overwrite her row by choosing its id
            r = await c.post("/api/v1/intents", json={"kind": "chat", "prompt": "alice private", "user": "alice", "id": "chosen"})
            alice_id = r.json()["id"]
            assert alice_id != "chosen"  # the node names intents
            r = await c.post("/api/v1/intents", json={"kind": "chat", "prompt": "bob overwrites", "user": "bob", "id": alice_id})
            assert r.status_code == 200 and r.json()["id"] != alice_id
            # history: one's own; everyone's only for the sysop
            r = await c.get("/api/v1/history")
            assert r.status_code == 400
            alice_hist = (await c.get("/api/v1/history", params={"user": "alice"})).json()["history"]
            assert [(h["id"], h["prompt"]) for h in alice_hist] == [(alice_id, "alice private")]
            bob_hist = (await c.get("/api/v1/history", params={"user": "bob"})).json()["history"]
            assert [h["prompt"] for h in bob_hist] == ["bob overwrites"]
            everyone = (await c.get("/api/v1/history", headers=sysop)).json()["history"]
            assert {h["user"] for h in everyone} == {"alice", "bob"}

            # alice's intent running and one waiting; what bob can see and do about them
            async with trio.open_nursery() as nursery:
                for _ in range(2):
                    nursery.start_soon(partial(c.post, "/api/v1/intents",
                                               json={"kind": "chat", "prompt": " ".join(["slow"] * 50), "user": "alice"}))
                with trio.fail_after(10):
                    while len(node.broker.tickets) < 2:
                        await trio.sleep(0.02)  # polling for the submissions, bounded
                ids = sorted(node.broker.tickets)
                bob_view = (await c.get("/api/v1/queue", params={"user": "bob"})).json()["queue"]
                assert len(bob_view) == 2 and all(set(e) <= {"kind", "state", "position", "age_s"} for e in bob_view)
                assert not any(i in str(bob_view) for i in ids)
                alice_view = (await c.get("/api/v1/queue", params={"user": "alice"})).json()["queue"]
                assert sorted(e["id"] for e in alice_view) == ids
                assert sorted(e["id"] for e in (await c.get("/api/v1/queue", headers=sysop)).json()["queue"]) == ids
                for who in ({"user": "bob"}, {}):  # bob, or a client naming nobody ("local")
                    r = await c.post(f"/api/v1/intents/{ids[0]}/cancel", params=who)
                    assert r.status_code == 404, who
                assert ids[0] in node.broker.tickets
                assert (await c.post(f"/api/v1/intents/{ids[0]}/cancel", params={"user": "alice"})).status_code == 200
                assert (await c.post(f"/api/v1/intents/{ids[1]}/cancel", headers=sysop)).status_code == 200
