"""`mtor-node`: the command line. Each subcommand has --help; exit codes:
0 ok, 1 error, 2 usage, 3 no node running / not answering, 4 request refused, 5 node-side failure.

Extra subcommands live in mtor_node/commands/*.py, each with `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import pkgutil
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__
from .client import ClientError, client_of, data_dir_of
from .config import KEYS, Bool, Key, Str, StrList


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="the node's data dir (default: $MTOR_DATA_DIR or the platform's user data dir)")


def _add_client(p: argparse.ArgumentParser) -> None:
    _add_common(p)
    p.add_argument("--url", default=None, help="the node's HTTP address (default: from the data dir, else http://127.0.0.1:$MTOR_PORT or 9000)")


# ---- init / start ------------------------------------------------------------------------------

def cmd_init(args) -> int:
    from .node import prepare_data_dir
    from .identity import load

    d = data_dir_of(args)
    cfg_created, id_created = prepare_data_dir(d)
    ident = load(d / "identity.key")
    print(f"data dir:        {d}")
    print(f"config:          {d / 'mtor.toml'}{' (created)' if cfg_created else ''}")
    print(f"identity:        {d / 'identity.key'}{' (created)' if id_created else ''}")
    print(f"peer id:         {ident.peer_id}")
    print(f"solana address:  {ident.solana_address}")
    return 0


def _shown(v: Any) -> str:
    """A key's default as --help shows it."""
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, list):
        if not v:
            return "none"
        return ", ".join(v) if len(v) <= 2 else f"{len(v)} entries"
    return repr(v) if v == "" else str(v)


def flag_help(key: Key) -> str:
    """A `start` flag's help: its key's comment and default, and the mtor.toml key it overrides."""
    flag = key.flag
    assert flag is not None
    env = f", or ${flag.env}" if flag.env else ""
    turns = ("turns on: " if flag.switch else "turns off: ") if isinstance(key.check, Bool) else ""
    form = ""
    if isinstance(key.check, StrList):
        form = f"items separated by '{flag.sep}'; " if flag.sep else "repeatable; "
    default = flag.sep.join(key.default) if flag.sep else _shown(key.default)
    also = "".join(f"; sets {path} = {json.dumps(v)} too" for path, v in flag.implies)
    text = f"{turns}{key.comment} ({form}mtor.toml {key.path}, default {default}{env}{also})"
    return text.replace("%", "%%")  # argparse formats help with %


def _add_key_flags(p: argparse.ArgumentParser) -> None:
    """One `start` option per config key that names a flag (mtor_node/config.py KEYS)."""
    for key in KEYS:
        flag = key.flag
        if flag is None:
            continue
        kw: dict[str, Any] = {"dest": flag.dest, "help": flag_help(key)}
        if isinstance(key.check, Bool):
            kw["action"] = "store_true"
        elif isinstance(key.check, StrList) and not flag.sep:
            kw.update(action="append", default=None, metavar=flag.metavar)
        else:
            kw.update(type=key.check.arg_type, default=None, metavar=flag.metavar,
                      choices=key.check.choices if isinstance(key.check, Str) else None)
        p.add_argument(flag.name, **kw)


def _overrides(args) -> dict[str, Any]:
    """The config keys the `start` flags (and their environment variables) set; they win over mtor.toml."""
    o: dict[str, Any] = {}
    for key in KEYS:
        flag = key.flag
        if flag is None:
            continue
        v = getattr(args, flag.dest, None)
        if isinstance(key.check, Bool):
            if not v:
                continue
            v = flag.switch
        elif v is None or v == "" or v == []:  # an empty value is no value: mtor.toml's stays
            raw = os.environ.get(flag.env) if flag.env else None
            if raw is None:
                continue
            try:
                v = key.check.arg_type(raw)
            except ValueError:
                v = raw  # reported by the config check with what is allowed
        elif flag.sep:
            v = [x.strip() for x in v.split(flag.sep) if x.strip()]
        elif isinstance(v, list):
            v = list(v)
        o[key.path] = v
        o.update(flag.implies)
    return o


