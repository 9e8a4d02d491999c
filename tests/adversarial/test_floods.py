"""Issue 12 finding 5: per-peer limits on streams and bytes in flight. A node in its own process
(tests/federation/echo_node.py: a Federation with an echo worker) gets 80 streams on
/mtor/intent/2, each sending most of a 16 MiB frame, from one hostile peer, and slow streams
that announce a big frame and then trickle; its peak RSS (VmHWM) must stay bounded and it must
still serve a request afterwards. Before the budget the same flood took RSS 331 MB -> 1.89 GB."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from fed_helpers import seed
from federation import Federation
from federation.config import FederationConfig
from hostile import connect, hostile_host

ROOT = Path(__file__).resolve().parents[2]
BOUND_MIB = 300  # peak RSS growth allowed; 80 x 15 MiB would be 1,200 MiB


def rss_kib(pid: int, field: str = "VmHWM") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


@pytest.fixture
def echo_node():
    env = dict(os.environ, ANNOUNCE="1")
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "federation" / "echo_node.py"), seed(90).hex()],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        yield proc, info
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


errors: list[str] = []


async def flood_stream(host, pid, total: int, chunk: int = 1 << 20) -> int:
    """Announce a 16 MiB frame and send `total` bytes of it; returns what got written."""
    from libp2p.custom_types import TProtocol

    sent = 0
    with trio.move_on_after(30):
        try:
            stream = await host.new_stream(pid, [TProtocol("/mtor/intent/2")])
            await stream.write(struct.pack(">I", 16 * 1024 * 1024 - 16))
            block = os.urandom(chunk)
            while sent < total:
                await stream.write(block)
                sent += chunk
        except Exception as exc:  # reset by the node: that is the point
            errors.append(repr(exc)[:120])
    return sent


@pytest.mark.slow
@pytest.mark.parametrize("identities,streams", [(1, 80), (6, 12)])
async def test_big_frames_in_flight_stay_bounded(echo_node, identities, streams):
    """(1, 80): the finding as reported, against the per-peer budget; (6, 12): six identities,
    against the node-wide budget."""
    proc, info = echo_node
    addr = info["addrs"][0]
    base = rss_kib(proc.pid, "VmRSS")
    sent = []

    async def attacker():
        async with hostile_host() as h:
            await connect(h, addr)
            pid = list(h.get_network().connections)[0]

            async def one():
                sent.append(await flood_stream(h, pid, 15 * 1024 * 1024))

            async with trio.open_nursery() as n:
                for _ in range(streams):
                    n.start_soon(one)

    async with trio.open_nursery() as n:
        for _ in range(identities):
            n.start_soon(attacker)
    peak = rss_kib(proc.pid)
    grew_mib = (peak - base) / 1024
    print(f"echo node RSS {base // 1024} MiB -> peak {peak // 1024} MiB (+{grew_mib:.0f} MiB); "
          f"hostile wrote {sum(sent) / 2**20:.0f} MiB; {sorted(set(errors))[:3]}")
    assert proc.poll() is None, "the node died"
    assert grew_mib < BOUND_MIB
    # it still serves: a fresh, honest peer gets an answer
    client = Federation(seed(91), FederationConfig(peers=[addr], enable_dht=False))
    async with trio.open_nursery() as n:
        await n.start(client.run)
        with trio.fail_after(30):
            res = await client.request_intent(info["peer_id"], {"kind": "chat", "model": "echo",
                                                                "inputs": {"text": "still serving"}}, None, 20)
        assert res["output"]["text"] == "still serving"
        n.cancel_scope.cancel()


async def test_budget_refuses_a_peer_past_its_streams_and_bytes():
    from federation.budget import OverBudget, PeerBudget

    b = PeerBudget(max_streams=2, max_bytes=100, max_total_bytes=150)
    b.open_stream("p")
    b.open_stream("p")
    with pytest.raises(OverBudget):
        b.open_stream("p")
    b.open_stream("q")  # another peer has its own streams
    b.reserve("p", 60)
    with pytest.raises(OverBudget):
        b.reserve("p", 60)  # 120 > 100 for p
    b.reserve("q", 80)
    with pytest.raises(OverBudget):
        b.reserve("r", 20)  # 160 > 150 overall
    b.release("p", 60)
    b.reserve("r", 20)
    assert b.snapshot()["bytes_in_flight"] == 100 and b.refused == {"streams": 1, "bytes": 2}


async def test_slow_streams_cannot_sit_on_the_budget(network, monkeypatch):
    """Slow-loris: streams that announce a big frame and then trickle. The body deadline
    (wire.BODY_GRACE_S + size / MIN_BODY_RATE) ends them and frees their reservation; meanwhile
    an honest peer's small requests are never refused (small frames are not reserved)."""
    from federation import wire
    from fed_helpers import wait_until
    from libp2p.custom_types import TProtocol

    monkeypatch.setattr(wire, "BODY_GRACE_S", 1.0)  # the deadline's shape, shortened for the test:
    monkeypatch.setattr(wire, "MIN_BODY_RATE", 4 * 1024 * 1024)  # 10 MiB must come within 3.5 s
    async with network() as net:
        node, client = await net.spawn(2)
        await wait_until(lambda: client.candidates("chat", "echo") == [node.peer_id], timeout=15)
        budget = node.server.budget
        async with hostile_host() as h:
            await connect(h, node.listen_addrs[0])
            streams = []
            for _ in range(5):  # 5 x 10 MiB announced: the 5th is over the 40 MiB per-peer budget
                try:
                    s = await h.new_stream(node.host.get_id(), [TProtocol("/mtor/intent/2")])
                    await s.write(struct.pack(">I", 10 * 1024 * 1024) + b"x")
                    streams.append(s)
                except Exception:
                    pass
            await wait_until(lambda: budget.refused["bytes"] >= 1, timeout=10)
            assert budget.total_bytes == 40 * 1024 * 1024
            # the honest client is served while the slow streams hold their reservations
            with trio.fail_after(20):
                res = await client.request_intent(node.peer_id, {"kind": "chat", "model": "echo",
                                                                 "inputs": {"text": "not starved"}}, None, 15)
            assert res["output"]["text"] == "not starved"
            # trickling one byte now and then does not keep a reservation alive
            with trio.fail_after(60):
                while budget.total_bytes > 0:
                    for s in streams:
                        try:
                            await s.write(b"y")
                        except Exception:
                            pass
                    await trio.sleep(0.5)  # the trickle's pace, not synchronisation
            assert budget.total_bytes == 0
