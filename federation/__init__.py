"""libp2p federation layer of mtor-node: host, realms, capability gossip, DHT, intents, peers.

Never imports mtor_node, ledger or ui (DESIGN §2).
"""

from .intent_protocol import PROTOCOL as INTENT_PROTOCOL
from .intent_protocol import IntentFailed, Limits
from .node import Federation
from .realm import PUBLIC_REALM, Realm, RealmSecretError, format_secret, new_realm, parse_secret, public_realm

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
