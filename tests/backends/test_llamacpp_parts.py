"""`parts:` sources (backends/parts.py): the real join code on small part files in real packages made here."""

from __future__ import annotations

import hashlib

import pytest

from mtor_node.backends import BackendError, parts, sources


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    pieces = [b"GGUF" + b"a" * 5000, b"b" * 7000, b"c" * 3]
    for i, data in enumerate(pieces, 1):
        pkg = tmp_path / "site" / f"tinyparts_p{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part0{i}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    whole = b"".join(pieces)
    monkeypatch.setitem(parts.PARTS, "tiny", {
        "file": "tiny.gguf", "packages": [(f"tinyparts_p{i}", f"data/part0{i}.bin") for i in range(1, 4)],
        "pip": "pip install tinyparts-p1 tinyparts-p2 tinyparts-p3", "size": len(whole),
        "sha256": hashlib.sha256(whole).hexdigest(), "origin": "made by this test"})
    cache = tmp_path / "cache"
    monkeypatch.setenv("MTOR_MODEL_CACHE", str(cache))
    return whole, cache


def test_joins_once_and_verifies(tiny):
    whole, cache = tiny
    seen = []
    path = sources.resolve("parts:tiny", lambda m, f=None: seen.append(f))
    assert path == cache / "tiny.gguf" and path.read_bytes() == whole
    assert seen[-1] == 1.0
    mtime = path.stat().st_mtime_ns
    assert sources.resolve("parts:tiny") == path and path.stat().st_mtime_ns == mtime  # not joined again
    assert list(cache.iterdir()) == [path]


def test_wrong_hash_leaves_nothing(tiny, monkeypatch):
    _, cache = tiny
    monkeypatch.setitem(parts.PARTS["tiny"], "sha256", "0" * 64)
    with pytest.raises(BackendError) as e:
        sources.resolve("parts:tiny")
    assert e.value.code == "bad_model" and "pip install tinyparts" in e.value.message
    assert list(cache.iterdir()) == []


def test_ctrl_c_during_the_join_leaves_nothing_and_crash_leftovers_go(tiny):
    _, cache = tiny

    def interrupt(message, fraction=None):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sources.resolve("parts:tiny", interrupt)
    assert list(cache.iterdir()) == []
    crashed = cache / ".tiny.gguf.tmp-999999999"  # a pid that cannot be running
    crashed.write_bytes(b"half")
    assert sources.resolve("parts:tiny").exists()
    assert not crashed.exists()


def test_missing_part_says_what_to_install(tiny, monkeypatch):
    monkeypatch.setitem(parts.PARTS["tiny"], "packages", [("tinyparts_absent", "data/x.bin")])
    with pytest.raises(BackendError) as e:
        sources.resolve("parts:tiny")
    assert "tinyparts-absent" in e.value.message and "pip install tinyparts-p1" in e.value.message
    from mtor_node.backends import ModelSpec
    from mtor_node.backends.defaults import availability

    verdict = availability(ModelSpec(name="t", kind="chat", backend="llamacpp-chat", source="parts:tiny"))
    assert verdict["available"] is False and "pip install" in verdict["reason"]
