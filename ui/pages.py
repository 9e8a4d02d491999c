"""The browser realm: one page at /, its vendored assets under /static (no CDN, ever)."""

from __future__ import annotations

from quart import Blueprint, current_app, send_from_directory

pages = Blueprint("pages", __name__)

# The page builds everything from escaped text and DOM nodes; this keeps any slip from running code.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


@pages.get("/")
async def index():
    response = await send_from_directory(current_app.static_folder, "index.html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


@pages.get("/favicon.ico")
async def favicon():
    return await send_from_directory(current_app.static_folder, "favicon.svg", mimetype="image/svg+xml")
