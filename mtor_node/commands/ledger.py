"""`mtor-node wallet` and `mtor-node ledger`: credits, grants, settlement, verification, anchors.

Amounts on the command line are in $9000 with up to 6 decimals ("2.5"); they are converted to
integer micro-tokens exactly (decimal arithmetic, never floats): 1 $9000 = 1,000,000 µ.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

MICRO = 10**6
MAX_MICRO = 2**63 - 1
_AMOUNT = re.compile(r"^[0-9]+(\.[0-9]+)?$|^\.[0-9]+$")


def parse_amount(text: str) -> int:
    """'2.5' -> 2_500_000 micro-tokens. ValueError with a message for people otherwise."""
    s = str(text).strip().replace("_", "")
    if s.startswith("-"):
        raise ValueError(f"amount must be positive, not {text!r}")
    if not _AMOUNT.match(s):
        raise ValueError(f"amount must be a number of $9000 like 2.5 (up to 6 decimals), not {text!r}")
    try:
        micro = Decimal(s) * MICRO
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None
    if micro != micro.to_integral_value():
        raise ValueError(f"{text!r} has more than 6 decimals: the smallest amount is 0.000001 $9000 (1 micro-token)")
    n = int(micro)
    if n <= 0:
        raise ValueError(f"amount must be positive, not {text!r}")
    if n > MAX_MICRO:
        raise ValueError(f"amount {text!r} is too large")
    return n


def fmt_amount(micro: int) -> str:
    """1234567 -> '1.234567 $9000 (1234567 µ)'."""
    sign = "-" if micro < 0 else ""
    m = abs(micro)
    return f"{sign}{m // MICRO}.{m % MICRO:06d} $9000 ({micro} µ)"


def _time(ms: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _err(msg: str, code: int = 1) -> int:
    print(f"mtor-node: {msg}", file=sys.stderr)
    return code


# ---- wallet ----------------------------------------------------------------------------------

def cmd_wallet(args) -> int:
    from ..client import client_of

    w = client_of(args).get("/api/v1/wallet", params={"limit": args.limit})
    if args.json:
        print(json.dumps(w, indent=2))
        return 0
    print(f"address:    {w['address']}")
    print(f"realm:      {w['realm']}  (authority {w['authority']}{', this node' if w['is_authority'] else ''})")
    print(f"balance:    {fmt_amount(w['balance'])}")
    print(f"available:  {fmt_amount(w['available'])}")
    if w["holds"]:
        print(f"held:       {fmt_amount(w['held'])}")
        for h in w["holds"]:
            print(f"  {h['job']}: {fmt_amount(h['amount'])}")
    if w["owed"]:
        print("owed on chain (positive: we owe the peer; negative: it owes us):")
        for peer, v in w["owed"].items():
            print(f"  {peer}: {fmt_amount(v)}")
    print(f"recent entries (of {w['head_seq'] + 1}):")
    for e in w["recent"]:
        extra = f"  {e['peer']}" if e.get("peer") else ""
        extra += f"  job {e['job']}" if e.get("job") else ""
        extra += f"  tx {e['tx']}" if e.get("tx") else ""
        delta = e["delta"]
        amt = (("+" if delta > 0 else "") + fmt_amount(delta)) if delta else (fmt_amount(e["amount"]) if e["amount"] else "")
        print(f"  #{e['seq']:<5} {_time(e['time'])}  {e['kind']:<8} {amt}{extra}")
    return 0


def cmd_wallet_grant(args) -> int:
    from ..client import client_of

    try:
        amount = parse_amount(args.amount)
    except ValueError as e:
        return _err(str(e), 2)
    client = client_of(args)
    body = {"address": args.address, "amount": amount}
    if args.id:
        body["id"] = args.id
    r = client.post("/api/v1/wallet/grant", json=body, headers=client.sysop_headers())
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"granted {fmt_amount(r['amount'])} to {r['to']} (voucher {r['id']}, realm {r['realm']})")
    if r.get("applied"):
        print(f"credited to this node (entry #{r['seq']}); balance {fmt_amount(r['balance'])}")
    elif r.get("delivered"):
        print("delivered to the member over p2p and credited there")
    else:
        print(f"not delivered: {r.get('note', 'the member is not connected')}")
    print("voucher (the member redeems it with `mtor-node wallet redeem VOUCHER`):")
    print(r["voucher"])
    return 0


def cmd_wallet_redeem(args) -> int:
    from ..client import client_of

    text = args.voucher
    if text == "-":
        text = sys.stdin.read()
    r = client_of(args).post("/api/v1/wallet/redeem", json={"voucher": text.strip()})
    print(f"credited {fmt_amount(r['credited'])} (voucher {r['id']}, entry #{r['seq']}); "
          f"balance {fmt_amount(r['balance'])}")
    return 0


def cmd_wallet_settle(args) -> int:
    from ..client import client_of

    client = client_of(args, timeout=300.0)
    body: dict = {}
    if args.peer:
        body["peer"] = args.peer
    if args.amount:
        try:
            body["amount"] = parse_amount(args.amount)
        except ValueError as e:
            return _err(str(e), 2)
    r = client.post("/api/v1/wallet/settle", json=body, headers=client.sysop_headers())
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        if not r["settled"] and not r["errors"]:
            print(r.get("note", "nothing to settle"))
        for s in r["settled"]:
            print(f"settled {fmt_amount(s['amount'])} with {s['peer']}: tx {s['tx']} (entry #{s['seq']})")
        for e in r["errors"]:
            print(f"not settled with {e['peer']}: {e['error']}")
    return 1 if r["errors"] else 0


# ---- ledger ----------------------------------------------------------------------------------

def _print_report(rep: dict) -> int:
    where = " and on chain" if rep.get("chain_checked") else ""
    if rep["ok"]:
        print(f"ok: {rep['entries']} entries of {rep['author']} verified (signatures, hash chain, "
              f"{rep['anchors']} anchor(s){where})")
        return 0
    print(f"FAILED: {len(rep['problems'])} problem(s) in the ledger of {rep['author']} ({rep['entries']} entries):")
    for p in rep["problems"]:
        print(f"  entry #{p['seq']} ({p['author']}#{p['seq']}): {p['what']}")
    return 1


def verify_offline(data_dir: Path) -> dict:
    """Verify the ledger of a STOPPED node straight from its data dir (holds the data dir lock
    while reading, so no node can start and write meanwhile). RuntimeError says why not."""
    import sqlite3

    from ..identity import KEY_NAME, IdentityError, load
    from ..node import DataDirLock, StartError
    from ..store import DB_NAME

    db = data_dir / DB_NAME
    if not db.exists():
        raise RuntimeError(f"no database at {db}: is {data_dir} a node's data dir?")
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except StartError:
        raise RuntimeError(f"a node is running on {data_dir}: use `mtor-node ledger verify` without "
                           f"--offline (it asks the running node)") from None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            has = conn.execute("SELECT name FROM sqlite_master WHERE name='ledger_entries'").fetchone()
            n = conn.execute("SELECT COUNT(*) FROM ledger_entries").fetchone()[0] if has else 0
        finally:
            conn.close()
        if not n:
            raise RuntimeError(f"{db} holds no ledger (ledger.enabled was never on?)")
        try:
            ident = load(data_dir / KEY_NAME)
        except IdentityError as e:
            raise RuntimeError(str(e)) from None
        from ledger.chain_store import ChainStore
        from ledger.keys import Signer
        from ledger.verify import verify_chain

        store = ChainStore(db, Signer(ident.seed))  # existing chain: opening writes nothing new
        try:
            rep = verify_chain(store)
        finally:
            store.close()
    finally:
        lock.release()
    return {"ok": rep.ok, "author": rep.author, "entries": rep.entries, "anchors": len(rep.anchors),
            "chain_checked": False,
            "problems": [{"author": p.author, "seq": p.seq, "what": p.what, "text": str(p)} for p in rep.problems]}


def cmd_ledger_verify(args) -> int:
    from ..client import client_of, data_dir_of

    if args.offline:
        if args.chain:
            return _err("--chain needs the running node (it holds the chain client); drop --offline", 2)
        try:
            rep = verify_offline(data_dir_of(args))
        except RuntimeError as e:
            return _err(str(e), 1)
    else:
        rep = client_of(args, timeout=300.0).post("/api/v1/ledger/verify", json={"chain": bool(args.chain)})
    if args.json:
        print(json.dumps(rep, indent=2))
        return 0 if rep["ok"] else 1
    return _print_report(rep)


def cmd_ledger_anchor(args) -> int:
    from ..client import client_of

    client = client_of(args, timeout=120.0)
    r = client.post("/api/v1/ledger/anchor", headers=client.sysop_headers())
    if not r["anchored"]:
        print(r["reason"])
        return 0
    print(f"anchored entries {r['first']}..{r['last']} (root {r['root']}) in tx {r['tx']} "
          f"at slot {r['slot']} on {r['cluster']}; entry #{r['seq']}")
    return 0


def cmd_ledger_export(args) -> int:
    from ..client import client_of

    r = client_of(args, timeout=300.0).get("/api/v1/ledger/export")
    text = "".join(json.dumps(e) + "\n" for e in r["entries"])
    if args.output:
        tmp = args.output.with_name(args.output.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.output)
        print(f"{r['count']} entries of {r['author']} written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# ---- parsers ---------------------------------------------------------------------------------

def _leaf_client_args(p: argparse.ArgumentParser) -> None:
    """--data-dir/--url on an action too, defaulting to 'not given', so that
    `mtor-node wallet --data-dir D grant ...` and `... grant ... --data-dir D` both work."""
    p.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help="the node's data dir")
    p.add_argument("--url", default=argparse.SUPPRESS, help="the node's HTTP address")


def register(sub, add_client_args) -> None:
    p = sub.add_parser("wallet", help="this node's $9000 credits: balance, holds, recent entries; grant, redeem, settle")
    add_client_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=int, default=20, help="recent entries to show (default 20)")
    p.set_defaults(func=cmd_wallet)
    wsub = p.add_subparsers(dest="wallet_command", metavar="ACTION")

    g = wsub.add_parser("grant", help="realm authority (sysop): credit AMOUNT $9000 to a member; prints a voucher")
    _leaf_client_args(g)
    g.add_argument("address", help="the member's Solana address (`mtor-node status` on its machine)")
    g.add_argument("amount", help="$9000 with up to 6 decimals, e.g. 2.5")
    g.add_argument("--id", default=None, help="voucher id (default: a random one); a voucher id is creditable once")
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.set_defaults(func=cmd_wallet_grant)

    r = wsub.add_parser("redeem", help="credit a voucher string from the realm authority to this node")
    _leaf_client_args(r)
    r.add_argument("voucher", help="the voucher string (- reads it from stdin)")
    r.set_defaults(func=cmd_wallet_redeem)

    s = wsub.add_parser("settle", help="sysop: pay what this node owes peers on chain (SPL $9000 transfers)")
    _leaf_client_args(s)
    s.add_argument("--peer", default=None, help="only this peer's Solana address")
    s.add_argument("--amount", default=None, help="$9000 to settle with --peer (default: all that is owed)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_wallet_settle)

    p = sub.add_parser("ledger", help="the signed ledger: verify, anchor on Solana, export")
    add_client_args(p)
    lsub = p.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)

    v = lsub.add_parser("verify", help="check signatures, the hash chain and anchors; exit 1 naming each bad entry")
    _leaf_client_args(v)
    v.add_argument("--chain", action="store_true", help="also fetch every anchor transaction from Solana")
    v.add_argument("--offline", action="store_true",
                   help="read the ledger file of a STOPPED node in --data-dir directly (no running node)")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.set_defaults(func=cmd_ledger_verify)

    a = lsub.add_parser("anchor", help="sysop: put the Merkle root of the new entries on Solana now")
    _leaf_client_args(a)
    a.set_defaults(func=cmd_ledger_anchor)

    e = lsub.add_parser("export", help="all our entries as JSON lines, with their canonical bytes (base64)")
    _leaf_client_args(e)
    e.add_argument("-o", "--output", type=Path, default=None, help="write to this file (default: stdout)")
    e.set_defaults(func=cmd_ledger_export)
