"""Sysop actions under /api/v1: every one needs the X-Sysop-Token header.

Features the node does not have yet (setting prices at run time) answer 501 with a message that
says so, rather than pretending. Peer blocks live in realm_api.py, anchoring in ledger_api.py.
"""

from __future__ import annotations

import time

from quart import Blueprint, jsonify

from mtor_node.intents import IntentError

from .api import USER_ID, error, json_body, node, require_sysop
from .intake import ui_state

sysop = Blueprint("sysop_v1", __name__, url_prefix="/api/v1")

MAX_BROADCAST_CHARS = 500
KEEP_BROADCASTS = 5


@sysop.before_request
async def only_sysop():
    return require_sysop()


def not_available(what: str):
    return error("not_available", f"{what} is not available yet on this node", 501)


@sysop.get("/users")
async def users():
    return jsonify({"users": node().store.users()})


async def _set_banned(user: str, banned: bool):
    if not USER_ID.match(user):
        return error("bad_request", "user must be 1–64 letters, digits or _.:@-")
    n = node()
    n.store.set_banned(user, banned)
    cancelled = 0
    if banned:  # a ban also ends what the user has waiting or running
        for t in list(n.broker.tickets.values()):
            if t.intent.user == user and n.broker.cancel(t.intent.id, "the user was banned by the sysop"):
                cancelled += 1
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
    if not node().broker.cancel(intent_id, reason):
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
    state.metrics.broadcasts += 1
    return jsonify({"delivered": delivered})


@sysop.post("/prices")
async def set_prices():
    """Body: {"prices": {kind: micro-tokens}, "peaking_threshold": number}. Needs node.set_prices."""
    try:
        body = await json_body()
    except IntentError as e:
        return error(e.code, e.message)
    prices, threshold = body.get("prices", {}), body.get("peaking_threshold")
    if not isinstance(prices, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**15 for k, v in prices.items()):
        return error("bad_request", "prices must map intent kinds to whole micro-tokens ≥ 0")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 1 <= threshold <= 100):
        return error("bad_request", "peaking_threshold must be a number from 1 to 100 (a surge multiplier)")
    n = node()
    # The hook the node would offer: Network.set_prices(prices=..., peaking_threshold=...).
    fn = getattr(getattr(n, "network", None), "set_prices", None) or getattr(n, "set_prices", None)
    if fn is None:
        return not_available("setting prices")
    result = fn(prices=prices, peaking_threshold=threshold)
    if hasattr(result, "__await__"):
        result = await result
    return jsonify({"prices": prices, "peaking_threshold": threshold, **(result if isinstance(result, dict) else {})})
