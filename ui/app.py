"""The quart-trio app: one place that builds it, so every API and page is registered the same way."""

from __future__ import annotations

import ipaddress
import logging
import secrets

from quart import jsonify, request, websocket
from quart_trio import QuartTrio

from mtor_node.service import NodeParts, NodeService

from .anthropic_api import anthropic_bp
from .api import api
from .http_guard import MAX_BODY, HostAllowlist, HttpGuard
from .apps_api import apps_api
from .models_api import models_api
from .sysop_console import sysop_console
from .intake import UiState
from .ledger_api import ledger_api
from .meta import meta
from .ollama_api import ollama_bp
from . import openai_api, openai_audio, openai_embed  # noqa: F401 - their routes, on openai_bp
from .openai_common import openai_bp
from .pages import CSP, pages
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


# Answers that are data, not pages: nothing in them may run, be framed or be sniffed into HTML.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
RETRY_AFTER_S = "2"  # a full queue or a stopping node: when a client may try again


def create_app(node: NodeParts) -> QuartTrio:
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # the largest intent input plus base64 overhead
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_BODY
    app.config["JSON_SORT_KEYS"] = False
    app.config["RESPONSE_TIMEOUT"] = None  # Quart cuts any response at 60 s: a long chat stream is legitimate (intent timeouts bound it)
    # Routes reach the node only through its facade (mtor_node/service.py, docs/architecture.md).
    svc = NodeService(node)
    app.extensions["mtor_service"] = svc
    app.extensions["mtor_ui"] = UiState(svc)
    for bp in (api, apps_api, models_api, sysop_console, realm_api, ledger_api, sysop, openai_bp, ollama_bp, anthropic_bp, meta, ws_bp, pages):
        app.register_blueprint(bp)

    def error(code: str, message: str, status: int):
        return jsonify({"error": {"code": code, "message": message}}), status

    # Before Quart sees anything: the Host allowlist (DNS rebinding), body limits and deadlines.
    allow = HostAllowlist.from_config(svc.config)
    app.asgi_app = HttpGuard(app.asgi_app, allow, body_timeout_s=svc.config["http.body_timeout_s"])

    access_token = svc.config["http.access_token"]
    if not is_loopback(svc.config["http.host"]):
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
        if not allow.allows_origin(request.headers.get("Origin", "")):
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

    @app.after_request
    async def security_headers(response):
        # Every answer, /static/* included: the page's CSP for what a browser renders, none for data.
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        if "Content-Security-Policy" not in h:
            page = request.path == "/" or request.path.startswith(PUBLIC_PREFIXES)
            h["Content-Security-Policy"] = CSP if page else API_CSP
        if response.status_code == 503 and "Retry-After" not in h:
            h["Retry-After"] = RETRY_AFTER_S  # queue_full, shutting_down, a peer-less realm: all temporary
        return response

    @app.before_websocket
    async def ws_origin_guard():
        # Browsers always send Origin on a WebSocket upgrade and never enforce same-origin on it themselves.
        if not allow.allows_origin(websocket.headers.get("Origin", "")):
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
