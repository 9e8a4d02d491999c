"""The UI's facade (mtor_node/service.py, wallet_service.py) on a node made of parts: a real ledger
and store in SQLite, no p2p layer, no HTTP. What the routes show comes from here."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace

import pytest
import trio
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ledger import Ledger, issue_grant
from ledger.keys import Signer
from mtor_node.service import NodeService, ServiceError
from mtor_node.store import Store


def parts(tmp_path, with_ledger: bool = True) -> SimpleNamespace:
    seed = os.urandom(32)
    led = Ledger.open(tmp_path / "mtor.db", seed, realm="grid", authority=None) if with_ledger else None
    store = Store(tmp_path / "mtor.db")
    n = SimpleNamespace(config={}, roles=["broker"], sysop_token="s3cret", started_at=0.0, store=store, models=None,
                        broker=None, ledger=led, network=None, federation=None, peer_blocks=None, peer_id="12D3Koo")
    n.status = lambda: {"peers": [], "wallet": {"balance": led.balance()} if led else None, "models": [],
                        "uptime_s": 1.5, "queue": {}}
    return n


def test_wallet_lists_recent_entries_newest_first(tmp_path):
    n = parts(tmp_path)
    seed = os.urandom(32)
    n.ledger.authority = Signer(seed).pubkey  # the realm authority that signs the grants
    for i in range(3):
        n.ledger.apply_grant(issue_grant(seed, "grid", n.ledger.pubkey, 1000 + i, f"g{i}"))
    svc = NodeService(n)

    view = trio.run(svc.wallet.wallet, 2)
    assert view["balance"] == 3003 and view["head_seq"] == 3
    assert [e["seq"] for e in view["recent"]] == [3, 2]
    assert [e["kind"] for e in view["recent"]] == ["grant", "grant"]


def test_recent_entries_take_the_stores_lock(tmp_path):
    """The read waits for a writer holding the ledger's lock (no SQL beside it)."""
    n = parts(tmp_path)
    store, done = n.ledger.store, threading.Event()
    with store.tx():
        t = threading.Thread(target=lambda: (n.ledger.recent_entries(5), done.set()))
        t.start()
        assert not done.wait(0.2)  # blocked on the lock, not reading beside the open transaction
    t.join(5)
    assert done.is_set()


def test_refusals_are_service_errors(tmp_path):
    svc = NodeService(parts(tmp_path, with_ledger=False))
    assert not svc.wallet.enabled and not svc.has_network
    with pytest.raises(ServiceError) as e:
        svc.set_prices({"chat": 10})
    assert (e.value.code, e.value.status) == ("no_network", 409)
    with pytest.raises(ServiceError) as e:
        svc.set_blocked("peer", True)
    assert e.value.code == "no_network"
    assert svc.prices() == {"prices": {}, "surge": 1.0, "peaking": None}
    assert svc.peers() == {"realm": None, "peers": [], "stats": {}}


def test_sysop_token_and_lifetime_stats(tmp_path):
    svc = NodeService(parts(tmp_path, with_ledger=False))
    assert svc.is_sysop_token("s3cret") and not svc.is_sysop_token("s3cre") and not svc.is_sysop_token("")
    svc.note_users_at_once(3)
    svc.note_users_at_once(2)  # a lower count never replaces the peak
    stats = svc.lifetime_stats()
    assert stats["most_users_at_once"]["count"] == 3
    assert stats["lifetime"] == {"queries": 0, "users_ever": 0, "users_with_queries": 0}


def test_node_gauges_are_read_at_scrape_time(tmp_path):
    n = parts(tmp_path, with_ledger=False)
    svc = NodeService(n)
    n.status = lambda: {"peers": [{}, {}], "wallet": {"balance": 12_500_000}, "models": [{"status": "ready"}],
                        "uptime_s": 4, "queue": {"waiting": 1, "inflight": 2, "counters": {"done": 7}}}
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(svc.registry).decode())}
    value = lambda name: fams[name].samples[0].value  # noqa: E731
    assert value("mtor_peers") == 2 and value("mtor_wallet_balance_micro") == 12_500_000
    assert value("mtor_queue_depth") == 1 and value("mtor_inflight") == 2 and value("mtor_models_ready") == 1
    assert fams["mtor_broker_intents"].samples[0].labels == {"state": "done"}


def test_watchdog_counts_only_models_that_can_serve(tmp_path):
    """A local model that failed to load does not serve its kind, even once its 30 s retry window
    opened (the router may retry it; the watchdog said "served again" every 30 s)."""
    from mtor_node.backends.base import ModelSpec
    from mtor_node.models import ModelManager

    n = parts(tmp_path, with_ledger=False)
    specs = [ModelSpec(name="sd", kind="imagine", backend="diffusers", source="nobody/none"),
             ModelSpec(name="echo", kind="chat", backend="echo", source="")]
    n.models = ModelManager(specs, tmp_path / "models", {"imagine": "sd", "chat": "echo"})
    sd = n.models.states["sd"]
    sd.status, sd.error, sd.failed_at = "unavailable", "not in the local model cache", 0.0  # long ago
    assert n.models.resolve("imagine", None) == "sd"  # the router may try it again
    assert NodeService(n).served_kinds(("chat", "imagine")) == {"chat": "local:echo", "imagine": None}
