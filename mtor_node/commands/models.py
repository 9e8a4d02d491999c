"""`mtor-node models list | pull | import | rm | load | unload`: the model manager.

`pull` downloads (hub id or URL) into the data dir's models/local/ with progress and resume;
`import` registers a local file or folder, or a hub id, with the running node (run-time registry,
kept across restarts); `rm` removes a model from the node and, with --files, its pulled files.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

LOCAL = Path("models") / "local"


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _local_dir(args) -> Path:
    from ..client import data_dir_of

    return data_dir_of(args) / LOCAL


def _pulled(args) -> list[dict]:
    from ..pull import size_of

    d = _local_dir(args)
    if not d.is_dir():
        return []
    return [{"name": p.name, "path": str(p), "bytes": size_of(p), "partial": any(p.rglob("*.part")) or p.suffix == ".part"}
            for p in sorted(d.iterdir())]


def cmd_list(args) -> int:
    from ..client import client_of
    from ..client import ClientError

    try:
        running = client_of(args, timeout=10).get("/api/v1/status")["models"]
    except ClientError as e:
        if e.exit_code != 3:
            raise
        running = None
    pulled = _pulled(args)
    if args.json:
        print(json.dumps({"node": running, "pulled": pulled}, indent=2))
        return 0
    if running is None:
        print("no node is running: only the files pulled into this data dir")
    else:
        print("on the node:")
        for m in running:
            print(f"  {m['name']:<28} {m['kind']:<11} {m['backend']:<20} {m['status']}" + (f"  ({m['error']})" if m.get("error") else ""))
    print(f"pulled into {_local_dir(args)}:" if pulled else f"nothing pulled into {_local_dir(args)}")
    for p in pulled:
        print(f"  {p['name']:<40} {_gib(p['bytes']):>11}" + ("  (partial: pull again to resume)" if p["partial"] else ""))
    return 0


def cmd_pull(args) -> int:
    from ..pull import PullError, pull

    last = [0.0]

    def progress(p):
        now = time.monotonic()
        if now - last[0] < 0.25 and (p.total is None or p.done < p.total):
            return
        last[0] = now
        rate = (p.done - p.resumed_from) / max(1e-3, now - p.started) / 2**20
        pct = f" {100 * p.done / p.total:5.1f}%" if p.total else ""
        resumed = f" (resumed at {_gib(p.resumed_from)})" if p.resumed_from else ""
        print(f"\r{p.file}: {_gib(p.done)}{' of ' + _gib(p.total) if p.total else ''}{pct} {rate:.1f} MiB/s{resumed}   ",
              end="", file=sys.stderr, flush=True)

    try:
        path, size = pull(args.source, _local_dir(args), endpoint=args.endpoint, revision=args.revision,
                          include=args.include, on_progress=progress)
    except PullError as e:
        print(f"\nmtor-node: {e}", file=sys.stderr)
        return 1
    print(file=sys.stderr)
    print(f"pulled {args.source}: {_gib(size)} in {path}")
    print(f"register it with: mtor-node models import {path} --name NAME --kind KIND --backend BACKEND")
    return 0


def cmd_import(args) -> int:
    from ..client import client_of
    from ..pull import HUB_ID

    src = args.source
    local = Path(src).expanduser()
    if not local.exists() and (_local_dir(args) / src).exists():
        local = _local_dir(args) / src  # a name from `models list`
    if local.exists():
        source = str(local.resolve())
        backend = args.backend or ("llamacpp-chat" if local.suffix == ".gguf" else "transformers-chat")
    elif HUB_ID.match(src):
        source, backend = src, args.backend or "transformers-chat"
    else:
        print(f"mtor-node: {src!r} is neither a file, a folder, a pulled model nor a hub id (org/name)", file=sys.stderr)
        return 2
    name = args.name or Path(src).stem.replace("--", "-")[:100]
    fields = {"name": name, "kind": args.kind, "backend": backend, "source": source,
              "default": args.default, "preload": args.preload}
    client = client_of(args, timeout=600)
    model = client.post("/api/v1/models", json=fields, headers=client.sysop_headers())["model"]
    print(f"added {model['name']} ({model['kind']}, {model['backend']}) from {source}")
    if args.load:
        model = client.post(f"/api/v1/models/{name}/load", headers=client.sysop_headers())["model"]
        print(f"{name}: {model['status']}" + (f" in {model['load_seconds']} s" if model.get("load_seconds") else ""))
    return 0


def cmd_rm(args) -> int:
    from ..client import client_of
    from ..client import ClientError

    removed = None
    try:
        client = client_of(args, timeout=60)
        removed = client._request("DELETE", f"/api/v1/models/{args.name}", headers=client.sysop_headers())
        print(f"removed {args.name} from the node")
    except ClientError as e:
        if e.exit_code != 3 and not (args.files and "no model" in str(e)):
            raise
    if args.files:
        base = _local_dir(args).resolve()
        target = base / args.name
        src = Path((removed or {}).get("source") or "")
        if src.is_absolute() and src.resolve().is_relative_to(base) and src.resolve() != base:
            target = base / src.resolve().relative_to(base).parts[0]  # only what `pull` put there, never elsewhere
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        else:
            print(f"mtor-node: nothing pulled as {args.name!r} in {_local_dir(args)}", file=sys.stderr)
            return 0 if removed else 1
        print(f"deleted {target}")
    return 0


def cmd_load(args) -> int:
    from ..client import client_of

    client = client_of(args, timeout=900)
    m = client.post(f"/api/v1/models/{args.name}/{args.models_command}", headers=client.sysop_headers())["model"]
    print(f"{m['name']}: {m['status']}")
    return 0


def register(sub, add_client_args) -> None:
    p = sub.add_parser("models", help="the model manager: list, pull (resumable), import, rm, load, unload")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    c = msub.add_parser("list", help="the node's models and status, and what was pulled (sizes, where)")
    add_client_args(c)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_list)
    c = msub.add_parser("pull", help="download a hub model (org/name) or a file URL into the data dir, resumable")
    add_client_args(c)
    c.add_argument("source", help="a hub id (org/name) or an http(s) URL of one file (e.g. a .gguf)")
    c.add_argument("--revision", default="main")
    c.add_argument("--endpoint", default=None, help="the hub (default: $HF_ENDPOINT or https://huggingface.co)")
    c.add_argument("--include", action="append", default=None, metavar="GLOB", help="only these files (repeatable)")
    c.set_defaults(func=cmd_pull)
    c = msub.add_parser("import", help="add a model to the running node: a file, a folder, a pulled name or a hub id")
    add_client_args(c)
    c.add_argument("source")
    c.add_argument("--name", default=None)
    c.add_argument("--kind", default="chat", help="chat, vision, imagine, transcribe, speak (default chat)")
    c.add_argument("--backend", default=None, help="default: llamacpp-chat for .gguf, else transformers-chat")
    c.add_argument("--default", action="store_true", help="make it the default of its kind")
    c.add_argument("--preload", action="store_true", help="load it at every start")
    c.add_argument("--load", action="store_true", help="load it now")
    c.set_defaults(func=cmd_import)
    c = msub.add_parser("rm", help="remove a model from the node; --files also deletes what was pulled")
    add_client_args(c)
    c.add_argument("name")
    c.add_argument("--files", action="store_true")
    c.set_defaults(func=cmd_rm)
    for action in ("load", "unload"):
        c = msub.add_parser(action, help=f"{action} a model on the running node now")
        add_client_args(c)
        c.add_argument("name")
        c.set_defaults(func=cmd_load)
