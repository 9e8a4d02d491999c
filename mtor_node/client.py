"""The CLI's side of the local HTTP API: find the running node, call it, stream its events."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Iterator

import httpx
import platformdirs

from .node import RUNTIME_NAME, SYSOP_TOKEN_NAME


class ClientError(Exception):
    """Something the shell user should read; `exit_code` follows common conventions."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def default_data_dir() -> Path:
    env = os.environ.get("MTOR_DATA_DIR")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("mtor-node"))


def node_url(data_dir: Path, url: str | None = None) -> str:
    if url:
        return url.rstrip("/")
    try:
        return json.loads((data_dir / RUNTIME_NAME).read_text())["http"]
    except (OSError, ValueError, KeyError):
        return f"http://127.0.0.1:{os.environ.get('MTOR_PORT', '9000')}"


def data_dir_of(args) -> Path:
    """The data dir a CLI command works on: --data-dir, else $MTOR_DATA_DIR, else the platform's."""
    return (args.data_dir or default_data_dir()).expanduser().resolve()


def client_of(args, timeout: float = 30.0) -> "NodeClient":
    """A client of the node that a CLI command's --data-dir / --url name."""
    return NodeClient(data_dir_of(args), args.url, timeout)


class NodeClient:
    def __init__(self, data_dir: Path, url: str | None = None, timeout: float = 30.0):
        self.data_dir = data_dir
        self.url = node_url(data_dir, url)
        headers = {}
        token = os.environ.get("MTOR_ACCESS_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def sysop_headers(self) -> dict:
        try:
            return {"X-Sysop-Token": (self.data_dir / SYSOP_TOKEN_NAME).read_text().strip()}
        except OSError:
            raise ClientError(f"no sysop token in {self.data_dir}; sysop commands run on the node's own machine") from None

    def _request(self, method: str, path: str, **kw) -> dict:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.ConnectError:
            raise self._not_running() from None
        except httpx.TimeoutException:
            raise ClientError(f"the node at {self.url} did not answer in time", 3) from None
        return self._json(r)

    def _not_running(self) -> ClientError:
        return ClientError(f"no node is running at {self.url}; start one with `mtor-node start`", 3)

    @staticmethod
    def _json(r: httpx.Response) -> dict:
        try:
            body = r.json()
        except ValueError:
            raise ClientError(f"the node answered HTTP {r.status_code} with something that is not JSON") from None
        if r.status_code >= 400:
            err = body.get("error", {}) if isinstance(body, dict) else {}
            raise ClientError(f"{err.get('message', body)} ({err.get('code', r.status_code)})", 4 if r.status_code < 500 else 5)
        return body

    def get(self, path: str, **kw) -> dict:
        return self._request("GET", path, **kw)

    def post(self, path: str, **kw) -> dict:
        return self._request("POST", path, **kw)

    @staticmethod
    def encode_intent(intent: dict) -> dict:
        """JSON body of an intent: image/audio bytes travel as base64 in `*_b64` fields."""
        body = dict(intent)
        for name in ("image", "audio"):
            if isinstance(body.get(name), (bytes, bytearray)):
                body[name + "_b64"] = base64.b64encode(body.pop(name)).decode()
        return body

    def stream_intent(self, intent: dict, timeout: float | None = None) -> Iterator[dict]:
        """POST an intent and yield its events; bytes come back decoded from `*_b64` fields."""
        body = self.encode_intent(intent)
        try:
            with self.http.stream("POST", "/api/v1/intents", params={"stream": "1"}, json=body,
                                  timeout=httpx.Timeout(10.0, read=timeout)) as r:
                if r.status_code >= 400:
                    r.read()
                    self._json(r)
                for line in r.iter_lines():
                    if line.strip():
                        yield _decode(json.loads(line))
        except httpx.ConnectError:
            raise self._not_running() from None
        except httpx.RemoteProtocolError:
            raise ClientError("the node closed the connection before the answer was complete", 5) from None
        except httpx.ReadTimeout:
            raise ClientError("the node stopped sending events (read timeout)", 3) from None


def _decode(event: dict) -> dict:
    for key in [k for k in event if k.endswith("_b64")]:
        event[key[:-4]] = base64.b64decode(event.pop(key))
    return event
