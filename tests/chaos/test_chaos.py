"""Chaos suite (docs/reliability.md). Short mode by default: each fault briefly, in order, on one
realm of real processes in network namespaces; MTOR_CHAOS_LONG=1 adds the soak.

After each fault: every intent accepted either completed or failed with a clear error within its
timeout; no job paid twice; no hold left once idle; balances sum to the grants; every ledger
verifies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from .conftest import LONG
from .harness import (ENV, P2P_PORT, LoadGen, check_holds_and_sum, record_residue, check_intents, check_paid_once, foreign_sockets,
                      my_entries, ns_exec, verify_ledgers, verify_offline, wait_until)
from .netns import Fabric

pytestmark = pytest.mark.slow

RATE = 3.0  # intents/s over both brokers
TIMEOUT = 15.0  # per intent


def settle_and_check(realm, load: LoadGen, t0: float, name: str, allow_conn_lost=frozenset()) -> dict:
    load.stop()
    recs = load.since(t0)
    summary = LoadGen.summary(recs)
    realm.report["faults"][name] = summary
    problems = check_intents(recs, allow_conn_lost=allow_conn_lost)
    assert not problems, f"{name}: {problems[:10]} ({summary})"
    assert summary.get("result", 0) > 0, f"{name}: nothing completed: {summary}"
    problems = check_paid_once(realm)
    assert not problems, problems
    summary["wallets"] = check_holds_and_sum(realm)
    reports = verify_ledgers(realm)
    bad = {k: v for k, v in reports.items() if not v.get("ok")}
    assert not bad, f"{name}: ledgers that do not verify: {bad}"
    print(f"\n[{name}] {json.dumps({k: v for k, v in summary.items() if k != 'wallets'})}")
    return summary


def test_01_realm_forms_and_serves_paid_intents(chaos):
    t0 = time.monotonic()
    load = LoadGen(chaos.brokers, rate=RATE, timeout=TIMEOUT).start()
    time.sleep(4)  # the load's duration
    s = settle_and_check(chaos, load, t0, "baseline")
    assert s.get("result") == s["sent"], s
    print(f"realm of {len(chaos.nodes)} nodes ready in {chaos.started_in:.1f} s")


def test_02_worker_sigkilled_mid_intent_then_restarted(chaos):
    t0 = time.monotonic()
    load = LoadGen(chaos.brokers, rate=RATE, timeout=TIMEOUT).start()

    def busy_worker():
        for w in chaos.workers:
            if w.status(timeout=3)["queue"]["inflight"]:
                return w
    victim = wait_until(busy_worker, 15, "a worker with an intent in flight", 0.1)
    victim.kill()
    time.sleep(3)  # the fault's duration: the worker stays dead this long
    victim.start()
    victim.wait_ready(60)
    chaos.wait_mesh(timeout=45)
    time.sleep(2)  # load continues on the healed realm
    s = settle_and_check(chaos, load, t0, "worker SIGKILL")
    assert s["failovers"] >= 1, s


def test_03_broker_sigkilled_during_ledger_writes_then_restarted(chaos):
    b1 = chaos.nodes["b1"]
    t0 = time.monotonic()
    load = LoadGen(chaos.brokers, rate=4.0, timeout=TIMEOUT).start()
    # kill as soon as b1 is appending pay entries (its head moves) with intents in flight
    head0 = b1.status()["wallet"]["head_seq"]
    wait_until(lambda: (st := b1.status(timeout=3))["wallet"]["head_seq"] > head0 and st["queue"]["inflight"], 15,
               "b1 writing pay entries with intents in flight", 0.05)
    load.paused.add("b1")
    b1.kill()
    killed_at = time.monotonic()
    rep = verify_offline(b1)
    assert rep["ok"] and rep["rc"] == 0, f"b1's ledger after kill -9: {rep}"
    # every answer b1 gave with a cost was committed before it was sent: none lost
    paid_jobs = {e.body["job"] for e in my_entries(b1, "pay")}
    answered = [r for r in load.since(t0) if r.broker == "b1" and r.outcome == "result" and r.cost and r.t1 and r.t1 <= killed_at]
    lost = [r.id for r in answered if r.id not in paid_jobs]
    assert answered and not lost, f"answered with a cost but no pay entry after kill -9: {lost}"
    b1.start()
    b1.wait_ready(60)
    load.paused.discard("b1")
    chaos.wait_mesh(timeout=45)
    time.sleep(2)  # load continues
    load.stop()
    residue = record_residue(chaos)
    chaos.report["broker_kill_residue"] = residue
    print(f"[broker SIGKILL] left behind: {residue}")
    settle_and_check(chaos, load, t0, "broker SIGKILL", allow_conn_lost={"b1"})


def test_03b_no_hold_left_after_broker_restart(chaos):
    assert not chaos.residue["held"], f"held after restart: {chaos.residue['held']}"


def test_04_partition_in_two_then_healed(chaos):
    n = chaos.nodes
    side_b = [n["b2"].i, n["w2"].i, n["w4"].i, chaos.rogue.i]
    t0 = time.monotonic()
    load = LoadGen(chaos.brokers, rate=RATE, timeout=TIMEOUT).start()
    time.sleep(1)  # load before the fault
    chaos.fabric.partition(side_b)
    time.sleep(6)  # the partition's duration
    chaos.fabric.heal()
    chaos.wait_mesh(timeout=60)
    time.sleep(2)  # load continues on the healed realm
    settle_and_check(chaos, load, t0, "partition 6 s")


def test_05_lossy_slow_worker(chaos):
    w3 = chaos.nodes["w3"]
    t0 = time.monotonic()
    load = LoadGen(chaos.brokers, rate=RATE, timeout=TIMEOUT).start()
    chaos.report["impairment"] = chaos.fabric.netem(w3.i, 10, 100)
    try:
        time.sleep(6)  # the impairment's duration
    finally:
        chaos.fabric.netem(w3.i, None)
    settle_and_check(chaos, load, t0, "10% loss + delay on w3")


def _rogue_health(chaos):
    return {b.name: {k: b.peers().get(chaos.rogue.peer_id, {}).get(k) for k in ("health", "banned_for_s", "failures")}
            for b in chaos.brokers}


@pytest.mark.xfail(strict=False, reason="open (docs/reliability.md, findings 3-4): in this harness the brokers never "
                   "choose the rogue in garbage mode (health 100, no failures, no failovers from it), so 'out of "
                   "rotation' cannot be observed; and in refuse mode a few 20 micro-token holds stay on the brokers "
                   "with job ids the load generator never saw")
@pytest.mark.parametrize("mode", ["garbage", "refuse"])
def test_06_rogue_worker_out_of_rotation_then_back(chaos, mode):
    """The rogue is made the cheapest worker, so every broker tries it first. Out of rotation:
    health 0 at both brokers, or no broker has tried it for 4 s while intents keep completing
    (routing prefers healthy peers before health reaches 0). Back: it serves an intent again."""
    rogue = chaos.rogue
    t0 = time.monotonic()
    load = LoadGen(chaos.brokers, rate=RATE, timeout=TIMEOUT).start()
    rogue.set(mode, 10)
    try:
        t_fault = time.monotonic()

        def out_of_rotation():
            now = time.monotonic()
            if all(p["health"] == 0 for p in _rogue_health(chaos).values()):
                return True
            tried = [t for t, frm, _ in load.failover_log if frm == rogue.peer_id] + \
                    [r.t0 for r in load.since(t_fault) if r.peer == rogue.peer_id]
            done = [r for r in load.since(t_fault) if r.outcome == "result" and r.t0 > now - 4]
            return tried and now - max(tried) >= 4 and len(done) >= 4
        try:
            wait_until(out_of_rotation, 40, f"both brokers to stop choosing the {mode} worker")
        except AssertionError as e:
            recent = [(round(t - t_fault, 1), code) for t, frm, code in load.failover_log if frm == rogue.peer_id][-8:]
            outcomes = [(round(r.t0 - t_fault, 1), r.outcome) for r in load.since(t_fault)][-12:]
            raise AssertionError(f"{e}; rogue at the brokers: {_rogue_health(chaos)}; last failovers from it: {recent}; "
                                 f"last outcomes: {outcomes}") from None
        out_after = time.monotonic() - t_fault - 4
        health = _rogue_health(chaos)
        tries = sum(1 for _, frm, _ in load.failover_log if frm == rogue.peer_id)
        rogue.set("good", 10)
        t_good = time.monotonic()
        served = lambda: any(r.peer == rogue.peer_id and r.t0 > t_good for r in load.since(t0))  # noqa: E731
        wait_until(served, 60, f"the recovered {mode} worker to serve again")
        back_after = time.monotonic() - t_good
    finally:
        rogue.set("good", 5000)
    s = settle_and_check(chaos, load, t0, f"rogue {mode}")
    s.update(out_of_rotation_s=round(out_after, 1), back_in_s=round(back_after, 1), failovers_from_rogue=tries,
             health_when_out=health)
    print(f"[rogue {mode}] out of rotation after {out_after:.1f} s ({tries} failovers from it, health {health}), "
          f"back after {back_after:.1f} s")


def test_07_equivocating_payer_is_banned(chaos, tmp_path):
    w1 = chaos.nodes["w1"]
    i = len(chaos.nodes) + 1
    ns = chaos.fabric.add_node(i)
    ip = Fabric.ip(i)
    out = tmp_path / "equivocator.json"
    others = [n.addr for n in chaos.nodes.values() if n is not w1]
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "tests.chaos.rogue", "equivocate", str(out),
                        os.urandom(32).hex(), ip, str(P2P_PORT), chaos.secret, w1.addr, *others],
                       capture_output=True, text=True, timeout=90, env=ENV)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    rep = json.loads(out.read_text())
    chaos.report["equivocation"] = rep
    print("[equivocation]", json.dumps(rep)[:1500])
    steps = rep["steps"]
    assert rep["pay_seqs"][0] == rep["pay_seqs"][1] is not None  # one seq, two entries: a fork
    assert steps[2].get("pay_A") == "accepted", steps
    assert steps[3].get("pay_B") == "refused" and "EquivocationError" in steps[3]["code"], steps
    author = bytes.fromhex(rep["proof_author"])
    with w1.db() as db:
        reason = db.execute("SELECT reason FROM ledger_bans WHERE author=?", (author,)).fetchone()
    assert reason and "equivocation" in reason[0]
    chaos.equivocator = (author, rep)
    verify = verify_ledgers(chaos)
    assert all(v.get("ok") for v in verify.values()), verify


def test_08_banned_equivocator_is_refused_work(chaos):
    author, rep = chaos.equivocator
    job_c = [s for s in rep["steps"] if s.get("job") == "C"][0]
    assert not job_c["served"], job_c


def test_09_fraud_proof_bans_equivocator_everywhere(chaos):
    """The worker that saw the fork floods the proof; every node that saw it bans the author."""
    author, rep = chaos.equivocator

    def all_banned():
        missing = []
        for n in chaos.nodes.values():
            with n.db() as db:
                if not db.execute("SELECT 1 FROM ledger_bans WHERE author=?", (author,)).fetchone():
                    missing.append(n.name)
        return not missing or None
    wait_until(all_banned, 15, "every node to ban the equivocator")


def test_10_airgapped_nodes_talk_only_to_realm_peers(chaos):
    for n in chaos.nodes.values():
        assert n.alive()
        foreign = foreign_sockets(n)
        assert not foreign, f"{n.name} (--airgap) has sockets outside its realm: {foreign}"
    # b2's namespace has counted every packet leaving it for anything but lo and the subnet
    out = ns_exec(chaos.nodes["b2"].ns, "iptables", "-L", "OUTPUT", "-v", "-n", "-x").stdout
    counted = [line.split() for line in out.splitlines() if "0.0.0.0/0" in line or "!" in line]
    pkts = [int(f[0]) for f in counted if f and f[0].isdigit()]
    assert pkts and pkts[0] == 0, f"packets from b2 outside the realm:\n{out}"


def test_11_memory_and_summary(chaos):
    s = chaos.sampler
    print("\nRSS over the short run (max per bucket):\n" + s.table())
    growth = s.growth_per_hour(warmup_s=20)
    print("RSS slope (MiB/h):", {k: round(v / 2**20, 1) for k, v in growth.items()})
    print("faults:", json.dumps(chaos.report["faults"], default=str)[:3000])
    print("impairment:", chaos.report["impairment"])
    assert all(kb < 1_500_000 for _, _, kb in s.samples)


@pytest.mark.skipif(not LONG, reason="the soak runs with MTOR_CHAOS_LONG=1 (docs/reliability.md)")
def test_12_soak(chaos):
    from .soak import soak
    from pathlib import Path
    out = Path(os.environ.get("MTOR_CHAOS_OUT", Path(__file__).resolve().parents[2] / "test-artifacts" / "chaos"))
    result = soak(chaos, float(os.environ.get("MTOR_CHAOS_SOAK_S", "1800")), out_dir=out)
    (out / "soak_report.txt").write_text(result["text"] + "\n" + "\n".join(result["problems"]))
    print(result["text"])
    assert not result["problems"], result["problems"][:20]
