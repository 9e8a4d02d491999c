"""libp2p federation layer of mtor-node: host, realms, capability gossip, DHT, intents, peers.

Never imports mtor_node, ledger or ui (docs/architecture.md, "Packages and import direction").
"""

# Lazy (PEP 562): `federation.kinds` and `federation.pricing` are pure and imported by the CLI and
# intent validation; importing them must not load libp2p (~1 s).
_LAZY = {
    "INTENT_PROTOCOL": ("intent_protocol", "PROTOCOL"), "IntentFailed": ("intent_protocol", "IntentFailed"),
    "Limits": ("intent_protocol", "Limits"), "Federation": ("node", "Federation"),
    **{n: ("realm", n) for n in ("PUBLIC_REALM", "Realm", "RealmSecretError", "format_secret", "new_realm",
                                 "parse_secret", "public_realm")},
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Federation",
    "IntentFailed",
    "Limits",
    "INTENT_PROTOCOL",
    "Realm",
    "RealmSecretError",
    "PUBLIC_REALM",
    "public_realm",
    "new_realm",
    "format_secret",
    "parse_secret",
]
