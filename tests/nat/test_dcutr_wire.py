"""DCUtR messages (federation/dcutr.py) as the spec's protobuf: field 1 = type (CONNECT 100,
SYNC 300), field 2 = repeated binary multiaddrs. Cross-checked with the protobuf library's own
wire decoder (google.protobuf, a py-libp2p dependency), and hostile input is refused."""

from __future__ import annotations

import multiaddr
import pytest
from google.protobuf.internal.decoder import _DecodeVarint

from federation.dcutr import CONNECT, MAX_ADDRS, SYNC, DcutrError, decode, encode, pick_target


def test_round_trip_and_protobuf_layout():
    a = multiaddr.Multiaddr("/ip4/10.77.0.11/tcp/40001").to_bytes()
    wire = encode(CONNECT, [a])
    assert wire[0] == 0x08 and _DecodeVarint(wire, 1)[0] == 100  # field 1, varint
    assert wire[2] == 0x12 and wire[3] == len(a) and wire[4:] == a  # field 2, length-delimited
    assert decode(wire) == (CONNECT, [a])
    assert decode(encode(SYNC, [])) == (SYNC, [])
    # unknown fields are skipped, as protobuf readers do
    assert decode(wire + b"\x18\x05" + b"\x22\x01x") == (CONNECT, [a])


def test_hostile_messages():
    for bad in (b"", b"\x08\x07", b"\x08\xe4\x00\x12\x7f", b"\x0f", b"\x08" + b"\xff" * 12):
        with pytest.raises(DcutrError):
            decode(bad)
    many = encode(CONNECT, [b"x"] * 1000)
    assert len(decode(many)[1]) == MAX_ADDRS


def test_pick_target_skips_ours_loopback_and_garbage():
    ours = multiaddr.Multiaddr("/ip4/10.77.0.11/tcp/1").to_bytes()
    lo = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/2").to_bytes()
    good = multiaddr.Multiaddr("/ip4/10.77.0.12/tcp/3").to_bytes()
    assert pick_target([b"junk", lo, ours, good], "10.77.0.11") == (("10.77.0.12", 3), "")
    target, why = pick_target([ours], "10.77.0.11")
    assert target is None and "same public IP" in why
