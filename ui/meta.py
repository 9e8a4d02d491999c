"""What describes the node to machines: the OpenAPI document and Prometheus metrics."""

from __future__ import annotations

from quart import Blueprint, jsonify, request

from .intake import ui_state
from .openapi import openapi_document

meta = Blueprint("meta", __name__)


@meta.get("/openapi.json")
async def openapi():
    return jsonify(openapi_document())


@meta.get("/metrics")
async def metrics():
    # prometheus-client's exposition of the node's registry, in the format the scraper accepts
    body, content_type = ui_state().metrics.exposition(request.headers.get("Accept"))
    return body, 200, {"Content-Type": content_type}
