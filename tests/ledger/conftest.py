"""Fixtures for ledger tests: real SQLite files under tmp_path, real LiteSVM."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for litesvm_rpc

from ledger import Ledger, issue_grant  # noqa: E402
from ledger.keys import Signer  # noqa: E402


@pytest.fixture
def authority_seed() -> bytes:
    return os.urandom(32)


@pytest.fixture
def make_ledger(tmp_path, authority_seed):
    """make_ledger(name, funds=0) -> Ledger in tmp_path/name.db, realm 'lab', funded by a grant."""
    opened: list[Ledger] = []

    def make(name: str, funds: int = 0, seed: bytes | None = None, realm: str = "lab") -> Ledger:
        led = Ledger.open(tmp_path / f"{name}.db", seed or os.urandom(32), realm=realm,
                          authority=Signer(authority_seed).pubkey)
        if funds:
            led.apply_grant(issue_grant(authority_seed, realm, led.pubkey, funds, f"initial-{name}"))
        opened.append(led)
        return led

    yield make
    for led in opened:
        led.close()
