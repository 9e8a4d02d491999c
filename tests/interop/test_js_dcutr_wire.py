"""Our DCUtR messages (federation/dcutr.py) against js-libp2p's own codec (`@libp2p/dcutr`'s
HolePunch protobuf, tests/interop/js/dcutr_codec.mjs): what we write, js reads as the same
CONNECT/SYNC with the same addresses, and what js writes, we read. The end-to-end punch between
two of our nodes through a js relay is tests/interop/test_js_grid.py; a js peer's own punch is not
run there (docs/nat.md §3.6), so this is the check that the bytes agree."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import multiaddr
import pytest

from federation.dcutr import CONNECT, SYNC, decode, encode

JS = Path(__file__).parent / "js"

pytestmark = pytest.mark.skipif(
    not (JS / "node_modules" / "@libp2p" / "dcutr").is_dir() or not shutil.which("node"),
    reason="js-libp2p not installed: run `npm ci --prefix tests/interop/js` (.ci/run does)")

ADDRS = [multiaddr.Multiaddr(a).to_bytes() for a in
         ("/ip4/10.77.0.11/tcp/40001", "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWEpExEMhGxNx97F1rXpGJvpfn6kWXRHHPBHJmzAAenYfR")]


def js_codec(request: dict) -> dict:
    r = subprocess.run(["node", str(JS / "dcutr_codec.mjs")], input=json.dumps(request), capture_output=True,
                       text=True, timeout=30, cwd=str(JS))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_js_reads_ours_and_we_read_js():
    ours = [encode(CONNECT, ADDRS), encode(CONNECT, []), encode(SYNC, [])]
    out = js_codec({"decode": [m.hex() for m in ours],
                    "encode": [{"type": "CONNECT", "addrs": [a.hex() for a in ADDRS]},
                               {"type": "SYNC", "addrs": []}]})
    assert out["decoded"] == [{"type": "CONNECT", "addrs": [a.hex() for a in ADDRS]},
                              {"type": "CONNECT", "addrs": []},
                              {"type": "SYNC", "addrs": []}]
    theirs = [bytes.fromhex(h) for h in out["encoded"]]
    assert decode(theirs[0]) == (CONNECT, ADDRS)
    assert decode(theirs[1]) == (SYNC, [])
    assert theirs == [encode(CONNECT, ADDRS), encode(SYNC, [])]  # byte for byte
