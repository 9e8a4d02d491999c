"""The quart-trio app: one place that builds it, so every API and page is registered the same way."""

from __future__ import annotations

import ipaddress
import logging
import secrets
from urllib.parse import urlsplit

from quart import jsonify, request, websocket
from quart_trio import QuartTrio

from .api import api
from .intake import UiState
from .ledger_api import ledger_api
from .meta import meta
from .openai_api import openai_bp
from .pages import pages
from .realm_api import realm_api
from .sysop import sysop
from .ws import ws_bp

log = logging.getLogger("mtor.ui")

# Pages and their assets carry no data: a browser must be able to load them before it can send a token.
PUBLIC_PATHS = ("/", "/favicon.ico")
PUBLIC_PREFIXES = ("/static/",)
# A cross-site <form> can only send these content types (and no custom headers) without a preflight;
# multipart is also needed by /v1/audio/transcriptions, so multipart is allowed but Origin-checked.
JSON_TYPES = ("application/json",)
FORM_TYPES = ("multipart/form-data",)
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def same_origin(origin: str, host: str) -> bool:
    """Origin "http://127.0.0.1:9000" against the Host header "127.0.0.1:9000"."""
    if origin in ("", "null"):
        return origin == ""
    try:
        return urlsplit(origin).netloc.lower() == host.lower()
    except ValueError:
        return False


def create_app(node) -> QuartTrio:
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024  # the largest intent input plus base64 overhead
    app.config["MAX_FORM_MEMORY_SIZE"] = 64 * 1024 * 1024
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["mtor_node"] = node
    app.extensions["mtor_ui"] = UiState(node)
    for bp in (api, realm_api, ledger_api, sysop, openai_bp, meta, ws_bp, pages):
        app.register_blueprint(bp)

    def error(code: str, message: str, status: int):
        return jsonify({"error": {"code": code, "message": message}}), status

    access_token = node.config["http.access_token"]
    if not is_loopback(node.config["http.host"]):
        if not access_token:
            raise ValueError("http.access_token must be set when http.host is not a loopback address")

        def token_ok(headers, args) -> bool:
            supplied = headers.get("Authorization", "").removeprefix("Bearer ").strip() or args.get("token", "")
            return secrets.compare_digest(supplied.encode(errors="replace"), access_token.encode())

        @app.before_request
        async def require_token():
            if request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES):
                return None
            if not token_ok(request.headers, request.args):
                return error("unauthorized", "an access token is required", 401)

        @app.before_websocket
        async def require_ws_token():
            if not token_ok(websocket.headers, websocket.args):
                return error("unauthorized", "an access token is required (?token=)", 401)

    @app.before_request
    async def csrf_guard():
        """A page on another site must not be able to change anything here through the browser."""
        if request.method not in STATE_CHANGING:
            return None
        if not same_origin(request.headers.get("Origin", ""), request.headers.get("Host", "")):
            return error("cross_origin", "requests from another origin are refused", 403)
        ctype = (request.mimetype or "").lower()
        if ctype and ctype not in JSON_TYPES + FORM_TYPES:
            return error("unsupported_media_type", "send application/json (or multipart/form-data for uploads)", 415)
        return None

    @app.after_request
    async def close_if_body_unread(response):
        # A refused request's body is never read; on a kept-alive connection hypercorn then waits
        # for it to be consumed and the client's next request hangs. Closing is cheap and certain.
        if (request.content_length or request.headers.get("Transfer-Encoding")) and \
                (response.status_code >= 400 or request.method in ("GET", "HEAD", "OPTIONS")):
            response.headers["Connection"] = "close"
        return response

    @app.before_websocket
    async def ws_origin_guard():
        # Browsers always send Origin on a WebSocket upgrade and never enforce same-origin on it themselves.
        if not same_origin(websocket.headers.get("Origin", ""), websocket.headers.get("Host", "")):
            return error("cross_origin", "WebSocket connections from another origin are refused", 403)
        return None

    @app.errorhandler(400)
    async def bad_request(_):
        return error("bad_request", "the request could not be read", 400)

    @app.errorhandler(404)
    async def not_found(_):
        return error("not_found", f"no such endpoint: {request.method} {request.path}", 404)

    @app.errorhandler(405)
    async def not_allowed(e):
        response, status = error("method_not_allowed", f"{request.method} is not allowed on {request.path}", 405)
        response.headers["Allow"] = ", ".join(sorted(getattr(e, "valid_methods", None) or []))  # RFC 9110
        return response, status

    @app.errorhandler(413)
    async def too_large(_):
        return error("too_large", "the request body is too large", 413)

    @app.errorhandler(415)
    async def unsupported(_):
        return error("unsupported_media_type", "unsupported content type", 415)

    return app
