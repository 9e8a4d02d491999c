"""The run-time model registry: add, remove, load, unload through HTTP (sysop token) in a real node,
with a real model (the tiny Llama that tests/conftest.py builds), lasting across a restart."""

from __future__ import annotations

import httpx
import trio

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


async def test_models_added_while_availability_is_checked_do_not_stop_the_node(tmp_path, monkeypatch):
    """The sysop may add a model while the start-time availability check awaits (the full suite
    once died with 'dictionary changed size during iteration' in check_availability)."""
    from mtor_node.backends import ModelSpec
    from mtor_node.backends import defaults as defaults_mod
    from mtor_node.models import ModelManager

    specs = [ModelSpec(name=f"m{i}", kind="chat", backend="transformers", source=f"nobody/m{i}") for i in range(3)]
    mm = ModelManager(specs, tmp_path / "models", {"chat": "m0"})

    def slow_check(spec):  # a registry change lands while the check is out in its thread
        mm.states[f"added-during-{spec.name}"] = type(mm.states["m0"])(
            ModelSpec(name=f"added-during-{spec.name}", kind="chat", backend="echo", source=""))
        return {"available": False, "reason": "not here"}

    monkeypatch.setattr(defaults_mod, "availability", slow_check)
    with trio.fail_after(10):
        await mm.check_availability()
    assert all(mm.states[f"m{i}"].status == "unavailable" for i in range(3))
    await mm.preload(["m0", "gone"])  # a name removed meanwhile is skipped, not a KeyError
