"""The sysop's console under /api/v1/sysop (every route needs the sysop token):

    GET /api/v1/sysop/logs?after=SEQ&level=WARNING&search=TEXT&limit=N   the live log (poll with after=)
    GET /api/v1/sysop/stats     lifetime totals and averages per kind, users ever, most users at once
    GET /api/v1/sysop/alerts    what the watchdog finds wrong now

The watchdog checks every WATCH_EVERY_S whether a healthy worker (this node's or a peer's) serves
chat and imagine; when that changes it logs a warning and sends every sysop page (one that said
`{"type": "hello", "sysop_token": ...}`) an `{"type": "alert", "audience": "sysop", ...}` message.
"""

from __future__ import annotations

import logging
import time

import trio
from quart import Blueprint, current_app, jsonify, request

from mtor_node.logs import RING, RING_SIZE
from mtor_node.service import NodeService

from .api import error, require_sysop, service
from .intake import ui_state

log = logging.getLogger("mtor.watchdog")

sysop_console = Blueprint("sysop_console_v1", __name__, url_prefix="/api/v1/sysop")

WATCHED = ("chat", "imagine")
WATCH_GRACE_S = 3.0  # let preloads finish before the first verdict
WATCH_EVERY_S = 5.0


@sysop_console.before_request
async def only_sysop():
    return require_sysop()


# ---- the live log ---------------------------------------------------------------------------

@sysop_console.get("/logs")
async def logs():
    try:
        after = int(request.args.get("after", 0))
        limit = int(request.args.get("limit", 200))
    except ValueError:
        return error("bad_request", "after and limit must be whole numbers")
    search = request.args.get("search", "")[:200]
    try:
        rows = RING.recent(after=after, level=request.args.get("level", "INFO"), search=search,
                           limit=max(1, min(limit, RING_SIZE)))
    except ValueError as e:
        return error("bad_request", str(e))
    return jsonify({"logs": [{k: v for k, v in r.items() if k != "levelno"} for r in rows], "last": RING.seq})


# ---- stats ----------------------------------------------------------------------------------

@sysop_console.get("/stats")
async def stats():
    svc = service()
    svc.note_users_at_once(len(ui_state().connections))
    return jsonify({**svc.lifetime_stats(),
                    "now": {"pages": len(ui_state().connections), "queue": svc.queue_length()}})


# ---- the watchdog ---------------------------------------------------------------------------


@sysop_console.get("/alerts")
async def alerts():
    return jsonify({"alerts": list(current_app.extensions.get("mtor_alerts", {}).values())})


@sysop_console.before_app_serving
async def start_watchdog():
    current_app.extensions["mtor_alerts"] = {}
    root = logging.getLogger()
    if RING not in root.handlers:  # `mtor-node start` attaches it (mtor_node/logs.py); an embedded node too
        root.addHandler(RING)
    current_app.add_background_task(_watch)


async def _watch():
    app = current_app._get_current_object()
    svc: NodeService = app.extensions["mtor_service"]
    state = app.extensions["mtor_ui"]
    current: dict = app.extensions["mtor_alerts"]
    await trio.sleep(WATCH_GRACE_S)
    while True:
        try:
            served = svc.served_kinds(WATCHED)
            svc.note_users_at_once(len(state.connections))
        except Exception:  # the watchdog must outlive whatever it watches
            log.exception("watchdog check failed")
            served = {}
        for kind, who in served.items():
            if who is None and kind not in current:
                msg = {"type": "alert", "audience": "sysop", "kind": "watchdog", "severity": "error", "about": kind,
                       "message": f"no healthy worker serves {kind}: not this node, no peer", "at": time.time()}
                current[kind] = msg
                log.warning("watchdog: %s", msg["message"])
                _send(state, msg)
            elif who is not None and kind in current:
                del current[kind]
                msg = {"type": "alert", "audience": "sysop", "kind": "watchdog", "severity": "ok", "about": kind,
                       "message": f"{kind} is served again ({who})", "at": time.time()}
                log.info("watchdog: %s", msg["message"])
                _send(state, msg)
        await trio.sleep(WATCH_EVERY_S)


def _send(state, msg: dict) -> None:
    """To sysop pages only: those that said hello with the sysop token."""
    for conn in list(state.connections):
        if getattr(conn, "sysop", False):
            conn.push_nowait(msg)
