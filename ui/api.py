"""REST API under /api/v1: what the CLI uses, and the base that the browser UI builds on."""

from __future__ import annotations

import json
import secrets

import trio
from quart import Blueprint, current_app, jsonify, request

from mtor_node.intents import Intent, IntentError

from .encoding import intent_from_json, jsonable

api = Blueprint("api_v1", __name__, url_prefix="/api/v1")


def node():
    return current_app.extensions["mtor_node"]


def error(code: str, message: str, status: int = 400):
    return jsonify({"error": {"code": code, "message": message}}), status


def require_sysop():
    supplied = request.headers.get("X-Sysop-Token", "")
    if not secrets.compare_digest(supplied.encode(), node().sysop_token.encode()):
        return error("forbidden", "this action needs the sysop token (X-Sysop-Token header)", 403)
    return None


@api.get("/status")
async def status():
    return jsonify(node().status())


@api.get("/queue")
async def queue():
    return jsonify({"queue": node().broker.queue_snapshot()})


@api.get("/history")
async def history():
    user = request.args.get("user")
    try:
        limit = min(max(int(request.args.get("limit", 50)), 1), 500)
    except ValueError:
        return error("bad_request", "limit must be a whole number")
    return jsonify({"history": node().store.history(user, limit)})


async def read_json():
    """The request body as JSON, or IntentError: never a 500 for bytes that are not UTF-8 JSON."""
    raw = await request.get_data(as_text=False)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise IntentError("bad_request", "the body must be JSON") from None


async def submit_from_request():
    """Validate the body and queue the intent; returns (ticket, None) or (None, error response)."""
    n = node()
    if "broker" not in n.roles:
        return None, error("not_a_broker", "this node runs without the broker role and takes no intents from users", 409)
    try:
        d = intent_from_json(await read_json())
        d.setdefault("timeout", n.config["queue.timeout_s"])
        intent = Intent.from_dict(d)
        return n.broker.submit(intent), None
    except IntentError as e:
        status = 503 if e.code in ("queue_full", "shutting_down") else 403 if e.code == "banned" else 400
        return None, error(e.code, e.message, status)


@api.post("/intents")
async def create_intent():
    """Run an intent. `?stream=1`: NDJSON events as they happen; otherwise the final event as JSON."""
    ticket, err = await submit_from_request()
    if err:
        return err
    broker = node().broker
    if request.args.get("stream") in ("1", "true"):
        async def events():
            finished = False
            try:
                async for event in ticket.events:
                    finished = event["type"] in ("result", "error")
                    yield (json.dumps(jsonable(event)) + "\n").encode()
            finally:
                if not finished:  # the client went away: stop the work it asked for
                    broker.cancel(ticket.intent.id, "the client disconnected")
        return events(), 200, {"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"}
    final = None
    try:
        async for event in ticket.events:
            if event["type"] in ("result", "error"):
                final = event
    finally:
        if final is None:
            broker.cancel(ticket.intent.id, "the client disconnected")
    if final["type"] == "error":
        return jsonify({"error": jsonable(final)}), 504 if final["code"] == "timeout" else 422
    return jsonify(jsonable(final))


@api.post("/intents/<intent_id>/cancel")
async def cancel_intent(intent_id: str):
    # Users cancel their own intents by id (ids are unguessable); the sysop may give a reason.
    ok = node().broker.cancel(intent_id, "cancelled by the user")
    if not ok:
        return error("not_found", f"no queued or running intent {intent_id}", 404)
    return jsonify({"cancelled": intent_id})


@api.post("/shutdown")
async def shutdown():
    denied = require_sysop()
    if denied:
        return denied
    trio.lowlevel.spawn_system_task(node().stop)
    return jsonify({"stopping": True})
