"""What the remote adapters share: server URL and model name from the spec, timeouts, auth, errors.

httpx.AsyncClient runs on trio (through anyio), so adapters stay on the event loop: no threads.
"""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import httpx

from .base import Backend, BackendError


def server_url(backend: Backend, default: str = "") -> str:
    """spec.options["url"], else spec.source (``http://host:port``, optionally ``url:`` prefixed)."""
    url = str(backend.spec.options.get("url") or backend.spec.source.removeprefix("url:") or default).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise BackendError("bad_config", f"model {backend.spec.name!r}: the server URL must start with http:// or https://, got {url!r}")
    return url


def remote_model(backend: Backend) -> str:
    """The model's name on the server: options["model"], else the registry entry's name."""
    return str(backend.spec.options.get("model") or backend.spec.name)


def timeouts(backend: Backend, read_default: float = 300.0) -> httpx.Timeout:
    opts = backend.spec.options
    return httpx.Timeout(float(opts.get("timeout_s", read_default)), connect=float(opts.get("connect_timeout_s", 10.0)))


def auth_headers(backend: Backend) -> dict[str, str]:
    """Bearer key from options["api_key"], or from the environment variable named by options["api_key_env"]."""
    opts = backend.spec.options
    key = opts.get("api_key") or (os.environ.get(str(opts["api_key_env"]), "") if opts.get("api_key_env") else "")
    return {"Authorization": f"Bearer {key}"} if key else {}


def error_message(body: bytes | str) -> str:
    """The server's own words from an error body: Ollama {"error": "..."}, OpenAI {"error": {"message"}},
    FastAPI/A1111 {"detail": ...} or {"error": ..., "errors": ...}; else the text itself."""
    text = body.decode(errors="replace") if isinstance(body, (bytes, bytearray)) else str(body)
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:500] or "(empty answer)"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err)[:500]
        if err:
            extra = data.get("errors") or data.get("message")
            return (f"{err}: {extra}" if isinstance(extra, str) and extra != err else str(err))[:500]
        if data.get("detail"):
            return str(data["detail"])[:500]
        if data.get("message"):
            return str(data["message"])[:500]
    return text.strip()[:500]


def raise_for_status(resp: httpx.Response, what: str, body: bytes | None = None) -> None:
    if resp.status_code < 400:
        return
    message = error_message(body if body is not None else resp.content)
    code = {401: "unauthorized", 403: "unauthorized", 404: "unavailable", 413: "too_large", 429: "busy"}.get(resp.status_code, "remote_error")
    raise BackendError(code, f"{what} answered HTTP {resp.status_code}: {message}",
                       retryable=resp.status_code == 429 or resp.status_code >= 500)


@asynccontextmanager
async def client(backend: Backend, url: str, read_default: float = 300.0) -> AsyncIterator[httpx.AsyncClient]:
    """An AsyncClient for one intent; transport failures become BackendErrors naming the server."""
    try:
        async with httpx.AsyncClient(base_url=url, timeout=timeouts(backend, read_default), headers=auth_headers(backend),
                                     trust_env=False, follow_redirects=False) as c:
            yield c
    except httpx.TimeoutException as e:
        raise BackendError("timeout", f"{url} did not answer in time ({type(e).__name__})", retryable=True) from e
    except httpx.TransportError as e:
        raise BackendError("unavailable", f"cannot reach {url}: {e or type(e).__name__}", retryable=True) from e


async def get_json(c: httpx.AsyncClient, path: str, what: str, **kw) -> Any:
    resp = await c.get(path, **kw)
    raise_for_status(resp, what)
    try:
        return resp.json()
    except ValueError as e:
        raise BackendError("remote_error", f"{what} answered something that is not JSON: {resp.text[:200]!r}") from e


async def post_json(c: httpx.AsyncClient, path: str, what: str, payload: dict, **kw) -> Any:
    resp = await c.post(path, json=payload, **kw)
    raise_for_status(resp, what)
    try:
        return resp.json()
    except ValueError as e:
        raise BackendError("remote_error", f"{what} answered something that is not JSON: {resp.text[:200]!r}") from e


def sniff_image_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def sniff_audio(data: bytes) -> tuple[str, str]:
    """(file name, mime type) for an upload, from the audio's magic bytes."""
    if data[:4] == b"RIFF":
        return "audio.wav", "audio/wav"
    if data[:4] == b"OggS":
        return "audio.ogg", "audio/ogg"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "audio.webm", "audio/webm"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "audio.mp3", "audio/mpeg"
    if data[:4] == b"fLaC":
        return "audio.flac", "audio/flac"
    return "audio.bin", "application/octet-stream"


def health_error(url: str, e: Exception) -> dict:
    message = e.message if isinstance(e, BackendError) else str(e) or type(e).__name__
    return {"ok": False, "url": url, "error": message, "models": [], "kinds": []}


def png_of(raw: bytes) -> tuple[bytes, tuple[int, int]]:
    """A remote server's image as PNG bytes and its size; an image that cannot be read is a remote_error."""
    from ._media import decode_image, png_bytes

    try:
        img = decode_image(raw, max_side=1 << 15)
    except BackendError as e:
        raise BackendError("remote_error", f"the server's image could not be read: {e.message}") from None
    if raw.startswith(b"\x89PNG"):
        return raw, img.size
    return png_bytes(img), img.size
