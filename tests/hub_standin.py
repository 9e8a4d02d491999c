"""A stand-in for a model hub on 127.0.0.1 (the real hub cannot be reached from tests), with the
parts of the Hugging Face Hub's documented HTTP behaviour a pull uses: `GET /api/models/{id}/revision/{rev}`
answers `{"id", "sha", "siblings": [{"rfilename"}]}`; `GET /{id}/resolve/{rev}/{file}` serves the
file with Content-Length, honours `Range: bytes=N-` with 206 and Content-Range (416 past the end).
`stall_after` makes the first full download of a file stop mid-way and hang, as a dropped or
killed transfer does, until the test lets go. Every request's path and Range are recorded."""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _json(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        import json

        srv = self.server
        path = unquote(urlsplit(self.path).path)
        srv.requests.append((path, self.headers.get("Range")))
        m = re.match(r"^/api/models/([^/]+/[^/]+)/revision/([^/]+)$", path)
        if m:
            if m.group(1) != srv.repo:
                return self._json(404, json.dumps({"error": "Repository not found"}))
            files = sorted(str(p.relative_to(srv.root)) for p in srv.root.rglob("*") if p.is_file())
            return self._json(200, json.dumps({"id": srv.repo, "sha": "0" * 40, "siblings": [{"rfilename": f} for f in files]}))
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        f = srv.root / m.group(3) if m and m.group(1) == srv.repo else None
        if f is None or not f.is_file() or ".." in m.group(3):
            return self._json(404, json.dumps({"error": "Entry not found"}))
        data = f.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(re.match(r"bytes=(\d+)-$", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        body = data[start:]
        stall = srv.stall_after if (not rng and srv.stall_after and len(body) > srv.stall_after and f.name not in srv.stalled) else None
        if stall:
            srv.stalled.add(f.name)
            self.wfile.write(body[:stall])
            self.wfile.flush()
            srv.stalling.set()
            srv.release.wait(60)  # hang like a dead transfer until the test has killed the client
            return
        self.wfile.write(body)


@contextmanager
def hub(root: Path, repo: str = "test-org/tiny-llama", stall_after: int | None = None):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.root, srv.repo, srv.stall_after = root, repo, stall_after
    srv.requests, srv.stalled = [], set()
    srv.stalling, srv.release = threading.Event(), threading.Event()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
