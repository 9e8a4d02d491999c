"""Cross-process intents: two echo workers in their own python processes on 127.0.0.1."""

import json
import os
import subprocess
import sys

import trio

from fed_helpers import run_routed, seed, wait_until
from federation import Federation
from federation.config import FederationConfig

HERE = os.path.dirname(os.path.abspath(__file__))


async def _spawn(nursery, seed_bytes, peers):
    proc = await trio.lowlevel.open_process(
        [sys.executable, os.path.join(HERE, "echo_node.py"), seed_bytes.hex(), *peers],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    buf = b""
    with trio.fail_after(20):
        while b"\n" not in buf:
            chunk = await proc.stdout.receive_some(4096)
            assert chunk, "echo node exited early"
            buf += chunk
    return proc, json.loads(buf.split(b"\n")[0])


async def test_intents_across_processes():
    broker = Federation(seed(40), FederationConfig(announce_interval=0.5))
    procs = []
    async with trio.open_nursery() as n:
        await n.start(broker.run)
        try:
            for i in range(2):
                proc, info = await _spawn(n, seed(41 + i), [broker.listen_addrs[0]])
                procs.append((proc, info))
            workers = {info["peer_id"] for _, info in procs}
            await wait_until(lambda: set(broker.candidates("chat", "echo")) == workers, timeout=20)
            pids = set()
            for i in range(6):
                peer = sorted(workers)[i % 2]
                events = []

                async def on_event(ev):
                    events.append(ev)

                with trio.fail_after(10):
                    res = await broker.request_intent(
                        peer, {"kind": "chat", "model": "echo", "inputs": {"text": f"hi there {i}"},
                               "params": {"stream": True}}, on_event, 8)
                assert res["output"]["text"] == f"hi there {i}" and res["peer_id"] == peer
                assert [e["data"] for e in events if e["type"] == "chunk"] == ["hi", "there", str(i)]
                pids.add(res["output"]["pid"])
            assert len(pids) == 2 and os.getpid() not in pids
            # kill one worker: routing fails over to the other process
            dead_proc, dead_info = procs[0]
            dead_proc.kill()
            with trio.fail_after(15):
                res = await run_routed(broker, {"kind": "chat", "model": "echo", "inputs": {"text": "still"}},
                                       None, 10)
            assert res["output"]["text"] == "still"
        finally:
            for proc, _ in procs:
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
                with trio.move_on_after(5):
                    await proc.wait()
            n.cancel_scope.cancel()
