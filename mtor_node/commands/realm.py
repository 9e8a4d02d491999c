"""`mtor-node peers` and `mtor-node realm`: the realm as this node sees it, and private realms."""

from __future__ import annotations

import json


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def cmd_peers(args) -> int:
    from ..client import client_of

    client = client_of(args)
    if args.action in ("block", "unblock"):
        if not args.peer_id:
            print("mtor-node: peers block/unblock needs a peer id")
            return 2
        client.post(f"/api/v1/peers/{args.peer_id}/{args.action}", headers=client.sysop_headers())
        print(f"{args.action}ed {args.peer_id}")
        return 0
    data = client.get("/api/v1/peers")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    if data["realm"] is None:
        print("this node runs without the p2p layer (p2p.enabled = false)")
        return 0
    peers = data["peers"]
    print(f"realm {data['realm']}: {len(peers)} peer(s) seen by {data['self']}")
    for p in peers:
        hw = ", ".join(f"{g['name']} ({_gib(g['vram_total'])})" for g in p["gpus"]) or \
            f"CPU {p['cpu'].get('cores', '?')} cores, {_gib(p['cpu'].get('ram', 0))} RAM"
        state = "blocked" if p["blocked"] else ("fresh" if p["fresh"] else "stale")
        rtt = f"{p['rtt_ms']:.1f} ms" if p["rtt_ms"] is not None else "—"
        print(f"\n{p['peer_id']}  [{state}]  health {p['health']}  rtt {rtt}  surge {p['surge'] or 1}×")
        print(f"  hardware: {hw}")
        for kind, names in sorted(p["models"].items()):
            price = p["prices"].get(kind)
            print(f"  {kind:<11} {', '.join(names)}" + (f"  ({price} µ$9000 base)" if price is not None else ""))
        if p["last_error"]:
            print(f"  last error: {p['last_error']}")
    return 0


def cmd_realm_create(args) -> int:
    from federation.realm import format_secret, new_realm

    try:
        realm = new_realm(args.name)
    except ValueError as e:
        print(f"mtor-node: {e}")
        return 2
    secret = format_secret(realm)
    print("join secret (share it only with members; it is the realm's key):")
    print(f"  {secret}")
    print("members start with:")
    print(f"  mtor-node start --realm-secret {secret} --peer <this node's /ip4/.../p2p/... address>")
    return 0


def register(sub, add_client_args) -> None:
    p = sub.add_parser("peers", help="the realm's peers: hardware, models, prices, health, RTT; block/unblock")
    add_client_args(p)
    p.add_argument("action", nargs="?", choices=("list", "block", "unblock"), default="list")
    p.add_argument("peer_id", nargs="?", default=None)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_peers)

    p = sub.add_parser("realm", help="private realms: `realm create NAME` prints a join secret")
    rsub = p.add_subparsers(dest="realm_command", metavar="ACTION", required=True)
    c = rsub.add_parser("create", help="make a new private realm and print its join secret")
    c.add_argument("name", help="1-63 characters of a-z 0-9 . _ -")
    c.set_defaults(func=cmd_realm_create)
