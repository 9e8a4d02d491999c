"""kill -9 durability: a child process appends 10,000 entries and prints each seq once its
commit returned (acknowledged); we SIGKILL it partway; after reopening, the chain verifies and
every acknowledged seq is present."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import trio

from ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import sys
from ledger import Ledger
led = Ledger.open(sys.argv[1], bytes.fromhex(sys.argv[2]), realm="lab")
out = sys.stdout
seq = led.head()[0]
i = 0
while seq < 10_000:
    # groups of 1 and 10 entries per commit: both paths must be durable when they return
    n = 1 if i % 2 else 10
    if n == 1:
        es = [led.store.append("deposit", {"amount": 1, "tx": f"t{i}", "mint": "m", "slot": i})]
    else:
        es = led.store.append_many([("deposit", {"amount": 1, "tx": f"t{i}-{k}", "mint": "m", "slot": i})
                                    for k in range(n)])
    out.write("".join(f"{e.seq}\n" for e in es))
    out.flush()
    seq = es[-1].seq
    i += 1
"""


async def test_kill_9_loses_no_acknowledged_entry(tmp_path):
    db = tmp_path / "mtor.db"
    seed = os.urandom(32)
    acked: list[int] = []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with trio.fail_after(60):
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-c", CHILD, str(db), seed.hex()], stdout=-1, env=env, cwd=str(ROOT))
        buf = b""
        try:
            while len(acked) < 1500:
                chunk = await proc.stdout.receive_some(65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                acked += [int(x) for x in lines]
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            await proc.stdout.aclose()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 1500, "child died before writing enough entries"
    led = Ledger.open(db, seed, realm="lab")
    try:
        rep = led.verify()
        assert rep.ok, rep.problems[:5]
        head = led.head()[0]
        assert head >= max(acked)
        present = {e.seq for e in led.entries()}
        assert set(acked) <= present
        # and the ledger goes on from where it was
        e = led.record_deposit(1, "after-restart", "m", 0)
        assert e.seq == head + 1 and led.verify().ok
    finally:
        led.close()
