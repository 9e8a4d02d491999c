"""Sysop actions under /api/v1: every one needs the X-Sysop-Token header.

Peer blocks and prices live in realm_api.py, anchoring and grants in ledger_api.py.
"""

from __future__ import annotations

import time

from quart import Blueprint, jsonify

from mtor_node.intents import IntentError

from .api import USER_ID, error, json_body, require_sysop, service
from .intake import ui_state

sysop = Blueprint("sysop_v1", __name__, url_prefix="/api/v1")

MAX_BROADCAST_CHARS = 500
KEEP_BROADCASTS = 5


@sysop.before_request
async def only_sysop():
    return require_sysop()


@sysop.get("/users")
async def users():
    return jsonify({"users": service().users()})


async def _set_banned(user: str, banned: bool):
    if not USER_ID.match(user):
        return error("bad_request", "user must be 1–64 letters, digits or _.:@-")
    cancelled = service().set_banned(user, banned)  # a ban also ends what the user has waiting or running
    return jsonify({"user": user, "banned": banned, "cancelled": cancelled})


@sysop.post("/users/<user>/ban")
async def ban(user: str):
    return await _set_banned(user, True)


@sysop.post("/users/<user>/unban")
async def unban(user: str):
    return await _set_banned(user, False)


@sysop.post("/queue/<intent_id>/cancel")
async def cancel_any(intent_id: str):
    try:
        body = await json_body(required=False)
    except IntentError as e:
        return error(e.code, e.message)
    reason = body.get("reason")
    reason = reason[:200] if isinstance(reason, str) and reason.strip() else "cancelled by the sysop"
    if not service().broker.cancel(intent_id, reason):
        return error("not_found", f"no queued or running intent {intent_id}", 404)
    return jsonify({"cancelled": intent_id, "reason": reason})


@sysop.post("/broadcast")
async def broadcast():
    try:
        body = await json_body()
    except IntentError as e:
        return error(e.code, e.message)
    message = body.get("message")
    if not isinstance(message, str) or not message.strip() or len(message) > MAX_BROADCAST_CHARS:
        return error("bad_request", f"message must be a non-empty string of at most {MAX_BROADCAST_CHARS} characters")
    state = ui_state()
    msg = {"type": "broadcast", "message": message.strip(), "from": "sysop", "at": time.time()}
    state.broadcasts = (state.broadcasts + [msg])[-KEEP_BROADCASTS:]
    delivered = sum(1 for conn in list(state.connections) if conn.push_nowait(msg))
    state.metrics.broadcast_sent()
    return jsonify({"delivered": delivered})
