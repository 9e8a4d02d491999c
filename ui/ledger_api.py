"""REST for the wallet and the ledger (docs/operator-guide.md, "Wallet, credits and ledger").

GET  /api/v1/wallet            address, balance, available, holds, recent entries, owed per peer
POST /api/v1/wallet/grant      sysop, realm authority only: {address, amount, id?} -> voucher string
POST /api/v1/wallet/redeem     {voucher}: credit a voucher string to this node
POST /api/v1/wallet/settle     sysop: pay what we owe peers as SPL TransferChecked {peer?, amount?}
GET  /api/v1/wallet/users      sysop: the sub-accounts of this broker's users {user: {credited, spent, balance}}
POST /api/v1/wallet/users/credit  sysop: {user, amount, id?}: credit a user's sub-account (ledger.user_accounts)
POST /api/v1/ledger/verify     {chain: bool}: signatures, hash chain, anchors (and on chain)
POST /api/v1/ledger/anchor     sysop: anchor the pending entries now
GET  /api/v1/ledger/export     our entries with their canonical bytes (?format=jsonl for JSON lines)

Amounts are integers of micro-tokens (1 $9000 = 1,000,000).
"""

from __future__ import annotations

import base64
import json

import trio
from quart import Blueprint, Response, jsonify, request

from ledger.verify import verify_anchors_on_chain
from mtor_node import chain as chain_mod
from mtor_node.chain import WalletError
from mtor_node.intents import IntentError

from .api import error, json_body, node, require_sysop

ledger_api = Blueprint("ledger_api", __name__, url_prefix="/api/v1")

RECENT_DEFAULT = 20
RECENT_MAX = 500


def _ledger_or_error():
    led = node().ledger
    if led is None:
        return None, error("ledger_disabled", "this node runs without a ledger (ledger.enabled = false)", 409)
    return led, None


def _werr(e: WalletError):
    return error(e.code, e.message, e.status)


def _addr(key: bytes | None) -> str | None:
    from ledger.keys import address

    if key and bytes(key).startswith(b"user:"):  # a user sub-account (ledger/users.py), not a peer
        return bytes(key).decode("utf-8", "replace")
    return address(key) if key else None


