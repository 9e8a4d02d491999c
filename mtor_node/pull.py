"""Download a model like a hub client does, with progress and resume.

A hub id ("org/name") is listed through the hub's API (`GET {endpoint}/api/models/{id}/revision/{rev}`
-> `siblings[].rfilename`) and each file fetched from `{endpoint}/{id}/resolve/{rev}/{file}`; a
plain http(s) URL is one file. Each file is written to `NAME.part` and renamed when complete, so
a killed pull leaves a `.part` that the next pull continues with an HTTP Range request (a server
that ignores Range sends the whole file again, and the part is restarted). The endpoint is
`--endpoint`, else $HF_ENDPOINT, else https://huggingface.co.
"""

from __future__ import annotations

import fnmatch
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import quote, urlsplit

import httpx

DEFAULT_ENDPOINT = "https://huggingface.co"
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
MAX_FILES = 10_000
MAX_LISTING = 16 << 20


class PullError(Exception):
    pass


@dataclass
class Progress:
    file: str
    done: int
    total: int | None
    resumed_from: int
    started: float


def local_name(source: str) -> str:
    """The folder a pull lands in: "org/name" -> "org--name", a URL -> its file name's stem."""
    if HUB_ID.match(source):
        return source.replace("/", "--")
    name = Path(urlsplit(source).path).name
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100] or "download"


def _safe_rel(name: str) -> Path:
    p = Path(name)
    if p.is_absolute() or ".." in p.parts or not name or "\\" in name:
        raise PullError(f"the hub listed a file with an unsafe name: {name[:100]!r}")
    return p


def hub_files(client: httpx.Client, endpoint: str, repo: str, revision: str) -> list[str]:
    url = f"{endpoint}/api/models/{repo}/revision/{quote(revision, safe='')}"
    try:
        r = client.get(url)
    except httpx.HTTPError as e:
        raise PullError(f"cannot reach the hub at {endpoint}: {e}") from None
    if r.status_code == 404 or r.status_code == 401:
        raise PullError(f"the hub at {endpoint} has no model {repo!r} at revision {revision!r} (HTTP {r.status_code})")
    if r.status_code >= 400 or len(r.content) > MAX_LISTING:
        raise PullError(f"the hub at {endpoint} answered HTTP {r.status_code} for {repo!r}")
    try:
        siblings = r.json().get("siblings")
        names = [s["rfilename"] for s in siblings]
    except (ValueError, AttributeError, TypeError, KeyError):
        raise PullError(f"the hub's listing of {repo!r} is not the JSON a hub sends") from None
    if not names or len(names) > MAX_FILES or not all(isinstance(n, str) for n in names):
        raise PullError(f"the hub lists {len(names)} files for {repo!r}")
    for n in names:
        _safe_rel(n)
    return names


def fetch(client: httpx.Client, url: str, dest: Path, on_progress: Callable[[Progress], None]) -> int:
    """One file to dest, resuming dest.part; returns its size."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    started = time.monotonic()
    try:
        with client.stream("GET", url, headers=headers) as r:
            if r.status_code == 416 and have:  # the part is already whole
                total = have
            else:
                if r.status_code not in (200, 206):
                    raise PullError(f"{url}: HTTP {r.status_code}")
                if r.status_code == 200:
                    have = 0  # no Range support: start over
                total = _total(r, have)
                mode = "ab" if r.status_code == 206 else "wb"
                done = have
                with open(part, mode) as f:
                    for chunk in r.iter_bytes():  # as it arrives: a killed pull keeps all it got
                        f.write(chunk)
                        f.flush()
                        done += len(chunk)
                        if total is not None and done > total:
                            raise PullError(f"{url}: more bytes than announced ({total})")
                        on_progress(Progress(dest.name, done, total, have, started))
                    f.flush()
                    os.fsync(f.fileno())
                if total is not None and done != total:
                    raise PullError(f"{url}: the connection ended at {done} of {total} bytes; pull again to resume")
                total = done
    except httpx.HTTPError as e:
        raise PullError(f"{url}: {type(e).__name__}: {e}; pull again to resume") from None
    os.replace(part, dest)
    return total


def _total(r: httpx.Response, have: int) -> int | None:
    if r.status_code == 206:
        m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", r.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != have:
            raise PullError(f"the server resumed at a different byte than asked ({r.headers.get('Content-Range')!r})")
        return int(m.group(3)) if m.group(3) != "*" else None
    n = r.headers.get("Content-Length")
    return int(n) if n and n.isdigit() else None


def pull(source: str, into: Path, *, endpoint: str | None = None, revision: str = "main",
         include: list[str] | None = None, on_progress: Callable[[Progress], None] = lambda p: None,
         timeout: float = 60.0) -> tuple[Path, int]:
    """Download `source` (a hub id or a URL) into `into/local_name(source)`; returns (folder or file, bytes)."""
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    target = into / local_name(source)
    token = os.environ.get("HF_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(timeout=httpx.Timeout(timeout, connect=15.0), follow_redirects=True, headers=headers) as client:
        if HUB_ID.match(source):
            names = hub_files(client, endpoint, source, revision)
            if include:
                names = [n for n in names if any(fnmatch.fnmatch(n, g) for g in include)]
                if not names:
                    raise PullError(f"no file of {source!r} matches {', '.join(include)}")
            total = 0
            for name in names:
                dest = target / _safe_rel(name)
                dest.parent.mkdir(parents=True, exist_ok=True)
                if dest.exists():
                    total += dest.stat().st_size
                    continue
                url = f"{endpoint}/{source}/resolve/{quote(revision, safe='')}/{quote(name)}"
                total += fetch(client, url, dest, on_progress)
            return target, total
        if urlsplit(source).scheme not in ("http", "https"):
            raise PullError(f"{source!r} is neither a hub id (org/name) nor an http(s) URL")
        into.mkdir(parents=True, exist_ok=True)
        if target.exists():
            return target, target.stat().st_size
        return target, fetch(client, source, target, on_progress)


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
