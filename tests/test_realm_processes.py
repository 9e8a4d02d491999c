"""A realm of real `mtor-node` processes on 127.0.0.1: two workers and a broker-only node."""

import json
import signal

import httpx
import pytest

from tests.conftest import free_port, write_config
from tests.test_cli import RunningNode, cli

SLOW_ECHO = {"echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 4, "default": True,
                           "options": {"delay_s": 0.05}}}


def start(tmp_path, name, models, *extra, **sections):
    d = tmp_path / name
    write_config(d, models, http={"port": free_port()}, p2p={"port": 0, "host": "127.0.0.1"}, **sections)
    node = RunningNode(d, *extra)
    node.wait_ready()
    st = json.loads(cli("status", "--json", data_dir=d, check=True).stdout)
    node.peer_id, node.addr, node.url = st["peer_id"], st["listen_addrs"][0], st["http"]
    return node


@pytest.fixture
def realm(tmp_path):
    nodes = []
    try:
        w1 = start(tmp_path, "w1", SLOW_ECHO, prices={"chat": 1000})
        nodes.append(w1)
        w2 = start(tmp_path, "w2", SLOW_ECHO, "--peer", w1.addr, prices={"chat": 1000})
        nodes.append(w2)
        b = start(tmp_path, "b", {}, "--roles", "broker", "--peer", w1.addr, ledger={"dev_grant": 1_000_000})
        nodes.append(b)
        yield w1, w2, b
    finally:
        for n in nodes:
            if n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait(10)


def wait_for(predicate, timeout=20.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)  # polling a condition, bounded by the deadline
    raise AssertionError("condition not met in time")


def peers_of(node):
    return {p["peer_id"]: p for p in json.loads(cli("peers", "--json", data_dir=node.data_dir, check=True).stdout)["peers"]}


def test_broker_finds_workers_and_failover_survives_a_killed_worker(realm):
    w1, w2, b = realm
    # announcements reach the broker from both workers (w2 only through w1's gossip)
    wait_for(lambda: all(p in peers_of(b) and peers_of(b)[p]["models"].get("chat") for p in (w1.peer_id, w2.peer_id)))
    assert "12D3KooW" in cli("peers", data_dir=b.data_dir, check=True).stdout

    r = cli("chat", "--json", "a quick one", data_dir=b.data_dir, check=True)
    answer = json.loads(r.stdout)
    assert answer["text"] == "a quick one" and answer["peer"] in (w1.peer_id, w2.peer_id)

    # a long stream; kill whichever worker is serving it, mid-stream
    body = {"kind": "chat", "messages": [{"role": "user", "content": " ".join(f"w{i}" for i in range(120))}],
            "params": {"max_tokens": 120}, "timeout": 60}
    events, killed = [], None
    with httpx.stream("POST", b.url + "/api/v1/intents", params={"stream": "1"}, json=body, timeout=60) as resp:
        for line in resp.iter_lines():
            if not line:
                continue
            events.append(json.loads(line))
            if killed is None and sum(e["type"] == "chunk" for e in events) == 5:
                serving = [w for w in (w1, w2) if httpx.get(w.url + "/api/v1/status").json()["queue"]["inflight"]]
                assert len(serving) == 1
                killed = serving[0]
                killed.proc.send_signal(signal.SIGKILL)
    final = events[-1]
    survivor = w2 if killed is w1 else w1
    assert final["type"] == "result", final
    assert final["peer"] == survivor.peer_id
    assert any(e["type"] == "failover" for e in events)
    assert final["text"] == body["messages"][0]["content"]
    # paid once, to the worker that delivered: 120 tokens at 1000 per 1k + the quick one's 3
    assert final["cost"] == 120
    wallet = lambda n: httpx.get(n.url + "/api/v1/status").json()["wallet"]  # noqa: E731
    assert wallet(b)["balance"] == 1_000_000 - 3 - 120 and wallet(b)["held"] == 0
    wait_for(lambda: wallet(survivor)["balance"] in (120, 123))
    import sqlite3
    earned = sqlite3.connect(killed.data_dir / "mtor.db").execute(
        "SELECT COUNT(*) FROM ledger_entries WHERE kind='earn'").fetchone()[0]
    assert earned <= 1  # at most the quick intent, never the job it did not finish


def test_wrong_realm_secret_cannot_join_and_says_so_quickly(tmp_path):
    from federation.realm import format_secret, new_realm

    a = start(tmp_path, "a", SLOW_ECHO, "--realm-secret", format_secret(new_realm("lab")))
    try:
        import time
        t0 = time.monotonic()
        c = start(tmp_path, "c", {}, "--roles", "broker", "--realm-secret", format_secret(new_realm("lab")), "--peer", a.addr)
        try:
            wait_for(lambda: "does not use realm 'lab''s key" in c.output(), 15)
            assert time.monotonic() - t0 < 15
            seen = peers_of(c).get(a.peer_id)
            assert seen is None or (not seen["fresh"] and not seen["models"])  # never a candidate
        finally:
            c.stop()
    finally:
        a.stop()


def test_traffic_moves_between_workers_as_prices_change(tmp_path):
    nodes = []
    try:
        w1 = start(tmp_path, "w1", SLOW_ECHO, prices={"chat": 1000})
        nodes.append(w1)
        w2 = start(tmp_path, "w2", SLOW_ECHO, "--peer", w1.addr, "--price", "chat=2000")
        nodes.append(w2)
        b = start(tmp_path, "b", {}, "--roles", "broker", "--peer", w1.addr, ledger={"dev_grant": 1_000_000})
        nodes.append(b)
        wait_for(lambda: all(peers_of(b).get(w.peer_id, {}).get("models", {}).get("chat") for w in (w1, w2)))

        def served_by():
            return json.loads(cli("chat", "--json", "who serves this", data_dir=b.data_dir, check=True).stdout)["peer"]

        assert [served_by() for _ in range(3)] == [w1.peer_id] * 3
        token = (w1.data_dir / "sysop.token").read_text().strip()
        r = httpx.post(w1.url + "/api/v1/prices", json={"prices": {"chat": 5000}}, headers={"X-Sysop-Token": token})
        assert r.status_code == 200, r.text
        wait_for(lambda: peers_of(b)[w1.peer_id]["prices"].get("chat") == 5000)
        assert [served_by() for _ in range(3)] == [w2.peer_id] * 3
        assert httpx.post(w1.url + "/api/v1/prices", json={"prices": {"chat": -1}}, headers={"X-Sysop-Token": token}).status_code == 400
        assert httpx.post(w1.url + "/api/v1/prices", json={"prices": {"chat": 1}}).status_code == 403
    finally:
        for n in nodes:
            n.stop()