def cmd_start(args) -> int:
    import trio

    from . import config as config_mod
    from .identity import IdentityError
    from federation.pricing import PriceError, parse_prices

    from .node import Node, StartError, prepare_data_dir, run_until_signalled

    from .logs import setup as setup_logs

    d = data_dir_of(args)
    try:
        cfg_created, _ = prepare_data_dir(d)
        cfg = config_mod.load(d / config_mod.CONFIG_NAME, _overrides(args))
        # console, rotating logs/mtor-node.log, and the sysop's live console
        setup_logs(d, max_bytes=cfg["logs.max_bytes"], backup_count=cfg["logs.backup_count"],
                   fmt=args.log_format, verbose=args.verbose)
        for w in cfg.warnings:
            logging.getLogger("mtor.config").warning(w)
        if cfg_created:
            token = (d / "sysop.token").read_text().strip()
            print(f"first start: wrote {d / 'mtor.toml'}\nsysop token (keep it; also in {d / 'sysop.token'}): {token}", flush=True)
        node = Node(d, cfg)
        node.price_overrides = parse_prices(args.price or [])
    except (config_mod.ConfigError, IdentityError, StartError, PriceError) as e:
        print(f"mtor-node: {e}", file=sys.stderr)
        return 1

    async def main():
        await run_until_signalled(node)

    try:
        trio.run(main)
    except StartError as e:
        print(f"mtor-node: {e}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as eg:  # a start error raised inside the nursery arrives wrapped
        starts = [e for e in _leaves(eg) if isinstance(e, StartError)]
        if starts:
            print(f"mtor-node: {starts[0]}", file=sys.stderr)
            return 1
        raise
    return 0


def _leaves(eg: BaseException):
    if isinstance(eg, BaseExceptionGroup):
        for e in eg.exceptions:
            yield from _leaves(e)
    else:
        yield eg


# ---- talking to the running node ---------------------------------------------------------------

def cmd_status(args) -> int:
    st = client_of(args).get("/api/v1/status")
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    print(f"mtor-node {st['version']}  up {st['uptime_s']:.0f} s  roles: {', '.join(st['roles'])}")
    print(f"peer id:         {st['peer_id']}")
    print(f"solana address:  {st['solana_address']}")
    print(f"http:            {st['http']}")
    for a in st.get("listen_addrs") or []:
        print(f"listening:       {a}")
    if st.get("realm"):
        reach = (st.get("reachability") or {}).get("summary") or "unknown"
        print(f"realm:           {st['realm']}  ({len(st.get('peers') or [])} peers; reachability: {reach})")
    wallet = st.get("wallet")
    if wallet:
        from .commands.ledger import fmt_amount  # exact decimal, never float, for money

        print(f"wallet:          {fmt_amount(wallet['balance'])}; available {fmt_amount(wallet['available'])}")
    ch = st.get("charges")
    if ch:
        from .commands.ledger import fmt_amount

        parts = [f"{k} {fmt_amount(c['price'])} {c['price_unit']}" + (f" + {fmt_amount(c['request'])}/request" if c.get("request") else "")
                 for k, c in ch["kinds"].items()]
        peak = f"; peaking at surge >= {ch['peaking']}" if ch.get("peaking") else ""
        print(f"charges:         {'; '.join(parts)} (x surge {ch['surge']}{peak})")
    q = st.get("queue") or {}
    if q:
        print(f"queue:           {q['waiting']} waiting, {q['inflight']} running (max {q['max_size']})")
    print("models:")
    for m in st.get("models") or []:
        extra = m["error"] or m["progress"]
        print(f"  {m['name']:<24} {m['kind']:<11} {m['status']:<11} {m['inflight']}/{m['concurrency']} running"
              + (f"  ({extra})" if extra else ""))
    return 0


def run_intent(args, intent: dict, on_event=None) -> dict:
    """Send an intent, print streamed text as it comes (unless --json), return the final event."""
    client = client_of(args, timeout=intent.get("timeout", 300) + 10)
    if getattr(args, "max_price", None) is not None:
        intent["max_price"] = args.max_price
    if not args.json:
        q = client.post("/api/v1/quote", json=client.encode_intent(intent))
        if q.get("ok") and q.get("price"):
            print(f"[quote: {q['price']} micro-tokens, {'this node' if q.get('local') else q.get('peer')}]", file=sys.stderr, flush=True)
    final = None
    t0 = time.monotonic()
    for event in client.stream_intent(intent, timeout=intent.get("timeout", 300) + 10):
        if event["type"] == "chunk" and "text" in event and not args.json:
            print(event["text"], end="", flush=True)
        elif event["type"] == "queued" and not args.json and event.get("position", 1) > 1:
            print(f"[queued at position {event['position']}]", file=sys.stderr, flush=True)
        elif on_event:
            on_event(event)
        if event["type"] == "failover" and not args.json:
            print(f"\n[worker {event.get('from')} failed ({event.get('code')}); retrying on another]", file=sys.stderr, flush=True)
        if event["type"] in ("result", "error"):
            final = event
    if final is None:
        raise ClientError("the node ended the stream without a result", 5)
    if final["type"] == "error":
        if not args.json:
            print()
        raise ClientError(f"{final['message']} ({final['code']})", 4 if final["code"] in ("bad_request", "bad_input", "bad_params", "too_large", "no_model", "queue_full", "banned") else 5)
    final["elapsed_s"] = round(time.monotonic() - t0, 3)
    return final


def cmd_chat(args) -> int:
    params = {"max_tokens": args.max_tokens, "temperature": args.temperature}
    intent = {"kind": "chat", "messages": [{"role": "user", "content": args.prompt}], "model": args.model,
              "params": params, "user": args.user, "timeout": args.timeout}
    if args.system:
        intent["messages"].insert(0, {"role": "system", "content": args.system})
    final = run_intent(args, intent)
    if args.json:
        print(json.dumps({k: v for k, v in final.items() if k != "type"}, indent=2))
    elif not final.get("text", "").endswith("\n"):
        print()
    return 0


def _read_input(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ClientError(f"cannot read {what} {path}: {e.strerror}", 1) from None


def _write_output(path: Path, data: bytes, what: str) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as e:
        raise ClientError(f"cannot write {what} to {path}: {e.strerror}", 1) from None
    print(f"wrote {len(data)} bytes of {what} to {path}", file=sys.stderr)


def _print_json(final: dict) -> None:
    print(json.dumps({k: (f"<{len(v)} bytes>" if isinstance(v, bytes) else v) for k, v in final.items() if k != "type"}, indent=2))


def cmd_transcribe(args) -> int:
    params = {"timestamps": args.timestamps}
    if args.language:
        params["language"] = args.language
    final = run_intent(args, {"kind": "transcribe", "audio": _read_input(args.audio, "audio file"), "model": args.model,
                              "params": params, "user": args.user, "timeout": args.timeout})
    if args.json:
        _print_json(final)
    else:
        print()
    return 0


def cmd_speak(args) -> int:
    params = {"speed": args.speed}
    if args.voice:
        params["voice"] = args.voice
    final = run_intent(args, {"kind": "speak", "prompt": args.text, "model": args.model, "params": params,
                              "user": args.user, "timeout": args.timeout})
    _write_output(args.output, final["audio_wav"], "WAV audio")
    if args.json:
        _print_json(final)
    return 0


def cmd_vision(args) -> int:
    final = run_intent(args, {"kind": "vision", "image": _read_input(args.image, "image"), "prompt": args.prompt,
                              "model": args.model, "params": {"max_tokens": args.max_tokens, "temperature": 0.0},
                              "user": args.user, "timeout": args.timeout})
    if args.json:
        _print_json(final)
    else:
        print()
    return 0


def cmd_imagine(args) -> int:
    params = {"width": args.width, "height": args.height, "steps": args.steps, "guidance": args.guidance}
    if args.seed is not None:
        params["seed"] = args.seed
    if args.negative:
        params["negative_prompt"] = args.negative

    def progress(event):
        if event["type"] == "progress" and not args.json:
            print(f"\rstep {event['step']}/{event['total']}", end="", file=sys.stderr, flush=True)

    final = run_intent(args, {"kind": "imagine", "prompt": args.prompt, "model": args.model, "params": params,
                              "user": args.user, "timeout": args.timeout}, on_event=progress)
    if not args.json:
        print(file=sys.stderr)
    _write_output(args.output, final["image_png"], "PNG image")
    if args.json:
        _print_json(final)
    return 0


def cmd_version(args) -> int:
    print(f"mtor-node {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtor-node", description="A peer-to-peer AI grid node: broker and/or worker.")
    parser.add_argument("--version", action="version", version=f"mtor-node {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("init", help="create the data dir, config and identity")
    _add_common(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("start", help="start the node (Ctrl-C stops it cleanly)")
    _add_common(p)
    _add_key_flags(p)  # the flags that override a mtor.toml key, with its comment and default
    p.add_argument("--price", action="append", default=None, metavar="KIND=MICROTOKENS",
                   help="override a base price without editing the config (repeatable; KIND@MODEL too)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="json: one JSON object per log line (console and logs/mtor-node.log)")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("status", help="what the running node is: ids, roles, models, queue, addresses")
    _add_client(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("chat", help="ask the running node a question; the answer streams to the terminal")
    _add_client(p)
    p.add_argument("prompt")
    p.add_argument("--model", default=None, help="model name (default: the node's default chat model)")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--system", default=None, help="a system message")
    p.add_argument("--user", default="cli", help="the user name the queue is fair between")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds, queue wait included")
    p.add_argument("--json", action="store_true", help="print the answer with serving peer, price and time as JSON")
    p.add_argument("--max-price", type=int, default=None, help="the most to pay, in micro-tokens (default: the quote)")
    p.set_defaults(func=cmd_chat)

    def intent_parser(name, help):
        p = sub.add_parser(name, help=help)
        _add_client(p)
        p.add_argument("--model", default=None, help=f"model name (default: the node's default {name} model)")
        p.add_argument("--user", default="cli", help="the user name the queue is fair between")
        p.add_argument("--timeout", type=float, default=300.0, help="seconds, queue wait included")
        p.add_argument("--json", action="store_true", help="print the result with serving peer, price and time as JSON")
        p.add_argument("--max-price", type=int, default=None, help="the most to pay, in micro-tokens (default: the quote)")
        return p

    p = intent_parser("transcribe", "speech to text: transcribe a wav, webm, ogg or mp3 file")
    p.add_argument("audio", type=Path)
    p.add_argument("--language", default=None, help="language code, e.g. en (default: detected)")
    p.add_argument("--timestamps", action="store_true", help="include segment timestamps")
    p.set_defaults(func=cmd_transcribe)

    p = intent_parser("speak", "text to speech: write a WAV file")
    p.add_argument("text")
    p.add_argument("-o", "--output", type=Path, required=True, help="the WAV file to write")
    p.add_argument("--voice", default=None)
    p.add_argument("--speed", type=float, default=1.0)
    p.set_defaults(func=cmd_speak)

    p = intent_parser("vision", "ask about an image")
    p.add_argument("image", type=Path)
    p.add_argument("prompt", nargs="?", default="Describe this image.")
    p.add_argument("--max-tokens", type=int, default=256)
    p.set_defaults(func=cmd_vision)

    p = intent_parser("imagine", "text to image: write a PNG file")
    p.add_argument("prompt")
    p.add_argument("-o", "--output", type=Path, required=True, help="the PNG file to write")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--negative", default=None, help="negative prompt")
    p.set_defaults(func=cmd_imagine)

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=cmd_version)

    from . import commands
    for mod in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"{commands.__name__}.{mod.name}").register(sub, _add_client)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except ClientError as e:
        print(f"mtor-node: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
