"""Issue 15's done-when: a realm of three fresh `mtor-node start` processes (two workers on the
embedded chat model, one broker-only node) answers the broker's very first chat, sent the moment the
broker lists the workers — a worker announces the model only once it can serve it, so the first
chat never lands on a worker that is still loading."""

from __future__ import annotations

import json
import time

import pytest

from mtor_node.config import _default_models
from tests.conftest import free_port, write_config
from tests.test_cli import RunningNode, cli

pytestmark = pytest.mark.slow


def embedded_chat() -> dict[str, dict]:
    name, entry = next((n, e) for n, e in _default_models().items() if e["kind"] == "chat" and e.get("default"))
    return {name: entry}


def test_three_fresh_nodes_answer_the_brokers_first_chat(tmp_path):
    nodes: list[RunningNode] = []
    try:
        workers = []
        for name in ("w1", "w2"):
            d = tmp_path / name
            write_config(d, embedded_chat(), http={"port": free_port()}, p2p={"port": 0, "host": "127.0.0.1"},
                         node={"roles": ["worker"]})
            nodes.append(RunningNode(d))
            workers.append(nodes[-1])
        for w in workers:
            w.wait_ready(timeout=120)
            st = json.loads(cli("status", "--json", data_dir=w.data_dir, check=True).stdout)
            w.peer_id, w.addr = st["peer_id"], st["listen_addrs"][0]
        b = tmp_path / "b"
        write_config(b, {}, http={"port": free_port()}, p2p={"port": 0, "host": "127.0.0.1"}, node={"roles": ["broker"]})
        nodes.append(RunningNode(b, "--peer", workers[0].addr, "--peer", workers[1].addr))
        nodes[-1].wait_ready(timeout=120)

        # the moment the broker lists a worker that serves chat, ask
        deadline = time.monotonic() + 180
        while True:
            peers = json.loads(cli("peers", "--json", data_dir=b, check=True).stdout)["peers"]
            if any(p["models"].get("chat") for p in peers):
                break
            assert time.monotonic() < deadline, f"the broker never listed a chat worker: {peers}"
            time.sleep(0.1)  # polling a condition, bounded by the deadline
        r = cli("chat", "--json", "What is the capital of France?", data_dir=b, timeout=180)
        assert r.returncode == 0, (r.stdout, r.stderr, [n.output()[-2000:] for n in nodes])
        answer = json.loads(r.stdout)
        assert answer["peer"] in {w.peer_id for w in workers}
        assert "paris" in answer["text"].lower(), answer
    finally:
        for n in nodes:
            if n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait(10)
