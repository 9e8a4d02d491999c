"""Rogue libp2p peers for the chaos suite (run inside a namespace: `ip netns exec NS python -m
tests.chaos.rogue MODE ...`). Built on federation's own Federation/Messenger and ledger's own
classes: what a misbehaving but protocol-literate peer can do.

  worker CONTROL_FILE SEED_HEX HOST PORT SECRET PEER...
      Announces chat/echo-chat and serves /mtor/intent/2 according to CONTROL_FILE, a JSON file
      {"mode": "garbage"|"refuse"|"good", "price": N} re-read every 0.5 s:
        garbage  every stream on /mtor/intent/2 gets random junk bytes (pings too)
        refuse   every request is answered `worker_error` (it announces, then refuses work)
        good     a well-behaved echo worker (no receipt: its work is free)
      Prints one JSON line {"peer_id", "addrs"} once listening; runs until stdin closes.

  equivocate OUT_JSON SEED_HEX HOST PORT SECRET WORKER_ADDR OTHER_ADDR...
      A paying requester that forks its ledger: two Ledger files with one seed, so two
      validly-signed pay entries with the same seq. Job A and job B go to WORKER; A's pay then
      B's pay are delivered to it (the second is an equivocation). Then: one more job to WORKER
      (a banned payer should be refused), and the fraud proof is sent as a "fraud" message on
      /mtor/msg/1 to every OTHER node. Writes what happened to OUT_JSON and exits (<= 60 s).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid

import trio

from federation import Federation
from federation.config import FederationConfig
from federation.host import set_safe_handler
from federation.intent_protocol import PROTOCOL as INTENT_PROTOCOL, IntentFailed
from federation.messages import MessageFailed, Messenger
from federation.realm import parse_secret


def caps(price: int) -> dict:
    return {"models": {"chat": ["echo-chat"]}, "prices": {"chat": price}, "cpu": {"cores": 1, "ram": 0},
            "queue": 0, "capacity": 4, "version": "rogue", "surge": 1.0}


def read_control(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"mode": "good", "price": 5000}


async def run_worker(control: str, seed: bytes, host: str, port: int, secret: str, peers: list[str]) -> None:
    fed = Federation(seed, FederationConfig(realm=parse_secret(secret), listen_host=host, listen_port=port, peers=peers, airgap=True,
                     announce_interval=1.0))
    state = read_control(control)
    fed.set_capabilities(caps(int(state.get("price", 5000))))

    async def handler(peer_id, request, send):
        if state.get("mode") == "refuse":
            await send({"type": "error", "code": "worker_error", "message": "rogue: refusing the work it announced"})
            return
        text = " ".join(m.get("content", "") for m in (request.get("inputs") or {}).get("messages", []))
        await send({"type": "accepted", "price": 0})
        words = text.split()
        for k, w in enumerate(words):
            await send({"type": "chunk", "data": w if k == 0 else " " + w})
        await send({"type": "result", "output": {"text": " ".join(words)}, "units": len(words)})

    fed.set_intent_handler(handler)

    async def stream_handler(stream):
        if state.get("mode") == "garbage":
            junk = os.urandom(64)
            await stream.write(b"\x00\x00\x10\x00" + junk)  # a length prefix, then not msgpack
            with trio.move_on_after(2):
                await stream.close()
            return
        await fed.server.handle_stream(stream)

    async with trio.open_nursery() as n:
        await n.start(fed.run)
        set_safe_handler(fed.host, INTENT_PROTOCOL, stream_handler)  # replaces the server's handler
        print(json.dumps({"peer_id": fed.peer_id, "addrs": fed.listen_addrs}), flush=True)

        async def poll_control():
            while True:
                new = read_control(control)
                if new != state:
                    state.clear()
                    state.update(new)
                    fed.set_capabilities(caps(int(state.get("price", 5000))))
                await trio.sleep(0.5)  # the control file's polling period

        n.start_soon(poll_control)
        stdin = trio.lowlevel.FdStream(os.dup(0))
        while await stdin.receive_some(1024):
            pass
        n.cancel_scope.cancel()


async def run_equivocator(out: str, seed: bytes, host: str, port: int, secret: str, worker: str, others: list[str]) -> None:
    from ledger import Ledger, issue_grant
    from ledger.fraud import FraudProof
    from ledger.keys import Signer

    realm = parse_secret(secret)
    report: dict = {"steps": []}
    fed = Federation(seed, FederationConfig(realm=realm, listen_host=host, listen_port=port, peers=[worker], airgap=True))
    me = Signer(seed).pubkey
    tmp = tempfile.mkdtemp(prefix="equivocator-")
    forks = []
    for name in ("a", "b"):
        led = Ledger.open(os.path.join(tmp, f"{name}.db"), seed, realm=realm.name, authority=me)
        led.apply_grant(issue_grant(seed, realm.name, me, 1_000_000, "self-grant"))
        forks.append(led)
    worker_id = worker.rsplit("/p2p/", 1)[1]
    from mtor_node.identity import pubkey_from_peer_id

    async def job(led, label):
        jid = f"equiv-{label}-{uuid.uuid4().hex[:8]}"
        req = {"id": jid, "kind": "chat", "model": "echo-chat", "params": {},
               "inputs": {"messages": [{"role": "user", "content": f"job {label} one two three"}], "timeout": 20},
               "max_price": 1000}
        led.hold(jid, 1000, pubkey_from_peer_id(worker_id))
        try:
            res = await fed.request_intent(worker_id, req, None, 20)
        except IntentFailed as e:
            led.release(jid)
            report["steps"].append({"job": label, "served": False, "code": e.code, "message": e.message})
            return None
        receipt = res.get("receipt")
        report["steps"].append({"job": label, "served": True, "receipt": receipt is not None})
        if receipt is None:
            led.release(jid)
            return None
        from ledger import Receipt

        return led.pay(Receipt.from_bytes(receipt))  # the result frame carries the receipt's bytes

    async def deliver(msg, peer_id, msg_type, body, label):
        try:
            reply = await msg.request(peer_id, msg_type, body, timeout=10)
            report["steps"].append({label: "accepted", "reply": reply})
        except MessageFailed as e:
            report["steps"].append({label: "refused", "code": e.code, "message": e.message[:300]})

    with trio.fail_after(60):
        async with trio.open_nursery() as n:
            await n.start(fed.run)
            msg = Messenger(fed.host)
            with trio.fail_after(20):
                while worker_id not in {p.to_base58() for p in fed.host.get_network().connections}:
                    await trio.sleep(0.1)  # polling the connection, bounded by fail_after
            pay_a = await job(forks[0], "A")
            pay_b = await job(forks[1], "B")
            report["pay_seqs"] = [pay_a.seq if pay_a else None, pay_b.seq if pay_b else None]
            if pay_a is not None:
                await deliver(msg, worker_id, "pay", {"entry": pay_a.to_dict()}, "pay_A")
            if pay_b is not None:
                await deliver(msg, worker_id, "pay", {"entry": pay_b.to_dict()}, "pay_B")
            # after the fork: does the worker still serve us?
            await job(forks[0], "C")
            if pay_a is not None and pay_b is not None:
                proof = FraudProof.of(pay_a, pay_b)
                proof.verify()
                report["proof_author"] = me.hex()
                for addr in others:
                    pid = addr.rsplit("/p2p/", 1)[1]
                    try:
                        with trio.fail_after(10):
                            await fed.connect(addr)
                    except Exception as e:
                        report["steps"].append({"fraud_to": pid, "connect_failed": repr(e)[:200]})
                        continue
                    await deliver(msg, pid, "fraud", {"proof": proof.to_bytes()}, f"fraud_{pid[-6:]}")
            n.cancel_scope.cancel()
    with open(out, "w") as f:
        json.dump(report, f, default=lambda o: o.hex() if isinstance(o, bytes) else repr(o))


def main() -> None:
    mode, arg, seed_hex, host, port, secret, *peers = sys.argv[1:]
    seed = bytes.fromhex(seed_hex)
    if mode == "worker":
        trio.run(run_worker, arg, seed, host, int(port), secret, peers)
    elif mode == "equivocate":
        trio.run(run_equivocator, arg, seed, host, int(port), secret, peers[0], peers[1:])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
