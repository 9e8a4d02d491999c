"""Realm apps over HTTP: GET /api/v1/apps lists them, POST /api/v1/apps/NAME {"text": "..."} runs one.

Apps run here, on the broker node, and never leave it. A private app (mail reads the operator's
own mailbox) answers only a request from this machine or one with the sysop token.
"""

from __future__ import annotations

import ipaddress
import logging

from quart import Blueprint, jsonify, request

from mtor_node.apps import AppError, describe, find
from mtor_node.intents import IntentError

from .api import error, json_body, require_sysop, service

log = logging.getLogger("mtor.ui.apps")

apps_api = Blueprint("apps_v1", __name__, url_prefix="/api/v1")

STATUS = {"not_found": 404, "bad_request": 400, "not_configured": 409, "airgapped": 409, "not_broker": 409,
          "offline": 503, "failed": 502, "forbidden": 403}


def is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


@apps_api.get("/apps")
async def list_apps():
    return jsonify({"apps": describe(service().config.values)})


@apps_api.post("/apps/<name>")
async def run_app(name: str):
    svc = service()
    try:
        app = find(name)
        body = await json_body(required=False)
    except AppError as e:
        return error(e.code, e.message, STATUS.get(e.code, 400))
    except IntentError as e:
        return error(e.code, e.message, 400)
    if "broker" not in svc.roles:
        return error("not_broker", "apps run on broker nodes only; this node is a worker", 409)
    if app.private and not is_loopback(request.remote_addr or ""):
        denied = require_sysop()
        if denied:
            return error("forbidden", f"the {app.name} app reads the operator's own data: only from this machine or with the sysop token", 403)
    text = body.get("text", "")
    try:
        answer = await app.run(text if isinstance(text, str) else None, svc.config.values)
    except AppError as e:
        log.info("app %s: %s (%s)", app.name, e.message, e.code)
        return error(e.code, e.message, STATUS.get(e.code, 400))
    return jsonify({"app": app.name, **answer.to_dict()})
