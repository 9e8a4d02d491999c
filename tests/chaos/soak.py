"""Long mode: the fault schedule repeated for a duration under steady load, RSS sampled all along.

Used by tests/chaos/test_chaos.py::test_12_soak (MTOR_CHAOS_LONG=1) and tests/benchmarks/bench_soak.py.
Each round: worker SIGKILL + restart, partition + heal, a lossy worker, a rogue worker
(garbage, then refusing), quiet time. After each round the invariants are checked and any
violation is collected (the soak goes on, so one run shows every problem).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from .harness import LoadGen, check_holds_and_sum, check_intents, check_paid_once, verify_ledgers, wait_until


def soak(realm, duration_s: float, rate: float = 3.0, timeout: float = 15.0, out_dir: Path | None = None) -> dict:
    rnd = random.Random(9000)
    t_start = time.monotonic()
    load = LoadGen(realm.brokers, rate=rate, timeout=timeout).start()
    faults: dict[str, int] = {}
    problems: list[str] = []
    rounds = 0

    def count(name):
        faults[name] = faults.get(name, 0) + 1

    try:
        while time.monotonic() - t_start < duration_s - 60:
            rounds += 1
            # worker SIGKILL mid-intent, restart after 3 s
            w = rnd.choice(realm.workers)
            w.kill()
            count("worker SIGKILL")
            time.sleep(3)  # the fault's duration
            w.start()
            w.wait_ready(90)
            # partition half the realm for 6 s
            n = realm.nodes
            realm.fabric.partition([n["b2"].i, n["w2"].i, n["w4"].i, realm.rogue.i])
            count("partition")
            time.sleep(6)  # the partition's duration
            realm.fabric.heal()
            # a lossy worker for 6 s
            lossy = rnd.choice(realm.workers)
            realm.fabric.netem(lossy.i, 10, 100)
            count("lossy link")
            time.sleep(6)  # the impairment's duration
            realm.fabric.netem(lossy.i, None)
            # rogue worker: garbage then refusing, 8 s each, as the cheapest worker
            for mode in ("garbage", "refuse"):
                realm.rogue.set(mode, 10)
                count(f"rogue {mode}")
                time.sleep(8)  # the fault's duration
            realm.rogue.set("good", 5000)
            try:
                realm.wait_mesh(timeout=60)
            except AssertionError as e:
                problems.append(f"round {rounds}: {e}")
            time.sleep(20)  # quiet load between rounds
    finally:
        load.stop()
    problems += check_intents(load.records)
    problems += check_paid_once(realm)
    try:
        check_holds_and_sum(realm, timeout=30)
    except AssertionError as e:
        problems.append(str(e)[:2000])
    bad = {k: v for k, v in verify_ledgers(realm).items() if not v.get("ok")}
    if bad:
        problems.append(f"ledgers that do not verify: {bad}")
    elapsed = time.monotonic() - t_start
    summary = LoadGen.summary(load.records)
    growth = realm.sampler.growth_per_hour(warmup_s=120)
    text = [f"soak: {elapsed / 60:.1f} min, {rounds} rounds, rate {rate}/s, intent timeout {timeout:g} s",
            f"faults injected: {json.dumps(faults)} (total {sum(faults.values())})",
            f"intents: {json.dumps(summary)}",
            "RSS (max MiB per time bucket):", realm.sampler.table(buckets=10),
            "RSS growth (least-squares slope after 2 min warm-up, longest process lifetime): "
            + ", ".join(f"{k} {v / 2**20:+.1f} MiB/h" for k, v in sorted(growth.items())),
            f"problems: {len(problems)}"]
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        if realm.sampler.png(out_dir / "soak_rss.png"):
            text.append(f"RSS plot: {out_dir / 'soak_rss.png'}")
        (out_dir / "soak_rss.csv").write_text("t_s,node,rss_kb\n" + "".join(
            f"{t:.1f},{m},{kb}\n" for t, m, kb in realm.sampler.samples))
    return {"text": "\n".join(text), "problems": problems, "faults": faults, "summary": summary,
            "growth_bytes_per_hour": growth, "elapsed_s": elapsed}
