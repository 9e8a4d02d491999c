"""A Federation node with an echo handler, for cross-process tests and benchmarks.

Usage: python echo_node.py SEED_HEX [PEER_MULTIADDR ...]
Prints one JSON line {"peer_id", "addrs"} on stdout once listening, then runs until stdin
closes (so it dies with its parent) or it gets SIGTERM.
Env: ECHO_RAW=1 also serves a raw request/response protocol /bench/raw/1 (benchmarks).
"""

import json
import os
import sys

import trio

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from federation import Federation  # noqa: E402
from federation.config import FederationConfig  # noqa: E402
from federation.host import set_safe_handler  # noqa: E402

CAPS = {"models": {"chat": ["echo"]}, "prices": {"chat": 10}, "cpu": {"cores": os.cpu_count() or 1, "ram": 0}}


async def echo(peer_id, request, send):
    await send({"type": "accepted", "price": 10})
    text = request.get("inputs", {}).get("text", "")
    if request.get("params", {}).get("stream"):
        for word in str(text).split():
            await send({"type": "chunk", "data": word})
    await send({"type": "result", "output": {"text": text, "pid": os.getpid()}, "units": 1})


async def raw_echo(stream):
    data = await stream.read(1 << 16)
    await stream.write(data)
    await stream.close()


async def main():
    seed = bytes.fromhex(sys.argv[1])
    fed = Federation(seed, FederationConfig(peers=sys.argv[2:], announce_interval=float(os.environ.get("ANNOUNCE", "1"))))
    fed.set_capabilities(CAPS)
    fed.set_intent_handler(echo)
    if os.environ.get("ECHO_RAW"):
        set_safe_handler(fed.host, "/bench/raw/1", raw_echo)
    async with trio.open_nursery() as n:
        await n.start(fed.run)
        print(json.dumps({"peer_id": fed.peer_id, "addrs": fed.listen_addrs}), flush=True)
        stdin = trio.lowlevel.FdStream(os.dup(0))
        while await stdin.receive_some(1024):
            pass
        n.cancel_scope.cancel()


if __name__ == "__main__":
    try:
        trio.run(main)
    except KeyboardInterrupt:
        pass
