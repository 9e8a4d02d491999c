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

Amounts are integers of micro-tokens (1 $9000 = 1,000,000). The work is the wallet half of the
node's facade (mtor_node/wallet_service.py); these routes read requests and shape answers.
"""

from __future__ import annotations

import json

from quart import Blueprint, Response, jsonify, request

from mtor_node.intents import IntentError
from mtor_node.service import ServiceError
from mtor_node.wallet_service import ledger_disabled

from .api import error, json_body, refused, require_sysop, service

ledger_api = Blueprint("ledger_api", __name__, url_prefix="/api/v1")

RECENT_DEFAULT = 20
RECENT_MAX = 500


async def _body():
    try:
        return await json_body(required=False), None
    except IntentError as e:
        return None, error(e.code, e.message)


@ledger_api.get("/wallet")
async def wallet():
    wallet = service().wallet
    if not wallet.enabled:
        return refused(ledger_disabled())
    try:
        limit = min(max(int(request.args.get("limit", RECENT_DEFAULT)), 0), RECENT_MAX)
    except ValueError:
        return error("bad_request", "limit must be an integer")
    return jsonify(await wallet.wallet(limit))


@ledger_api.post("/wallet/grant")
async def grant():
    denied = require_sysop()
    if denied:
        return denied
    body, err = await _body()
    if err:
        return err
    address, amount = body.get("address"), body.get("amount")
    if not isinstance(address, str):
        return error("bad_request", "address (the member's Solana address) is required")
    if type(amount) is not int:
        return error("bad_amount", "amount must be an integer of micro-tokens (1 $9000 = 1000000)")
    try:
        return jsonify(await service().wallet.grant(address, amount, body.get("id")))
    except ServiceError as e:
        return refused(e)


@ledger_api.post("/wallet/redeem")
async def redeem():
    body, err = await _body()
    if err:
        return err
    wallet = service().wallet
    if not wallet.enabled:
        return refused(ledger_disabled())
    voucher = body.get("voucher")
    if not isinstance(voucher, str):
        return error("bad_request", "voucher (the string from `wallet grant`) is required")
    try:
        return jsonify(await wallet.redeem(voucher))
    except ServiceError as e:
        return refused(e)


@ledger_api.post("/ledger/verify")
async def verify():
    body, err = await _body()
    if err:
        return err
    wallet = service().wallet
    if not wallet.enabled:
        return refused(ledger_disabled())
    on_chain = body.get("chain", False)
    if not isinstance(on_chain, bool):
        return error("bad_request", "chain must be true or false")
    try:
        return jsonify(await wallet.verify(on_chain))
    except ServiceError as e:
        return refused(e)


@ledger_api.post("/ledger/anchor")
async def anchor():
    denied = require_sysop()
    if denied:
        return denied
    try:
        return jsonify(await service().wallet.anchor())
    except ServiceError as e:
        return refused(e)


@ledger_api.get("/ledger/export")
async def export():
    wallet = service().wallet
    if not wallet.enabled:
        return refused(ledger_disabled())
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "jsonl"):
        return error("bad_request", "format must be json or jsonl")
    try:
        who, rows = await wallet.export()
    except ServiceError as e:
        return refused(e)
    if fmt == "jsonl":
        return Response("".join(json.dumps(r) + "\n" for r in rows), mimetype="application/x-ndjson")
    return jsonify({**who, "count": len(rows), "entries": rows,
                    "encoding": "raw = base64 of the entry's canonical msgpack bytes (docs/ledger.md)"})


@ledger_api.post("/wallet/settle")
async def settle():
    denied = require_sysop()
    if denied:
        return denied
    body, err = await _body()
    if err:
        return err
    try:
        out = await service().wallet.settle(body.get("peer"), body.get("amount"))
    except ServiceError as e:
        return refused(e)
    settled, errors = out["settled"], out["errors"]
    if errors and not settled:
        return jsonify({"error": {"code": "settle_failed", "message": "; ".join(f"{x['peer']}: {x['error']}"
                                                                              for x in errors)},
                        "settled": settled, "errors": errors}), 502
    return jsonify(out)


@ledger_api.get("/wallet/users")
async def user_accounts():
    denied = require_sysop()
    if denied:
        return denied
    try:
        return jsonify(await service().wallet.user_accounts())
    except ServiceError as e:
        return refused(e)


@ledger_api.post("/wallet/users/credit")
async def credit_user():
    denied = require_sysop()
    if denied:
        return denied
    body, err = await _body()
    if err:
        return err
    try:
        return jsonify(await service().wallet.credit_user(body.get("user"), body.get("amount"), body.get("id")))
    except ServiceError as e:
        return refused(e)
