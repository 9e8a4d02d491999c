"""REST for the realm: peers with their hardware, models, prices and health; sysop blocks."""

from __future__ import annotations

from quart import Blueprint, jsonify

from .api import error, node, require_sysop

realm_api = Blueprint("realm_api", __name__, url_prefix="/api/v1")


@realm_api.get("/peers")
async def peers():
    n = node()
    if n.federation is None:
        return jsonify({"realm": None, "peers": [], "stats": {}})
    return jsonify({"realm": n.network.realm.name, "self": n.peer_id, "listen_addrs": n.federation.listen_addrs,
                    "peers": n.federation.peers.snapshot(), "stats": n.federation.stats})


async def _block(peer_id: str, blocked: bool):
    denied = require_sysop()
    if denied:
        return denied
    n = node()
    if n.federation is None:
        return error("no_network", "this node runs without the p2p layer", 409)
    if len(peer_id) > 128 or not peer_id.isalnum():
        return error("bad_request", "not a peer id")
    (n.federation.block if blocked else n.federation.unblock)(peer_id)
    if n.peer_blocks is not None:  # kept across restarts (mtor_node/blocks.py)
        n.peer_blocks.set(peer_id, blocked)
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
    from mtor_node.intents import Intent, IntentError

    from .api import read_json
    from .encoding import intent_from_json

    n = node()
    try:
        intent = Intent.from_dict(intent_from_json(await read_json()))
    except IntentError as e:
        return error(e.code, e.message)
    local = n.models.resolve(intent.kind, intent.model) if n.models else None
    if n.network is None:
        ok = local is not None
        return jsonify({"ok": ok, "price": 0 if ok else None, "peer": n.peer_id if ok else None, "local": ok,
                        "message": "" if ok else f"no local model serves {intent.kind}"})
    return jsonify(n.network.quote(intent, local_model=local))


@realm_api.get("/prices")
async def get_prices():
    n = node()
    if n.network is None:
        return jsonify({"prices": {}, "surge": 1.0, "peaking": None})
    return jsonify({"prices": dict(n.network.prices.prices), "surge": n.network.surge.value(), "peaking": n.network.peaking})


@realm_api.post("/prices")
async def set_prices():
    """Sysop: change this worker's base prices and peaking threshold at run time (announced at once)."""
    denied = require_sysop()
    if denied:
        return denied
    from federation.pricing import PriceError, PriceTable

    from mtor_node.intents import IntentError

    from .api import read_json

    n = node()
    if n.network is None:
        return error("no_network", "this node runs without the p2p layer", 409)
    try:
        body = await read_json()
    except IntentError as e:
        return error(e.code, e.message)
    if not isinstance(body, dict) or not isinstance(body.get("prices", {}), dict):
        return error("bad_request", 'send {"prices": {"chat": 1500, ...}, "peaking": 2.0}')
    try:
        table = n.network.prices.with_overrides(body.get("prices", {}))
        PriceTable(table.prices)
    except (PriceError, TypeError, ValueError) as e:
        return error("bad_price", str(e))
    peaking = body.get("peaking", n.network.peaking)
    if peaking is not None and (isinstance(peaking, bool) or not isinstance(peaking, (int, float)) or not 0 <= peaking <= 10):
        return error("bad_price", "peaking must be a number from 0 to 10 (0: off)")
    n.network.set_prices(table, peaking or None)
    return jsonify({"prices": dict(table.prices), "peaking": peaking or None})
