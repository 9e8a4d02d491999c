"""What describes the node to machines: the OpenAPI document and Prometheus metrics."""

from __future__ import annotations

from quart import Blueprint, current_app, jsonify

from .intake import ui_state
from .openapi import openapi_document

meta = Blueprint("meta", __name__)


@meta.get("/openapi.json")
async def openapi():
    return jsonify(openapi_document(current_app.extensions["mtor_node"]))


@meta.get("/metrics")
async def metrics():
    state = ui_state()
    body = state.metrics.render(state.node.status())
    return body, 200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
