"""REST API under /api/v1: what the CLI uses, and the base that the browser UI builds on."""

from __future__ import annotations

import json
import re
from contextlib import aclosing

import trio
from quart import Blueprint, current_app, jsonify, request

from mtor_node.intents import KINDS, Intent, IntentError
from mtor_node.service import NodeService, ServiceError

from .encoding import intent_from_json, jsonable
from .intake import BadJson, follow, read_json, http_status, submit, ui_state

api = Blueprint("api_v1", __name__, url_prefix="/api/v1")

NICKNAME = re.compile(r"^[^\x00-\x1f\x7f<>]{1,32}$")  # printable, no angle brackets: shown to others
USER_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")


def service() -> NodeService:
    """The node as the UI sees it: the facade of mtor_node/service.py (docs/architecture.md)."""
    return current_app.extensions["mtor_service"]


def error(code: str, message: str, status: int = 400):
    return jsonify({"error": {"code": code, "message": message}}), status


def refused(e: ServiceError):
    return error(e.code, e.message, e.status)


def is_sysop() -> bool:
    return service().is_sysop_token(request.headers.get("X-Sysop-Token", ""))


def require_sysop():
    if not is_sysop():
        return error("forbidden", "this action needs the sysop token (X-Sysop-Token header)", 403)
    return None


def asking_user() -> str | None:
    """The user a request speaks for: ?user=, else the intents' default user. None when malformed."""
    user = request.args.get("user", "local")
    return user if USER_ID.match(user) else None


async def json_body(required: bool = True):
    """The request body as a JSON object; None when absent and not required. Raises IntentError."""
    try:
        body = await read_json()
    except BadJson as e:
        raise IntentError("bad_request", e.message) from None
    if body is None and not required:
        return {}
    if not isinstance(body, dict):
        raise IntentError("bad_request", "the body must be a JSON object")
    return body


@api.get("/status")
async def status():
    return jsonify(service().status())


# What others have waiting shows only as its kind and place in line: ids (which cancel) and user
# names are the owner's and the sysop's.
PUBLIC_QUEUE_FIELDS = ("kind", "state", "position", "age_s")


@api.get("/queue")
async def queue():
    entries = service().broker.queue_snapshot()
    if is_sysop():
        return jsonify({"queue": entries})
    user = asking_user()
    if user is None:
        return error("bad_request", "user must be 1–64 letters, digits or _.:@-")
    return jsonify({"queue": [e if e["user"] == user else {k: e[k] for k in PUBLIC_QUEUE_FIELDS} for e in entries]})


@api.get("/history")
async def history():
    """A user's own queries; everyone's only with the sysop token."""
    try:
        limit = min(max(int(request.args.get("limit", 50)), 1), 500)
    except ValueError:
        return error("bad_request", "limit must be a whole number")
    user = request.args.get("user")
    if user is None and not is_sysop():
        return error("bad_request", "name the user whose history to show (?user=); all users' history needs the sysop token")
    if user is not None and not USER_ID.match(user):
        return error("bad_request", "user must be 1–64 letters, digits or _.:@-")
    return jsonify({"history": service().history(user, limit)})


async def submit_from_request():
    """Validate the body and queue the intent; returns (ticket, None) or (None, error response)."""
    try:
        d = intent_from_json(await json_body())
        return submit(ui_state(), d), None
    except IntentError as e:
        return None, error(e.code, e.message, http_status(e.code))


@api.post("/intents")
async def create_intent():
    """Run an intent. `?stream=1`: NDJSON events as they happen; otherwise the final event as JSON."""
    ticket, err = await submit_from_request()
    if err:
        return err
    state = ui_state()
    if request.args.get("stream") in ("1", "true"):
        async def events():
            async with aclosing(follow(state, ticket)) as evs:
                async for event in evs:
                    yield (json.dumps(jsonable(event)) + "\n").encode()
        return events(), 200, {"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"}
    final = None
    async with aclosing(follow(state, ticket)) as evs:
        async for event in evs:
            if event["type"] in ("result", "error"):
                final = event
    if final["type"] == "error":
        status = {"timeout": 504, "too_large": 413}.get(final["code"], 422)  # too_large: e.g. audio found too long
        return jsonify({"error": jsonable(final)}), status
    return jsonify(jsonable(final))


@api.post("/intents/<intent_id>/cancel")
async def cancel_intent(intent_id: str):
    # Users cancel their own intents (?user=, the same user they were sent as); the sysop any.
    broker = service().broker
    ticket = broker.tickets.get(intent_id)
    if ticket is not None and not is_sysop() and ticket.intent.user != asking_user():
        ticket = None  # someone else's: as if it did not exist, so ids cannot be probed
    if ticket is None or not broker.cancel(intent_id, "cancelled by the user"):
        return error("not_found", f"no queued or running intent {intent_id} of yours", 404)
    return jsonify({"cancelled": intent_id})


@api.post("/nickname")
async def set_nickname():
    try:
        body = await json_body()
    except IntentError as e:
        return error(e.code, e.message)
    user, nick = body.get("user"), body.get("nickname")
    if not isinstance(user, str) or not USER_ID.match(user):
        return error("bad_request", "user must be 1–64 letters, digits or _.:@-")
    if not isinstance(nick, str) or not NICKNAME.match(nick.strip()):
        return error("bad_request", "nickname must be 1–32 printable characters without < or >")
    if service().is_banned(user):
        return error("banned", f"user {user!r} is banned on this node", 403)
    service().set_nickname(user, nick.strip())
    return jsonify({"user": user, "nickname": nick.strip()})


@api.get("/stats")
async def stats():
    svc, state = service(), ui_state()
    return jsonify({
        **svc.query_stats(),
        "broker": svc.broker_counters(),
        "outcomes": [{"kind": k, "outcome": o, "count": c} for (k, o), c in sorted(state.metrics.outcomes.items())],
        "connections": len(state.connections),
    })


@api.get("/quote")
async def quote():
    """The price of an intent before it is sent: the best offer in the realm, or free on a node alone."""
    kind, model = request.args.get("kind", "chat"), request.args.get("model") or None
    if kind not in KINDS:
        return error("bad_kind", f"kind {kind[:20]!r} is not one of {', '.join(KINDS)}")
    svc = service()
    if not svc.has_network:
        return jsonify({"kind": kind, "price": 0, "unit": "micro-tokens", "free": True, "ok": True, "message": ""})
    try:
        intent = Intent.from_dict({"kind": kind, "model": model, **SAMPLE_INPUTS[kind]})
        q = svc.quote(intent)
    except IntentError as e:
        return error(e.code, e.message)
    price = q.get("price") if isinstance(q.get("price"), int) else None
    return jsonify({"kind": kind, "price": price, "unit": "micro-tokens", "free": price == 0, "ok": bool(q.get("ok")),
                    "peer": q.get("peer"), "local": bool(q.get("local")), "message": q.get("message") or ""})


# A small typical input per kind, for quoting before the real one exists.
SAMPLE_INPUTS = {
    "chat": {"messages": [{"role": "user", "content": "hello"}]},
    "vision": {"prompt": "Describe this image.", "image": b"\x89PNG"},
    "imagine": {"prompt": "a picture"},
    "transcribe": {"audio": b"RIFF"},
    "speak": {"prompt": "hello"},
    "embed": {"texts": ["hello"]},
}


@api.post("/shutdown")
async def shutdown():
    denied = require_sysop()
    if denied:
        return denied
    trio.lowlevel.spawn_system_task(service().stop)
    return jsonify({"stopping": True})
