"""`mtor-node app NAME [TEXT]`: run a realm app (weather, mail) on the running broker node.

`mtor-node app list` shows the apps, whether each is configured, and the words that start it.
"""

from __future__ import annotations

import json


def cmd_app(args) -> int:
    from ..client import client_of

    client = client_of(args, timeout=60)
    if args.name == "list":
        apps = client.get("/api/v1/apps")["apps"]
        if args.json:
            print(json.dumps(apps, indent=2))
            return 0
        for a in apps:
            state = "ready" if a["available"] else ("configured, air-gapped" if a["configured"] else "off")
            print(f"{a['name']:<10} {state:<22} say: {', '.join(a['triggers'])}  — {a['description']}")
        return 0
    answer = client.post(f"/api/v1/apps/{args.name}", json={"text": " ".join(args.text)})
    print(json.dumps(answer, indent=2) if args.json else answer["text"])
    return 0


def register(sub, add_client_args) -> None:
    p = sub.add_parser("app", help="run a realm app on the node: `app weather Berlin`, `app mail`, `app list`")
    add_client_args(p)
    p.add_argument("name", help="the app (weather, mail), or `list`")
    p.add_argument("text", nargs="*", help="what you would say to it, e.g. a place for weather")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_app)