def _jsonable(obj):
    """Entry bodies as JSON: bytes as hex (the exact bytes are in `raw`)."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).hex()
    return obj


async def _body():
    try:
        return await json_body(required=False), None
    except IntentError as e:
        return None, error(e.code, e.message)


@ledger_api.get("/wallet")
async def wallet():
    led, err = _ledger_or_error()
    if err:
        return err
    try:
        limit = min(max(int(request.args.get("limit", RECENT_DEFAULT)), 0), RECENT_MAX)
    except ValueError:
        return error("bad_request", "limit must be an integer")

    def read():
        rows = led.store.db.execute(
            "SELECT seq, kind, time, delta, amount, peer, dir, job FROM ledger_entries WHERE author=? "
            "ORDER BY seq DESC LIMIT ?", (led.pubkey, limit)).fetchall()
        balance, available = led.balance(), led.available()
        holds = led.accounts.holds()
        owed = led.owed()
        head = led.head()
        return rows, balance, available, holds, owed, head

    rows, balance, available, holds, owed, head = await trio.to_thread.run_sync(read)
    recent = [{"seq": seq, "kind": kind, "time": t, "amount": amount, "delta": delta, "peer": _addr(peer),
               **({"dir": d} if d else {}), **({"job": job} if kind in ("pay", "earn") and job else {}),
               **({"tx": job} if kind in ("anchor", "settle", "deposit") and job else {})}
              for seq, kind, t, delta, amount, peer, d, job in rows]
    return jsonify({
        "address": led.address,
        "peer_id": node().identity.peer_id,
        "realm": led.realm,
        "authority": _addr(led.authority),
        "is_authority": chain_mod.is_authority(led),
        "balance": balance,
        "available": available,
        "held": balance - available,
        "holds": [{"job": j, "amount": a} for j, a in sorted(holds.items())],
        "head_seq": head[0],
        "recent": recent,
        "owed": {_addr(p): v for p, v in sorted(owed.items())},
        "unit": "micro-tokens",
    })


@ledger_api.post("/wallet/grant")
async def grant():
    denied = require_sysop()
    if denied:
        return denied
    body, err = await _body()
    if err:
        return err
    n = node()
    address, amount = body.get("address"), body.get("amount")
    if not isinstance(address, str):
        return error("bad_request", "address (the member's Solana address) is required")
    if type(amount) is not int:
        return error("bad_amount", "amount must be an integer of micro-tokens (1 $9000 = 1000000)")
    try:
        v = chain_mod.issue(n, address, amount, body.get("id"))
    except WalletError as e:
        return _werr(e)
    out = {"voucher": chain_mod.encode_voucher(v), "id": v.id, "to": address, "amount": v.amount,
           "realm": v.realm, "applied": False, "delivered": False}
    if v.to == n.ledger.pubkey:
        try:
            e = await trio.to_thread.run_sync(chain_mod.redeem, n.ledger, v)
        except WalletError as exc:
            return _werr(exc)
        out.update(applied=True, seq=e.seq, balance=n.ledger.balance())
    else:
        delivered, why = await chain_mod.deliver(n, v)
        out["delivered"] = delivered
        if why:
            out["note"] = why
    return jsonify(out)


@ledger_api.post("/wallet/redeem")
async def redeem():
    body, err = await _body()
    if err:
        return err
    led, err = _ledger_or_error()
    if err:
        return err
    voucher = body.get("voucher")
    if not isinstance(voucher, str):
        return error("bad_request", "voucher (the string from `wallet grant`) is required")
    try:
        e = await trio.to_thread.run_sync(chain_mod.redeem, led, voucher)
    except WalletError as exc:
        return _werr(exc)
    v = e.body["voucher"]
    return jsonify({"credited": v["amount"], "id": v["id"], "seq": e.seq, "balance": led.balance()})


@ledger_api.post("/ledger/verify")
async def verify():
    body, err = await _body()
    if err:
        return err
    led, err = _ledger_or_error()
    if err:
        return err
    on_chain = body.get("chain", False)
    if not isinstance(on_chain, bool):
        return error("bad_request", "chain must be true or false")
    client = None
    if on_chain:
        cfg = node().config
        why = chain_mod.chain_unavailable(cfg, anchoring=False)
        if why:
            return error("no_chain", f"cannot check anchors on chain: {why}", 409)
        try:
            client = chain_mod.make_chain_client(cfg, anchoring=False)
        except ValueError as e:
            return error("no_chain", f"cannot check anchors on chain: {e}", 409)
    rep = await trio.to_thread.run_sync(led.verify)
    if client is not None:
        try:
            with trio.move_on_after(120) as scope:
                rep = await verify_anchors_on_chain(rep, client)
            if scope.cancelled_caught:
                rep.add(rep.anchors[-1].seq if rep.anchors else 0, "timed out checking anchors on chain (120 s)")
        finally:
            await client.aclose()
    return jsonify(report_json(rep, on_chain))


def report_json(rep, on_chain: bool) -> dict:
    return {"ok": rep.ok, "author": rep.author, "entries": rep.entries, "anchors": len(rep.anchors),
            "chain_checked": on_chain,
            "anchor_txs": [{"seq": a.seq, "tx": a.body["tx"], "first": a.body["first"], "last": a.body["last"]}
                           for a in rep.anchors],
            "problems": [{"author": p.author, "seq": p.seq, "what": p.what, "text": str(p)} for p in rep.problems]}


@ledger_api.post("/ledger/anchor")
async def anchor():
    denied = require_sysop()
    if denied:
        return denied
    led, err = _ledger_or_error()
    if err:
        return err
    cfg = node().config
    why = chain_mod.chain_unavailable(cfg)
    if why:
        return error("no_chain", f"cannot anchor: {why}", 409)
    try:
        client = chain_mod.make_chain_client(cfg)
    except ValueError as e:
        return error("no_chain", f"cannot anchor: {e}", 409)
    from ledger.errors import AnchorError

    try:
        with trio.fail_after(90):
            e = await led.anchor_now(client)
    except trio.TooSlowError:
        return error("chain_timeout", "the anchor transaction was not confirmed within 90 s", 504)
    except AnchorError as exc:
        return error("anchor_failed", f"anchoring failed: {exc} (does {led.address} hold SOL for the fee?)", 502)
    except Exception as exc:  # noqa: BLE001 - the RPC endpoint unreachable or answering nonsense
        return error("chain_unreachable", f"the Solana RPC endpoint failed: {type(exc).__name__}: {exc}", 502)
    finally:
        await client.aclose()
    if e is None:
        return jsonify({"anchored": False, "reason": "nothing new to anchor since the last anchor"})
    b = e.body
    return jsonify({"anchored": True, "seq": e.seq, "first": b["first"], "last": b["last"], "root": b["root"].hex(),
                    "tx": b["tx"], "slot": b["slot"], "cluster": b["cluster"]})


def export_rows(led):
    """Our entries, each with its canonical bytes (base64) so it can be re-verified elsewhere."""
    for e in led.entries(led.pubkey):
        yield {"author": led.address, "seq": e.seq, "kind": e.kind, "time": e.time, "hash": e.hash.hex(),
               "prev": e.prev.hex(), "body": _jsonable(e.body), "raw": base64.b64encode(e.raw).decode()}


@ledger_api.get("/ledger/export")
async def export():
    led, err = _ledger_or_error()
    if err:
        return err
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "jsonl"):
        return error("bad_request", "format must be json or jsonl")
    rows = await trio.to_thread.run_sync(lambda: list(export_rows(led)))
    if fmt == "jsonl":
        return Response("".join(json.dumps(r) + "\n" for r in rows), mimetype="application/x-ndjson")
    return jsonify({"author": led.address, "realm": led.realm, "count": len(rows), "entries": rows,
                    "encoding": "raw = base64 of the entry's canonical msgpack bytes (docs/ledger.md)"})


@ledger_api.post("/wallet/settle")
async def settle():
    denied = require_sysop()
    if denied:
        return denied
    body, err = await _body()
    if err:
        return err
    led, err = _ledger_or_error()
    if err:
        return err
    cfg = node().config
    why = chain_mod.chain_unavailable(cfg, anchoring=False)
    if why:
        return error("no_chain", f"cannot settle: {why}", 409)
    try:
        mint = chain_mod.settlement_mint(cfg)
    except ValueError as e:
        return error("no_mint", f"cannot settle: {e}; set ledger.mint to the $9000 SPL mint address", 409)
    from ledger.errors import DecodeError, SettlementError
    from ledger.keys import to_pubkey

    owed = {p: v for p, v in (await trio.to_thread.run_sync(led.owed)).items() if v > 0}
    peer, amount = body.get("peer"), body.get("amount")
    if peer is not None:
        try:
            pk = to_pubkey(peer) if isinstance(peer, str) else None
        except DecodeError:
            pk = None
        if pk is None:
            return error("bad_address", "peer must be a Solana address")
        if pk not in owed:
            return error("nothing_owed", f"this node owes nothing to {peer}", 409)
        if amount is not None and (type(amount) is not int or not 0 < amount <= owed[pk]):
            return error("bad_amount", f"amount must be an integer of 1..{owed[pk]} micro-tokens")
        owed = {pk: amount or owed[pk]}
    if not owed:
        return jsonify({"settled": [], "errors": [], "note": "this node owes nothing to any peer"})
    try:
        client = chain_mod.make_chain_client(cfg, anchoring=False)
    except ValueError as e:
        return error("no_chain", f"cannot settle: {e}", 409)
    settled, errors = [], []
    try:
        for pk, amt in owed.items():
            try:
                with trio.fail_after(90):
                    e = await led.settle(client, pk, amt, mint)
                settled.append({"peer": _addr(pk), "amount": amt, "tx": e.body["tx"], "seq": e.seq})
            except trio.TooSlowError:
                errors.append({"peer": _addr(pk), "amount": amt, "error": "not confirmed within 90 s"})
            except SettlementError as exc:
                errors.append({"peer": _addr(pk), "amount": amt,
                               "error": f"{exc} (does {led.address} hold SOL for fees and {amt} "
                                        f"micro-tokens of mint {mint}?)"})
            except Exception as exc:  # noqa: BLE001 - RPC unreachable
                errors.append({"peer": _addr(pk), "amount": amt, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        await client.aclose()
    if errors and not settled:
        return jsonify({"error": {"code": "settle_failed", "message": "; ".join(f"{x['peer']}: {x['error']}"
                                                                              for x in errors)},
                        "settled": settled, "errors": errors}), 502
    return jsonify({"settled": settled, "errors": errors, "mint": mint})


def _accounts_or_error():
    led, err = _ledger_or_error()
    if err:
        return None, err
    accts = getattr(node().broker, "accounts", None)
    if accts is None:
        return None, error("accounts_off", "user accounts are off on this node (ledger.user_accounts = false, "
                                           "or p2p off): every user spends the node's wallet", 409)
    return accts, None


@ledger_api.get("/wallet/users")
async def user_accounts():
    denied = require_sysop()
    if denied:
        return denied
    accts, err = _accounts_or_error()
    if err:
        return err
    return jsonify({"users": await trio.to_thread.run_sync(accts.all), "demo_grant": accts.demo_grant})


@ledger_api.post("/wallet/users/credit")
async def credit_user():
    denied = require_sysop()
    if denied:
        return denied
    body, err = await _body()
    if err:
        return err
    accts, err = _accounts_or_error()
    if err:
        return err
    user, amount = body.get("user"), body.get("amount")
    credit_id = body.get("id") or f"credit-{base64.b32encode(__import__('os').urandom(10)).decode().lower()}"
    if not isinstance(user, str) or not user or type(amount) is not int or not isinstance(credit_id, str):
        return error("bad_request", 'send {"user": NAME, "amount": MICROTOKENS, "id"?: STRING}')
    from ledger.errors import LedgerError, ReplayError

    try:
        e = await trio.to_thread.run_sync(accts.credit, user, amount, credit_id)
    except ReplayError as exc:
        return error("replay", str(exc), 409)
    except LedgerError as exc:
        return error("bad_amount", str(exc))
    return jsonify({"user": user, "credited": amount, "id": credit_id, "seq": e.seq,
                    "balance": await trio.to_thread.run_sync(accts.balance, user)})

