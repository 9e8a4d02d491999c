"""Entry encoding, signatures with a domain tag, strict decoding, Merkle rule, fuzzing."""

from __future__ import annotations

import hashlib
import os

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from ledger import DecodeError, Entry, Receipt
from ledger.encoding import canonical
from ledger.entry import ZERO_HASH
from ledger.keys import DOMAIN_ENTRY, Signer
from ledger.merkle import EMPTY_ROOT, inclusion_proof, leaf_hash, merkle_root, node_hash, verify_inclusion


def genesis(signer: Signer) -> Entry:
    return Entry.create(signer, 0, ZERO_HASH, "genesis", {"realm": "grid"}, time_ms=1)


def test_roundtrip_and_hash():
    s = Signer(os.urandom(32))
    e = genesis(s)
    assert e.author == bytes(Keypair.from_seed(s.keypair.secret()[:32]).pubkey())
    assert e.author_address == str(s.keypair.pubkey())
    d = Entry.from_wire(e.to_dict())
    b = Entry.from_wire(e.to_bytes())
    assert d == e == b and d.hash == hashlib.sha256(e.raw).digest()
    # bytes must be the canonical encoding: the same entry with keys in another order is refused
    with pytest.raises(DecodeError, match="canonical"):
        Entry.from_bytes(msgpack.packb(dict(reversed(list(e.to_dict().items()))), use_bin_type=True))


def test_canonical_encoding_ignores_key_order():
    a = canonical({"b": 1, "a": {"y": b"x", "x": [1, "z"]}})
    b = canonical({"a": {"x": [1, "z"], "y": b"x"}, "b": 1})
    assert a == b


def test_signature_has_domain_tag_and_is_not_a_plain_message_signature():
    s = Signer(os.urandom(32))
    e = genesis(s)
    pk = Pubkey.from_bytes(e.author)
    sig = Signature.from_bytes(e.sig)
    assert sig.verify(pk, DOMAIN_ENTRY + e.signing_bytes)
    assert not sig.verify(pk, e.signing_bytes)  # without the tag it is not valid
    # and a Solana-style signature of the bare bytes is not a ledger signature
    bare = s.keypair.sign_message(e.signing_bytes)
    forged = Entry(e.author, e.seq, e.prev, e.time, e.kind, e.body, bytes(bare))
    assert not forged.sig_ok()


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d.pop("sig"), "<root>"),
    (lambda d: d.update(extra=1), "<root>"),
    (lambda d: d.update(seq=-1), "seq"),
    (lambda d: d.update(seq=True), "seq"),
    (lambda d: d.update(seq=1.5), "seq"),
    (lambda d: d.update(author=b"x" * 31), "author"),
    (lambda d: d.update(kind="steal"), "kind"),
    (lambda d: d.update(sig="not bytes"), "sig"),
    (lambda d: d.update(body={"realm": 7}), "body.realm"),
    (lambda d: d.update(body=[]), "body"),
    (lambda d: d.update(prev=b"\x01" * 32), "prev"),
])
def test_strict_decoding_names_the_field(mutate, field):
    d = genesis(Signer(os.urandom(32))).to_dict()
    mutate(d)
    with pytest.raises(DecodeError) as ei:
        Entry.from_dict(d)
    assert ei.value.field == field


def test_pay_body_must_match_its_receipt():
    req, wrk = Signer(os.urandom(32)), Signer(os.urandom(32))
    r = Receipt("j1", req.pubkey, wrk.pubkey, "chat", "m", 10, 500, bytes(32), 1).signed_by(wrk)
    body = {"job": "j1", "to": wrk.pubkey, "amount": 499, "receipt": r.to_dict()}
    with pytest.raises(DecodeError) as ei:
        Entry.create(req, 1, bytes(32), "pay", body)
    assert ei.value.field == "body.amount"


def test_oversized_and_garbage_bytes_rejected():
    with pytest.raises(DecodeError):
        Entry.from_bytes(b"\xff" * 10)
    with pytest.raises(DecodeError):
        Entry.from_bytes(b"\x00" * 100_000)
    with pytest.raises(DecodeError):
        Entry.from_bytes(msgpack.packb(msgpack.ExtType(5, b"x")))


@given(st.binary(max_size=600))
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_random_bytes_never_crash(data):
    try:
        Entry.from_bytes(data)
    except DecodeError:
        pass


_SIGNER = Signer(bytes(range(32)))
_VALID = Entry.create(_SIGNER, 0, ZERO_HASH, "genesis", {"realm": "grid"}, time_ms=5).raw

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats() | st.text(max_size=20) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@given(st.integers(0, len(_VALID) - 1), st.integers(0, 255))
@settings(max_examples=300, deadline=None)
def test_fuzz_bit_flips_of_a_valid_entry(pos, val):
    data = bytearray(_VALID)
    data[pos] = val
    try:
        e = Entry.from_bytes(bytes(data))
    except DecodeError:
        return
    if bytes(data) != _VALID:
        assert not e.sig_ok() or e.raw == _VALID  # any accepted change breaks the signature


@given(st.dictionaries(st.sampled_from(["v", "author", "seq", "prev", "time", "kind", "body", "sig", "x"]),
                       msgpack_values, max_size=9))
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_structured_dicts(d):
    try:
        Entry.from_bytes(msgpack.packb(d, use_bin_type=True))
    except DecodeError:
        pass


def test_merkle_rule_rfc6962():
    hs = [hashlib.sha256(bytes([i])).digest() for i in range(7)]
    assert merkle_root([]) == EMPTY_ROOT
    assert merkle_root(hs[:1]) == leaf_hash(hs[0])
    l = [leaf_hash(h) for h in hs]
    # n=7: split at 4, right side splits at 2
    expect = node_hash(node_hash(node_hash(l[0], l[1]), node_hash(l[2], l[3])),
                       node_hash(node_hash(l[4], l[5]), l[6]))
    assert merkle_root(hs) == expect
    for i in range(7):
        p = inclusion_proof(hs, i)
        assert verify_inclusion(hs[i], i, 7, p, expect)
        assert not verify_inclusion(hs[i], (i + 1) % 7, 7, p, expect)
