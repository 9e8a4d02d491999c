"""`mtor-node models`: pull a model from a hub stand-in on 127.0.0.1 (tests/hub_standin.py; the real
hub cannot be reached from tests) with progress, killed mid-download and resumed with a Range
request; then import it into a real running node, load it, use it, list it, remove it."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys

import httpx
import trio

from tests.conftest import ECHO_MODELS, running_node
from tests.hub_standin import hub

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
REPO = "test-org/tiny-llama"
STALL = 16 * 1024


def sha(p) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def cli(*args, data_dir, timeout=120):
    return subprocess.run([sys.executable, "-m", "mtor_node", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=timeout, env=ENV)


async def acli(*args, data_dir, timeout=300):
    with trio.fail_after(timeout):
        return await trio.run_process([sys.executable, "-m", "mtor_node", *args, "--data-dir", str(data_dir)],
                                      capture_stdout=True, capture_stderr=True, check=False, env=ENV)


async def test_pull_killed_then_resumed_then_import_use_and_remove(tmp_path, tiny_chat_model):
    root = tmp_path / "hub"
    shutil.copytree(tiny_chat_model, root)
    big = max((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    assert big.stat().st_size > 2 * STALL
    d = tmp_path / "node"
    local = d / "models" / "local" / "test-org--tiny-llama"
    with hub(root, REPO, stall_after=STALL) as (srv, url):
        # 1. the first pull hangs mid-file (a dead transfer); it is killed there
        proc = subprocess.Popen([sys.executable, "-m", "mtor_node", "models", "pull", REPO, "--endpoint", url,
                                 "--data-dir", str(d)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        try:
            assert srv.stalling.wait(60), "the pull never reached the big file"
            part = local / (big.relative_to(root).as_posix() + ".part")
            with trio.fail_after(30):
                while not (part.exists() and part.stat().st_size == STALL):  # the client has written what it got
                    await trio.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        assert not (local / big.relative_to(root)).exists()
        listed = cli("models", "list", data_dir=d)
        assert "partial: pull again to resume" in listed.stdout, listed.stdout + listed.stderr
        # 2. pulled again: the part continues where it stopped
        r = cli("models", "pull", REPO, "--endpoint", url, data_dir=d)
        assert r.returncode == 0, r.stderr
        assert (f"/{REPO}/resolve/main/{big.relative_to(root).as_posix()}", f"bytes={STALL}-") in srv.requests
        assert "resumed at" in r.stderr and "100.0%" in r.stderr  # progress was shown
    for f in root.rglob("*"):
        if f.is_file():
            assert sha(local / f.relative_to(root)) == sha(f), f
    assert not list(local.rglob("*.part"))
    with hub(root, REPO) as (srv, url):  # already complete: nothing is downloaded again
        assert cli("models", "pull", REPO, "--endpoint", url, data_dir=d).returncode == 0
        assert [p for p, _ in srv.requests if "/resolve/" in p] == []
    with hub(root, REPO) as (srv, url):
        r = cli("models", "pull", "nobody/nothing", "--endpoint", url, data_dir=d)
        assert r.returncode == 1 and "has no model 'nobody/nothing'" in r.stderr

    # 3. into a running node: import (by its pulled name), load, use, list, remove with its files
    async with running_node(d, ECHO_MODELS) as node:
        r = await acli("models", "import", "test-org--tiny-llama", "--name", "tiny", "--load", data_dir=d)
        assert r.returncode == 0, r.stderr
        assert node.models.states["tiny"].status == "ready" and node.models.states["tiny"].spec.source == str(local.resolve())
        async with httpx.AsyncClient(base_url=node.http_url, timeout=60) as c:
            res = await c.post("/api/v1/intents", json={"kind": "chat", "model": "tiny", "prompt": "hi", "params": {"max_tokens": 3}})
            assert res.json()["type"] == "result", res.text
        r = await acli("models", "list", data_dir=d)
        out = r.stdout.decode()
        assert "tiny" in out and "ready" in out and "test-org--tiny-llama" in out and "MiB" in out, out
        r = await acli("models", "rm", "tiny", "--files", data_dir=d)
        assert r.returncode == 0, r.stderr
        assert "tiny" not in node.models.states and not local.exists()
