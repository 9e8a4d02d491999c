"""REST for the realm: peers with their hardware, models, prices and health; sysop blocks.
Everything here goes through the node's facade (mtor_node/service.py, docs/architecture.md)."""

from __future__ import annotations

from quart import Blueprint, jsonify

from mtor_node.intents import Intent, IntentError
from mtor_node.service import KEEP, ServiceError

from .api import error, read_json, refused, require_sysop, service
from .encoding import intent_from_json

realm_api = Blueprint("realm_api", __name__, url_prefix="/api/v1")


@realm_api.get("/peers")
async def peers():
    return jsonify(service().peers())


async def _block(peer_id: str, blocked: bool):
    denied = require_sysop()
    if denied:
        return denied
    svc = service()
    if not svc.has_network:
        return error("no_network", "this node runs without the p2p layer", 409)
    if len(peer_id) > 128 or not peer_id.isalnum():
        return error("bad_request", "not a peer id")
    try:
        svc.set_blocked(peer_id, blocked)
    except ServiceError as e:
        return refused(e)
    return jsonify({"peer_id": peer_id, "blocked": blocked})


@realm_api.post("/peers/<peer_id>/block")
async def block(peer_id: str):
    return await _block(peer_id, True)


@realm_api.post("/peers/<peer_id>/unblock")
async def unblock(peer_id: str):
    return await _block(peer_id, False)


@realm_api.post("/quote")
async def quote():
    """The price of an intent before it is sent: the best offer in the realm (own worker included)."""
    try:
        intent = Intent.from_dict(intent_from_json(await read_json()))
    except IntentError as e:
        return error(e.code, e.message)
    return jsonify(service().quote(intent))


@realm_api.get("/prices")
async def get_prices():
    return jsonify(service().prices())


@realm_api.post("/prices")
async def set_prices():
    """Sysop: change this worker's base prices and peaking threshold at run time (announced at once)."""
    denied = require_sysop()
    if denied:
        return denied
    svc = service()
    if not svc.has_network:
        return error("no_network", "this node runs without the p2p layer", 409)
    try:
        body = await read_json()
    except IntentError as e:
        return error(e.code, e.message)
    if not isinstance(body, dict) or not isinstance(body.get("prices", {}), dict):
        return error("bad_request", 'send {"prices": {"chat": 1500, ...}, "peaking": 2.0}')
    try:
        return jsonify(svc.set_prices(body.get("prices", {}), body.get("peaking", KEEP)))
    except ServiceError as e:
        return refused(e)
