"""The run-time model registry: add, remove, load, unload through HTTP (sysop token) in a real node,
with a real model (the tiny Llama that tests/conftest.py builds), lasting across a restart."""

from __future__ import annotations

import httpx

from tests.conftest import ECHO_MODELS, running_node


async def test_add_load_unload_remove_and_restart(tmp_path, tiny_chat_model):
    d = tmp_path / "node"
    tiny = {"name": "tiny", "kind": "chat", "backend": "transformers-chat", "source": str(tiny_chat_model)}
    async with running_node(d, ECHO_MODELS) as node:
        sysop = {"X-Sysop-Token": node.sysop_token}
        async with httpx.AsyncClient(base_url=node.http_url, timeout=120) as c:
            assert (await c.post("/api/v1/models", json=tiny)).status_code == 403  # the sysop only
            r = await c.post("/api/v1/models", json=tiny, headers=sysop)
            assert r.status_code == 201 and r.json()["model"]["status"] == "unloaded", r.text
            assert (await c.post("/api/v1/models", json=tiny, headers=sysop)).status_code == 409  # exists
            bad = await c.post("/api/v1/models", json={**tiny, "name": "t2", "kind": "dance"}, headers=sysop)
            assert bad.status_code == 400 and "models.t2.kind" in bad.json()["error"]["message"]
            bad = await c.post("/api/v1/models", json={**tiny, "name": "t3", "backend": "nope"}, headers=sysop)
            assert bad.status_code == 400 and "unknown backend" in bad.json()["error"]["message"]
            r = await c.post("/api/v1/models/tiny/load", headers=sysop)
            assert r.status_code == 200 and r.json()["model"]["status"] == "ready", r.text
            r = await c.post("/api/v1/intents", json={"kind": "chat", "model": "tiny", "prompt": "hi",
                                                     "params": {"max_tokens": 4}})
            assert r.status_code == 200 and r.json()["type"] == "result", r.text
            assert node.models.states["tiny"].served == 1
            r = await c.post("/api/v1/models/tiny/unload", headers=sysop)
            assert r.json()["model"]["status"] == "unloaded" and node.models.states["tiny"].backend is None
            # remove the config's model (the default of chat): the added one takes its place
            assert (await c.request("DELETE", "/api/v1/models/echo-chat", headers=sysop)).status_code == 200
            assert (await c.request("DELETE", "/api/v1/models/echo-chat", headers=sysop)).status_code == 404
            assert node.models.defaults["chat"] == "tiny"
            r = await c.post("/api/v1/intents", json={"kind": "chat", "prompt": "hi", "params": {"max_tokens": 4}})
            assert r.json()["type"] == "result" and node.models.states["tiny"].served == 2  # loaded again on use
    async with running_node(d, ECHO_MODELS) as node:  # same mtor.toml: the sysop's changes are kept
        names = {m["name"] for m in node.status()["models"]}
        assert names == {"tiny"}
        async with httpx.AsyncClient(base_url=node.http_url, timeout=60) as c:
            sysop = {"X-Sysop-Token": node.sysop_token}
            assert (await c.request("DELETE", "/api/v1/models/tiny", headers=sysop)).status_code == 200
            r = await c.post("/api/v1/intents", json={"kind": "chat", "prompt": "hi"})
            assert r.status_code >= 400  # nothing serves chat now
