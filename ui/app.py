"""The quart-trio app: one place that builds it, so every API and page is registered the same way."""

from __future__ import annotations

import ipaddress
import secrets

from quart import jsonify, request
from quart_trio import QuartTrio

from .api import api


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def create_app(node) -> QuartTrio:
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024  # the largest intent input plus base64 overhead
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["mtor_node"] = node
    app.register_blueprint(api)

    access_token = node.config["http.access_token"]
    if not is_loopback(node.config["http.host"]):
        if not access_token:
            raise ValueError("http.access_token must be set when http.host is not a loopback address")

        @app.before_request
        async def require_token():
            supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            supplied = supplied or request.args.get("token", "")
            if not secrets.compare_digest(supplied.encode(), access_token.encode()):
                return jsonify({"error": {"code": "unauthorized", "message": "an access token is required"}}), 401

    @app.errorhandler(404)
    async def not_found(_):
        return jsonify({"error": {"code": "not_found", "message": f"no such endpoint: {request.method} {request.path}"}}), 404

    @app.errorhandler(405)
    async def not_allowed(_):
        return jsonify({"error": {"code": "method_not_allowed", "message": f"{request.method} is not allowed on {request.path}"}}), 405

    @app.errorhandler(413)
    async def too_large(_):
        return jsonify({"error": {"code": "too_large", "message": "the request body is too large"}}), 413

    return app
