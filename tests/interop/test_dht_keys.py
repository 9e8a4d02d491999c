"""DHT keys have the shape public Kademlia servers take (issue 19): a sha2-256 multihash (CIDv0) of
the namespaced name. The js-libp2p servers in test_js_dht.py check the same on the wire."""

from __future__ import annotations

import hashlib
import os

import pytest

from federation import Federation
from federation.config import FederationConfig
from federation.dht import RENDEZVOUS_KEY, RealmDHT, dht_key, is_dht_key
from federation.realm import Realm, new_realm


def test_capability_and_rendezvous_keys_are_sha256_multihashes():
    fed = Federation(os.urandom(32), FederationConfig(realm=Realm("lab-7", None)))
    dht = RealmDHT(fed.host, fed.realm)
    key = dht._key("chat", "m")
    assert key == b"\x12\x20" + hashlib.sha256(b"/mtor/lab-7/cap/chat/m").digest()
    assert is_dht_key(key) and is_dht_key(RENDEZVOUS_KEY) and not is_dht_key(b"/mtor/lab-7/cap/chat/m")
    assert dht_key("mtor-node/grid/rendezvous/v1") == RENDEZVOUS_KEY  # unchanged since the first release


async def test_raw_keys_are_refused_before_they_reach_the_network():
    fed = Federation(os.urandom(32))
    dht = RealmDHT(fed.host, fed.realm)
    with pytest.raises(ValueError, match="multihash"):
        await dht.provide_key(b"/mtor/grid/cap/chat/m")
    with pytest.raises(ValueError, match="multihash"):
        await dht.find_providers_of(b"/mtor/grid/cap/chat/m")


def test_a_private_realm_never_runs_the_public_rendezvous():
    fed = Federation(os.urandom(32), FederationConfig(realm=new_realm("lab"), rendezvous=True,
                     rendezvous_bootstrap=["/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"]))
    assert fed.realm.psk is not None and not fed.rendezvous_enabled and fed.rendezvous_bootstrap == []
